"""The reduction per segment: the same query grouped by a segment attribute of the exposures, on every engine."""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from conftest import edited
from reduce_plans import METRICS, plan_for
from test_reduce import BASE, iso, random_rows, write_csv

from expc.runtime.stats.reduce import reduce
from expc.runtime.stats.segments import OTHER, UNKNOWN
from expc.runtime.tables import DataError


def with_segments(plan, **settings):
    defaults = {"by": ["country"], "min_units": 0, "top": 100, "correction": "bh"}
    return edited(plan, lambda p: p["analysis"].__setitem__("segments", {**defaults, **settings}))


def awkward_with_country(tmp_path, seed):
    """test_reduce's awkward rows, each exposure with a country (some empty; a unit keeps its country)."""
    exposures, events = random_rows(seed)
    rng = random.Random(seed)
    country = {}
    rows = []
    for u, v, t in exposures:
        c = country.setdefault(u, rng.choice(["US", "DE", "FR", "", "IS"]))
        rows.append((u, v, t, c))
    ex = write_csv(tmp_path / "ex.csv", ["user_id", "variant", "timestamp", "country"], rows)
    ev = write_csv(tmp_path / "ev.csv", ["user_id", "event", "value", "timestamp"], events)
    return ex, ev


@pytest.mark.parametrize("seed", [1, 2])
def test_the_segments_add_up_to_the_whole_on_every_engine(tmp_path, seed, engine):
    ex, ev = awkward_with_country(tmp_path, seed)
    plan = with_segments(plan_for(METRICS, ("control", "a", "b")))
    r = reduce(plan, ex, ev, engine=engine)
    (table,) = r.segments
    assert table.attribute == "country" and set(table.values) <= {"US", "DE", "FR", "IS", UNKNOWN}
    assert np.asarray(table.units).sum(axis=0).tolist() == r.units.tolist()
    for metric, whole in r.metrics.items():
        part = table.metrics[metric]
        for stat in ("n", "sum", "sum_sq", "den_sum", "cross"):
            if getattr(whole, stat) is not None:
                np.testing.assert_allclose(np.asarray(getattr(part, stat)).sum(axis=0), getattr(whole, stat),
                                           rtol=1e-12, err_msg=f"{metric}.{stat}")


def test_each_segment_equals_pandas_on_clean_data(tmp_path):
    rng = np.random.default_rng(4)
    n = 3000
    units = pd.DataFrame({"user_id": [f"u{i}" for i in range(n)], "variant": rng.choice(["control", "a"], n),
                          "country": rng.choice(["US", "DE", "FR", "LI", "IS"], n, p=[0.5, 0.3, 0.18, 0.01, 0.01])})
    units["timestamp"] = [iso(BASE + timedelta(minutes=int(m))) for m in rng.integers(0, 600, n)]
    buyers = units.sample(frac=0.3, random_state=1)
    events = pd.DataFrame({"user_id": buyers.user_id, "event": "buy", "value": rng.integers(1, 50, len(buyers)),
                           "timestamp": [iso(BASE + timedelta(minutes=700))] * len(buyers)})
    units.to_csv(tmp_path / "ex.csv", index=False)
    events.to_csv(tmp_path / "ev.csv", index=False)
    plan = with_segments(plan_for([{"id": "bought", "kind": "proportion", "event": "buy", "window_seconds": None},
                                   {"id": "spend", "kind": "mean", "event": "buy", "window_seconds": None}]),
                         min_units=100)
    (table,) = reduce(plan, tmp_path / "ex.csv", tmp_path / "ev.csv").segments
    assert table.values == ["DE", "FR", "US", OTHER]  # LI and IS have fewer than 100 units
    frame = units.merge(events[["user_id", "value"]], on="user_id", how="left").fillna({"value": 0})
    frame["bought"] = (frame.value > 0).astype(float)
    for s, value in enumerate(table.values):
        for arm, variant in enumerate(("control", "a")):
            members = ["LI", "IS"] if value == OTHER else [value]
            seg = frame[frame.country.isin(members) & (frame.variant == variant)]
            assert table.units[s, arm] == len(seg)
            assert table.metrics["bought"].sum[s, arm] == seg.bought.sum()
            assert table.metrics["spend"].sum_sq[s, arm] == (seg.value ** 2).sum()


@pytest.mark.parametrize("seed", [1, 2])
def test_segments_from_a_units_file_equal_those_from_the_exposures_column_on_every_engine(tmp_path, seed, engine):
    """Joined by unit id: the same tables as a country column on the exposures; a unit the file lacks is unknown."""
    ex, ev = awkward_with_country(tmp_path, seed)
    frame = pd.read_csv(ex, dtype=str, keep_default_na=False)
    per_unit = frame.drop_duplicates("user_id")[["user_id", "country"]]
    dropped = per_unit[per_unit.country == ""].user_id  # units without a country are simply absent from the file
    listed = per_unit[~per_unit.user_id.isin(dropped)]
    units_file = tmp_path / "units.csv"
    pd.concat([listed, listed.head(3)]).to_csv(units_file, index=False)  # a unit listed twice counts once
    frame.drop(columns="country").to_csv(tmp_path / "bare.csv", index=False)
    plan = with_segments(plan_for(METRICS, ("control", "a", "b")))
    expected = reduce(plan, ex, ev, engine=engine).segments[0]
    got = reduce(plan, tmp_path / "bare.csv", ev, engine=engine, units=units_file).segments[0]
    assert got.values == expected.values
    np.testing.assert_array_equal(got.units, expected.units)
    for metric, m in expected.metrics.items():
        np.testing.assert_allclose(got.metrics[metric].sum, m.sum, rtol=1e-12, err_msg=metric)
    with pytest.raises(DataError, match=r"units.csv.*lacks the column `plan`"):
        reduce(with_segments(plan, by=["plan"]), tmp_path / "bare.csv", ev, units=units_file)


def test_small_segments_are_pooled_and_a_missing_column_is_named(tmp_path):
    ex, ev = awkward_with_country(tmp_path, 3)
    plan = with_segments(plan_for(METRICS, ("control", "a", "b")), top=2)
    table = reduce(plan, ex, ev).segments[0]
    assert len(table.values) == 3 and table.values[-1] == OTHER
    plan = with_segments(plan_for(METRICS, ("control", "a", "b")), by=["plan"])
    with pytest.raises(DataError, match=r"lacks the column `plan`; it has `user_id`, `variant`, `timestamp`, "
                                        r"`country`"):
        reduce(plan, ex, ev)


def test_analyze_reports_every_comparison_per_segment(tmp_path):
    from test_engines_agree import SPEC

    import expc

    ex, ev = awkward_with_country(tmp_path, 5)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(data="").replace("attributes: {user_id: string}",
                                                 "attributes: {user_id: string, country: string}")
                    .replace("analysis: {cuped_lookback: 3h}", "analysis: {cuped_lookback: 3h, segments: [country]}"),
                    encoding="utf-8")
    out = expc.analyze(spec, exposures=ex, events=ev).to_dict()
    assert out["segment_attributes"] == ["country"]
    for metric in out["metrics"]:
        for comparison in metric["comparisons"]:
            assert {r["attribute"] for r in comparison["segments"]} == {"country"}
            assert [h["attribute"] for h in comparison["heterogeneity"]] == ["country"]


def test_a_run_shows_each_segments_copy_beside_its_result(tmp_path):
    import expc

    spec = tmp_path / "spec.yaml"
    spec.write_text("""\
version: 1
experiment: {id: copy-by-country}
attributes: {user_id: string, country: string}
prompts:
  line: {model: offline/copy, template: "A welcome line for {{ segment.country }}"}
variants:
  - {id: control, content: Welcome!}
  - {id: local, prompt: line, generate: {per: segment, segment_by: [country]}}
metrics:
  - {id: bought, kind: proportion, event: buy, role: primary, mde: 10%, baseline: 0.1}
analysis: {segments: {by: [country], min_units: 10}}
""", encoding="utf-8")
    countries = ["US", "DE"] * 50
    (tmp_path / "units.csv").write_text("user_id,country\n" + "".join(
        f"u{i},{c}\n" for i, c in enumerate(countries)), encoding="utf-8")
    (tmp_path / "ex.csv").write_text("user_id,variant,timestamp,country\n" + "".join(
        f"u{i},{'control' if i % 4 < 2 else 'local'},2026-11-01T00:00:00Z,{c}\n" for i, c in enumerate(countries)),
        encoding="utf-8")
    (tmp_path / "ev.csv").write_text("user_id,event,timestamp\nu1,buy,2026-11-01T01:00:00Z\n", encoding="utf-8")
    report = expc.run(spec, units=tmp_path / "units.csv", exposures=tmp_path / "ex.csv", events=tmp_path / "ev.csv",
                      run_dir=tmp_path / "run", offline=True).report
    rows = report["metrics"][0]["comparisons"][0]["segments"]
    assert {r["value"] for r in rows} == {"US", "DE"}
    for row in rows:
        assert row["content"]["control"] == "Welcome!" and row["content"]["local"]
    assert rows[0]["content"]["local"] != rows[1]["content"]["local"]
    assert "_segment_copy" not in report


def test_an_attribute_with_too_many_values_is_refused(tmp_path, monkeypatch):
    from expc.runtime.stats import reduce as reduce_module

    ex, ev = awkward_with_country(tmp_path, 6)
    monkeypatch.setattr(reduce_module, "MAX_SEGMENT_VALUES", 2)
    with pytest.raises(DataError, match="segment attribute `country` has more than 2 values"):
        reduce(with_segments(plan_for(METRICS, ("control", "a", "b"))), ex, ev)


def test_analyze_reads_segments_from_a_units_file(tmp_path):
    import expc

    ex, ev = awkward_with_country(tmp_path, 5)
    frame = pd.read_csv(ex, dtype=str, keep_default_na=False)
    listed = frame[frame.user_id != ""].drop_duplicates("user_id")  # a units file gives every unit an id
    listed[["user_id", "country"]].to_csv(tmp_path / "units.csv", index=False)
    frame.drop(columns="country").to_csv(tmp_path / "bare.csv", index=False)
    plan = with_segments(plan_for(METRICS, ("control", "a", "b")))
    out = expc.analyze(plan, exposures=tmp_path / "bare.csv", events=ev, units=tmp_path / "units.csv").to_dict()
    check = out.pop("assignment_check")  # random rows: not the variants expc assigns these units
    assert check["flagged"] and out["decision"]["reasons"][-1].startswith(f"{check['misassigned']} of ")
    out["decision"]["reasons"].pop()
    assert out == expc.analyze(plan, exposures=ex, events=ev).to_dict()
    assert out["segment_attributes"] == ["country"]
