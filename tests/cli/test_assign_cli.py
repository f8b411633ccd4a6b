"""`expc assign` and `expc export` on the command line: bad input, output formats, the summary, the payload.

Bad input exits 1 (2 for a usage error) with one line on stderr that names the
file, never a traceback, and never leaves an output file behind.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner
from conftest import ACTIVATED, ROOT
from growthbook import GrowthBook
from growthbook import core as gb

from expc.cli import main

WELCOME = ROOT / "specs" / "welcome-email.yaml"
GOOD_CSV = "user_id,country,signup_days,interests\nu1,US,3,running\nu2,CA,9,\nü-3,US,1,cooking|travel\n😀4,FR,0,\n"


def run(*args: Any):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def parquet(path: Path, select: str) -> Path:
    """A Parquet file made by DuckDB from a SELECT (independently of expc)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
    return path


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Where assignments go: an empty folder of its own, so that any file left behind shows."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder / "assignments.csv"


def assert_clean_failure(result, named: Path, out: Path, code: int = 1, folder: Path | None = None) -> str:
    """Exit ``code``, one line on stderr naming ``named``, no traceback, nothing on stdout, no file at ``out``
    (nor any other file in ``folder``, by default ``out``'s)."""
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert str(named) in lines[0], lines[0]
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert result.stdout == ""
    assert not out.exists()
    assert list((folder or out.parent).iterdir()) == []  # no temporary file either
    return lines[0]


# --------------------------------------------------------------- bad input


def _units_cases() -> list:
    return [
        # (name of the case, file name, how to make it, words the message should have)
        ("missing id column, CSV", "units.csv", lambda p: write(p, "id,country\nu1,US\n"), "user_id"),
        ("missing id column, Parquet", "units.parquet",
         lambda p: parquet(p, "SELECT 'u1' AS id, 'US' AS country"), "user_id"),
        ("missing id column, JSON Lines", "units.jsonl", lambda p: write(p, '{"id": "u1"}\n'), "user_id"),
        ("null id, CSV", "units.csv", lambda p: write(p, "user_id,country\nu1,US\n,US\n"), "line 3"),
        ("null id, Parquet", "units.parquet",
         lambda p: parquet(p, "SELECT * FROM (VALUES ('u1', 'US'), (NULL, 'US')) t(user_id, country)"), "row 2"),
        ("null id, JSON Lines", "units.jsonl",
         lambda p: write(p, '{"user_id": "u1"}\n{"user_id": null, "country": "US"}\n'), "line 2"),
        ("duplicate ids, CSV", "units.csv", lambda p: write(p, "user_id,country\nu1,US\nu2,US\nu1,CA\n"), "u1"),
        ("duplicate ids, Parquet", "units.parquet",
         lambda p: parquet(p, "SELECT * FROM (VALUES ('é', 'US'), ('é', 'CA')) t(user_id, country)"), "é"),
        ("bad integer, CSV", "units.csv",
         lambda p: write(p, "user_id,country,signup_days\nu1,US,3\nu2,US,abc\n"), "abc"),
        ("bad integer, JSON Lines", "units.jsonl",
         lambda p: write(p, '{"user_id": "u1", "signup_days": 3}\n{"user_id": "u2", "signup_days": "abc"}\n'), "abc"),
        ("bad integer, Parquet text column", "units.parquet",
         lambda p: parquet(p, "SELECT * FROM (VALUES ('u1', '3'), ('u2', 'abc')) t(user_id, signup_days)"), "abc"),
        ("bad integer, Parquet boolean column", "units.parquet",
         lambda p: parquet(p, "SELECT 'u1' AS user_id, true AS signup_days"), "signup_days"),
        ("fractional integer, CSV", "units.csv", lambda p: write(p, "user_id,signup_days\nu1,2.5\n"), "2.5"),
        ("bad list, CSV", "units.csv", lambda p: write(p, 'user_id,interests\nu1,"[1, 2]"\n'), "interests"),
        ("empty CSV", "units.csv", lambda p: write(p, b""), "empty"),
        ("empty JSON Lines", "units.jsonl", lambda p: write(p, b""), "empty"),
        ("empty Parquet", "units.parquet", lambda p: write(p, b""), "empty"),
        ("header only, CSV", "units.csv", lambda p: write(p, "user_id,country\n"), "no units"),
        ("no rows, Parquet", "units.parquet",
         lambda p: parquet(p, "SELECT 'u1' AS user_id, 'US' AS country WHERE false"), "no units"),
        ("truncated Parquet", "units.parquet", lambda p: _truncated_parquet(p), "Parquet"),
        ("Latin-1 CSV", "units.csv",
         lambda p: write(p, "user_id,country,first_name\nu1,US,Ren\xe9\n".encode("latin-1")), "UTF-8"),
        ("Latin-1 JSON Lines", "units.jsonl",
         lambda p: write(p, '{"user_id": "u1", "first_name": "Ren\xe9"}\n'.encode("latin-1")), "UTF-8"),
        ("ragged CSV", "units.csv", lambda p: write(p, "user_id,country\nu1,US,extra\n"), "line 2"),
        ("not JSON", "units.jsonl", lambda p: write(p, '{"user_id": "u1"}\n{"user_id": \n'), "not valid JSON"),
        ("not an object", "units.jsonl", lambda p: write(p, '{"user_id": "u1"}\n["u2"]\n'), "line 2"),
        ("unsupported extension .txt", "units.txt", lambda p: write(p, GOOD_CSV), ".txt"),
        ("unsupported extension .xlsx", "units.xlsx", lambda p: write(p, GOOD_CSV), ".xlsx"),
        ("no extension", "units", lambda p: write(p, GOOD_CSV), "extension"),
        ("no such file", "missing.csv", lambda p: p, "no such file"),
    ]


def _truncated_parquet(path: Path) -> Path:
    parquet(path, "SELECT 'u' || i AS user_id, 'US' AS country, i % 10 AS signup_days FROM range(5000) r(i)")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("case, name, make, words", _units_cases(), ids=[c[0] for c in _units_cases()])
def test_bad_units_file_is_one_line_and_no_output(tmp_path, out, case, name, make, words):
    units = make(tmp_path / "in" / name)
    line = assert_clean_failure(run("assign", WELCOME, "--units", units, "-o", out), units, out)
    assert line.startswith(f"error: {units}: ")
    assert words in line, line


def test_bad_units_without_output_print_nothing_on_stdout(tmp_path):
    units = write(tmp_path / "in" / "units.csv", "user_id,country\nu1,US\nu1,US\n")
    result = run("assign", WELCOME, "--units", units)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()] and str(units) in result.stderr


@pytest.mark.parametrize("lines, bad", [
    (['{"user_id": "u1"}', '{"user_id": x}', '{"user_id": "u3"}'], 2),
    (['{"user_id": x}', '{"user_id": "u2"}'], 1),
    (['{"user_id": "u1"}', '{"user_id": "u2"}', '{"user_id": "u3"', '{"user_id": "u4"}'], 3),
    (['', '', '{"user_id": "u1"}', '{"user_id": x}'], 4),  # blank lines count as lines
])
def test_malformed_json_names_the_line_it_is_on(tmp_path, out, lines, bad):
    units = write(tmp_path / "in" / "units.jsonl", "\n".join(lines) + "\n")
    line = assert_clean_failure(run("assign", WELCOME, "--units", units, "-o", out), units, out)
    assert f": line {bad} is not valid JSON" in line, line


@pytest.mark.parametrize("name", ["assignments.xlsx", "assignments.json", "assignments", "assignments.csv.gz"])
def test_unsupported_output_extension(tmp_path, out, name):
    units = write(tmp_path / "in" / "units.csv", GOOD_CSV)
    target = out.parent / name
    line = assert_clean_failure(run("assign", WELCOME, "--units", units, "-o", target), target, target)
    assert "use .csv, .jsonl (or .ndjson) or .parquet" in line


def test_output_folder_that_does_not_exist(tmp_path, out):
    units = write(tmp_path / "in" / "units.csv", GOOD_CSV)
    target = out.parent / "nowhere" / "assignments.csv"
    line = assert_clean_failure(run("assign", WELCOME, "--units", units, "-o", target), target, target,
                                folder=out.parent)
    assert "does not exist" in line


def test_failure_leaves_an_earlier_output_file_as_it_was(tmp_path, out):
    out.write_text("earlier\n", encoding="utf-8")
    units = write(tmp_path / "in" / "units.csv", "user_id,country\nu1,US\nu1,US\n")
    result = run("assign", WELCOME, "--units", units, "-o", out)
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert out.read_text(encoding="utf-8") == "earlier\n"
    assert [p.name for p in out.parent.iterdir()] == [out.name]


@pytest.mark.parametrize("args", [
    [],  # no --units at all
    ["--units"],  # --units without a value
    ["--units", "{folder}"],  # a folder, not a file
    ["--units", "{units}", "-o", "{folder}"],  # -o names a folder
    ["--units", "{units}", "--bogus"],
])
def test_usage_errors_exit_2(tmp_path, out, args):
    units = write(tmp_path / "in" / "units.csv", GOOD_CSV)
    args = [a.format(units=units, folder=tmp_path / "in") for a in args]
    result = run("assign", WELCOME, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    assert "Error:" in result.stderr
    assert list(out.parent.iterdir()) == []


def test_missing_units_option_names_it(tmp_path, out):
    result = run("assign", WELCOME, "-o", out)
    assert result.exit_code == 2
    assert "Missing option '--units'" in result.stderr
    assert not out.exists()


def test_invalid_spec_exits_1_and_writes_nothing(tmp_path, out):
    text = WELCOME.read_text(encoding="utf-8").replace("audience: new_north_america", "audience: nobody")
    spec = write(tmp_path / "bad.yaml", text)
    units = write(tmp_path / "in" / "units.csv", GOOD_CSV)
    result = run("assign", spec, "--units", units, "-o", out)
    assert result.exit_code == 1
    assert "error[" in result.stderr and "nobody" in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert list(out.parent.iterdir()) == []
    exported = out.parent / "features.json"
    result = run("export", spec, "--to", "growthbook", "-o", exported)
    assert result.exit_code == 1 and not exported.exists()


def test_spec_that_does_not_exist_is_an_invalid_spec(tmp_path, out):
    units = write(tmp_path / "in" / "units.csv", GOOD_CSV)
    result = run("assign", tmp_path / "nope.yaml", "--units", units, "-o", out)
    assert result.exit_code == 1 and "nope.yaml" in result.stderr  # E001, as the README's exit codes say
    assert not out.exists()


# ------------------------------------------------------------ output formats


def rows_of(path: Path, unit: str = "user_id") -> list[tuple]:
    """(id, variant, bucket) per row, with None for "none", from any of the three formats."""
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            records = list(csv.reader(f))
        assert records[0] == [unit, "variant", "bucket"]
        return [(i, v or None, float(b) if b else None) for i, v, b in records[1:]]
    if path.suffix == ".jsonl":
        lines = path.read_text(encoding="utf-8").splitlines()
        objects = [json.loads(line) for line in lines]
        assert all(list(o) == [unit, "variant", "bucket"] for o in objects)
        return [(o[unit], o["variant"], o["bucket"]) for o in objects]
    assert path.read_bytes()[:4] == b"PAR1" and path.read_bytes()[-4:] == b"PAR1"
    with duckdb.connect() as con:
        types = [r[1] for r in con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()]
        assert types == ["VARCHAR", "VARCHAR", "DOUBLE"]
        return con.execute(f"SELECT \"{unit}\", variant, bucket FROM '{path}'").fetchall()


def welcome_units(tmp_path: Path, n: int = 2500) -> Path:
    lines = ["user_id,country,signup_days,interests"]
    countries = ["US", "CA", "FR", "", "us"]
    for i in range(n):
        uid = f"user-{i:06d}" if i % 7 else f"ü{i}😀"
        lines.append(f"{uid},{countries[i % 5]},{'' if i % 11 == 0 else i % 12},running|cooking")
    return write(tmp_path / "in" / "units.csv", "\n".join(lines) + "\n")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet", ".ndjson", ".CSV"])
def test_output_format_follows_the_extension(tmp_path, suffix):
    units = welcome_units(tmp_path)
    reference = tmp_path / "reference.csv"
    assert run("assign", WELCOME, "--units", units, "-o", reference).exit_code == 0
    target = tmp_path / f"assignments{suffix}"
    result = run("assign", WELCOME, "--units", units, "-o", target)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert f"wrote {target}" in result.stderr
    kind = {".csv": ".csv", ".CSV": ".csv", ".jsonl": ".jsonl", ".ndjson": ".jsonl", ".parquet": ".parquet"}[suffix]
    copy = target.with_name("copy" + kind)
    copy.write_bytes(target.read_bytes())
    assert rows_of(copy) == rows_of(reference)
    rows = rows_of(reference)
    assert len(rows) == 2500 and rows[0][0] == "ü0😀"
    assert {v for _, v, _ in rows} == {"control", "personalized", None}
    assert all((v is None) == (b is None) for _, v, b in rows)  # no layer range or coverage: hashed = assigned


def test_without_output_csv_goes_to_stdout_and_the_summary_to_stderr(tmp_path):
    units = welcome_units(tmp_path)
    reference = tmp_path / "reference.csv"
    assert run("assign", WELCOME, "--units", units, "-o", reference).exit_code == 0
    result = run("assign", WELCOME, "--units", units)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == reference.read_text(encoding="utf-8")
    assert result.stdout.startswith("user_id,variant,bucket\n")
    assert "units read" in result.stderr and "user_id" not in result.stderr
    assert "wrote" not in result.stderr


def number(stderr: str, label: str) -> int:
    """The count the summary gives for ``label`` (thousands separators allowed).

    ``units read`` and ``assigned`` are on the first line ("2,500 units read from F; 1,234 assigned");
    a variant or a reason is on a line of its own, with its count last ("control: 612").
    """
    if label in ("units read", "assigned"):
        pattern = r"([\d,]+) units read" if label == "units read" else r"; ([\d,]+) assigned"
    else:
        pattern = re.escape(label) + r" ([\d,]+)$"
    found = [m.group(1) for line in stderr.splitlines() if (m := re.search(pattern, line.strip()))]
    assert len(found) == 1, (label, stderr)
    return int(found[0].replace(",", ""))


def test_summary_lists_units_variants_and_reasons(tmp_path, out):
    text = WELCOME.read_text(encoding="utf-8")
    text = text.replace("  coverage: 100%\n  layer: welcome-email\n",
                        "  coverage: 50%\n  layer: {id: welcome-email, range: [0.2, 0.9]}\n")
    assert "range: [0.2, 0.9]" in text
    spec = write(tmp_path / "spec.yaml", text)
    units = welcome_units(tmp_path)
    result = run("assign", spec, "--units", units, "-o", out)
    assert result.exit_code == 0, result.stderr

    # what GrowthBook's own functions say, unit by unit (audience first, as expc reports it)
    expected = {"control": 0, "personalized": 0, "not in the audience": 0, "outside the layer": 0,
                "outside coverage": 0}
    ranges = gb.getBucketRanges(2, 0.5, [0.5, 0.5])
    with open(units, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            uid = row["user_id"]
            if not (row["country"] in ("US", "CA") and row["signup_days"] and int(row["signup_days"]) <= 7):
                expected["not in the audience"] += 1
            elif not gb.inNamespace(uid, ("welcome-email", 0.2, 0.9)):
                expected["outside the layer"] += 1
            else:
                chosen = gb.chooseVariation(gb.gbhash("welcome-subject-2026q4", uid, 2), ranges)
                expected[("control", "personalized")[chosen] if chosen >= 0 else "outside coverage"] += 1
    assert all(expected.values())

    stderr = result.stderr
    assert f"units read from {units}" in stderr
    assert number(stderr, "units read") == 2500
    assert number(stderr, "assigned") == expected["control"] + expected["personalized"]
    for label, count in expected.items():
        assert number(stderr, f"{label}:") == count, label
    assert f"wrote {out}" in stderr


def integer_spec(tmp_path: Path) -> Path:
    return write(tmp_path / "ints.yaml", """\
version: 1
experiment:
  id: int-ids
  unit: account_id
attributes:
  account_id: integer
  country: string
variants:
  - id: a
    content: A
  - id: b
    content: B
""" + ACTIVATED)


def test_integer_ids_are_written_as_integers_and_hashed_as_the_sdk_does(tmp_path, out):
    spec = integer_spec(tmp_path)
    ids = [1, 42, -7, 9007199254740991, 123456789012]
    units = write(tmp_path / "in" / "units.csv", "account_id,country\n" + "".join(f"{i},US\n" for i in ids))
    result = run("assign", spec, "--units", units, "-o", out)
    assert result.exit_code == 0, result.stderr
    features = json.loads(run("export", spec, "--to", "growthbook", "--values", "variant").stdout)["features"]
    for i, (uid, variant, bucket) in zip(ids, rows_of(out, "account_id")):
        assert uid == str(i)
        found = GrowthBook(attributes={"account_id": i}, features=features).eval_feature("int-ids")
        assert variant == found.value and bucket == found.experimentResult.bucket == gb.gbhash("int-ids", str(i), 2)


def test_every_unit_comes_back_with_its_id_even_without_a_usable_one(tmp_path, out):
    # GrowthBook cannot hash the integer id 0 (it is left out, "missing id"), but the unit is in the
    # file and its row must still say which unit it is: otherwise the output cannot be joined back
    spec = integer_spec(tmp_path)
    units = write(tmp_path / "in" / "units.csv", "account_id,country\n1,US\n0,US\n42,US\n")
    result = run("assign", spec, "--units", units, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert number(result.stderr, "missing id:") == 1
    rows = rows_of(out, "account_id")
    assert [r[0] for r in rows] == ["1", "0", "42"]
    assert rows[1][1:] == (None, None)


# ----------------------------------------------------------------- export


RULE_FIELDS = ("key", "seed", "hashVersion", "hashAttribute", "variations", "weights", "coverage", "condition",
               "namespace")


def test_export_growthbook_payload(tmp_path):
    result = run("export", WELCOME, "--to", "growthbook", "--values", "variant")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    feature = payload["features"]["welcome-subject-2026q4"]
    assert feature["defaultValue"] is None
    (rule,) = feature["rules"]
    assert all(field in rule for field in RULE_FIELDS), sorted(rule)
    assert rule["key"] == "welcome-subject-2026q4"
    assert rule["seed"] == "welcome-subject-2026q4"
    assert rule["hashVersion"] == 2
    assert rule["hashAttribute"] == "user_id"
    assert rule["variations"] == ["control", "personalized"]
    assert rule["weights"] == [0.5, 0.5]
    assert rule["coverage"] == 1
    assert rule["condition"] == {"country": {"$in": ["US", "CA"]}, "signup_days": {"$lte": 7}}
    assert rule["namespace"] == ["welcome-email", 0, 1]
    # the payload is what the SDK loads as it is
    served = GrowthBook(attributes={"user_id": "u1", "country": "US", "signup_days": 1},
                        features=payload["features"]).eval_feature("welcome-subject-2026q4")
    assert served.value in ("control", "personalized") and served.source == "experiment"

    target = tmp_path / "deep" / "features.json"
    written = run("export", WELCOME, "--to", "growthbook", "--values", "variant", "-o", target)
    assert written.exit_code == 0 and written.stdout == ""
    assert target.read_text(encoding="utf-8") == result.stdout
    assert json.load(open(target, encoding="utf-8")) == payload


def test_export_needs_a_known_target(tmp_path):
    assert run("export", WELCOME).exit_code == 2
    assert run("export", WELCOME, "--to", "optimizely").exit_code == 2


# ------------------------------------------------------------ in chunks


def unchunked(spec: Path, units: Path) -> list[tuple]:
    """(id, variant, bucket) per unit, from the whole table in memory (read_units, assign): the reference."""
    import math

    import expc
    from expc.runtime.assign import assign, output_columns
    from expc.runtime.tables import read_units

    plan = expc.compile_file(spec)
    table = read_units(units, plan.attributes, plan.assignment.unit)
    columns = output_columns(plan, table, assign(plan, table))
    return [(i or None, v or None, None if math.isnan(b) else float(b))
            for i, v, b in zip(*(columns[k].tolist() for k in columns))]


def units_file(tmp_path: Path, suffix: str, n: int) -> Path:
    """n units for the welcome spec (some out of the audience, one list column) in the format of ``suffix``."""
    source = welcome_units(tmp_path, n)
    if suffix == ".csv":
        return source
    target = tmp_path / "in" / f"units{suffix}"
    with duckdb.connect() as con:
        select = (f"SELECT user_id, NULLIF(country, '') AS country, TRY_CAST(signup_days AS BIGINT) AS signup_days, "
                  f"string_split(interests, '|') AS interests FROM read_csv('{source}', all_varchar=true)")
        con.execute(f"COPY ({select}) TO '{target}' ({'FORMAT json' if suffix == '.jsonl' else 'FORMAT parquet'})")
    return target


@pytest.fixture
def tiny_chunks(monkeypatch):
    """`expc assign` reads 4 units at a time (its default is a few hundred thousand)."""
    from expc.runtime import tables

    monkeypatch.setattr(tables, "CHUNK_ROWS", 4)
    return 4


@pytest.mark.parametrize("source", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("n", [3, 4, 5, 8, 9, 31])
def test_chunked_output_is_the_whole_tables_output(tmp_path, tiny_chunks, source, n):
    units = units_file(tmp_path, source, n)
    want = unchunked(WELCOME, units)
    assert len(want) == n and any(v for _, v, _ in want)
    for suffix in (".csv", ".jsonl", ".parquet"):
        target = tmp_path / "out" / f"assignments{suffix}"
        target.parent.mkdir(exist_ok=True)
        result = run("assign", WELCOME, "--units", units, "-o", target)
        assert result.exit_code == 0, result.stderr
        assert number(result.stderr, "units read") == n
        assert rows_of(target) == want, suffix
    stdout = run("assign", WELCOME, "--units", units)
    assert stdout.exit_code == 0 and stdout.stdout == (tmp_path / "out" / "assignments.csv").read_text("utf-8")
    assert stdout.stdout.count("user_id,variant,bucket") == 1


def test_chunked_summary_counts_every_chunk(tmp_path, tiny_chunks, out):
    units = welcome_units(tmp_path, 50)
    result = run("assign", WELCOME, "--units", units, "-o", out)
    rows = rows_of(out)
    assert number(result.stderr, "units read") == 50 == len(rows)
    assert number(result.stderr, "assigned") == sum(v is not None for _, v, _ in rows)
    assert number(result.stderr, "control:") == sum(v == "control" for _, v, _ in rows)
    assert number(result.stderr, "not in the audience:") == sum(v is None for _, v, _ in rows)


LATE_UNITS = [  # (case, file name, text: its only problem in its last line, far past the first chunk, words)
    ("null id", "units.csv", "user_id,country\n" + "".join(f"u{i},US\n" for i in range(11)) + ",US\n", "line 13"),
    ("duplicate id", "units.csv", "user_id,country\n" + "".join(f"u{i},US\n" for i in range(11)) + "u2,CA\n",
     "lines 4 and 13"),
    ("bad integer", "units.jsonl", "".join(f'{{"user_id": "u{i}", "signup_days": {i}}}\n' for i in range(11))
     + '{"user_id": "u11", "signup_days": "soon"}\n', "line 12"),
    ("not an object", "units.jsonl", "".join(f'{{"user_id": "u{i}"}}\n' for i in range(11)) + "[1]\n", "line 12"),
    ("not JSON", "units.jsonl", "".join(f'{{"user_id": "u{i}"}}\n' for i in range(11)) + "{\n", "line 12"),
    ("bad list", "units.csv", "user_id,interests\n" + "".join(f"u{i},a|b\n" for i in range(11)) + 'u11,"[1]"\n',
     "line 13"),
    ("ragged", "units.csv", "user_id,country\n" + "".join(f"u{i},US\n" for i in range(11)) + "u11,US,x\n",
     "line 13"),
]


@pytest.mark.parametrize("case, name, text, words", LATE_UNITS, ids=[c[0] for c in LATE_UNITS])
def test_a_problem_in_a_later_chunk_is_refused_and_nothing_is_written(tmp_path, tiny_chunks, out, case, name, text,
                                                                      words):
    units = write(tmp_path / "in" / name, text)
    line = assert_clean_failure(run("assign", WELCOME, "--units", units, "-o", out), units, out)
    assert words in line, line
    from expc.runtime import tables

    with pytest.raises(tables.DataError) as whole:  # the same line as reading the file whole
        tables.read_units(units, {"user_id": "string", "country": "string", "signup_days": "integer",
                                  "interests": "list[string]"}, "user_id")
    assert line == f"error: {whole.value}"
    stdout = run("assign", WELCOME, "--units", units)  # to stdout: not one row before the refusal
    assert stdout.exit_code == 1 and stdout.stdout == ""


def test_a_missing_audience_attribute_is_refused_before_any_chunk(tmp_path, tiny_chunks, out):
    units = write(tmp_path / "in" / "units.csv", "user_id,signup_days\n" + "".join(f"u{i},3\n" for i in range(9)))
    line = assert_clean_failure(run("assign", WELCOME, "--units", units, "-o", out), units, out)
    assert "no `country` column" in line


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_failure_in_a_later_chunk_leaves_no_output_file(tmp_path, tiny_chunks, out, suffix, monkeypatch):
    """DuckDB fails while the third chunk is fetched (its temporary folder full, say): no file, the old one kept."""
    from expc.runtime import tables

    target = out.with_suffix(suffix)
    units = welcome_units(tmp_path, 30)
    assert run("assign", WELCOME, "--units", units, "-o", target).exit_code == 0
    before = target.read_bytes()
    fetch, calls = tables._Reader.fetch, []

    def failing(self, start=0, stop=None):
        calls.append(start)
        if len(calls) == 3:
            raise duckdb.IOException(f'Could not write file "{self.scratch}/duckdb_temp_block": '
                                     'No space left on device {"errno": "28"}')
        return fetch(self, start, stop)

    monkeypatch.setattr(tables._Reader, "fetch", failing)
    result = run("assign", WELCOME, "--units", units, "-o", target)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert "No space left on device" in result.stderr and str(units) in result.stderr
    assert "Traceback" not in result.output
    assert calls == [0, 4, 8]
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == [target.name]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunks_go_into_a_device_never_replacing_it(tmp_path, tiny_chunks, suffix):
    import os
    import stat

    if os.geteuid() != 0:
        pytest.skip("the format comes from the extension: needs device nodes named *.csv, made by root")
    full, null = tmp_path / f"full{suffix}", tmp_path / f"null{suffix}"
    os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    units = welcome_units(tmp_path, 9)
    result = run("assign", WELCOME, "--units", units, "-o", full)
    assert result.exit_code == 1 and result.stderr.splitlines() == [result.stderr.strip()]
    assert f"{full}: cannot write: No space left on device" in result.stderr
    assert run("assign", WELCOME, "--units", units, "-o", null).exit_code == 0
    assert stat.S_ISCHR(os.lstat(full).st_mode) and stat.S_ISCHR(os.lstat(null).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in", full.name, null.name])
