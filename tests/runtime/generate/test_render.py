"""Template rendering: sandboxed, strict, and capped in size."""

from __future__ import annotations

import pytest

from expc.runtime.generate.render import RenderError, RenderLimits, plain, render

CTX = {"user": {"first_name": "Ada", "interests": ["chess", "maths"]}, "segment": {},
       "variant": {"id": "v"}, "experiment": {"id": "e"}}


def test_renders_the_context() -> None:
    assert render("Hi {{ user.first_name }}: {{ user.interests | join(', ') }} ({{ variant.id }})", CTX) == \
        "Hi Ada: chess, maths (v)"


def test_missing_value_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(RenderError, match="last_name"):
        render("Hi {{ user.last_name }}", CTX)


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ user | attr('__class__') }}",
    "{{ 'a{0.__class__}'.format(user) }}",
    "{{ '%s'.format_map(user) }}",
    "{{ user.first_name.__class__.__base__.__subclasses__() }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__['os'] }}",
    "{% set x = 'format' %}{{ ''[x] }}",
])
def test_template_injection_is_refused(source: str) -> None:
    with pytest.raises(RenderError):
        render(source, CTX)


def test_dynamic_attribute_name_is_refused_by_the_sandbox() -> None:
    # the static check cannot see the name; the sandbox must still refuse it
    with pytest.raises(RenderError):
        render("{{ user[name] }}", CTX | {"name": "__class__"})
    with pytest.raises(RenderError):
        render("{{ (''|string)[x]('{0.__class__}', 1) }}", CTX | {"x": "format"})


def test_oversized_output_is_cut_off_with_an_error() -> None:
    source = "{% for i in range(10000) %}{% for j in range(1000) %}xxxxxxxxxx{% endfor %}{% endfor %}"
    with pytest.raises(RenderError, match="more than"):
        render(source, CTX)
    assert render("{% for i in range(10) %}ab{% endfor %}", CTX, RenderLimits(chars=20)) == "ab" * 10
    with pytest.raises(RenderError):
        render("{% for i in range(11) %}ab{% endfor %}", CTX, RenderLimits(chars=20))


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(RenderError, match="line 2"):
        render("ok\n{{ user.first_name ", CTX)


def test_plain_values() -> None:
    import numpy as np

    assert plain(np.float64(3.0), "integer") == 3 and isinstance(plain(np.float64(3.0), "integer"), int)
    assert plain(np.float64(2.5), "number") == 2.5
    assert plain(float("nan"), "number") is None
    assert plain(("a", "b"), "list[string]") == ["a", "b"]
