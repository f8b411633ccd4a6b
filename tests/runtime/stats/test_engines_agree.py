"""Every engine gives the same analysis: files, tables and queries; one look, every look of a run; bad input.

The awkward rows of test_reduce (NULL and empty ids, unknown variants, units in
two arms, events of unexposed units, before exposure and outside windows,
missing and unparseable values and timestamps) are analysed on DuckDB and on
Spark; the JSON of `expc analyze` and the report of `expc run` must agree to
1e-9 (counts exactly).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner
from test_reduce import files, random_rows

import expc
from expc.cli import main
from expc.runtime.engines import EngineError, open_engine
from expc.runtime.engines.duckdb import DATABASE_ENV
from expc.runtime.tables import DataError

SPEC = """\
version: 1
experiment: {{id: engines, unit: user_id}}
attributes: {{user_id: string}}
variants:
  - {{id: control, content: A}}
  - {{id: a, content: B}}
  - {{id: b, content: C}}
metrics:
  - {{id: bought, kind: proportion, event: buy, window: 1h, role: primary, mde: 5%, baseline: 0.2}}
  - {{id: spend, kind: mean, event: buy, window: 2h, cuped: true}}
  - id: spend_per_visit
    kind: ratio
    numerator: {{event: buy, measure: value}}
    denominator: {{event: visit, measure: count}}
  - {{id: clicked, kind: proportion, event: click, role: guardrail, direction: decrease, margin: 50%}}
analysis: {{cuped_lookback: 3h}}
stopping: {{looks: 3h, max_days: 1}}
{data}"""


def close(a: Any, b: Any, where: str = "") -> None:
    """Equal JSON, numbers to 1e-9 relative (integers and text exactly)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b)), where
    else:
        assert a == b, where


def spec_file(folder: Path, data: str = "") -> Path:
    path = folder / "spec.yaml"
    path.write_text(SPEC.format(data=data), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("as_of", [None, "2026-11-01T05:00:00Z"])
def test_analyze_json_is_the_same_on_spark(tmp_path, spark_engine, fmt, as_of):
    ex, ev = files(tmp_path, *random_rows(11), fmt)
    spec = spec_file(tmp_path)
    duck = expc.analyze(spec, exposures=ex, events=ev, as_of=as_of).to_dict()
    spark = expc.analyze(spec, exposures=ex, events=ev, as_of=as_of, engine="spark").to_dict()
    close(duck, spark)
    assert sum(duck["excluded"].values()) > 0


def test_every_look_of_a_run_is_the_same_on_spark(tmp_path, spark_engine):
    ex, ev = files(tmp_path, *random_rows(12), "parquet")
    spec = spec_file(tmp_path)
    duck = expc.run(spec, exposures=ex, events=ev, run_dir=tmp_path / "duck", offline=True).report
    spark = expc.run(spec, exposures=ex, events=ev, run_dir=tmp_path / "spark", offline=True, engine="spark").report
    assert len(duck["history"]) >= 2
    for key in ("history", "decision", "metrics", "excluded"):
        close(duck.get(key), spark.get(key), key)


def test_the_command_line_prints_the_same_json_on_spark(tmp_path, spark_engine):
    ex, ev = files(tmp_path, *random_rows(13), "jsonl")
    spec = spec_file(tmp_path)
    out = {}
    for engine in ("duckdb", "spark"):
        result = CliRunner().invoke(main, ["analyze", str(spec), "--exposures", str(ex), "--events", str(ev),
                                           "--engine", engine, "--format", "json"])
        assert result.exit_code == 0, result.output
        out[engine] = __import__("json").loads(result.output)
    close(out["duckdb"], out["spark"])


# ---------------------------------------------------------------- tables and queries, declared in the spec

TABLES = """\
data:
  dialect: spark
  exposures: {table: wh_exposures, columns: {unit_id: uid, timestamp: ts}}
  events:
    query: |
      SELECT uid AS unit_id, event, value, ts AS `timestamp` FROM wh_events
"""


@pytest.fixture
def warehouse(tmp_path: Path) -> dict[str, Any]:
    """The awkward rows as files and as typed tables (timestamps parsed; what does not parse is NULL)."""
    ex, ev = files(tmp_path, *random_rows(14), "parquet")
    typed = {
        "wh_exposures": f"SELECT user_id AS uid, variant, TRY_CAST(\"timestamp\" AS TIMESTAMP) AS ts "
                        f"FROM read_parquet('{ex}')",
        "wh_events": f"SELECT user_id AS uid, event, TRY_CAST(value AS DOUBLE) AS value, "
                     f"TRY_CAST(\"timestamp\" AS TIMESTAMP) AS ts FROM read_parquet('{ev}')",
    }
    return {"exposures": ex, "events": ev, "typed": typed}


def test_tables_and_queries_give_what_the_files_give_on_duckdb_and_spark(tmp_path, warehouse, spark, monkeypatch):
    database = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(database))
    for name, select in warehouse["typed"].items():
        con.execute(f"CREATE TABLE {name} AS {select}")
        spark.createDataFrame(con.execute(f"SELECT * FROM {name}").df()).createOrReplaceTempView(name)
    con.close()
    monkeypatch.setenv(DATABASE_ENV, str(database))
    expected = expc.analyze(spec_file(tmp_path), exposures=warehouse["exposures"],
                            events=warehouse["events"]).to_dict()
    (tmp_path / "declared").mkdir()
    declared = spec_file(tmp_path / "declared", TABLES)  # in Spark's dialect; sqlglot translates it for DuckDB
    for engine in ("duckdb", "spark"):
        close(expected, expc.analyze(declared, engine=engine).to_dict(), engine)


def test_a_table_that_does_not_exist_and_a_missing_column_are_one_line_each(tmp_path, spark_engine):
    spec = spec_file(tmp_path, "data:\n  dialect: spark\n  exposures: {table: no_such_table}\n"
                               "  events: {table: no_such_table}\n")
    with pytest.raises(DataError, match=r"^table `no_such_table`: Spark: .*no_such_table"):
        expc.analyze(spec, engine="spark")
    spark_engine.spark.sql("SELECT 'u1' AS user_id, 'a' AS arm, current_timestamp() AS ts") \
        .createOrReplaceTempView("wh_wrong")
    spec = spec_file(tmp_path, "data:\n  dialect: spark\n  exposures: {table: wh_wrong}\n"
                               "  events: {table: wh_wrong}\n")
    with pytest.raises(DataError) as info:
        expc.analyze(spec, engine="spark")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("table `wh_wrong`: the exposures table lacks the columns `unit_id`, `variant`, "
                              "`timestamp`; it has `user_id`, `arm`, `ts`")


def test_a_query_that_fails_in_the_engine_is_one_line(tmp_path, spark_engine):
    spec = spec_file(tmp_path, "data:\n  dialect: spark\n  exposures:\n    query: SELECT 'u' AS unit_id, 'a' AS "
                               "variant, CAST('soon' AS TIMESTAMP) AS `timestamp`\n"
                               "  events: {query: \"SELECT 'u' AS unit_id, 'buy' AS event, 1.0 AS value, "
                               "current_timestamp() AS `timestamp`\"}\n")
    with pytest.raises(DataError, match=r"^Spark: \[CAST_INVALID_INPUT\][^\n]*$"):
        expc.analyze(spec, engine="spark")


def test_a_spec_path_may_not_leave_the_spec_folder(tmp_path):
    (tmp_path / "inside").mkdir()
    ex, ev = files(tmp_path, *random_rows(15))
    spec = spec_file(tmp_path / "inside", "data:\n  exposures: {path: data/ex.csv}\n  events: {path: data/ev.csv}\n")
    (tmp_path / "inside" / "data").symlink_to(tmp_path)  # committed as a link to somewhere else
    with pytest.raises(DataError, match="leads outside the spec's folder"):
        expc.analyze(spec)
    assert expc.analyze(spec, exposures=ex, events=ev).to_dict()["excluded"]  # the flags may name any file


# ---------------------------------------------------------------- an engine that cannot run here


def test_spark_without_pyspark_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(EngineError, match=r"pip install 'expc\[spark\]'") as info:
        open_engine("spark")
    assert info.value.exit_code == 2


def test_spark_without_java_says_so(monkeypatch):
    pytest.importorskip("pyspark", reason="PySpark is not installed (the message for that is tested above)")
    import shutil

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.delenv("EXPC_SPARK_REMOTE", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(EngineError, match="needs Java 17") as info:
        open_engine("spark")
    assert info.value.exit_code == 2


def test_the_command_line_reports_an_unusable_engine_in_one_line_exit_2(tmp_path, monkeypatch):
    import sys

    ex, ev = files(tmp_path, *random_rows(16))
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    result = CliRunner().invoke(main, ["analyze", str(spec_file(tmp_path)), "--exposures", str(ex),
                                       "--events", str(ev), "--engine", "spark"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "pip install 'expc[spark]'" in result.output


def test_the_embedded_engine_reads_no_file_but_those_given_whatever_a_query_asks(tmp_path):
    """Validation refuses read_csv in a spec's query (E057); a hand-made plan that slips one past meets the lock."""
    from expc.compiler.model import Data, DataSource

    secret = tmp_path / "secret.csv"
    secret.write_text("unit_id,variant,timestamp\nTOPSECRET,a,2026-11-01T00:00:00Z\n", encoding="utf-8")
    _, ev = files(tmp_path, *random_rows(17))
    plan = expc.load_plan(spec_file(tmp_path))
    plan = plan.model_copy(update={"data": Data(exposures=DataSource(query=f"SELECT * FROM read_csv('{secret}')"))})
    with pytest.raises(DataError, match="^the data.exposures query: DuckDB: Permission Error") as info:
        expc.analyze(plan, events=ev)
    assert "TOPSECRET" not in str(info.value)


def test_a_run_reads_the_data_section_beside_the_spec_as_it_reads_the_flags(tmp_path):
    (tmp_path / "data").mkdir()
    ex, ev = files(tmp_path / "data", *random_rows(18), "parquet")
    spec = spec_file(tmp_path, "data:\n  exposures: {path: data/exposures.parquet}\n"
                               "  events: {path: data/events.parquet}\n")
    declared = expc.run(spec, run_dir=tmp_path / "declared", offline=True).report
    flagged = expc.run(spec, exposures=ex, events=ev, run_dir=tmp_path / "flagged", offline=True).report
    assert not declared["simulated"] and len(declared["history"]) >= 2
    for key in ("history", "decision", "metrics", "excluded"):
        close(declared.get(key), flagged.get(key), key)
