"""reduce() with CUPED: each metric's pre-exposure covariate and its cross terms, against a plain-Python reference."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import numpy as np
import pytest
from reduce_plans import plan_for

from expc.compiler.plan import Plan
from expc.runtime.stats.reduce import reduce

T0 = datetime(2026, 11, 1)
DAY = 86400
LOOKBACK = 3 * DAY


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S")


def write(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join("" if v is None else str(v) for v in r) for r in rows])
                    + "\n")
    return path


METRICS = [
    {"id": "bought", "kind": "proportion", "event": "buy", "window_seconds": 2 * DAY},
    {"id": "spend", "kind": "mean", "event": "buy", "window_seconds": 4 * DAY},
    {"id": "spend_per_visit", "kind": "ratio", "window_seconds": None,
     "numerator": {"event": "buy", "measure": "value"}, "denominator": {"event": "visit", "measure": "count"}},
    {"id": "visited", "kind": "proportion", "event": "visit", "window_seconds": None, "cuped": False},
]


def plan_of(metrics, cuped=True, lookback=LOOKBACK) -> Plan:
    """A plan with these metrics; a metric's own ``cuped`` wins over the analysis' ``cuped`` (as compiled).

    Units in progress are counted (``in_progress: include``): these tests are about the covariates.
    """
    return plan_for(metrics, ("control", "a"), cuped=cuped, lookback=lookback, in_progress="include")


def test_hand_computed_covariates(tmp_path):
    exposures = [("u1", "control", iso(T0)), ("u2", "control", iso(T0)), ("u3", "a", iso(T0))]
    events = [
        ("u1", "buy", 10, iso(T0 - timedelta(days=1))),        # pre: z = 10 (and had the event)
        ("u1", "buy", 5, iso(T0 - timedelta(seconds=LOOKBACK))),  # pre: exactly at the start of the look-back
        ("u1", "buy", 7, iso(T0 - timedelta(days=4))),         # before the look-back: not used
        ("u1", "buy", 3, iso(T0 + timedelta(days=1))),         # outcome
        ("u1", "visit", None, iso(T0 - timedelta(hours=1))),   # pre visit
        ("u1", "visit", None, iso(T0 + timedelta(hours=1))),   # visit
        ("u2", "visit", None, iso(T0 - timedelta(hours=2))),
        ("u2", "visit", None, iso(T0 - timedelta(hours=3))),
        ("u3", "buy", 4, iso(T0 - timedelta(hours=5))),
        ("u3", "buy", 6, iso(T0 + timedelta(days=3))),         # outside the proportion's 2 days, inside the mean's 4
        ("u3", "visit", None, iso(T0 + timedelta(hours=2))),
    ]
    ex = write(tmp_path / "ex.csv", ["user_id", "variant", "timestamp"], exposures)
    ev = write(tmp_path / "ev.csv", ["user_id", "event", "value", "timestamp"], events)
    r = reduce(plan_of(METRICS), ex, ev)
    b = r.metrics["bought"]
    assert b.sum.tolist() == [1, 0] and b.pre_sum.tolist() == [1, 1]
    assert b.pre_sum_sq.tolist() == [1, 1] and b.pre_cross.tolist() == [1, 0]
    s = r.metrics["spend"]
    assert s.sum.tolist() == [3, 6] and s.pre_sum.tolist() == [15, 4]
    assert s.pre_sum_sq.tolist() == [225, 16] and s.pre_cross.tolist() == [45, 24]
    q = r.metrics["spend_per_visit"]  # x = buy value, y = visits; z, w the same before exposure
    assert q.sum.tolist() == [3, 6] and q.den_sum.tolist() == [1, 1]
    assert q.pre_sum.tolist() == [15, 4] and q.pre_den_sum.tolist() == [3, 0]  # u1 1 visit, u2 2, u3 none
    assert q.pre_den_sum_sq.tolist() == [1 + 4, 0] and q.pre_num_den.tolist() == [15, 0]
    assert q.pre_cross_den.tolist() == [3 * 1, 0] and q.pre_den_cross.tolist() == [1 * 15, 1 * 4]
    assert q.pre_den_cross_den.tolist() == [1 * 1, 0]
    assert not r.metrics["visited"].has_covariate  # its own cuped: false wins
    # pre-exposure events are still excluded from the outcome and counted
    assert r.excluded["events_before_exposure"] == 7
    assert "INTERVAL '259200' SECOND" in r.sql


def reference(exposures, events, metric, lookback):
    """Per arm: Σx, Σz, Σz², Σxz of a unit-level metric, by loops over rows (no exclusions in this data)."""
    first = {u: datetime.fromisoformat(t) for u, _, t in exposures}
    arm = {u: 0 if v == "control" else 1 for u, v, _ in exposures}
    x = dict.fromkeys(first, 0.0)
    z = dict.fromkeys(first, 0.0)
    for u, e, v, t in events:
        if e != metric["event"] or u not in first:
            continue
        ts, f = datetime.fromisoformat(t), first[u]
        value = 1.0 if metric["kind"] == "proportion" else float(v)
        if f <= ts <= f + timedelta(seconds=metric["window_seconds"]):
            x[u] = 1.0 if metric["kind"] == "proportion" else x[u] + value
        elif f - timedelta(seconds=lookback) <= ts < f:
            z[u] = 1.0 if metric["kind"] == "proportion" else z[u] + value
    out = np.zeros((4, 2))
    for u in first:
        out[:, arm[u]] += [x[u], z[u], z[u] ** 2, x[u] * z[u]]
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_random_data_matches_the_reference(tmp_path, seed):
    rng = random.Random(seed)
    exposures = [(f"u{i}", rng.choice(["control", "a"]), iso(T0 + timedelta(hours=rng.randrange(48))))
                 for i in range(150)]
    events = [(f"u{rng.randrange(170)}", rng.choice(["buy", "visit"]), rng.randrange(1, 50),
               iso(T0 + timedelta(hours=rng.randrange(-6 * 24, 10 * 24)))) for _ in range(1500)]
    ex = write(tmp_path / "ex.csv", ["user_id", "variant", "timestamp"], exposures)
    ev = write(tmp_path / "ev.csv", ["user_id", "event", "value", "timestamp"], events)
    metrics = METRICS[:2]
    r = reduce(plan_of(metrics), ex, ev)
    for metric in metrics:
        m = r.metrics[metric["id"]]
        got = np.array([m.sum, m.pre_sum, m.pre_sum_sq, m.pre_cross])
        np.testing.assert_allclose(got, reference(exposures, events, metric, LOOKBACK), rtol=1e-12)
        assert m.pre_sum.sum() > 0


def test_without_cuped_the_reduction_is_unchanged(tmp_path):
    exposures = [("u1", "control", iso(T0)), ("u2", "a", iso(T0))]
    events = [("u1", "buy", 2, iso(T0 - timedelta(hours=1))), ("u2", "buy", 3, iso(T0 + timedelta(hours=1)))]
    ex = write(tmp_path / "ex.csv", ["user_id", "variant", "timestamp"], exposures)
    ev = write(tmp_path / "ev.csv", ["user_id", "event", "value", "timestamp"], events)
    on, off = reduce(plan_of(METRICS, cuped=True), ex, ev), reduce(plan_of(METRICS, cuped=False), ex, ev)
    for k in ("bought", "spend", "spend_per_visit"):
        assert on.metrics[k].has_covariate and not off.metrics[k].has_covariate
        assert on.metrics[k].sum.tolist() == off.metrics[k].sum.tolist()
    assert on.excluded == off.excluded
