"""`expc sql SPEC --dialect D [--as-of T]`: the reduction as SQL, for a data team to review."""

from __future__ import annotations

import sqlglot
from click.testing import CliRunner
from conftest import ROOT

from expc import cli
from expc.cli import main
from expc.compiler.compile import compile_plan
from expc.compiler.pipeline import check_file
from expc.runtime.stats.reduction_sql import DIALECTS, reduction_sql

SPEC = str(ROOT / "specs" / "welcome-email.yaml")


def test_the_command_offers_exactly_the_dialects_the_module_emits():
    assert cli._DIALECTS == DIALECTS


def test_every_dialect_is_printed_as_the_module_writes_it_and_parses():
    result = check_file(SPEC)
    assert result.doc is not None and result.spec is not None
    plan = compile_plan(result.doc, result.spec)
    for dialect in DIALECTS:
        out = CliRunner().invoke(main, ["sql", SPEC, "--dialect", dialect, "--as-of", "2026-11-28T00:00:00Z"])
        assert out.exit_code == 0, out.output
        assert out.stdout == reduction_sql(plan, dialect, "2026-11-28T00:00:00Z")
        assert sqlglot.parse_one(out.stdout, read=dialect) is not None
        assert "2026-11-28 00:00:00" in out.stdout and "What leaves the warehouse" in out.stdout


def test_usage_errors_exit_2_and_a_bad_spec_exits_1(tmp_path):
    bad_time = CliRunner().invoke(main, ["sql", SPEC, "--dialect", "spark", "--as-of", "yesterday"])
    assert bad_time.exit_code == 2 and "not a timestamp" in bad_time.output
    bad_dialect = CliRunner().invoke(main, ["sql", SPEC, "--dialect", "oracle"])
    assert bad_dialect.exit_code == 2 and "'oracle' is not one of" in bad_dialect.output
    no_dialect = CliRunner().invoke(main, ["sql", SPEC])
    assert no_dialect.exit_code == 2
    missing = CliRunner().invoke(main, ["sql", str(tmp_path / "none.yaml"), "--dialect", "duckdb"])
    assert missing.exit_code == 1 and "Traceback" not in missing.output


def test_the_spec_data_section_is_read_where_it_is_translated_for_each_dialect(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text((ROOT / "specs" / "welcome-email.yaml").read_text(encoding="utf-8") + """
data:
  dialect: bigquery
  exposures: {table: my-project.analytics.experiment_viewed, columns: {unit_id: user_id, variant: variation_id}}
  events:
    query: SELECT user_id AS unit_id, event_name AS event, value, event_time AS `timestamp` FROM analytics.events
""", encoding="utf-8")
    for dialect in ("bigquery", "snowflake", "spark"):
        out = CliRunner().invoke(main, ["sql", str(spec), "--dialect", dialect])
        assert out.exit_code == 0, out.output
        tree = sqlglot.parse_one(out.stdout, read=dialect)
        tables = {t.sql(dialect=dialect) for t in tree.find_all(sqlglot.exp.Table)}
        assert any("experiment_viewed" in t for t in tables) and any(t.endswith("events") for t in tables)
        assert "variation_id" in out.stdout and "event_time" in out.stdout
