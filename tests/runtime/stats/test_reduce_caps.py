"""reduce() with caps (winsorised per-unit values) and in-progress windows, against the plain-Python reference."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from reduce_plans import plan_for
from test_reduce import BASE, METRICS, assert_same, files, iso, plan_of, random_rows, reference

from expc.runtime.stats.reduce import reduce, reducer
from expc.runtime.stats.reduction_sql import DIALECTS, reduction_sql

CAPPED = [
    *METRICS,
    {"id": "spend_p90", "kind": "mean", "event": "buy", "window_seconds": 7200, "cap": {"quantile": 0.9}},
    {"id": "spend_at_20", "kind": "mean", "event": "buy", "window_seconds": None, "cap": {"value": 20}},
    {"id": "spend_below_zero", "kind": "mean", "event": "buy", "window_seconds": 3600, "cap": {"value": -5}},
    {"id": "spend_per_visit_p75", "kind": "ratio", "window_seconds": 5400, "cap": {"quantile": 0.75},
     "numerator": {"event": "buy", "measure": "value"}, "denominator": {"event": "visit", "measure": "count"}},
    {"id": "clicks_p50", "kind": "ratio", "window_seconds": None, "cap": {"quantile": 0.5},
     "numerator": {"event": "click", "measure": "count"}, "denominator": {"event": "visit", "measure": "count"}},
]


def t(minutes: float) -> str:
    return iso(BASE + timedelta(minutes=minutes))


@pytest.mark.parametrize("in_progress", ["exclude", "include"])
@pytest.mark.parametrize("seed", [1, 2])
def test_caps_match_the_reference(tmp_path, seed, in_progress):
    exposures, events = random_rows(seed)
    ex, ev = files(tmp_path, exposures, events, "parquet")
    plan = plan_of(CAPPED, in_progress=in_progress)
    with reducer(plan, ex, ev, repeated=True) as reduce_at:
        for as_of in (None, "2026-11-01T03:00:00", "2026-11-01T07:00:00"):
            r = reduce_at(as_of)
            assert_same(r, reference(plan, exposures, events, as_of), rtol=1e-12)
            assert set(r.caps) == {"spend_p90", "spend_at_20", "spend_below_zero", "spend_per_visit_p75",
                                   "clicks_p50"}
            assert r.caps["spend_at_20"] == 20 and r.caps["spend_below_zero"] == -5
    plain = reduce(plan, ex, ev).metrics
    assert plain["spend_p90"].sum_sq.sum() < plain["spend"].sum_sq.sum()  # the cap bites


def test_caps_and_in_progress_are_the_same_on_every_engine(tmp_path, engine):
    exposures, events = random_rows(3)
    ex, ev = files(tmp_path, exposures, events, "parquet")
    plan = plan_of(CAPPED)
    r = reduce(plan, ex, ev, as_of="2026-11-01T04:00:00", engine=engine)
    assert_same(r, reference(plan, exposures, events, "2026-11-01T04:00:00"), rtol=1e-12)
    assert r.in_progress["bought"] > 0


@pytest.mark.parametrize("q, cap", [(0.5, 10.0), (0.9, 640.0), (0.1, 0.0)])
def test_hand_made_quantile_caps(tmp_path, q, cap):
    """Five units with 0, 0, 10, 100 and 1000: the median is 10, the 0.9 quantile 100 + 0.6 × 900 = 640."""
    exposures = [(f"u{i}", "control" if i % 2 else "a", t(0)) for i in range(5)]
    events = [("u2", "buy", "10", t(5)), ("u3", "buy", "60", t(5)), ("u3", "buy", "40", t(6)),
              ("u4", "buy", "1000", t(7))]
    ex, ev = files(tmp_path, exposures, events)
    plan = plan_of([{"id": "spend", "kind": "mean", "event": "buy", "window_seconds": None,
                     "cap": {"quantile": q}}], ("control", "a"))
    r = reduce(plan, ex, ev)
    assert r.caps == {"spend": pytest.approx(cap)}
    capped = {u: min(x, cap) for u, x in {"u0": 0, "u1": 0, "u2": 10, "u3": 100, "u4": 1000}.items()}
    arms = {"control": ["u1", "u3"], "a": ["u0", "u2", "u4"]}
    m = r.metrics["spend"]
    np.testing.assert_allclose(m.sum, [sum(capped[u] for u in arms[v]) for v in ("control", "a")])
    np.testing.assert_allclose(m.sum_sq, [sum(capped[u] ** 2 for u in arms[v]) for v in ("control", "a")])


def test_a_cap_with_no_unit_counted_is_none(tmp_path):
    ex, ev = files(tmp_path, [("u1", "control", t(0))], [("u1", "buy", "3", t(1))])
    plan = plan_of([{"id": "spend", "kind": "mean", "event": "buy", "window_seconds": 7 * 86400,
                     "cap": {"quantile": 0.99}}], ("control", "a"))
    r = reduce(plan, ex, ev)
    assert r.caps == {"spend": None} and r.metrics["spend"].n.tolist() == [0, 0]
    assert r.in_progress == {"spend": 1}


def test_in_progress_units_wait_for_their_window(tmp_path):
    """A 60-minute window at as_of = 90 minutes: units exposed at or before minute 30 count, later ones wait."""
    exposures = [("u1", "control", t(0)), ("u2", "a", t(30)), ("u3", "a", t(31)), ("u4", "control", t(80))]
    events = [("u1", "buy", "2", t(10)), ("u2", "buy", "3", t(85)), ("u3", "buy", "4", t(40)),
              ("u4", "buy", "5", t(81)), ("u4", "visit", None, t(200))]
    ex, ev = files(tmp_path, exposures, events)
    metrics = [{"id": "bought", "kind": "proportion", "event": "buy", "window_seconds": 3600},
               {"id": "visited", "kind": "proportion", "event": "visit", "window_seconds": None}]
    r = reduce(plan_of(metrics, ("control", "a")), ex, ev, as_of=t(90))
    assert r.units.tolist() == [2, 2]
    assert r.metrics["bought"].n.tolist() == [1, 1] and r.metrics["bought"].sum.tolist() == [1, 1]
    assert r.metrics["visited"].n.tolist() == [2, 2]  # no window: never in progress
    assert r.in_progress == {"bought": 2}
    # without as_of, the data ends at minute 200: every 60-minute window has ended
    whole = reduce(plan_of(metrics, ("control", "a")), ex, ev)
    assert whole.metrics["bought"].n.tolist() == [2, 2] and whole.in_progress == {"bought": 0}
    included = reduce(plan_of(metrics, ("control", "a"), in_progress="include"), ex, ev, as_of=t(90))
    assert included.metrics["bought"].n.tolist() == [2, 2] and included.in_progress == {}


def test_the_capped_query_is_written_for_every_dialect():
    import sqlglot

    plan = plan_of(CAPPED)
    for dialect in DIALECTS:
        for as_of in (None, "2026-11-01T03:00:00"):
            sql = reduction_sql(plan, dialect, as_of)
            assert sqlglot.parse_one(sql, read=dialect) is not None, dialect
            assert "ROW_NUMBER()" in sql.upper(), dialect


def test_a_cuped_covariate_is_capped_at_the_same_value(tmp_path):
    """Pre-period spends 3 and 50 (cap 20: 3 and 20) beside outcomes 30 and 4 (capped: 20 and 4)."""
    exposures = [("u1", "control", t(24 * 60)), ("u2", "control", t(24 * 60)), ("u3", "a", t(24 * 60))]
    events = [("u1", "buy", "3", t(60)), ("u1", "buy", "30", t(25 * 60)),
              ("u2", "buy", "50", t(120)), ("u2", "buy", "4", t(26 * 60)),
              ("u3", "visit", None, t(27 * 60))]
    ex, ev = files(tmp_path, exposures, events)
    plan = plan_for([{"id": "spend", "kind": "mean", "event": "buy", "window_seconds": None, "cap": {"value": 20}},
                     {"id": "visited", "kind": "proportion", "event": "visit", "window_seconds": None}],
                    ("control", "a"), cuped=True, lookback=2 * 86400)
    m = reduce(plan, ex, ev).metrics["spend"]
    assert m.sum.tolist() == [24, 0] and m.sum_sq.tolist() == [416, 0]
    assert m.pre_sum.tolist() == [23, 0] and m.pre_sum_sq.tolist() == [409, 0]
    assert m.pre_cross.tolist() == [20 * 3 + 4 * 20, 0]
