"""What `{% set %}` really binds (by branch), and the template constructs `validate` refuses as abuse (E090)."""

from __future__ import annotations

import pytest
from conftest import check_text, codes, located
from test_templates import with_template

from expc.compiler.templates import MAX_LOOP_DEPTH, MAX_RANGE, MAX_TEMPLATE_CHARS, SAFE_GLOBALS, analyse


def names(template: str) -> set[str]:
    """The names a template reads from outside itself (context or globals)."""
    return {u.name for u in analyse(template).uses if u.kind == "name"}


# ------------------------------------------------------------------ {% set %} by branch


@pytest.mark.parametrize("template, name", [
    # a set in a branch never taken does not make Jinja's own globals the template's
    ("{% if false %}{% set lipsum = 1 %}{% endif %}{{ lipsum(1) }}", "lipsum"),
    ("{% if false %}{% set cycler = 1 %}{% endif %}{{ cycler('a', 'b').next() }}", "cycler"),
    ("{% if user.beta %}{% set greeting = 'hi' %}{% endif %}{{ greeting }}", "greeting"),
    ("{% if user.beta %}{% set g = 'a' %}{% elif user.plan %}{% set g = 'b' %}{% endif %}{{ g }}", "g"),
    ("{% if user.beta %}{% set g = 'a' %}{% else %}{% set h = 'b' %}{% endif %}{{ g }}", "g"),
    # what a loop body sets stays in the loop, as in Jinja
    ("{% for x in user.interests %}{% set last = x %}{% endfor %}{{ last }}", "last"),
    ("{% for x in user.interests %}{% endfor %}{{ x }}", "x"),
    # a use before the set
    ("{{ later }}{% set later = 1 %}", "later"),
    ("{% set n = n ~ '!' %}", "n"),
    # a macro's arguments stay in the macro
    ("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1) }}{{ a }}", "a"),
    # `loop` exists only inside a loop
    ("{{ loop.index }}", "loop"),
    # a namespace must exist before a value is put in it
    ("{% set ns.count = 1 %}", "ns"),
    ("{% if user.beta %}{% set ns = namespace(c=0) %}{% endif %}{% set ns.c = 1 %}", "ns"),
])
def test_a_name_not_set_on_every_path_is_undefined(template: str, name: str):
    assert name in names(template)
    result = check_text(with_template(template))
    assert "E039" in codes(result), result.diagnostics
    assert any(f"`{name}` is not defined" in d.message for d in result.diagnostics)


@pytest.mark.parametrize("template", [
    "{% if user.beta %}{% set g = 'a' %}{% else %}{% set g = 'b' %}{% endif %}{{ g }}",
    "{% if user.beta %}{% set g = 'a' %}{% elif user.plan %}{% set g = 'b' %}{% else %}{% set g = 'c' %}"
    "{% endif %}{{ g }}",
    "{% set g = 'a' %}{% if user.beta %}{% set g = 'b' %}{% endif %}{{ g }}",
    "{% for x in user.interests %}{% set y = x | upper %}{{ y }}{{ loop.index }}{% endfor %}",
    "{% for x in user.interests if x != 'chess' %}{{ x }}{% else %}none{% endfor %}",
    "{% set ns = namespace(n=0) %}{% for x in user.interests %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
    "{% macro shout(word, end='!') %}{{ word | upper }}{{ end }}{% endmacro %}{{ shout(user.first_name) }}",
    "{% macro count(n) %}{% if n %}{{ n }}{{ count(n - 1) }}{% endif %}{% endmacro %}{{ count(3) }}",
    "{% set a, b = 1, 2 %}{{ a + b }}",
    "{% with w = user.first_name %}{{ w }}{% endwith %}",
    "{% set block %}Hi {{ user.first_name }}{% endset %}{{ block }}",
    "{% for k, v in {'a': 1} | dictsort %}{{ k }}{{ v }}{% endfor %}",
])
def test_names_set_on_every_path_are_the_templates_own(template: str):
    result = check_text(with_template(template))
    assert result.ok(strict=True), result.diagnostics


def test_a_context_name_set_only_in_one_branch_still_reads_the_context():
    # `user` may still be the unit here, so `user.nope` must be a declared attribute
    result = check_text(with_template("{% if user.beta %}{% set user = {'nope': 1} %}{% endif %}{{ user.nope }}"))
    assert "E039" in codes(result) and any("user.nope" in d.message for d in result.diagnostics)
    assert check_text(with_template("{% set u = {'nope': 1} %}{{ u.nope }}")).ok(strict=True)


def test_the_check_knows_exactly_the_render_globals():
    assert SAFE_GLOBALS == ("dict", "namespace", "range")
    for name in ("lipsum", "cycler", "joiner", "self"):
        assert "E039" in codes(check_text(with_template(f"{{{{ {name} }}}}"))), name
    for name in SAFE_GLOBALS:
        assert name not in names(f"{{% set {name} = 1 %}}{{{{ {name} }}}}")


def test_the_hint_says_what_counts_as_defined():
    [d] = check_text(with_template("{% if user.beta %}{% set g = 1 %}{% endif %}{{ g }}")).diagnostics
    assert d.code == "E039" and "every path" in d.hint


# ------------------------------------------------------------------ E090: constructs that can only be abuse


@pytest.mark.parametrize("template, needle", [
    (f"{{% for i in range({MAX_RANGE + 1}) %}}{{% endfor %}}", "range"),
    ("{% for i in range(10 ** 9) %}x{% endfor %}", "range"),
    ("{% for i in range(0, 10 ** 12, 2) %}x{% endfor %}", "range"),
    ("{{ range(10 ** 10 ** 2) | length }}", "range"),
    ("{{ 9 ** (9 ** 9) }}", "**"),
    ("{{ 9 ** 999999 }}", "**"),
    ("{{ user.signup_days ** 100000 }}", "**"),
    ("{{ (2 ** 64) ** 100 }}", "**"),
    ("{% for a in user.interests %}{% for b in a %}{% for c in b %}{% for d in c %}{{ d }}"
     "{% endfor %}{% endfor %}{% endfor %}{% endfor %}", "for"),
])
def test_abuse_that_can_be_seen_statically_is_refused(template: str, needle: str):
    result = check_text(with_template(template))
    assert codes(result) == ["E090"], result.diagnostics
    [d] = result.diagnostics
    assert d.hint and "at most" in d.hint
    line = result.doc.text.splitlines()[d.line - 1]
    assert line[d.col - 1:].startswith(needle), (line, d.col)


def test_e090_is_located_on_the_line_of_the_construct():
    template = "Line one\n{% for i in range(100) %}{{ i }}{% endfor %}\n{{ 10 ** 1000 }}"
    result = check_text(with_template(template))
    # the template's first line is line 23 of the file; the third holds the power
    assert located(result, "E090") == [(25, 13)]


@pytest.mark.parametrize("template", [
    f"{{% for i in range({MAX_RANGE}) %}}{{% endfor %}}",
    "{% for i in range(user.signup_days) %}{{ i }}{% endfor %}",
    "{{ 2 ** 10 }} {{ user.score ** 2 }} {{ 1.5 ** 0.5 }}",
    "{% for a in user.interests %}{% for b in a %}{% for c in b %}{{ c }}{% endfor %}{% endfor %}{% endfor %}",
    "{% for a in user.interests %}{{ a }}{% endfor %}{% for b in user.interests %}{{ b }}{% endfor %}",
])
def test_ordinary_loops_and_powers_pass(template: str):
    result = check_text(with_template(template))
    assert result.ok(strict=True), result.diagnostics


def test_loop_depth_limit_is_small():
    assert MAX_LOOP_DEPTH == 3


def test_a_template_over_the_size_limit_is_refused_without_parsing():
    source = "x" * (MAX_TEMPLATE_CHARS + 1)
    [use] = analyse(source).uses
    assert use.kind == "limit" and f"{MAX_TEMPLATE_CHARS:,}" in use.detail
    result = check_text(with_template(source))
    assert codes(result) == ["E090"]
    assert analyse("x" * MAX_TEMPLATE_CHARS).uses == ()


def test_static_evaluation_never_computes_a_huge_number():
    import time

    start = time.perf_counter()
    # Jinja's `**` is left-associative: 9 ** 9 ** 9 ** 9 is ((9 ** 9) ** 9) ** 9, 2,300 bits, allowed
    assert analyse("{{ 9 ** 9 ** 9 ** 9 }}").uses == ()
    assert [u.kind for u in analyse("{{ (9 ** (9 ** 9)) * (9 ** (9 ** 9)) }}").uses] == ["limit", "limit"]
    assert [u.kind for u in analyse("{{ 7 ** (7 ** (7 ** 7)) }}").uses] == ["limit", "limit"]
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize("source", ["{{ x" + " | e" * 3000 + " }}", "{% if x %}" * 400 + "a" + "{% endif %}" * 400,
                                    "{{ " + "(" * 300 + "1" + ")" * 300 + " }}"])
def test_a_template_nested_too_deeply_is_one_located_error(source: str):
    assert analyse(source).syntax_error and "nested too deeply" in analyse(source).syntax_error
    assert codes(check_text(with_template(source))) == ["E038"]


@pytest.mark.parametrize("template, statement", [
    ("{% include '/etc/passwd' %}", "include"),
    ("{% import 'macros.j2' as m %}{{ m.x() }}", "import"),
    ("{% from 'macros.j2' import x %}{{ x() }}", "from"),
    ("{% extends 'base.j2' %}", "extends"),
])
def test_a_template_that_loads_another_is_refused(template: str, statement: str):
    # the render has no loader: without this, validate passes and every render fails
    result = check_text(with_template(template))
    assert "E040" in codes(result), result.diagnostics
    assert any(f"`{{% {statement} %}}` is not allowed" in d.message for d in result.diagnostics)
