"""Exposures against expc's own assignment: counted, reported, and named in the decision above a threshold."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from test_synthetic import plan_of, simulate

import expc
from expc.runtime.assignment_check import MISASSIGNED_THRESHOLD, check_assignment
from expc.runtime.synthetic import write_files


def test_units_shown_another_variant_are_counted_and_units_missing_from_the_file_apart():
    check = check_assignment(np.array(["u1", "u2", "u3", "u9"], dtype=object), np.array([0, 1, 1, 0]),
                             np.array(["u1", "u2", "u3", "u2"], dtype=object), np.array([0, 0, -1, 1]))
    # u2 was assigned 0 (its first row; the repeat is ignored) and shown 1; u3 is out of the experiment but shown 1
    assert (check.checked, check.misassigned, check.not_in_units) == (3, 2, 1)
    assert check.flagged and "2 of 3 exposed units (66.7%)" in (check.reason() or "")
    whole = check_assignment(np.array(["7", "8"], dtype=object), np.array([1, 0]), np.array([7.0, 8.0]),
                             np.array([1, 0]))
    assert (whole.checked, whole.misassigned) == (2, 0) and whole.reason() is None  # float ids in memory


def write_units(units, path: Path) -> Path:
    """A units file (JSON Lines) with every attribute, as `expc run --units` reads it."""
    names = list(units.columns)
    columns = [units.columns[n].tolist() for n in names]
    with path.open("w", encoding="utf-8") as f:
        for row in zip(*columns):
            record = {n: (list(v) if isinstance(v, tuple) else v) for n, v in zip(names, row)
                      if v is not None and v == v}
            f.write(json.dumps(record) + "\n")
    return path


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("assignment")
    plan = plan_of("welcome-email", units_per_day=300)
    units, run = simulate(plan, days=6, seed=3)
    exposures, events = write_files(run, tmp)
    return plan, exposures, events, write_units(units, tmp / "units.jsonl")


def test_exposures_logged_as_assigned_pass_the_check(logged):
    plan, exposures, events, units = logged
    out = expc.analyze(plan, exposures=exposures, events=events, units=units).to_dict()
    check = out["assignment_check"]
    assert check["misassigned"] == 0 and check["not_in_units"] == 0 and check["checked"] > 1000
    assert not check["flagged"] and "assignment_check" not in expc.analyze(plan, exposures=exposures,
                                                                            events=events).to_dict()


def test_an_sdk_that_swaps_one_unit_in_twenty_is_named_in_the_decision(logged, tmp_path):
    plan, exposures, events, units = logged
    con = duckdb.connect()
    unit = plan.assignment.unit
    other = {v.id: plan.variants[(i + 1) % len(plan.variants)].id for i, v in enumerate(plan.variants)}
    cases = " ".join(f"WHEN '{a}' THEN '{b}'" for a, b in other.items())
    swapped = tmp_path / "swapped.parquet"
    con.execute(f"""COPY (SELECT "{unit}", CASE WHEN hash("{unit}") % 20 = 0 THEN CASE variant {cases} END
                   ELSE variant END AS variant, "timestamp" FROM read_parquet('{exposures}'))
                   TO '{swapped}' (FORMAT parquet)""")
    moved = con.execute(f"""SELECT COUNT(DISTINCT "{unit}") FROM read_parquet('{exposures}')
                           WHERE hash("{unit}") % 20 = 0""").fetchone()[0]
    out = expc.analyze(plan, exposures=swapped, events=events, units=units).to_dict()
    check = out["assignment_check"]
    assert check["misassigned"] == moved and check["share"] > MISASSIGNED_THRESHOLD and check["flagged"]
    assert any("were shown a variant expc did not assign them" in r for r in out["decision"]["reasons"])
