"""reduction_sql(): the reduction as one query per dialect; its DuckDB form gives what reduce() gives."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pytest
import sqlglot
from reduce_plans import METRICS, plan_for

from expc.runtime.stats.reduce import EXCLUDED_KEYS, IGNORED_KEYS, reduce
from expc.runtime.stats.reduction_sql import COUNT_COLUMNS, DIALECTS, moment_columns, reduction_sql

BASE = datetime(2026, 11, 1)
CUPED_METRICS = [
    {"id": "spend", "kind": "mean", "event": "buy", "window_seconds": 7200},
    {"id": "bought", "kind": "proportion", "event": "buy", "window_seconds": 3600},
    {"id": "spend_per_visit", "kind": "ratio", "window_seconds": 5400,
     "numerator": {"event": "buy", "measure": "value"}, "denominator": {"event": "visit", "measure": "count"}},
    {"id": "visited", "kind": "proportion", "event": "visit", "window_seconds": None, "cuped": False},
]


def awkward_rows(seed: int, n_units: int = 60, n_exposures: int = 160, n_events: int = 600):
    """Typed rows with every awkward case: NULL and empty ids, unknown variants, units in two arms, events of
    unexposed units, before exposure and outside windows, missing, NaN and infinite values, other events, NULL
    timestamps."""
    rng = random.Random(seed)
    units = [f"u{i}" for i in range(n_units)]

    def when(hours: int):
        return None if rng.random() < 0.02 else BASE + timedelta(seconds=rng.randrange(hours * 3600))

    def unit(pool):
        r = rng.random()
        return None if r < 0.02 else "" if r < 0.03 else rng.choice(pool)

    exposures = [(unit(units), rng.choices(["control", "a", "b", "zz", None], [30, 30, 30, 3, 1])[0], when(6))
                 for _ in range(n_exposures)]
    exposures += [(u, "a", when(6)) for u in units[:10]]  # repeated exposures to one arm
    events = []
    for _ in range(n_events):
        r = rng.random()
        value = (None if r < 0.03 else float("nan") if r < 0.04 else float("-inf") if r < 0.045
                 else rng.randrange(-40, 400) / 4)
        events.append((unit(units + ["ghost1", "ghost2"]),
                       rng.choices(["buy", "visit", "click", "other", None], [30, 30, 20, 10, 2])[0], value,
                       when(12)))
    return exposures, events


def write_csv(path, header, rows):
    def cell(v):
        return "" if v is None else v.strftime("%Y-%m-%dT%H:%M:%S") if isinstance(v, datetime) else str(v)
    path.write_text("\n".join([",".join(header)] + [",".join(cell(v) for v in row) for row in rows]) + "\n")
    return path


def run_sql(plan, exposures, events, as_of=None):
    """The DuckDB query over in-memory tables: {column: [one value per arm]}."""
    con = duckdb.connect()
    con.execute("CREATE TABLE exposures (unit_id VARCHAR, variant VARCHAR, \"timestamp\" TIMESTAMP)")
    con.execute("CREATE TABLE events (unit_id VARCHAR, event VARCHAR, value DOUBLE, \"timestamp\" TIMESTAMP)")
    con.executemany("INSERT INTO exposures VALUES (?, ?, ?)", exposures)
    con.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", events)
    cur = con.execute(reduction_sql(plan, "duckdb", as_of))
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    con.close()
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def assert_equal_to_reduce(tmp_path, plan, exposures, events, as_of=None):
    ex = write_csv(tmp_path / "exposures.csv", ["user_id", "variant", "timestamp"], exposures)
    ev = write_csv(tmp_path / "events.csv", ["user_id", "event", "value", "timestamp"], events)
    r = reduce(plan, ex, ev, as_of=as_of)
    got = run_sql(plan, exposures, events, as_of)
    assert got["arm"] == list(range(len(plan.variants)))
    assert got["variant"] == [v.id for v in plan.variants]
    assert got["units"] == r.units.tolist()
    for column, metric, stat in moment_columns(plan):
        expected = getattr(r.metrics[metric], stat)
        assert expected is not None, (metric, stat)
        np.testing.assert_allclose(np.asarray(got[column], dtype=float), expected, rtol=1e-9, atol=1e-9,
                                   err_msg=column)
    counts = {**r.excluded, **r.ignored}
    assert set(COUNT_COLUMNS) == set(EXCLUDED_KEYS) | set(IGNORED_KEYS)
    for key in COUNT_COLUMNS:
        assert set(got[key]) == {counts[key]}, key
    assert {(t.isoformat() if t else None) for t in got["first_exposure"]} == {r.first_exposure}
    assert {(t.isoformat() if t else None) for t in got["last_exposure"]} == {r.last_exposure}
    return r


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_duckdb_query_gives_what_reduce_gives(tmp_path, seed):
    exposures, events = awkward_rows(seed)
    r = assert_equal_to_reduce(tmp_path, plan_for(METRICS, ("control", "a", "b")), exposures, events)
    assert all(r.excluded[k] > 0 for k in EXCLUDED_KEYS if k != "exposures_of_other_experiments"), r.excluded


@pytest.mark.parametrize("as_of", ["2026-11-01T03:00:00", "2026-11-01T04:00:00", "2026-11-01T08:30:00",
                                   "2026-11-01T09:30:00+02:00"])
def test_as_of_cut_off_gives_what_reduce_gives(tmp_path, as_of):
    exposures, events = awkward_rows(7)
    r = assert_equal_to_reduce(tmp_path, plan_for(METRICS, ("control", "a", "b")), exposures, events, as_of)
    assert r.ignored["events_after_as_of"] > 0


@pytest.mark.parametrize("seed", [4, 5])
def test_cuped_covariates_give_what_reduce_gives(tmp_path, seed):
    exposures, events = awkward_rows(seed)
    plan = plan_for(CUPED_METRICS, ("control", "a"), cuped=True, lookback=3 * 3600)
    r = assert_equal_to_reduce(tmp_path, plan, exposures, events, "2026-11-01T10:00:00")
    assert r.metrics["spend"].has_covariate and not r.metrics["visited"].has_covariate


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_parses_in_that_dialect(dialect):
    plan = plan_for(CUPED_METRICS, ("control", "a", "b"), cuped=True)
    sql = reduction_sql(plan, dialect, "2026-11-02T00:00:00Z")
    tree = sqlglot.parse_one(sql, read=dialect)
    assert tree.find(sqlglot.exp.Select) is not None
    assert sql.startswith("-- expc reduction") and "What leaves the warehouse" in sql
    assert "\n  " in sql  # pretty: one clause a line
    assert "2026-11-02 00:00:00" in sql


def test_dialects_differ_where_the_engines_do():
    plan = plan_for(METRICS, ("control", "a"))
    assert "`timestamp`" in reduction_sql(plan, "spark") and "`timestamp`" in reduction_sql(plan, "bigquery")
    assert '"timestamp"' in reduction_sql(plan, "postgres")
    clickhouse = reduction_sql(plan, "clickhouse")
    assert "join_use_nulls = 1, prefer_column_name_to_alias = 1" in clickhouse
    assert "DateTime64(6)" in clickhouse and "DateTime)" not in clickhouse


def test_hostile_names_stay_in_literals_and_comments(tmp_path):
    plan = plan_for([{"id": "bought", "kind": "proportion", "event": "it's\\", "window_seconds": None}],
                    ("control", "a"))
    for dialect in DIALECTS:
        sql = reduction_sql(plan, dialect)
        sqlglot.parse_one(sql, read=dialect)
    exposures = [("u1", "control", BASE), ("u2", "a", BASE)]
    events = [("u1", "it's\\", None, BASE + timedelta(seconds=5)), ("u2", "other", None, BASE)]
    got = run_sql(plan, exposures, events)
    assert got["m0_sum"] == [1, 0]


def test_as_of_offset_is_utc_and_bad_input_is_refused():
    plan = plan_for(METRICS, ("control", "a"))
    assert "2026-11-01 07:30:00" in reduction_sql(plan, "trino", "2026-11-01T09:30:00+02:00")
    with pytest.raises(ValueError, match="not a timestamp"):
        reduction_sql(plan, "duckdb", "yesterday")
    with pytest.raises(ValueError, match="unknown dialect"):
        reduction_sql(plan, "oracle")
