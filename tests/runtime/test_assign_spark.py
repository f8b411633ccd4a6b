"""`expc assign --engine spark` (runtime/assign_spark.py): the embedded path's answers and errors, unit for unit.

The reference is the embedded path, :func:`expc.runtime.assign.assign_file`
(itself checked against GrowthBook's SDK in test_assign.py): on the same file
Spark must give the same rows in the same order, the same counts and, for a
file it refuses, the same one-line message. One SparkSession serves every test
(the ``spark`` fixture of conftest.py: skipped where Spark cannot run, failed
under EXPC_REQUIRE_SPARK=1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import BASE, plan_of_text

from expc.cli import main
from expc.compiler.plan import Plan
from expc.runtime.assign import assign_file
from expc.runtime.assign_spark import assign_spark, folder_output
from expc.runtime.tables import DataError

MILLION = 1_000_000

SPEC = """\
version: 1
experiment:
  id: checkout-banner
  unit: user_id
attributes:
  user_id: string
  country: string
  signup_days: integer
  plan: string
  beta: boolean
  interests: list[string]
audiences:
  new_self_serve:
    where:
      country: {{$in: [US, CA, GB, DE]}}
      signup_days: {{$lte: 30}}
      plan: {{$ne: enterprise}}
variants:
  - id: control
    weight: 5
    content: A
  - id: next-step
    weight: 3
    content: B
  - id: time-saved
    weight: 2
    content: C
allocation:
  audience: new_self_serve
  coverage: {coverage}
  hash_version: {version}{layer}
metrics:
  - id: checkout_started
    kind: proportion
    event: checkout_started
    role: primary
    mde: 5%
    baseline: 0.2
"""

# Ids: `user-` + 12 digits, a UUID-shaped MD5 for 15%, and for 1 in 1000 one with characters beyond ASCII and
# beyond the Basic Multilingual Plane (UTF-16 surrogate pairs, which GrowthBook's hash reads as two units).
UNITS_SQL = """
SELECT CASE WHEN i % 1000 = 7 THEN 'ünï-😀-' || CAST(i AS VARCHAR)
            WHEN hash(i, 1) % 100 < 15 THEN md5(CAST(i AS VARCHAR))
            ELSE 'user-' || lpad(CAST((i * 7919 + 13) % 1000000000000 AS VARCHAR), 12, '0') END AS user_id,
       (['US', 'CA', 'GB', 'DE', 'FR', 'IN', NULL])[1 + CAST(hash(i, 2) % 7 AS BIGINT)] AS country,
       CASE WHEN hash(i, 3) % 100 = 0 THEN NULL ELSE CAST(hash(i, 4) % 90 AS INTEGER) END AS signup_days,
       (['free', 'pro', 'team', 'enterprise', NULL])[1 + CAST(hash(i, 5) % 5 AS BIGINT)] AS plan
FROM range({n}) t(i)
"""


def spec_plan(version: int, coverage: str, layer: str = "") -> Plan:
    """The spec above with a hash version, a coverage and (optionally) a layer."""
    return plan_of_text(SPEC.format(version=version, coverage=coverage, layer=layer))


def collected(run: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The counts and the output columns (all chunks joined) of ``assign_file`` or ``assign_spark``."""
    chunks: list[dict[str, np.ndarray]] = []
    counts = run(lambda tables: chunks.extend(tables))
    return counts, {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}


def assert_same_rows(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """The same columns, and row by row the same ids, variants and buckets (NaN where not hashed)."""
    assert list(got) == list(want)
    for name in want:
        if name == "bucket":
            assert np.array_equal(got[name], want[name], equal_nan=True)
        else:
            assert got[name].tolist() == want[name].tolist(), name


def embedded_and_spark(plan: Plan, path: Path, spark: Any) -> tuple[Any, Any]:
    """(counts, columns) of the embedded path and of Spark on one file."""
    want = collected(lambda write: assign_file(plan, path, write))
    got = collected(lambda write: assign_spark(plan, path, write, spark=spark))
    return want, got


@pytest.fixture(scope="module")
def million_units(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A million units as Parquet (made by DuckDB in SQL: deterministic, distinct ids)."""
    path = tmp_path_factory.mktemp("million") / "units.parquet"
    duckdb.sql(f"COPY ({UNITS_SQL.format(n=MILLION)}) TO '{path}' (FORMAT parquet)")
    return path


# ------------------------------------------------------------------ a million units


@pytest.mark.parametrize(("version", "coverage", "layer"), [
    (2, "90%", "\n  layer: {id: onboarding, range: [0, 0.6]}"),
    (1, "45%", ""),
])
def test_a_million_units_get_the_embedded_paths_assignments(spark, million_units, version, coverage, layer):
    plan = spec_plan(version, coverage, layer)
    (want_counts, want), (got_counts, got) = embedded_and_spark(plan, million_units, spark)
    assert got_counts == want_counts
    assert got_counts["units"] == MILLION
    assert 0 < sum(got_counts["assigned"].values()) < MILLION
    assert got_counts["excluded"]["outside coverage"] > 0
    assert (got_counts["excluded"]["outside the layer"] > 0) == bool(layer)
    assert_same_rows(got, want)  # every unit, in the file's order


# ------------------------------------------------------------------ text formats


AWKWARD = [  # (user_id, country, signup_days, plan, beta, interests) as JSON values; None: the key is left out
    ('"u1"', '"US"', "3", '"free"', "true", '["golf", "tennis"]'),
    ('"u2"', '"CA"', '"12"', None, '"false"', "[]"),
    ('"😀-u3"', '"GB"', "3.0", '"pro"', '"1"', '["golf"]'),
    ("4", '"DE"', '" 7 "', '"team"', "0", None),
    ('"u5"', "null", "40", '"free"', "null", "null"),
    ('"=u6"', '"US"', "1e1", '"enterprise"', '"TRUE"', '["a", "b"]'),
    ('"u7"', "12", "2", '"pro"', "1", '["x"]'),
]


def write_awkward(folder: Path, kind: str) -> Path:
    """The rows of AWKWARD as a CSV or JSON Lines file with a byte-order mark, CRLF endings and a blank line."""
    names = ["user_id", "country", "signup_days", "plan", "beta", "interests"]
    if kind == "jsonl":
        lines = ["{" + ", ".join(f'"{n}": {v}' for n, v in zip(names, row) if v is not None) + "}"
                 for row in AWKWARD]
    else:
        def cell(value: str | None) -> str:
            if value is None or value == "null":
                return ""
            text = json.loads(value)
            text = "|".join(text) if isinstance(text, list) else str(text)
            return '"' + text.replace('"', '""') + '"' if "," in text or '"' in text else text

        lines = [",".join(names)] + [",".join(cell(v) for v in row) for row in AWKWARD]
    lines.insert(3, "")
    path = folder / f"units.{kind}"
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    return path


NATIVE_SQL = """
SELECT * FROM (VALUES ('u1', 'US', 3.0, 'free', true, ['golf', 'tennis']),
                      ('u2', 'CA', 12, NULL, false, []),
                      ('😀-u3', 'GB', 3, 'pro', NULL, ['golf']),
                      ('u4', NULL, 40.0, 'team', true, NULL),
                      ('u5', 'DE', NULL, 'enterprise', false, ['a', 'b']))
    t(user_id, country, signup_days, plan, beta, interests)
"""


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_files_are_typed_as_the_embedded_path_types_them(spark, tmp_path, kind):
    plan = spec_plan(2, "100%")
    if kind == "parquet":  # native columns: whole doubles for an integer, booleans, a list of strings
        path = tmp_path / "units.parquet"
        duckdb.sql(f"COPY ({NATIVE_SQL}) TO '{path}' (FORMAT parquet)")
    else:
        path = write_awkward(tmp_path, kind)
    (want_counts, want), (got_counts, got) = embedded_and_spark(plan, path, spark)
    assert got_counts == want_counts
    assert sum(got_counts["assigned"].values()) >= 3
    assert_same_rows(got, want)


# ------------------------------------------------------------------ errors


BAD_FILES = {  # name -> contents; the message must be the embedded path's, word for word
    "no-unit.csv": "id,country\nu1,US\n",
    "bad-integer.csv": "user_id,country,signup_days\nu1,US,1\nu2,US,2\nu3,US,abc\nu4,US,x\n",
    "null-ids.csv": 'user_id,country\nu1,US\n,US\n"",CA\nu4,US\n',
    "repeated-ids.csv": "user_id,country\nu1,US\nu2,US\nu1,CA\nu3,US\nu2,US\n",
    "ragged.csv": "user_id,country\nu1,US\nu2,US,extra\n",
    "header-only.csv": "user_id,country\n",
    "no-country.csv": "user_id,plan\nu1,free\n",
    "not-json.jsonl": '{"user_id": "u1"}\n\n{"user_id": "u2",\n',
    "not-an-object.jsonl": '{"user_id": "u1", "country": "US"}\n[1, 2]\n',
    "key-twice.jsonl": '{"user_id": "u1", "country": "US"}\n{"user_id": "u2", "country": "US", "country": "CA"}\n',
    "no-unit.jsonl": '{"id": "u1", "country": "US"}\n{"id": "u2"}\n',
    "bad-boolean.jsonl": '{"user_id": "u1", "country": "US", "beta": "maybe"}\n',
}


@pytest.mark.parametrize("name", sorted(BAD_FILES) + ["no-unit.parquet", "bad-integer.parquet", "latin-1.csv"])
def test_a_refused_file_gets_the_embedded_paths_one_line(spark, tmp_path, name):
    path = tmp_path / name
    if name in BAD_FILES:
        path.write_text(BAD_FILES[name], encoding="utf-8")
    elif name == "latin-1.csv":
        path.write_bytes("user_id,country\nu1,Fran\xe7e\n".encode("latin-1"))
    else:
        columns = "'u1' AS id, 'US' AS country" if name == "no-unit.parquet" else "'u1' AS user_id, 'x' AS signup_days"
        duckdb.sql(f"COPY (SELECT {columns}) TO '{path}' (FORMAT parquet)")
    plan = spec_plan(2, "100%")
    with pytest.raises(DataError) as embedded:
        assign_file(plan, path, lambda tables: list(tables))
    written: list[Any] = []
    with pytest.raises(DataError) as on_spark:
        assign_spark(plan, path, lambda tables: written.extend(tables), spark=spark)
    assert str(on_spark.value) == str(embedded.value)
    assert "\n" not in str(on_spark.value) and str(on_spark.value).startswith(str(path))
    assert written == []  # nothing is handed to the writer for a refused file


def test_a_missing_unit_column_is_named_with_the_columns_the_file_has(spark, tmp_path):
    path = tmp_path / "units.csv"
    path.write_text("id,country,plan\nu1,US,free\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"the unit id column `user_id` is missing; the file has the columns "
                                        r"`id`, `country`, `plan`"):
        assign_spark(spec_plan(2, "100%"), path, lambda tables: list(tables), spark=spark)


def test_an_integer_id_beyond_what_a_double_holds_is_refused(spark, tmp_path):
    path = tmp_path / "units.csv"
    path.write_text("user_id,country\n1,US\n9007199254740993,US\n", encoding="utf-8")
    plan = plan_of_text(BASE.replace("  user_id: string", "  user_id: integer"))
    with pytest.raises(DataError, match=r"the unit id 9007199254740993 at line 3 is beyond"):
        assign_spark(plan, path, lambda tables: list(tables), spark=spark)


def test_a_folder_without_data_files_is_refused_before_spark_runs(tmp_path):
    (tmp_path / "units").mkdir()
    (tmp_path / "units" / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(DataError, match="holds no .csv, .jsonl or .parquet files"):
        assign_spark(spec_plan(2, "100%"), tmp_path / "units", lambda tables: list(tables), spark=object())


# ------------------------------------------------------------------ folders


def test_a_partitioned_folder_is_assigned_as_its_files_together(spark, tmp_path):
    plan = spec_plan(2, "90%")
    whole = tmp_path / "all.parquet"
    duckdb.sql(f"COPY ({UNITS_SQL.format(n=20_000)}) TO '{whole}' (FORMAT parquet)")
    folder = tmp_path / "units"
    duckdb.sql(f"COPY (SELECT *, hash(user_id) % 3 AS part FROM '{whole}') TO '{folder}' "
               "(FORMAT parquet, PARTITION_BY (part))")  # part=0/, part=1/, part=2/
    (folder / "_SUCCESS").write_text("", encoding="utf-8")  # Spark's marker files are not data
    want_counts, want = collected(lambda write: assign_file(plan, whole, write))
    got_counts, got = collected(lambda write: assign_spark(plan, folder, write, spark=spark))
    assert got_counts == want_counts
    order, want_order = np.argsort(got["user_id"].astype(str)), np.argsort(want["user_id"].astype(str))
    assert_same_rows({k: v[order] for k, v in got.items()}, {k: v[want_order] for k, v in want.items()})


def test_a_folder_with_files_at_two_depths_is_refused(tmp_path):
    folder = tmp_path / "units"
    (folder / "country=US").mkdir(parents=True)
    (folder / "country=US" / "a.csv").write_text("user_id\nu1\n", encoding="utf-8")
    (folder / "b.csv").write_text("user_id\nu2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"holds data files at different depths \(b.csv and country=US/a.csv\)"):
        assign_spark(spec_plan(2, "100%"), folder, lambda tables: list(tables), spark=object())


@pytest.mark.parametrize(("second", "message"), [
    ("user_id,country\nu3,US\n,CA\n", r"units/b.csv: 1 unit has no `user_id` \(empty or null\), at line 3; "),
    ("user_id,country\nu3,US\nu1,CA\n", r"units: 1 id appears more than once \(2 rows\): `u1` at a.csv line 2 "
                                         r"and b.csv line 3; each unit must appear once"),
])
def test_a_refused_folder_names_the_file_and_line(spark, tmp_path, second, message):
    folder = tmp_path / "units"
    folder.mkdir()
    (folder / "a.csv").write_text("user_id,country\nu1,US\nu2,US\n", encoding="utf-8")
    (folder / "b.csv").write_text(second, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        assign_spark(spec_plan(2, "100%"), folder, lambda tables: list(tables), spark=spark)


@pytest.mark.parametrize("kind", ["parquet", "csv", "jsonl"])
def test_spark_writes_a_folder_with_the_files_columns_and_values(spark, tmp_path, kind):
    plan = spec_plan(2, "90%")
    units = tmp_path / "units.csv"
    rows = ["user_id,country,signup_days,plan", "=HYPERLINK(1),US,3,free", "-5,CA,4,pro", "u3,FR,1,free"]
    units.write_text("\n".join(rows + [f"u{i},US,{i % 40},pro" for i in range(4, 300)]) + "\n", encoding="utf-8")
    folder = f"{tmp_path / ('out.' + kind)}/"
    assert folder_output(folder) and not folder_output(str(tmp_path / "out.csv"))
    counts = assign_spark(plan, units, folder=folder, spark=spark)
    assign_file(plan, units, lambda tables: __import__("expc.runtime.tables", fromlist=["x"])
                .write_assignment_chunks(tmp_path / f"want.{kind}", tables))
    reader = {"parquet": "read_parquet", "csv": "read_csv", "jsonl": "read_json"}[kind]
    pattern = "*.json" if kind == "jsonl" else f"*.{kind}"
    options = ", all_varchar=true" if kind == "csv" else ""
    got = duckdb.sql(f"SELECT * FROM {reader}('{folder}{pattern}'{options}) ORDER BY user_id").fetchall()
    want = duckdb.sql(f"SELECT * FROM {reader}('{tmp_path / f'want.{kind}'}'{options}) ORDER BY user_id").fetchall()
    assert got == want and len(got) == counts["units"] == 299
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch folder left behind
    with pytest.raises(DataError, match="already exists; expc writes a new folder and never replaces one"):
        assign_spark(plan, units, folder=folder, spark=spark)


# ------------------------------------------------------------------ the command


def test_the_command_writes_the_embedded_paths_file(spark, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(version=2, coverage="90%", layer=""), encoding="utf-8")
    units = write_awkward(tmp_path, "jsonl")
    results = {}
    for engine in ("duckdb", "spark"):
        out = tmp_path / f"{engine}.csv"
        result = CliRunner().invoke(main, ["assign", str(spec), "--units", str(units), "-o", str(out),
                                           "--engine", engine])
        assert result.exit_code == 0, result.output
        results[engine] = (out.read_bytes(), result.stderr.replace(str(out), "OUT"))
    assert results["spark"] == results["duckdb"]
    bad = CliRunner().invoke(main, ["assign", str(spec), "--units", str(tmp_path / "missing.csv"), "--engine",
                                    "spark"])
    assert bad.exit_code == 1 and bad.stderr.count("\n") == 1 and "missing.csv: no such file" in bad.stderr
