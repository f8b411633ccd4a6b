"""The spec's `data` section: each source is one table, path or query that reads only what it names (E051-E057)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
from conftest import BASE, ROOT, check_text, codes, located, plan_of_text

from expc.compiler.datasources import MAX_QUERY_PROBLEMS
from expc.compiler.diagnostics import format_text
from expc.compiler.model import DIALECTS
from expc.compiler.pipeline import CheckResult

EXPOSURES_TABLE = {"table": "analytics.experiment_viewed",
                   "columns": {"unit_id": "user_id", "variant": "variation_id", "timestamp": "viewed_at"}}
EVENTS_FOLDER = {"path": "data/events/", "format": "parquet"}
EVENTS_QUERY = {"query": "SELECT user_id AS unit_id, event_name AS event, ts AS timestamp, revenue AS value\n"
                         "FROM analytics.events\nWHERE ts >= '2026-11-01'"}
SIMPLE_SELECT = "SELECT user_id AS unit_id, variation_id AS variant, viewed_at AS timestamp FROM analytics.viewed"


def data_spec(dialect: str | None = None, **sources: dict[str, Any]) -> str:
    """BASE with a `data` section: ``sources`` maps a relation to its source's keys (a multi-line value is a block)."""
    lines = ["data:"] + ([f"  dialect: {dialect}"] if dialect else [])
    for what, keys in sources.items():
        lines.append(f"  {what}:")
        for key, value in keys.items():
            if isinstance(value, str) and "\n" in value:
                lines += [f"    {key}: |", *(f"      {line}" for line in value.splitlines())]
            else:  # a JSON value is a YAML flow value
                lines.append(f"    {key}: {json.dumps(value, ensure_ascii=False)}")
    return BASE + "\n".join(lines) + "\n"


def check(dialect: str | None = None, **sources: dict[str, Any]) -> tuple[str, CheckResult]:
    """The spec text of :func:`data_spec` and its check."""
    text = data_spec(dialect, **sources)
    return text, check_text(text)


def at(text: str, needle: str, offset: int = 0) -> tuple[int, int]:
    """(line, col) of the first ``needle`` in ``text``, ``offset`` characters on (1-based)."""
    index = text.index(needle) + offset
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def value_of(text: str, key: str) -> tuple[int, int]:
    """Where the value of the first ``    key:`` of a source is."""
    return at(text, f"    {key}: ", len(f"    {key}: "))


def key_of(text: str, key: str, indent: int = 4) -> tuple[int, int]:
    """Where the first ``key:`` at ``indent`` is."""
    return at(text, f"\n{' ' * indent}{key}:", 1 + indent)


def only(result: CheckResult, code: str) -> str:
    """The message of the one finding ``result`` has, which must have ``code``."""
    assert codes(result) == [code], format_text(result.diagnostics)
    return result.diagnostics[0].message


# ------------------------------------------------------------------ valid


def test_a_table_a_folder_and_a_query_are_valid_and_the_plan_carries_them():
    text, result = check(exposures=EXPOSURES_TABLE, events=EVENTS_FOLDER)
    assert result.ok() and result.diagnostics == [], format_text(result.diagnostics)
    plan = plan_of_text(data_spec(exposures=EXPOSURES_TABLE, events=EVENTS_QUERY))
    assert plan.data is not None and plan.data.exposures is not None and plan.data.events is not None
    assert plan.data.exposures.columns["variant"] == "variation_id"
    assert plan.data.events.query == EVENTS_QUERY["query"] + "\n"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_reads_a_simple_select_and_a_table_name(dialect: str):
    _, result = check(dialect, exposures={"query": SIMPLE_SELECT}, events={"table": "prod.analytics.events"})
    assert result.ok() and result.diagnostics == [], format_text(result.diagnostics)


@pytest.mark.parametrize("sources", [
    {"exposures": EXPOSURES_TABLE}, {"events": EVENTS_QUERY}, {},
], ids=["exposures only", "events only", "dialect only"])
def test_either_relation_may_be_left_to_the_command_line(sources: dict[str, Any]):
    _, result = check("spark", **sources)
    assert result.ok() and result.diagnostics == [], format_text(result.diagnostics)


@pytest.mark.parametrize("query", [
    "WITH v AS (SELECT * FROM db.t) SELECT user_id AS unit_id, variant, ts AS timestamp FROM v;",
    "SELECT a AS unit_id, b AS variant, c AS timestamp FROM x UNION ALL SELECT a, b, c FROM y",
    "(SELECT a AS unit_id, b AS variant, c AS timestamp FROM x)",
    "SELECT u AS unit_id, v AS variant, t AS timestamp FROM db.t CROSS JOIN UNNEST(arr) AS x(v)",
    "SELECT u AS unit_id, v AS variant, t AS timestamp FROM generate_series(1, 3) AS g(t), db.x",
])
def test_read_only_queries_with_ctes_unions_and_unnest_are_valid(query: str):
    _, result = check(exposures={"query": query})
    assert result.ok() and result.diagnostics == [], format_text(result.diagnostics)


def test_the_examples_of_the_spec_reference_are_valid():
    doc = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    section = doc[doc.index("\n## data\n"):]
    section = section[: section.index("\n## ", 1)]
    examples = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert len(examples) == 3
    for example in examples:
        result = check_text(BASE + example)
        assert result.ok() and result.diagnostics == [], (example, format_text(result.diagnostics))


# ------------------------------------------------------------------ E051


def test_a_source_with_two_kinds_is_reported_at_the_second():
    text, result = check(events={"table": "analytics.events", "path": "events.parquet"})
    assert "gives `table` and `path`" in only(result, "E051")
    assert located(result, "E051") == [key_of(text, "path")]


def test_a_source_with_none_is_reported_at_its_key():
    text, result = check(events={"columns": {"event": "name"}})
    assert "gives none" in only(result, "E051")
    assert located(result, "E051") == [key_of(text, "events", 2)]


# ------------------------------------------------------------------ E052


def test_an_unknown_standard_column_is_reported_at_its_key_with_a_suggestion():
    text, result = check(exposures={"table": "t", "columns": {"unit_id": "user_id", "varient": "variation_id"}})
    assert only(result, "E052") == "data.exposures.columns: `varient` is not a standard column of exposures"
    assert result.diagnostics[0].hint == "did you mean `variant`?"
    assert located(result, "E052") == [at(text, "\"varient\"")]


@pytest.mark.parametrize("what, column", [("exposures", "value"), ("exposures", "event"), ("events", "variant")])
def test_each_relation_takes_only_its_own_standard_columns(what: str, column: str):
    _, result = check(**{what: {"table": "t", "columns": {column: "x"}}})
    assert "is not a standard column" in only(result, "E052")


@pytest.mark.parametrize("name", ['"user id"', "a.b", "user id", "x; DROP TABLE t", "1abc", "`q`", "f(x)", "a\tb"])
def test_a_mapped_column_is_a_plain_name_reported_at_the_value(name: str):
    text, result = check(events={"table": "t", "columns": {"unit_id": "user_id", "event": name}})
    assert "is not a plain column name" in only(result, "E052")
    assert located(result, "E052") == [at(text, json.dumps(name, ensure_ascii=False))]


def test_unit_id_and_every_standard_column_may_be_mapped_in_both_relations():
    _, result = check(exposures={"table": "t", "columns": {"unit_id": "uid", "variant": "arm", "timestamp": "ts"}},
                      events={"table": "e", "columns": {"unit_id": "uid", "event": "name", "timestamp": "ts",
                                                        "value": "revenue_usd"}})
    assert result.ok() and result.diagnostics == [], format_text(result.diagnostics)


# ------------------------------------------------------------------ E023


@pytest.mark.parametrize("kind", [{"table": "t"}, {"query": "SELECT 1"}])
def test_format_applies_only_to_a_path(kind: dict[str, str]):
    text, result = check(events={**kind, "format": "csv"})
    assert only(result, "E023") == "data.events.format only applies to a `path`"
    assert located(result, "E023") == [key_of(text, "format")]


# ------------------------------------------------------------------ E053


@pytest.mark.parametrize("path, why", [
    ("/etc/passwd", "is an absolute path"),
    ("\\\\server\\share\\events.csv", "is an absolute path"),
    ("../events.csv", "leaves the spec's folder"),
    ("data/../../events.csv", "leaves the spec's folder"),
    ("..\\..\\events.csv", "leaves the spec's folder"),
    ("~/events.csv", "`~`"),
    ("data/~root/events.csv", "`~`"),
    ("s3://bucket/events.parquet", "is a URL"),
    ("https://example.com/events.csv", "is a URL"),
    ("file:///etc/passwd", "is a URL"),
    ("C:\\data\\events.csv", "is a Windows drive"),
    ("events\u0007.csv", "control character"),
    (".env", "hidden file or folder (`.env`)"),
    ("data/.git/events.csv", "hidden file or folder (`.git`)"),
])
def test_a_path_outside_the_spec_folder_is_refused_and_the_flag_is_named(path: str, why: str):
    text, result = check(events={"path": path})
    message = only(result, "E053")
    assert why in message and "inside its own folder" in message
    assert "`--events PATH`" in (result.diagnostics[0].hint or "")
    assert located(result, "E053") == [value_of(text, "path")]
    _, exposures = check(exposures={"path": path})
    assert "`--exposures PATH`" in (exposures.diagnostics[0].hint or "")


@pytest.mark.parametrize("path", ["data/../events.csv", "./events/", "events/date=2026-11-01/", "my~file.csv",
                                  "data/events.parquet", "EVENTS.CSV", "events.ndjson", "events.json"])
def test_a_path_inside_the_spec_folder_is_valid(path: str):
    _, result = check(events={"path": path})
    assert result.ok() and result.diagnostics == [], format_text(result.diagnostics)


# ------------------------------------------------------------------ E054


def test_a_path_whose_extension_says_no_format_needs_one():
    text, result = check(events={"path": "events.txt"})
    assert "cannot tell the format of `events.txt`" in only(result, "E054")
    assert located(result, "E054") == [value_of(text, "path")]
    _, given = check(events={"path": "events.txt", "format": "csv"})
    assert given.ok() and given.diagnostics == []


def test_a_format_that_contradicts_the_extension_is_reported_at_the_format():
    text, result = check(events={"path": "events.csv", "format": "parquet"})
    assert only(result, "E054") == "data.events: `format: parquet` disagrees with the extension of `events.csv` (csv)"
    assert located(result, "E054") == [value_of(text, "format")]


@pytest.mark.parametrize("source", [{"path": "events"}, {"path": "events/", "format": "jsonl"},
                                    {"path": "events.parquet/", "format": "parquet"}])
def test_a_folder_may_leave_its_format_to_its_files(source: dict[str, str]):
    _, result = check(events=source)
    assert result.ok() and result.diagnostics == [], format_text(result.diagnostics)


# ------------------------------------------------------------------ E055


@pytest.mark.parametrize("name", ["analytics.events AS e", "a.b.c.d", "a b", "analytics.events; DROP TABLE x",
                                  "unnest([1])", "$t", "events -- note", "x.y AT(TIMESTAMP => 1)"])
def test_a_table_is_a_name_and_nothing_else(name: str):
    text, result = check(events={"table": name})
    assert "table name" in only(result, "E055")
    assert located(result, "E055") == [value_of(text, "table")]


@pytest.mark.parametrize("dialect, name", [("bigquery", "my-project.analytics.events"),
                                           ("bigquery", "`my-project.analytics.events`"),
                                           ("snowflake", '"Analytics"."Events"'), ("spark", "`odd name`.t"),
                                           ("duckdb", "main.events")])
def test_quoted_and_qualified_table_names_are_valid(dialect: str, name: str):
    _, result = check(dialect, events={"table": name})
    assert result.ok() and result.diagnostics == [], format_text(result.diagnostics)


# ------------------------------------------------------------------ E056


def test_a_query_that_does_not_parse_is_reported_at_its_key_with_the_position_inside():
    query = "SELECT user_id AS unit_id, event, ts AS timestamp\nFROM analytics.events\nWHERE (ts > '2026-11-01'"
    text, result = check("bigquery", events={"query": query})
    message = only(result, "E056")
    assert message.startswith("data.events.query: the query does not parse in bigquery: Expecting )")
    assert "line 3, column 13 of the query" in message and "\n" not in message
    assert located(result, "E056") == [key_of(text, "query")]


@pytest.mark.parametrize("dialect, query, why", [
    ("duckdb", "SELECT 1; SELECT 2", "holds 2 statements"),
    ("duckdb", "-- nothing", "holds no statement"),
    ("duckdb", "DROP TABLE analytics.events", "`DROP` statement"),
    ("duckdb", "INSERT INTO t SELECT 1", "`INSERT` statement"),
    ("duckdb", "CREATE TABLE t AS SELECT 1", "`CREATE` statement"),
    ("duckdb", "COPY (SELECT 1) TO 'out.csv'", "`COPY` statement"),
    ("duckdb", "ATTACH 'other.db'", "`ATTACH` statement"),
    ("duckdb", "SET threads = 1", "`SET` statement"),
    ("spark", "EXPLAIN SELECT 1", "`EXPLAIN` statement"),
    ("duckdb", "VALUES (1, 'a', now())", "`VALUES` statement"),
    ("postgres", "WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone", "`DELETE`"),
    ("duckdb", "SELECT * INTO copy FROM t", "`SELECT ... INTO`"),
    ("postgres", "SELECT * FROM t FOR UPDATE", "`FOR UPDATE`"),
    ("duckdb", "SELECT 'unterminated", "cannot be split into tokens"),
    ("duckdb", "SELECT " + "(" * 5000 + "1" + ")" * 5000, "nests too deeply"),
])
def test_a_query_is_exactly_one_read_only_select(dialect: str, query: str, why: str):
    text, result = check(dialect, events={"query": query})
    assert why in only(result, "E056")
    assert located(result, "E056") == [key_of(text, "query")]


def test_sqlglot_prints_nothing_of_its_own(capfd: pytest.CaptureFixture[str]):
    check("spark", events={"query": "EXPLAIN SELECT 1"})
    assert capfd.readouterr().err == ""


# ------------------------------------------------------------------ E057


@pytest.mark.parametrize("dialect, query", [
    ("duckdb", "SELECT * FROM read_csv('/etc/passwd')"),
    ("duckdb", "SELECT * FROM t JOIN read_text('/home/runner/.ssh/id_rsa') k ON true"),
    ("duckdb", "SELECT * FROM t WHERE x IN (SELECT * FROM glob('/home/*'))"),
    ("duckdb", "SELECT * FROM duckdb_secrets()"),
    ("duckdb", "SELECT * FROM 'events.csv'"),
    ("duckdb", "SELECT * FROM events.csv"),
    ("duckdb", 'SELECT * FROM "/etc/passwd"'),
    ("spark", "SELECT * FROM parquet.`/tmp/events`"),
    ("spark", "SELECT * FROM delta.`events`"),
    ("spark", "SELECT reflect('java.lang.System', 'getenv', 'AWS_SECRET_ACCESS_KEY') AS unit_id FROM t"),
    ("databricks", "SELECT * FROM read_files('/Volumes/x', format => 'csv')"),
    ("clickhouse", "SELECT * FROM file('events.csv')"),
    ("clickhouse", "SELECT * FROM url('http://attacker.example/x', CSV)"),
    ("clickhouse", "SELECT * FROM executable('run.sh', TSV, 'x String')"),
    ("postgres", "SELECT pg_read_file('/etc/passwd') AS unit_id"),
    ("snowflake", "SELECT $1 FROM @stage/events"),
    ("trino", "SELECT * FROM TABLE(system.query(query => 'SELECT 1'))"),
    ("duckdb", "SELECT current_setting('s3_secret_access_key') AS unit_id"),
])
def test_a_query_reads_only_tables(dialect: str, query: str):
    text, result = check(dialect, exposures={"query": query})
    assert codes(result) == ["E057"], format_text(result.diagnostics)
    assert located(result, "E057") == [key_of(text, "query")]


@pytest.mark.parametrize("dialect, name", [("duckdb", "read_csv('/etc/passwd')"), ("duckdb", "'events.csv'"),
                                           ("duckdb", "events.csv"), ("spark", "parquet.`/tmp/x`"),
                                           ("spark", "`/tmp/x`"), ("snowflake", "@stage")])
def test_a_table_names_no_file(dialect: str, name: str):
    text, result = check(dialect, exposures={"table": name})
    assert codes(result) == ["E057"], format_text(result.diagnostics)
    assert located(result, "E057") == [value_of(text, "table")]


def test_a_finding_inside_a_query_gives_its_position_and_prints_escaped():
    query = "SELECT user_id AS unit_id, variant, ts AS timestamp FROM \"\x1b[2J.csv\""
    _, result = check(exposures={"query": query})
    assert "line 1, column 58 of the query" in only(result, "E057")
    assert "\x1b" not in format_text(result.diagnostics)


def test_a_query_repeating_a_mistake_gets_a_bounded_number_of_findings():
    query = "SELECT * FROM t" + "".join(f" JOIN read_csv('f{i}.csv') r{i} ON true" for i in range(2000))
    _, result = check(exposures={"query": query})
    assert codes(result) == ["E057"] * MAX_QUERY_PROBLEMS


# ------------------------------------------------------------------ imports


PROBE = """
import sys
from expc.compiler.pipeline import check_bytes
check_bytes(sys.stdin.buffer.read(), "spec.yaml")
print("sqlglot" in sys.modules)
"""


@pytest.mark.parametrize("text, imported", [
    (BASE, False),
    (data_spec(exposures={"path": "exposures.csv"}, events=EVENTS_FOLDER), False),
    (data_spec(exposures=EXPOSURES_TABLE), True),
], ids=["no data", "paths only", "a table"])
def test_sqlglot_is_imported_only_for_a_table_or_a_query(text: str, imported: bool):
    proc = subprocess.run([sys.executable, "-c", PROBE], input=text.encode(), capture_output=True, cwd=ROOT,
                          check=True)
    assert proc.stdout.decode().split() == [str(imported)]
