"""A DB-API connection and a dialect make an engine: registered by name, it runs the reduction where the data is."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stats"))
from test_engines_agree import close, spec_file
from test_reduce import files, random_rows

import expc
from expc.runtime.engines import ENGINES, EngineError, register
from expc.runtime.engines.dbapi import DbApiEngine
from expc.runtime.tables import DataError

DATA = """\
data:
  dialect: postgres
  exposures: {table: analytics.exposures, columns: {unit_id: uid}}
  events: {table: analytics.events, columns: {unit_id: uid}}
"""


@pytest.fixture
def warehouse(tmp_path: Path):
    """A DuckDB database file standing in for a warehouse, with the awkward rows in typed tables."""
    ex, ev = files(tmp_path, *random_rows(21), "parquet")
    database = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(database))
    con.execute("CREATE SCHEMA analytics")
    con.execute(f"CREATE TABLE analytics.exposures AS SELECT user_id AS uid, variant, "
                f"TRY_CAST(\"timestamp\" AS TIMESTAMP) AS \"timestamp\" FROM read_parquet('{ex}')")
    con.execute(f"CREATE TABLE analytics.events AS SELECT user_id AS uid, event, TRY_CAST(value AS DOUBLE) AS value, "
                f"TRY_CAST(\"timestamp\" AS TIMESTAMP) AS \"timestamp\" FROM read_parquet('{ev}')")
    con.close()
    yield ex, ev, database
    ENGINES.pop("test-warehouse", None)


def test_a_registered_dbapi_engine_gives_what_the_files_give(tmp_path, warehouse):
    ex, ev, database = warehouse
    register("test-warehouse", lambda: DbApiEngine(lambda: duckdb.connect(str(database), read_only=True), "duckdb",
                                                   errors=(duckdb.Error,)))
    expected = expc.analyze(spec_file(tmp_path), exposures=ex, events=ev).to_dict()
    (tmp_path / "declared").mkdir()
    got = expc.analyze(spec_file(tmp_path / "declared", DATA), engine="test-warehouse").to_dict()
    close(expected, got)


def test_files_unknown_dialects_and_database_errors_are_one_line(tmp_path, warehouse):
    ex, ev, database = warehouse
    with pytest.raises(EngineError, match="unknown dialect 'oracle'"):
        DbApiEngine(lambda: None, "oracle")
    register("test-warehouse", lambda: DbApiEngine(lambda: duckdb.connect(str(database), read_only=True), "duckdb",
                                                   name="test-warehouse", errors=(duckdb.Error,)))
    with pytest.raises(DataError, match="reads tables and queries, not files"):
        expc.analyze(spec_file(tmp_path), exposures=ex, events=ev, engine="test-warehouse")
    (tmp_path / "declared").mkdir()
    spec = spec_file(tmp_path / "declared", DATA.replace("analytics.events", "analytics.nope"))
    with pytest.raises(DataError, match=r"^table `analytics.nope`: test-warehouse: Catalog Error[^\n]*$"):
        expc.analyze(spec, engine="test-warehouse")
