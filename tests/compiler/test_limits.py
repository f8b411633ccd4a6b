"""Resource limits: no spec makes expc allocate or loop without bound; each limit is a located error naming it."""

from __future__ import annotations

import pytest

from expc.compiler import model
from expc.compiler.pipeline import CheckResult, check_bytes
from expc.compiler.schema import spec_schema

SPEC = """\
version: 1
experiment: {id: demo}
attributes:
  user_id: string
  tags: list[string]
variants:
  - {id: control, content: Hi}
  - {id: treatment, content: Hello}
metrics:
  - {id: clicked, kind: proportion, event: click, role: primary, mde: 5%, baseline: 0.1, window: 7d}
stopping:
  looks: daily
  max_days: 28
simulation:
  units_per_day: 6000
"""


def check(old: str = "", new: str = "") -> CheckResult:
    assert old in SPEC
    return check_bytes(SPEC.replace(old, new, 1).encode(), "spec.yaml")


def errors(result: CheckResult) -> list[tuple[str, int, int, str]]:
    return [(d.code, d.line, d.col, d.message) for d in result.diagnostics if d.is_error]


def test_the_base_spec_is_within_every_limit():
    assert errors(check()) == []


@pytest.mark.parametrize("old, new, line, col, limit", [
    ("units_per_day: 6000", "units_per_day: 1000000000000", 15, 18, "1000000000"),
    ("max_days: 28", "max_days: 1000000000", 13, 13, "3650"),
    ("max_days: 28", "max_days: 28\n  max_units: 10000000000000", 14, 14, "1000000000000"),
    ("max_days: 28", "max_days: 28\n  min_units_per_variant: 10000000000000", 14, 26, "1000000000000"),
    ("units_per_day: 6000", "units_per_day: 600\n  days: 100000", 16, 9, "3650"),
])
def test_a_single_absurd_value_is_refused_naming_its_limit(old, new, line, col, limit):
    found = errors(check(old, new))
    assert [(c, ln, cl) for c, ln, cl, _ in found] == [("E023", line, col)], found
    assert limit in found[0][3]


def test_lists_are_bounded():
    many = "".join(f"  - {{id: v{i}, content: x}}\n" for i in range(model.MAX_VARIANTS + 1))
    found = errors(check("  - {id: control, content: Hi}\n  - {id: treatment, content: Hello}\n", many))
    assert any(c == "E023" and "at most 100" in m for c, _, _, m in found), found


def test_simulated_units_are_bounded_as_a_product():
    found = errors(check("units_per_day: 6000", "units_per_day: 1000000"))  # 28M units in memory
    assert [(c, ln, cl) for c, ln, cl, _ in found] == [("E070", 15, 18)]
    assert "28,000,000 units" in found[0][3] and "5,000,000" in found[0][3]


def test_simulation_days_bound_the_simulated_units_first():
    assert errors(check("units_per_day: 6000", "units_per_day: 1000000\n  days: 3")) == []


def test_the_number_of_looks_is_bounded():
    spec = SPEC.replace("units_per_day: 6000", "units_per_day: 1000")  # 3.65M simulated units: within
    hourly = spec.replace("looks: daily\n  max_days: 28", "looks: 1h\n  max_days: 3650")
    found = errors(check_bytes(hourly.encode(), "s"))
    assert [(c, ln, cl) for c, ln, cl, _ in found] == [("E070", 12, 10)]
    assert "87,600 looks" in found[0][3] and "5,000" in found[0][3]


def test_hourly_looks_over_a_quarter_are_fine():
    assert errors(check("looks: daily\n  max_days: 28", "looks: hourly\n  max_days: 90")) == []


def test_a_list_attribute_vocabulary_is_bounded_with_the_units():
    values = ", ".join(f"t{i}" for i in range(400))  # 168,000 units x 400 values = 67M draws
    found = errors(check("units_per_day: 6000",
                         f"units_per_day: 6000\n  attributes:\n    tags: {{values: [{values}]}}"))
    assert [(c, ln, cl) for c, ln, cl, _ in found] == [("E070", 17, 20)], found
    assert "`tags`" in found[0][3]


def test_a_list_vocabulary_from_the_audience_counts_too():
    values = ", ".join(f"t{i}" for i in range(400))
    spec = SPEC.replace("variants:", f"audiences:\n  fans:\n    where: {{tags: {{$elemMatch: {{$in: [{values}]}}}}}}\n"
                                     "allocation: {audience: fans}\nvariants:")
    found = errors(check_bytes(spec.encode(), "spec.yaml"))
    assert [c for c, _, _, _ in found] == ["E070"], found


@pytest.mark.parametrize("old, new, line", [
    ("window: 7d", "window: 4000d", 10),
    ("max_days: 28", "max_days: 28\nanalysis: {cuped_lookback: 5000d}", 14),
    ("max_days: 28", "max_days: 28\ngeneration: {timeout: 2h}", 14),
])
def test_durations_are_bounded(old, new, line):
    found = errors(check(old, new))
    assert [(c, ln) for c, ln, _, _ in found] == [("E070", line)], found
    assert "the limit is" in found[0][3]


def test_a_duration_too_long_for_a_float_is_not_a_crash():
    found = errors(check("window: 7d", "window: " + "9" * 400 + "d"))  # was: OverflowError, an internal error
    assert [c for c, _, _, _ in found] == ["E024"]


def test_the_schema_shows_the_single_value_limits():
    schema = spec_schema()
    defs = schema.get("$defs") or schema.get("definitions")
    sim = defs["Simulation"]["properties"]
    assert sim["units_per_day"]["maximum"] == model.MAX_UNITS_PER_DAY
    assert schema["properties"]["variants"]["maxItems"] == model.MAX_VARIANTS
    assert any(o.get("maximum") == model.MAX_DAYS for o in defs["Stopping"]["properties"]["max_days"]["anyOf"])


def test_the_limits_fit_the_example_specs():
    from pathlib import Path

    from expc.compiler.pipeline import check_file

    for spec in sorted((Path(__file__).resolve().parents[2] / "specs").glob("*.yaml")):
        assert not [d for d in check_file(spec).diagnostics if d.code == "E070"], spec


RATIOS = SPEC + """\
  truth:
    control: {clicked: 0.1}
"""


def with_metric(metric: str, truth: str) -> CheckResult:
    spec = (RATIOS.replace("stopping:", f"  - {metric}\nstopping:")
            .replace("{clicked: 0.1}", f"{{clicked: 0.1, {truth}}}"))
    return check_bytes(spec.encode(), "spec.yaml")


def test_a_counted_ratio_with_an_absurd_truth_is_bounded():
    """purchases counted per click, 1e9 of them: 168,000 units x 0.1 clicks x 1e9 (was: terabytes of events)."""
    found = errors(with_metric("{id: per_click, kind: ratio, numerator: {event: buy, measure: count}, "
                               "denominator: {event: click, measure: count}}", "per_click: {mean: 1e9, sd: 1}"))
    assert [(c, ln) for c, ln, _, _ in found] == [("E070", 18)], found
    assert "events" in found[0][3] and "`per_click`" in found[0][3] and "50,000,000" in found[0][3]


def test_a_ratio_whose_denominator_is_fitted_from_a_tiny_truth_is_bounded():
    """spend per visit of 1e-9 with a mean spend of 100: 1e11 visits a unit."""
    spec = RATIOS.replace("stopping:", "  - {id: spend, kind: mean, event: buy, baseline: 100, sd: 10}\n"
                                       "  - {id: per_visit, kind: ratio, numerator: buy, denominator: visit, "
                                       "baseline: 0.000000001, sd: 1}\nstopping:")
    found = errors(check_bytes(spec.encode(), "spec.yaml"))
    assert [c for c, _, _, _ in found] == ["E070"], found
    assert "`per_visit`" in found[0][3]


def test_ordinary_ratios_are_fine():
    assert errors(with_metric("{id: per_click, kind: ratio, numerator: {event: buy, measure: count}, "
                              "denominator: {event: click, measure: count}}", "per_click: {mean: 3, sd: 1}")) == []
