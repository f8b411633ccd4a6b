"""A log shared by experiments: rows of others are counted and left out; GrowthBook's `variation_id` is read."""

from __future__ import annotations

import random

import numpy as np
import pytest
from reduce_plans import METRICS
from test_reduce import WRITERS, plan_of, random_rows, write_csv

from expc.compiler.model import DataSource
from expc.runtime.stats.reduce import Reduction, reduce
from expc.runtime.stats.reduction_sql import input_query, reduction_sql
from expc.runtime.tables import DataError

VARIANTS = ("control", "a", "b")


def assert_same(got: Reduction, expected: Reduction, ignore: set[str] = frozenset()) -> None:
    """The same units, exclusions (but ``ignore``) and moments, exactly."""
    assert got.units.tolist() == expected.units.tolist()
    assert {k: v for k, v in got.excluded.items() if k not in ignore} == \
        {k: v for k, v in expected.excluded.items() if k not in ignore}
    for mid, m in expected.metrics.items():
        for stat in ("n", "sum", "sum_sq", "den_sum", "den_sum_sq", "cross"):
            if getattr(m, stat) is not None:
                np.testing.assert_array_equal(getattr(got.metrics[mid], stat), getattr(m, stat), err_msg=mid)


def shared_log(seed: int, experiment: str) -> tuple[list[tuple], list[tuple]]:
    """This experiment's exposures with its id, mixed with another experiment's rows on the same units."""
    exposures, _ = random_rows(seed)
    rng = random.Random(seed)
    ours = [(u, v, t, experiment) for u, v, t in exposures]
    theirs = [(u, rng.choice(["control", "x", "a"]), t, "other-test") for u, v, t in exposures[: len(exposures) // 2]]
    mixed = ours + theirs
    rng.shuffle(mixed)
    return mixed, theirs


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("seed", [1, 2])
def test_a_shared_log_gives_what_this_experiments_rows_alone_give(tmp_path, seed, fmt, engine):
    plan = plan_of(METRICS)
    exposures, events = random_rows(seed)
    mixed, theirs = shared_log(seed, plan.experiment.id)
    write = WRITERS[fmt]
    alone = write(tmp_path / f"alone.{fmt}", ["user_id", "variant", "timestamp"], exposures)
    shared = write(tmp_path / f"shared.{fmt}", ["user_id", "variant", "timestamp", "experiment_id"], mixed)
    ev = write(tmp_path / f"ev.{fmt}", ["user_id", "event", "value", "timestamp"], events)
    expected = reduce(plan, alone, ev, engine=engine)
    got = reduce(plan, shared, ev, engine=engine)
    assert_same(got, expected, ignore={"exposures_of_other_experiments"})
    assert got.excluded["exposures_of_other_experiments"] == len(theirs) > 0
    assert expected.excluded["exposures_of_other_experiments"] == 0


@pytest.mark.parametrize("seed", [3, 4])
def test_growthbooks_variation_index_stands_for_the_variant(tmp_path, seed, engine):
    """GrowthBook logs `experiment_id` and `variation_id` (0 for the first variant): the same result."""
    plan = plan_of(METRICS)
    exposures, events = random_rows(seed)
    index = {v: str(i) for i, v in enumerate(VARIANTS)}
    gb = [(u, index.get(v, v), t, plan.experiment.id) for u, v, t in exposures]  # unknown variants stay as text
    alone = write_csv(tmp_path / "alone.csv", ["user_id", "variant", "timestamp"], exposures)
    logged = write_csv(tmp_path / "gb.csv", ["user_id", "variation_id", "timestamp", "experiment_id"], gb)
    ev = write_csv(tmp_path / "ev.csv", ["user_id", "event", "value", "timestamp"], events)
    assert_same(reduce(plan, logged, ev, engine=engine), reduce(plan, alone, ev, engine=engine))


def test_a_mapped_experiment_column_filters_and_neither_variant_column_is_one_error(tmp_path):
    plan = plan_of(METRICS)
    exposures, events = random_rows(5)
    mixed, theirs = shared_log(5, plan.experiment.id)
    shared = write_csv(tmp_path / "shared.csv", ["user_id", "variant", "timestamp", "exp_key"], mixed)
    ev = write_csv(tmp_path / "ev.csv", ["user_id", "event", "value", "timestamp"], events)
    source = DataSource(path=str(shared), columns={"experiment_id": "exp_key"})
    assert reduce(plan, source, ev).excluded["exposures_of_other_experiments"] == len(theirs)
    bare = write_csv(tmp_path / "bare.csv", ["user_id", "timestamp"], [(u, t) for u, _, t in exposures])
    with pytest.raises(DataError, match="lacks the column `variant`"):
        reduce(plan, bare, ev)


def test_the_sql_reads_no_experiment_column_unless_the_source_maps_one():
    plan = plan_of(METRICS)
    sql = reduction_sql(plan, "postgres")
    assert "other_experiments" in sql and "CAST(NULL AS VARCHAR) AS \"experiment_id\"" in sql
    mapped = input_query("exposures", DataSource(table="views", columns={"experiment_id": "exp_key"}),
                         "postgres").sql(dialect="postgres")
    assert '"exp_key" AS "experiment_id"' in mapped and 'NULL AS VARCHAR) AS "variation_id"' in mapped
