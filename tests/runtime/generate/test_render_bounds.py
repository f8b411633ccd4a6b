"""Rendering within a budget: time, prompt size and the size of what a template builds; globals; read-only context."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from gen_helpers import plan_of, spec_text, units_of

from expc.compiler.plan import Plan
from expc.compiler.templates import SAFE_GLOBALS, environment
from expc.runtime.generate.jobs import MAX_SLOW_RENDERS, JobError, pieces
from expc.runtime.generate.render import (
    MAX_PROMPT_CHARS,
    RENDER_SECONDS,
    FrozenList,
    Record,
    RenderError,
    RenderLimitExceeded,
    RenderLimits,
    _environment,
    render,
)
from expc.runtime.generate.runner import GenerateOptions, GenerationInputError, generate
from expc.runtime.units import Units

CTX = {"user": {"first_name": "Ada", "interests": ["chess", "maths"]}, "segment": {},
       "variant": {"id": "v"}, "experiment": {"id": "e"}}
FAST = RenderLimits(seconds=0.2)


def refused(source: str, limits: RenderLimits = FAST, context: dict | None = None) -> tuple[str, float]:
    """Render ``source``, which must go past its budget: the reason, and how long it took."""
    start = time.perf_counter()
    with pytest.raises(RenderLimitExceeded) as info:
        render(source, context or CTX, limits)
    return str(info.value), time.perf_counter() - start


def test_the_defaults_are_about_a_second_and_a_few_kilobytes() -> None:
    assert RENDER_SECONDS == 1.0 and MAX_PROMPT_CHARS == 16_384
    assert RenderLimits() == RenderLimits(RENDER_SECONDS, MAX_PROMPT_CHARS)
    assert GenerateOptions().render_seconds == RENDER_SECONDS and GenerateOptions().render_chars == MAX_PROMPT_CHARS


# ------------------------------------------------------------------ time


@pytest.mark.parametrize("source", [
    # nested loops that print nothing (over text, so no range limit applies)
    "{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}{% endfor %}{% endfor %}",
    "{% for a in range(10000) %}{% for b in range(10000) %}{% for c in range(10000) %}{% endfor %}{% endfor %}"
    "{% endfor %}",
    # a loop's filter does the work
    "{% for a in range(10000) %}{% for b in range(10000) if b < 0 %}{% endfor %}{% endfor %}",
    # exponential recursion through a macro
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    # a recursive loop that branches at every level
    "{% for x in [1, 1] recursive %}{{ loop([1, 1]) if loop.depth < 60 }}{% endfor %}",
    # growing a list one item at a time, quadratically
    "{% set ns = namespace(s=[]) %}{% for i in range(10000) %}{% for j in range(10000) %}"
    "{% set ns.s = ns.s[-100:] + [j] %}{% endfor %}{% endfor %}",
])
def test_pure_python_work_inside_jinja_is_interrupted(source: str) -> None:
    reason, took = refused(source)
    assert "took more than 0.2 s" in reason or "builds more than" in reason
    assert took < 2


def test_the_default_time_budget_stops_a_render_in_about_a_second() -> None:
    reason, took = refused("{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}{% endfor %}{% endfor %}",
                           RenderLimits())
    assert "more than 1 s" in reason and 0.9 < took < 5


# ------------------------------------------------------------------ arithmetic on huge operands


@pytest.mark.parametrize("source", [
    "{% set n = 9 %}{{ n ** (n ** n) }}",
    "{% set n = 9 %}{% set big = n ** n %}{{ n ** big }}",
    "{% set ns = namespace(x=3) %}{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x }}",
    "{% set n = 100000 %}{{ 'x' * n * n }}",
    "{% set n = 1000000 %}{{ ['x'] * n }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{% set ns = namespace(a=['x' * 1000]) %}{% for i in range(30) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}",
    "{% set n = 999999999 %}{{ ('%' ~ n ~ 'd') % 1 }}",
    "{% set n = 10 ** 9 %}{{ 'x' | center(n) }}",
    "{% set n = 10 ** 9 %}{{ 'x'.ljust(n) }}",
    "{{ ('x' * 1000) | replace('x', 'y' * 1000) }}",
    "{{ ('y' * 100000).join(['a'] * 1000) }}",
    "{% set n = 10 ** 9 %}{{ [1] | batch(n, 'x') | list }}",
    "{% set n = 10 ** 9 %}{{ [1] | slice(n) | list }}",
    "{{ ('a\n' * 10000) | indent(100) }}",
])
def test_huge_results_are_refused_before_they_are_computed(source: str) -> None:
    reason, took = refused(source, RenderLimits(seconds=30))
    assert took < 1, (source, took)
    assert "bits" in reason or "characters a template may build" in reason or "more than" in reason


def test_calls_only_to_harmless_methods() -> None:
    assert render("{{ user.first_name.upper() }} {{ ', '.join(user.interests) }} {{ 'a-b'.split('-') }}", CTX) \
        == "ADA chess, maths ['a', 'b']"
    for source in ("{{ (1).to_bytes(10 ** 6, 'big') }}", "{{ ('\t' * 1000).expandtabs(100000) }}",
                   "{{ ''.maketrans('a', 'b') }}", "{{ 'abc'.translate({97: 'x' * 100000}) }}",
                   "{{ [[1]] * 100 | sum(start=[]) }}"):
        with pytest.raises(RenderError):
            render(source, CTX)


# ------------------------------------------------------------------ size of the prompt and of what is built


def test_output_is_cut_off_while_it_streams() -> None:
    reason, took = refused("{% for i in range(10000) %}{% for j in range(10000) %}xxxxxxxxxx{% endfor %}{% endfor %}",
                           RenderLimits(seconds=30))
    assert f"more than {MAX_PROMPT_CHARS:,} characters" in reason and took < 1
    assert render("{% for i in range(10) %}ab{% endfor %}", CTX, RenderLimits(chars=20)) == "ab" * 10
    with pytest.raises(RenderLimitExceeded):
        render("{% for i in range(11) %}ab{% endfor %}", CTX, RenderLimits(chars=20))


@pytest.mark.parametrize("source", [
    "{% set x %}{% for i in range(10000) %}{% for j in range(10000) %}abc{% endfor %}{% endfor %}{% endset %}",
    "{% filter upper %}{% for i in range(10000) %}{% for j in range(10000) %}abc{% endfor %}{% endfor %}"
    "{% endfilter %}",
    "{% macro m() %}{% for i in range(10000) %}{% for j in range(10000) %}abc{% endfor %}{% endfor %}{% endmacro %}"
    "{{ m() | length }}",
])
def test_text_built_out_of_sight_counts_too(source: str) -> None:
    reason, took = refused(source, RenderLimits(seconds=30))
    assert "builds more than" in reason and took < 2


def test_the_range_global_is_bounded_at_render_time() -> None:
    assert render("{% set n = 3 %}{{ range(n) | list }}", CTX) == "[0, 1, 2]"
    reason, _ = refused("{% set n = 10 ** 20 %}{% for i in range(n) %}{% endfor %}")
    assert "range()" in reason


# ------------------------------------------------------------------ globals


def test_the_environment_has_exactly_the_globals_the_check_knows() -> None:
    assert set(_environment().globals) == set(SAFE_GLOBALS) == set(environment().globals)
    for name in ("lipsum", "cycler", "joiner"):
        with pytest.raises(RenderError, match=name):
            render(f"{{{{ {name}() }}}}", CTX)


def test_a_set_in_a_branch_never_taken_does_not_reach_jinjas_globals() -> None:
    for source in ("{% if false %}{% set lipsum = 1 %}{% endif %}{{ lipsum(2) }}",
                   "{% if false %}{% set cycler = 1 %}{% endif %}{{ cycler('a', 'b').next() }}"):
        with pytest.raises(RenderError, match="not defined"):
            render(source, CTX)


# ------------------------------------------------------------------ read-only context, attributes before methods


@pytest.mark.parametrize("name", ["items", "keys", "values", "get", "update", "pop", "copy", "clear"])
def test_an_attribute_named_like_a_method_renders_its_value(name: str) -> None:
    context = CTX | {"user": {name: f"the {name}"}, "segment": {name: "s"}}
    assert render(f"{{{{ user.{name} }}}}|{{{{ segment['{name}'] }}}}", context) == f"the {name}|s"


def test_a_missing_attribute_is_an_error_never_a_method() -> None:
    with pytest.raises(RenderError, match="`user` has no attribute 'items'"):
        render("{{ user.items }}", CTX)
    assert render("{{ user | dictsort | length }} {{ user | tojson }} {% for k in user %}{{ k }} {% endfor %}", CTX) \
        == '2 {"first_name": "Ada", "interests": ["chess", "maths"]} first_name interests'


@pytest.mark.parametrize("source", [
    "{% set s = segment %}{{ s.update({'country': 'XX'}) }}",
    "{{ segment.update({'country': 'XX'}) }}",
    "{{ user.interests.append('x') }}",
    "{% set u = user %}{{ u.pop('first_name') }}",
    "{{ user.interests.clear() }}",
])
def test_the_context_cannot_be_changed(source: str) -> None:
    context = {"user": {"first_name": "Ada", "interests": ["chess"]}, "segment": {"country": "FR"},
               "variant": {"id": "v"}, "experiment": {"id": "e"}}
    with pytest.raises(RenderError):
        render(source, context)
    assert context["segment"] == {"country": "FR"} and context["user"]["interests"] == ["chess"]


def test_records_are_read_only_copies() -> None:
    values = {"interests": ["chess"]}
    record = Record("user", values)
    values["interests"].append("x")
    assert record == {"interests": ["chess"]} and isinstance(record["interests"], FrozenList)
    for change in (lambda: record.update(a=1), lambda: record.__setitem__("a", 1), lambda: record.pop("interests"),
                   lambda: record["interests"].append("y")):
        with pytest.raises(TypeError):
            change()


def _segment_plan(template: str) -> Plan:
    text = spec_text().replace("Write a greeting for {{ user.first_name }}.", template)
    text = text.replace("generate: {per: unit}", "generate: {per: segment, segment_by: [country]}")
    return plan_of(text)


def _countries() -> Units:
    return Units({"user_id": np.array(["a", "b"], dtype=object), "country": np.array(["FR", "DE"], dtype=object)},
                 {"user_id": "string", "country": "string"})


def test_a_template_cannot_rewrite_the_recorded_segment_key(tmp_path: Path) -> None:
    plan = _segment_plan("{% set s = segment %}{{ s.update({'country': 'XX'}) }}Hi {{ segment.country }}")
    with pytest.raises(JobError, match="update"):
        pieces(plan, _countries())
    with pytest.raises(GenerationInputError):
        generate(plan, _countries(), tmp_path / "s.sqlite")


def test_the_recorded_key_is_its_own_read_only_value() -> None:
    made = [p for p in pieces(_segment_plan("Hi {{ segment.country }} {{ user.country }}"), _countries()) if p.prompt]
    assert [p.key for p in made] == [{"country": "DE"}, {"country": "FR"}]
    assert dict(made[0].messages)["user"] == "Hi DE DE"
    with pytest.raises(TypeError):
        made[0].key["country"] = "XX"


# ------------------------------------------------------------------ through generation: on_fail


def _slow_plan(on_fail: str) -> Plan:
    template = ("{{ user.first_name }}{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}{% endfor %}"
                "{% endfor %}")
    text = spec_text(checks=f"{{on_fail: {on_fail}}}").replace("Write a greeting for {{ user.first_name }}.", template)
    return plan_of(text)


@pytest.mark.parametrize("on_fail, status, content", [
    ("error", "failed", None), ("skip", "skipped", None), ("use_control", "use_control", "Hello!"),
])
def test_an_item_past_its_budget_fails_under_on_fail(tmp_path: Path, on_fail: str, status: str,
                                                     content: str | None) -> None:
    start = time.perf_counter()
    result = generate(_slow_plan(on_fail), units_of(2), tmp_path / "s.sqlite",
                      GenerateOptions(render_seconds=0.1))
    assert time.perf_counter() - start < 5
    treated = [i for i in result.items if i.variant == "treatment"]
    assert [(i.status, i.content) for i in treated] == [(status, content)] * 2
    assert all("ran out of time" in i.reason or "took more than 0.1 s" in i.reason for i in treated)
    assert result.calls == 0
    assert (result.rejection() is not None) == (on_fail == "error")


def test_after_a_few_slow_renders_the_rest_of_the_variant_fails_without_rendering(tmp_path: Path) -> None:
    start = time.perf_counter()
    result = generate(_slow_plan("skip"), units_of(40), tmp_path / "s.sqlite", GenerateOptions(render_seconds=0.1))
    took = time.perf_counter() - start
    treated = [i for i in result.items if i.variant == "treatment"]
    assert len(treated) == 40 and {i.status for i in treated} == {"skipped"}
    assert sum("took more than" in i.reason for i in treated) == MAX_SLOW_RENDERS
    assert took < 0.1 * MAX_SLOW_RENDERS + 3


def test_an_item_over_the_prompt_budget_fails_and_the_others_are_generated(tmp_path: Path) -> None:
    template = "{% if user.first_name == 'Name1' %}{{ 'x' * 5000 }}{% endif %}Hi {{ user.first_name }}"
    plan = plan_of(spec_text(checks="{on_fail: skip}").replace("Write a greeting for {{ user.first_name }}.",
                                                               template))
    result = generate(plan, units_of(3), tmp_path / "s.sqlite", GenerateOptions(render_chars=1000))
    treated = {i.key: i for i in result.items if i.variant == "treatment"}
    assert treated["u1"].status == "skipped" and "more than 1,000 characters" in treated["u1"].reason
    assert treated["u0"].status == treated["u2"].status == "ok"


def test_a_template_nested_too_deeply_is_a_render_error() -> None:
    with pytest.raises(RenderError, match="nested too deeply"):
        render("{{ user.first_name" + " | e" * 3000 + " }}", CTX)
