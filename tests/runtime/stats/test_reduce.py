"""reduce(): raw exposures and events -> per-arm moments, checked against a plain-Python reference."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pytest
from conftest import edited
from reduce_plans import METRICS, plan_for

import expc
from expc.compiler.plan import Plan
from expc.runtime.stats.reduce import EXCLUDED_KEYS, Reduction, reduce, reducer
from expc.runtime.tables import DataError

BASE = datetime(2026, 11, 1)


def plan_of(metrics, variants=("control", "a", "b"), unit="user_id", in_progress="exclude") -> Plan:
    return plan_for(metrics, variants, unit, in_progress=in_progress)




def iso(ts):
    return ts.strftime("%Y-%m-%dT%H:%M:%S")


# ---------------------------------------------------------------- writing files


def write_csv(path, header, rows):
    lines = [",".join(header)]
    for row in rows:
        lines.append(",".join("" if v is None else str(v) for v in row))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_jsonl(path, header, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps({k: v for k, v in zip(header, row) if v is not None}) + "\n")
    return path


def write_parquet(path, header, rows):
    csv = write_csv(path.with_suffix(".tmp.csv"), header, rows)
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_csv('{csv}', header=true, all_varchar=true)) TO '{path}' (FORMAT parquet)")
    con.close()
    return path


WRITERS = {"csv": write_csv, "jsonl": write_jsonl, "parquet": write_parquet}


def files(tmp_path, exposures, events, fmt="csv", unit="user_id"):
    w = WRITERS[fmt]
    ex = w(tmp_path / f"exposures.{fmt}", [unit, "variant", "timestamp"], exposures)
    ev = w(tmp_path / f"events.{fmt}", [unit, "event", "value", "timestamp"], events)
    return ex, ev


# ---------------------------------------------------------------- the reference


def parse(text):
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def number(text):
    if text is None:
        return None
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def uses(m):
    if m["kind"] == "ratio":
        return [(m[part]["event"], m[part]["measure"]) for part in ("numerator", "denominator")]
    return [(m["event"], "value" if m["kind"] == "mean" else "count")]


def quantile(values, q):
    """Linear interpolation between order statistics (numpy's default), written out."""
    xs = sorted(values)
    if not xs:
        return None
    h = (len(xs) - 1) * q
    lo = math.floor(h)
    return xs[lo] if lo + 1 >= len(xs) else xs[lo] + (h - lo) * (xs[lo + 1] - xs[lo])


def reference(plan, exposures, events, as_of=None):
    """Straightforward loops over the rows, following the documented semantics.

    Returns ``(moments, excluded, units, caps)``: per metric ``(n, sums)``, the
    exclusion counts, the exposed units per arm and the cap each capped metric used.
    """
    variants = [v.id for v in plan.variants]
    metrics = [m.model_dump() for m in plan.metrics]  # plain dicts from here on
    cut = parse(as_of)
    names = {e for m in metrics for e, _ in uses(m)}
    # the cut-off of in-progress windows: as_of, else the latest timestamp read
    seen = [parse(t) for _, _, t in exposures] + [parse(t) for _, e, _, t in events if e in (None, "") or e in names]
    end = cut if cut is not None else max((t for t in seen if t is not None), default=None)
    excl = dict.fromkeys(EXCLUDED_KEYS, 0)
    arms_of, first = {}, {}
    for u, v, t in exposures:
        ts = parse(t)
        if u in (None, "") or v in (None, "") or ts is None:
            excl["bad_rows"] += 1
        elif cut is not None and ts > cut:
            pass
        elif v not in variants:
            excl["unknown_variant_exposures"] += 1
        else:
            arms_of.setdefault(u, set()).add(variants.index(v))
            first[u] = min(first.get(u, ts), ts)
    several = {u for u, a in arms_of.items() if len(a) > 1}
    excl["units_in_several_variants"] = len(several)
    valued = {e for m in metrics for e, how in uses(m) if how == "value"}
    windows = {}
    for m in metrics:
        for e, _ in uses(m):
            windows.setdefault(e, []).append(m["window_seconds"])
    kept = []
    for u, e, val, t in events:
        if e not in (None, "") and e not in names:
            continue
        ts, x = parse(t), number(val)
        if u in (None, "") or e in (None, "") or ts is None or (e in valued and x is None):
            excl["bad_rows"] += 1
        elif cut is not None and ts > cut:
            pass
        elif u not in arms_of:
            excl["events_of_unexposed_units"] += 1
        elif u in several:
            pass
        elif ts < first[u]:
            excl["events_before_exposure"] += 1
        elif all(w is not None and ts > first[u] + timedelta(seconds=w) for w in windows[e]):
            excl["events_outside_window"] += 1
        else:
            kept.append((u, e, x, ts))
    units = [u for u in arms_of if u not in several]
    out, caps = {}, {}
    for m in metrics:
        w = m["window_seconds"]
        counted = [u for u in units if w is None or plan.analysis.in_progress == "include"
                   or first[u] + timedelta(seconds=w) <= end]

        def inside(ts, u, w=w):
            return w is None or ts <= first[u] + timedelta(seconds=w)

        def measure(u, event, how):
            vals = [x if how == "value" else 1 for (uu, e, x, ts) in kept if uu == u and e == event and inside(ts, u)]
            return sum(vals) if how != "any" else (1 if vals else 0)

        sums = [[0.0] * 5 for _ in variants]
        values = {}
        for u in counted:
            if m["kind"] == "proportion":
                values[u] = measure(u, m["event"], "any"), None
            elif m["kind"] == "mean":
                values[u] = measure(u, m["event"], "value"), None
            else:
                values[u] = (measure(u, m["numerator"]["event"], m["numerator"]["measure"]),
                             measure(u, m["denominator"]["event"], m["denominator"]["measure"]))
        cap = m["cap"] and (m["cap"]["value"] if m["cap"]["value"] is not None
                            else quantile([x for x, _ in values.values()], m["cap"]["quantile"]))
        if m["cap"]:
            caps[m["id"]] = cap
        n = [0] * len(variants)
        for u, (x, y) in values.items():
            a = next(iter(arms_of[u]))
            n[a] += 1
            x = x if cap is None else min(x, cap)
            sums[a][0] += x
            sums[a][1] += x * x
            if y is not None:
                sums[a][2] += y
                sums[a][3] += y * y
                sums[a][4] += x * y
        out[m["id"]] = (n, sums)
    units_per_arm = [0] * len(variants)
    for u in units:
        units_per_arm[next(iter(arms_of[u]))] += 1
    return out, excl, units_per_arm, caps


def assert_same(r: Reduction, expected, rtol: float = 0.0):
    """``r`` equals the reference: exactly (the test data's values are exact in binary), or to ``rtol``."""
    moments, excl, units, caps = expected

    def same(got, want, what):
        if rtol:
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=what)
        else:
            assert got.tolist() == want, what

    assert r.excluded == excl
    assert r.units.tolist() == units
    for mid, (n, sums) in moments.items():
        m = r.metrics[mid]
        assert m.n.tolist() == n, mid
        same(m.sum, [s[0] for s in sums], mid)
        same(m.sum_sq, [s[1] for s in sums], mid)
        if m.is_ratio:
            same(m.den_sum, [s[2] for s in sums], mid)
            same(m.den_sum_sq, [s[3] for s in sums], mid)
            same(m.cross, [s[4] for s in sums], mid)
        if mid in r.in_progress:
            assert r.in_progress[mid] == sum(units) - sum(n), mid
    assert set(r.caps) == set(caps)
    for mid, cap in caps.items():
        assert (r.caps[mid] is None) == (cap is None), mid
        if cap is not None:
            assert r.caps[mid] == pytest.approx(cap, rel=1e-12), mid


def random_rows(seed, n_units=60, n_exposures=150, n_events=500):
    rng = random.Random(seed)
    units = [f"u{i}" for i in range(n_units)]

    def when(hours=12):
        if rng.random() < 0.03:
            return rng.choice([None, "not-a-time", "2026-13-45"])
        return iso(BASE + timedelta(seconds=rng.randrange(hours * 3600)))

    exposures = []
    for _ in range(n_exposures):
        u = rng.choice(units) if rng.random() > 0.03 else None
        v = rng.choices(["control", "a", "b", "zz", None], [30, 30, 30, 3, 1])[0]
        exposures.append((u, v, when(6)))
    # units with repeated exposures to one variant
    for u in units[:10]:
        exposures.append((u, "a", when(6)))
    events = []
    for _ in range(n_events):
        u = rng.choice(units + ["ghost1", "ghost2"]) if rng.random() > 0.02 else None
        e = rng.choices(["buy", "visit", "click", "other", None], [30, 30, 20, 10, 2])[0]
        r = rng.random()
        value = (None if r < 0.03 else "nan" if r < 0.05 else "abc" if r < 0.06
                 else str(rng.randrange(-40, 400) / 4))
        events.append((u, e, value, when(12)))
    return exposures, events


# ---------------------------------------------------------------- against the reference


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_reference(tmp_path, fmt, seed, engine):
    exposures, events = random_rows(seed)
    ex, ev = files(tmp_path, exposures, events, fmt)
    plan = plan_of(METRICS)
    r = reduce(plan, ex, ev, engine=engine)
    expected = reference(plan, exposures, events)
    assert_same(r, expected)
    # the random data exercises every exclusion (a log shared by experiments: test_shared_exposures.py)
    assert all(v > 0 for k, v in r.excluded.items() if k != "exposures_of_other_experiments"), r.excluded


@pytest.mark.parametrize("as_of", ["2026-11-01T03:00:00", "2026-11-01T08:30:00", "2026-11-02T00:00:00"])
def test_as_of_matches_reference(tmp_path, as_of, engine):
    exposures, events = random_rows(7)
    ex, ev = files(tmp_path, exposures, events)
    plan = plan_of(METRICS)
    r = reduce(plan, ex, ev, as_of=as_of, engine=engine)
    assert_same(r, reference(plan, exposures, events, as_of))
    assert r.as_of == as_of


def test_a_reducer_over_loaded_tables_gives_each_cut_off_what_reduce_gives(tmp_path, engine):
    exposures, events = random_rows(7)
    ex, ev = files(tmp_path, exposures, events, "parquet")
    plan = plan_of(METRICS)
    cut_offs = [None, "2026-11-01T03:00:00", "2026-11-01T08:30:00", "2026-11-02T00:00:00"]
    with reducer(plan, ex, ev, repeated=True, engine=engine) as reduce_at:
        for as_of in cut_offs:
            assert_same(reduce_at(as_of), reference(plan, exposures, events, as_of))

def test_as_of_with_offset_is_converted_to_utc(tmp_path):
    exposures, events = random_rows(8)
    ex, ev = files(tmp_path, exposures, events)
    plan = plan_of(METRICS)
    r = reduce(plan, ex, ev, as_of="2026-11-01T05:00:00+02:00")
    assert_same(r, reference(plan, exposures, events, "2026-11-01T03:00:00"))


# ---------------------------------------------------------------- by hand


def t(minutes):
    return iso(BASE + timedelta(minutes=minutes))


def test_hand_made_example(tmp_path):
    exposures = [
        ("u1", "control", t(0)), ("u1", "control", t(30)),  # first exposure at 0
        ("u2", "a", t(10)),
        ("u3", "a", t(0)), ("u3", "control", t(5)),  # two variants: excluded
        ("u4", "nope", t(0)),  # unknown variant
        ("u5", "a", "yesterday"),  # bad timestamp
        (None, "a", t(0)),  # no id
    ]
    events = [
        ("u1", "buy", "10", t(0)),  # at exposure: counts
        ("u1", "buy", "2.5", t(60)),  # at the end of the 1 h window: counts
        ("u1", "buy", "100", t(61)),  # outside 1 h, inside 2 h for spend
        ("u1", "buy", "7", t(200)),  # outside every buy window
        ("u1", "visit", "", t(500)),  # visit: no window for visited_ever, value not needed
        ("u2", "buy", "-4", t(9)),  # before exposure
        ("u2", "visit", None, t(20)),
        ("u2", "visit", None, t(25)),
        ("u2", "click", "x", t(30)),  # counted, values of clicks are not read
        ("u3", "buy", "5", t(10)),  # unit in two variants: ignored
        ("u9", "buy", "5", t(10)),  # never exposed
        ("u1", "buy", "NaN", t(5)),  # bad value
        ("u1", "other", "zzz", "garbage"),  # not a metric's event: not read at all
    ]
    ex, ev = files(tmp_path, exposures, events)
    r = reduce(plan_of(METRICS), ex, ev)
    assert r.units.tolist() == [1, 1, 0]
    assert r.excluded == {"events_before_exposure": 1, "events_outside_window": 1, "events_of_unexposed_units": 1,
                          "units_in_several_variants": 1, "unknown_variant_exposures": 1, "bad_rows": 3,
                          "exposures_of_other_experiments": 0}
    assert r.ignored == {"exposures_after_as_of": 0, "events_after_as_of": 0,
                         "events_of_units_in_several_variants": 1}
    assert r.metrics["bought"].sum.tolist() == [1, 0, 0]
    assert r.metrics["visited_ever"].sum.tolist() == [1, 1, 0]
    spend = r.metrics["spend"]
    assert spend.sum.tolist() == [112.5, 0, 0] and spend.sum_sq.tolist() == [112.5**2, 0, 0]
    spv = r.metrics["spend_per_visit"]  # 90 min: u1 buys 12.5 (and 100 at 61 min), 0 visits in window
    assert spv.sum.tolist() == [112.5, 0, 0] and spv.den_sum.tolist() == [0, 2, 0] and spv.cross.tolist() == [0, 0, 0]
    cpv = r.metrics["clicks_per_visit"]
    assert cpv.sum.tolist() == [0, 1, 0] and cpv.den_sum.tolist() == [1, 2, 0]
    assert cpv.den_sum_sq.tolist() == [1, 4, 0] and cpv.cross.tolist() == [0, 2, 0]
    assert "WITH" in r.sql and "exposed" in r.sql
    assert np.isnan(r.metrics["bought"].mean()[2])  # an empty arm is zeros, not missing


def test_ratio_cross_terms(tmp_path):
    exposures = [("u1", "control", t(0)), ("u2", "control", t(0)), ("u3", "a", t(0))]
    events = ([("u1", "buy", "3", t(1)), ("u1", "buy", "1", t(2))] + [("u1", "visit", None, t(3))] * 2
              + [("u2", "visit", None, t(1))] + [("u3", "buy", "5", t(1))] + [("u3", "visit", None, t(4))] * 3)
    metric = {"id": "r", "kind": "ratio", "window_seconds": None,
              "numerator": {"event": "buy", "measure": "value"}, "denominator": {"event": "visit", "measure": "count"}}
    ex, ev = files(tmp_path, exposures, events)
    m = reduce(plan_of([metric], variants=("control", "a")), ex, ev).metrics["r"]
    # control: u1 (x=4, y=2), u2 (x=0, y=1); a: u3 (x=5, y=3)
    assert m.n.tolist() == [2, 1]
    assert m.sum.tolist() == [4, 5] and m.sum_sq.tolist() == [16, 25]
    assert m.den_sum.tolist() == [3, 3] and m.den_sum_sq.tolist() == [5, 9]
    assert m.cross.tolist() == [8, 15]


def test_unit_id_column_fallback_and_real_plan(tmp_path):
    plan = expc.compile_file("specs/product-descriptions.yaml")
    exposures = [("v1", "spec_sheet", t(0)), ("v2", "benefit_led", t(0))]
    events = [("v1", "order_completed", "20", t(10)), ("v1", "session_started", None, t(1)),
              ("v2", "add_to_cart", None, t(3)), ("v2", "return_requested", None, t(60 * 24 * 10)),
              ("v2", "order_completed", "5", t(60 * 24 * 8))]  # 8 days: outside the 7-day window
    ex, ev = files(tmp_path, exposures, events, unit="unit_id")
    r = reduce(plan, ex, ev)
    assert r.units.tolist() == [1, 1]
    assert r.metrics["revenue_per_visitor"].sum.tolist() == [20, 0]
    assert r.metrics["revenue_per_session"].cross.tolist() == [20, 0]
    assert r.metrics["added_to_cart"].sum.tolist() == [0, 1]
    # the data ends 10 days in: both units' 14-day windows are in progress, so they are left out of the metric
    assert r.metrics["return_requested"].n.tolist() == [0, 0] and r.in_progress["return_requested"] == 2
    assert r.metrics["added_to_cart"].n.tolist() == [1, 1]  # 7-day windows have ended
    assert r.excluded["events_outside_window"] == 1
    everyone = reduce(edited(plan, lambda p: p["analysis"].update(in_progress="include")), ex, ev)
    assert everyone.metrics["return_requested"].sum.tolist() == [0, 1] and everyone.in_progress == {}


def test_native_parquet_types(tmp_path):
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT * FROM (VALUES (1, 'control', TIMESTAMP '2026-11-01 00:00:00'),
        (2, 'a', TIMESTAMP '2026-11-01 00:00:00')) t(user_id, variant, timestamp)) TO '{tmp_path}/ex.parquet'""")
    con.execute(f"""COPY (SELECT * FROM (VALUES (1, 'buy', 2.5::DOUBLE, TIMESTAMPTZ '2026-11-01 01:00:00+01:00'),
        (1, 'buy', 'nan'::DOUBLE, TIMESTAMPTZ '2026-11-01 00:10:00+00:00'),
        (2, 'buy', 1.0::DOUBLE, TIMESTAMPTZ '2026-11-01 02:00:01+01:00')) t(user_id, event, value, timestamp))
        TO '{tmp_path}/ev.parquet'""")
    r = reduce(plan_of([{"id": "s", "kind": "mean", "event": "buy", "window_seconds": 3600}], ("control", "a")),
               tmp_path / "ex.parquet", tmp_path / "ev.parquet")
    # u1's 01:00+01:00 is 00:00 UTC (counts); u2's 02:00:01+01:00 is 01:00:01 UTC, 1 s past the window
    assert r.metrics["s"].sum.tolist() == [2.5, 0]
    assert r.excluded["bad_rows"] == 1 and r.excluded["events_outside_window"] == 1


def test_header_only_events_mean_no_events_yet(tmp_path):
    ex = write_csv(tmp_path / "ex.csv", ["user_id", "variant", "timestamp"], [("u1", "control", t(0))])
    ev = write_csv(tmp_path / "ev.csv", ["user_id", "event", "value", "timestamp"], [])
    r = reduce(plan_of(METRICS), ex, ev)
    assert r.units.tolist() == [1, 0, 0] and r.metrics["spend"].sum.tolist() == [0, 0, 0]


def test_value_column_only_needed_for_sums(tmp_path):
    ex = write_csv(tmp_path / "ex.csv", ["user_id", "variant", "timestamp"], [("u1", "control", t(0))])
    ev = write_csv(tmp_path / "ev.csv", ["user_id", "event", "timestamp"], [("u1", "buy", t(1))])
    r = reduce(plan_of(METRICS[:2], in_progress="include"), ex, ev)
    assert r.metrics["bought"].sum.tolist() == [1, 0, 0]
    with pytest.raises(DataError, match=r"lacks the column `value`"):
        reduce(plan_of(METRICS), ex, ev)


# ---------------------------------------------------------------- bad input


def test_missing_columns_named(tmp_path):
    ex = write_csv(tmp_path / "ex.csv", ["user", "variant"], [("u1", "control")])
    ev = write_csv(tmp_path / "ev.csv", ["user_id", "event", "value", "timestamp"], [])
    with pytest.raises(DataError) as info:
        reduce(plan_of(METRICS), ex, ev)
    msg = str(info.value)
    assert str(ex) in msg and "`user_id` (or `unit_id`)" in msg and "`timestamp`" in msg and "`user`" in msg
    assert info.value.path == str(ex)


def test_empty_files(tmp_path):
    good_ex = write_csv(tmp_path / "ex.csv", ["user_id", "variant", "timestamp"], [("u1", "control", t(0))])
    good_ev = write_csv(tmp_path / "ev.csv", ["user_id", "event", "value", "timestamp"], [])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="exposures file is empty"):
        reduce(plan_of(METRICS), empty, good_ev)
    with pytest.raises(DataError, match="events file is empty"):
        reduce(plan_of(METRICS), good_ex, empty)
    header = write_csv(tmp_path / "header.csv", ["user_id", "variant", "timestamp"], [])
    with pytest.raises(DataError, match="has no rows"):
        reduce(plan_of(METRICS), header, good_ev)


def test_all_timestamps_unparseable_is_an_error(tmp_path):
    ex = write_csv(tmp_path / "ex.csv", ["user_id", "variant", "timestamp"], [("u1", "control", "soon")] * 3)
    ev = write_csv(tmp_path / "ev.csv", ["user_id", "event", "value", "timestamp"], [])
    with pytest.raises(DataError, match=r"none of the 3 timestamps can be read \(the first is 'soon'\)"):
        reduce(plan_of(METRICS), ex, ev)
    ex2 = write_csv(tmp_path / "ex2.csv", ["user_id", "variant", "timestamp"], [("u1", "control", t(0))])
    ev2 = write_csv(tmp_path / "ev2.csv", ["user_id", "event", "value", "timestamp"], [("u1", "buy", "1", "later")])
    with pytest.raises(DataError, match=str(ev2)):
        reduce(plan_of(METRICS), ex2, ev2)


def test_partly_unparseable_timestamps_are_counted(tmp_path):
    ex = write_csv(tmp_path / "ex.csv", ["user_id", "variant", "timestamp"],
                   [("u1", "control", t(0)), ("u2", "a", "soon"), ("u3", "a", "")])
    ev = write_csv(tmp_path / "ev.csv", ["user_id", "event", "value", "timestamp"],
                   [("u1", "buy", "1", t(1)), ("u1", "buy", "1", "later")])
    r = reduce(plan_of(METRICS), ex, ev)
    assert r.excluded["bad_rows"] == 3 and r.units.tolist() == [1, 0, 0]


def test_unsupported_missing_and_corrupt_files(tmp_path):
    ev = write_csv(tmp_path / "ev.csv", ["user_id", "event", "value", "timestamp"], [])
    (tmp_path / "ex.txt").write_text("x")
    with pytest.raises(DataError, match="cannot read exposures from `.txt` files"):
        reduce(plan_of(METRICS), tmp_path / "ex.txt", ev)
    with pytest.raises(DataError, match="no such file"):
        reduce(plan_of(METRICS), tmp_path / "nothing.csv", ev)
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a valid Parquet file"):
        reduce(plan_of(METRICS), tmp_path / "bad.parquet", ev)


def test_bad_as_of(tmp_path):
    ex, ev = files(tmp_path, [("u1", "control", t(0))], [])
    with pytest.raises(ValueError, match="as_of"):
        reduce(plan_of(METRICS), ex, ev, as_of="next tuesday")


def test_malformed_events_file_is_named(tmp_path):
    ex = write_csv(tmp_path / "ex.csv", ["user_id", "variant", "timestamp"], [("u1", "control", t(0))])
    ev = tmp_path / "ev.csv"
    ev.write_text("user_id,event,value,timestamp\n" + f"u1,buy,1,{t(1)}\n" * 5000 + "u1,buy,1,2,3,4\n")
    with pytest.raises(DataError, match=r"ev\.csv: line 5002 has 6 fields, but the header has 4"):
        reduce(plan_of(METRICS), ex, ev)


def test_ignored_counts(tmp_path):
    exposures = [("u1", "control", t(0)), ("u2", "a", t(100)), ("u3", "a", t(0)), ("u3", "b", t(1))]
    events = [("u1", "buy", "1", t(50)), ("u1", "buy", "1", t(5)), ("u3", "visit", None, t(2))]
    ex, ev = files(tmp_path, exposures, events)
    r = reduce(plan_of(METRICS, in_progress="include"), ex, ev, as_of=t(30))
    assert r.ignored == {"exposures_after_as_of": 1, "events_after_as_of": 1, "events_of_units_in_several_variants": 1}
    assert r.units.tolist() == [1, 0, 0] and r.metrics["bought"].sum.tolist() == [1, 0, 0]


def test_events_whose_summed_values_are_all_missing_are_an_error_naming_the_metrics(tmp_path):
    exposures = [("u1", "control", "2026-11-01T00:00:00"), ("u2", "a", "2026-11-01T00:00:00")]
    events = [("u1", "buy", None, "2026-11-01T00:30:00"), ("u2", "buy", "", "2026-11-01T00:40:00"),
              ("u2", "visit", None, "2026-11-01T00:41:00")]
    ex, ev = files(tmp_path, exposures, events)
    with pytest.raises(DataError, match=r"none of the 2 rows of `buy` has a usable `value` \(a finite number\), "
                                        r"which `spend`, `spend_per_visit` sum \(measure: value\)"):
        reduce(plan_of(METRICS), ex, ev)
    some = [*events, ("u1", "buy", "3.5", "2026-11-01T00:50:00")]  # one usable value: the rest are bad rows
    ex, ev = files(tmp_path, exposures, some)
    assert reduce(plan_of(METRICS), ex, ev).excluded["bad_rows"] == 2
