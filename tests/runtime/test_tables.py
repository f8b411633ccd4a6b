"""Reading units from CSV, JSON Lines and Parquet, and writing assignments back, with DuckDB."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from expc.runtime import tables
from expc.runtime.tables import MAX_SAFE_INTEGER, DataError, read_units, write_assignments

TYPES = {
    "user_id": "string",
    "country": "string",
    "interests": "list[string]",
    "signup_days": "integer",
    "score": "number",
    "beta": "boolean",
    "app_version": "version",
    "signed_up": "datetime",
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(tmp_path: Path, name: str, rows: list[dict]) -> Path:
    return write(tmp_path, name, "".join(json.dumps(r) + "\n" for r in rows))


def parquet(tmp_path: Path, name: str, select: str) -> Path:
    """A Parquet file made by DuckDB from a SELECT (independent of the code under test)."""
    path = tmp_path / name
    duckdb.connect().execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
    return path


def problem(path: Path, types: dict[str, str] = TYPES, unit: str = "user_id") -> str:
    """The message of the DataError that reading ``path`` raises; it always names the file."""
    with pytest.raises(DataError) as caught:
        read_units(path, types, unit)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message, message
    return message


def assert_units_shape(columns: dict[str, np.ndarray]) -> None:
    """Every column follows runtime/units.py: float64 for numbers, object for everything else."""
    for name, values in columns.items():
        expected = np.float64 if TYPES[name] in ("integer", "number") else object
        assert values.dtype == expected, (name, values.dtype)


# ------------------------------------------------------------------ reading: the three formats


EXPECTED = {
    "user_id": ["u1", "u2", "u3"],
    "country": ["US", None, "FR"],
    "interests": [("shoes", "hats"), None, ()],
    "signup_days": [3.0, math.nan, 120.0],
    "score": [1.5, -2.0, math.nan],
    "beta": [True, False, None],
    "app_version": ["2.1.0", None, "10.0.1"],
    "signed_up": ["2024-05-01T10:00:00Z", None, "2023-12-31"],
}


def assert_expected(columns: dict[str, np.ndarray]) -> None:
    assert set(columns) == set(EXPECTED)
    assert_units_shape(columns)
    for name, values in EXPECTED.items():
        if TYPES[name] in ("integer", "number"):
            np.testing.assert_array_equal(columns[name], np.array(values, dtype=np.float64))
        else:
            assert columns[name].tolist() == values, name


def test_csv_reads_every_type(tmp_path):
    path = write(tmp_path, "users.csv", """\
user_id,country,interests,signup_days,score,beta,app_version,signed_up,undeclared
u1,US,"[""shoes"",""hats""]",3,1.5,TRUE,2.1.0,2024-05-01T10:00:00Z,x
u2,,,,-2,0,,,y
u3,FR,[],120,,,10.0.1,2023-12-31,z
""")
    units = read_units(path, TYPES, "user_id")
    assert len(units) == 3
    assert units.types == TYPES
    assert_expected(units.columns)


def test_jsonl_reads_every_type(tmp_path):
    rows = [
        {"user_id": "u1", "country": "US", "interests": ["shoes", "hats"], "signup_days": 3, "score": 1.5,
         "beta": True, "app_version": "2.1.0", "signed_up": "2024-05-01T10:00:00Z", "undeclared": {"a": 1}},
        {"user_id": "u2", "country": None, "score": -2, "beta": False},  # missing keys and null are both null
        {"user_id": "u3", "country": "FR", "interests": [], "signup_days": "120", "app_version": "10.0.1",
         "signed_up": "2023-12-31"},
    ]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    for name in ("users.jsonl", "users.ndjson"):
        path = write(tmp_path, name, text.replace("\n", "\n\n", 1))  # a blank line is skipped
        assert_expected(read_units(path, TYPES, "user_id").columns)


def test_parquet_reads_every_type(tmp_path):
    path = parquet(tmp_path, "users.parquet", """
        SELECT * FROM (VALUES
          ('u1', 'US', ['shoes', 'hats'], 3::BIGINT, 1.5::DOUBLE, true, '2.1.0', '2024-05-01T10:00:00Z', 'x'),
          ('u2', NULL, NULL, NULL, -2, false, NULL, NULL, 'y'),
          ('u3', 'FR', []::VARCHAR[], 120, NULL, NULL, '10.0.1', '2023-12-31', 'z')
        ) t(user_id, country, interests, signup_days, score, beta, app_version, signed_up, undeclared)""")
    assert_expected(read_units(path, TYPES, "user_id").columns)


def test_parquet_native_types_are_converted(tmp_path):
    path = parquet(tmp_path, "native.parquet", """
        SELECT 'u1' AS user_id, 7::INTEGER AS country, 42.0::DOUBLE AS signup_days, 1::TINYINT AS beta,
               'NaN'::DOUBLE AS score,
               TIMESTAMPTZ '2024-05-01 12:00:00+02' AS signed_up, DATE '2024-05-01' AS app_version""")
    columns = read_units(path, {**TYPES, "app_version": "string"}, "user_id").columns
    assert columns["country"].tolist() == ["7"]          # an integer column read as text
    assert columns["signup_days"].tolist() == [42.0]     # a whole double fits integer
    assert columns["beta"].tolist() == [True]            # 0/1 integers fit boolean
    assert np.isnan(columns["score"][0])                 # NaN is null
    assert columns["signed_up"].tolist() == ["2024-05-01T10:00:00.000Z"]  # an instant, in UTC
    assert columns["app_version"].tolist() == ["2024-05-01"]


def test_undeclared_columns_are_ignored_and_missing_attributes_absent(tmp_path):
    path = write(tmp_path, "users.csv", "user_id,favourite_colour,country\nu1,blue,US\n")
    units = read_units(path, TYPES, "user_id")
    assert set(units.columns) == {"user_id", "country"}  # the others are null for everyone
    assert units.types == TYPES


def test_an_empty_csv_cell_is_null_quoted_or_not(tmp_path):
    path = write(tmp_path, "users.csv", 'user_id,country\nu1,""\nu2,\n')
    assert read_units(path, TYPES, "user_id").columns["country"].tolist() == [None, None]


# ------------------------------------------------------------------ lists and booleans in CSV


@pytest.mark.parametrize("cell, items", [
    ('"[""a"",""b""]"', ("a", "b")),
    ('"[ ""a b"" , ""c|d"" ]"', ("a b", "c|d")),  # JSON keeps spaces and | inside items
    ("[]", ()),
    ("a|b", ("a", "b")),
    ("a | b |  c", ("a", "b", "c")),              # items are trimmed
    ("a||b|", ("a", "b")),                         # empty items are dropped
    ("solo", ("solo",)),
    ("", None),
])
def test_csv_list_cells(tmp_path, cell, items):
    path = write(tmp_path, "users.csv", f"user_id,interests\nu1,{cell}\n")
    assert read_units(path, TYPES, "user_id").columns["interests"].tolist() == [items]


@pytest.mark.parametrize("cell", ['"[a, b]"', '"[""a"", 1]"', '"[""a"""', '"[""a"", [""b""]]"'])
def test_csv_list_cells_that_start_like_json_must_be_arrays_of_strings(tmp_path, cell):
    path = write(tmp_path, "users.csv", f"user_id,interests\nu1,{cell}\n")
    message = problem(path)
    assert "column `interests` is declared list[string]" in message and "line 2" in message
    assert '["a","b"]' in message and "a|b" in message  # says how to write one


def test_lists_in_jsonl_and_parquet_must_be_real_lists(tmp_path):
    message = problem(jsonl(tmp_path, "users.jsonl", [{"user_id": "u1", "interests": "a|b"}]))
    assert 'line 1 holds "a|b"' in message and "JSON array of strings" in message
    message = problem(jsonl(tmp_path, "numbers.jsonl", [{"user_id": "u1", "interests": ["a", 2]}]))
    assert "declared list[string]" in message
    message = problem(parquet(tmp_path, "users.parquet", "SELECT 'u1' AS user_id, 'a|b' AS interests"))
    assert "declared list[string]" in message and "row 1" in message
    message = problem(parquet(tmp_path, "nulls.parquet", "SELECT 'u1' AS user_id, ['a', NULL] AS interests"))
    assert "declared list[string]" in message


@pytest.mark.parametrize("cell, value", [
    ("true", True), ("TRUE", True), ("True", True), (" true ", True), ("1", True),
    ("false", False), ("FALSE", False), ("0", False), ("", None),
])
def test_csv_booleans(tmp_path, cell, value):
    path = write(tmp_path, "users.csv", f"user_id,beta\nu1,{cell}\n")
    assert read_units(path, TYPES, "user_id").columns["beta"].tolist() == [value]


@pytest.mark.parametrize("cell", ["yes", "t", "2", "on"])
def test_csv_booleans_refuse_other_spellings(tmp_path, cell):
    message = problem(write(tmp_path, "users.csv", f"user_id,beta\nu1,{cell}\n"))
    assert f'column `beta` is declared boolean, but line 2 holds "{cell}"' in message
    assert "true or false (or 1 or 0)" in message


@pytest.mark.parametrize("cell, value", [("42", 42.0), (" 7 ", 7.0), ("-3", -3.0), ("1e3", 1000.0), ("5.0", 5.0)])
def test_csv_integers(tmp_path, cell, value):
    path = write(tmp_path, "users.csv", f"user_id,signup_days\nu1,{cell}\n")
    assert read_units(path, TYPES, "user_id").columns["signup_days"].tolist() == [value]


@pytest.mark.parametrize("cell", ["1.5", "abc", "nan", "1,000"])
def test_csv_integers_must_be_whole_numbers(tmp_path, cell):
    path = write(tmp_path, "users.csv", f'user_id,signup_days\nu1,"{cell}"\n')
    assert "column `signup_days` is declared integer" in problem(path)


# ------------------------------------------------------------------ integer ids


def integer_ids(types=TYPES) -> dict[str, str]:
    return {**types, "user_id": "integer"}


def test_integer_ids_are_exact_up_to_2_53(tmp_path):
    """Every accepted integer id is exact as a double, so String() of it is its own digits (as GrowthBook hashes)."""
    ids = [1, 42, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]
    for path in (
        write(tmp_path, "users.csv", "user_id\n" + "".join(f"{i}\n" for i in ids)),
        jsonl(tmp_path, "users.jsonl", [{"user_id": i} for i in ids]),
        parquet(tmp_path, "users.parquet", f"SELECT unnest({ids}::BIGINT[]) AS user_id"),
    ):
        column = read_units(path, integer_ids(), "user_id").columns["user_id"]
        assert column.dtype == np.float64
        assert [str(int(v)) for v in column] == [str(i) for i in ids]


@pytest.mark.parametrize("make", ["csv", "jsonl", "parquet", "parquet-text"])
def test_integer_ids_beyond_2_53_are_refused(tmp_path, make):
    """9007199254740993 is not a double: JavaScript would hash "9007199254740992", so the id is refused."""
    big = 2**53 + 1
    path = {
        "csv": lambda: write(tmp_path, "users.csv", f"user_id\n1\n{big}\n"),
        "jsonl": lambda: write(tmp_path, "users.jsonl", f'{{"user_id": 1}}\n{{"user_id": {big}}}\n'),
        "parquet": lambda: parquet(tmp_path, "users.parquet", f"SELECT unnest([1, {big}]::BIGINT[]) AS user_id"),
        "parquet-text": lambda: parquet(tmp_path, "text.parquet", f"SELECT unnest(['1', '{big}']) AS user_id"),
    }[make]()
    message = problem(path, integer_ids())
    assert f"the unit id {big}" in message
    assert ("line 3" if make == "csv" else "line 2" if make == "jsonl" else "row 2") in message
    assert "declare `user_id: string`" in message


def test_big_integer_ids_are_fine_as_strings(tmp_path):
    path = write(tmp_path, "users.csv", f"user_id\n{2**53 + 1}\n{2**53 + 2}\n")
    assert read_units(path, TYPES, "user_id").columns["user_id"].tolist() == [str(2**53 + 1), str(2**53 + 2)]


def test_integer_ids_that_are_equal_numbers_are_one_unit(tmp_path):
    message = problem(write(tmp_path, "users.csv", "user_id\n7\n7.0\n"), integer_ids())
    assert "`7` at lines 2 and 3" in message


def test_big_values_in_other_integer_columns_are_doubles_as_in_javascript(tmp_path):
    path = write(tmp_path, "users.csv", f"user_id,signup_days\nu1,{2**53 + 1}\n")
    assert read_units(path, TYPES, "user_id").columns["signup_days"].tolist() == [float(2**53)]


# ------------------------------------------------------------------ bad input


def test_missing_file(tmp_path):
    assert problem(tmp_path / "nope.csv") == f"{tmp_path / 'nope.csv'}: no such file"


def test_a_folder_is_not_a_file(tmp_path):
    folder = tmp_path / "data.csv"
    folder.mkdir()
    assert "is a folder" in problem(folder)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = write(tmp_path, "users.csv", "user_id\nu1\n")
    path.chmod(0)
    try:
        assert "cannot be read" in problem(path)
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("name", ["users.txt", "users.xlsx", "users", "users.json"])
def test_unsupported_extension(tmp_path, name):
    message = problem(tmp_path / name)  # refused before looking for the file
    assert "cannot read units from" in message and ".csv, .jsonl (or .ndjson) or .parquet" in message


@pytest.mark.parametrize("name, text, says", [
    ("empty.csv", "", "the file is empty"),
    ("header.csv", "user_id,country\n", "a header but no units"),
    ("empty.jsonl", "", "the file is empty"),
    ("blank.jsonl", "\n\n", "has no units"),
])
def test_files_without_units(tmp_path, name, text, says):
    assert says in problem(write(tmp_path, name, text))


def test_parquet_without_rows(tmp_path):
    path = parquet(tmp_path, "users.parquet", "SELECT 'u1' AS user_id LIMIT 0")
    assert "has no units" in problem(path)


def test_missing_unit_column_names_the_columns_and_suggests(tmp_path):
    message = problem(write(tmp_path, "users.csv", "userid,country,plan\nu1,US,pro\n"))
    assert "the unit id column `user_id` is missing" in message
    assert "`userid`, `country`, `plan`" in message
    assert "did you mean `userid`?" in message
    message = problem(jsonl(tmp_path, "users.jsonl", [{"id": "u1"}, {"User_Id": "u2"}]))
    assert "`User_Id`, `id`" in message and "did you mean `User_Id`?" in message
    message = problem(parquet(tmp_path, "users.parquet", "SELECT 'u1' AS uid"))
    assert "the file has the columns `uid`" in message


def test_a_header_that_is_not_a_column_name_is_not_repeated(tmp_path):
    # a spec may point its data at a `.env` (read as CSV): its first line must not reach a CI log
    message = problem(write(tmp_path, "users.csv", "OPENAI_API_KEY=sk-secret-value\nB=2\n"))
    assert "sk-secret" not in message and "OPENAI_API_KEY" not in message
    assert "1 column(s) whose names are not shown" in message
    message = problem(write(tmp_path, "users.csv", "country,sk-proj-0123456789abcdefghijklmnopqrstuv\nUS,x\n"))
    assert "`country` and 1 more" in message and "sk-proj" not in message


def test_missing_unit_column_in_a_semicolon_csv_says_why(tmp_path):
    message = problem(write(tmp_path, "users.csv", "user_id;country\nu1;US\n"))
    assert "comma-separated" in message and "';'" in message


def test_null_ids_are_counted_with_their_lines(tmp_path):
    path = write(tmp_path, "users.csv", "user_id,country\nu1,US\n,FR\nu3,DE\n,\n,GB\n,IT\n")
    message = problem(path)
    assert "4 units have no `user_id` (empty or null), first at lines 3, 5 and 6" in message
    message = problem(jsonl(tmp_path, "users.jsonl", [{"user_id": "u1"}, {"user_id": None}, {"user_id": ""}, {}]))
    assert "3 units have no `user_id`" in message and "lines 2, 3 and 4" in message


def test_duplicate_ids_are_refused_with_examples(tmp_path):
    path = write(tmp_path, "users.csv", "user_id,country\nu1,US\nu2,FR\nu1,DE\nu3,GB\nu2,IT\nu2,ES\n")
    message = problem(path)
    assert "2 ids appear more than once (5 rows)" in message
    assert "`u1` at lines 2 and 4" in message and "`u2` at lines 3, 6 and 7" in message
    assert "each unit must appear once" in message


def test_a_value_that_does_not_fit_names_column_type_value_and_line(tmp_path):
    path = write(tmp_path, "users.csv", "user_id,signup_days\nu1,3\nu2,abc\nu3,4\nu4,x\n")
    message = problem(path)
    assert message == (f'{path}: column `signup_days` is declared integer, but line 3 holds "abc" '
                       "(2 values in this column do not fit); write whole numbers, such as 42")


def test_line_numbers_count_quoted_newlines(tmp_path):
    path = write(tmp_path, "users.csv", 'user_id,note,score\nu1,"two\nlines",1\nu2,x,abc\n')
    assert "line 4" in problem(path)


def test_a_bad_value_deep_in_a_parquet_file_is_found_by_row(tmp_path):
    path = tmp_path / "users.parquet"
    duckdb.connect().execute(
        "COPY (SELECT 'u' || range AS user_id, CASE WHEN range = 25000 THEN 'x' ELSE '1' END AS signup_days "
        f"FROM range(40000)) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 2048)")
    assert 'row 25001 holds "x"' in problem(path)


def test_a_parquet_column_of_the_wrong_kind(tmp_path):
    path = parquet(tmp_path, "users.parquet", "SELECT 'u1' AS user_id, [1, 2] AS signup_days")
    message = problem(path)
    assert "column `signup_days` is declared integer, but the file stores it as INTEGER[]" in message


def test_jsonl_value_of_the_wrong_kind(tmp_path):
    message = problem(jsonl(tmp_path, "users.jsonl", [{"user_id": "u1", "score": "high"}]))
    assert 'column `score` is declared number, but line 1 holds "high"' in message


@pytest.mark.parametrize("cut", [0.5, 0.95])
def test_truncated_parquet(tmp_path, cut):
    good = parquet(tmp_path, "good.parquet", "SELECT 'u' || range AS user_id FROM range(1000)")
    data = good.read_bytes()
    path = tmp_path / "users.parquet"
    path.write_bytes(data[: int(len(data) * cut)])
    assert "not a valid Parquet file: it is truncated or corrupt" in problem(path)


def test_a_text_file_called_parquet(tmp_path):
    assert "not a valid Parquet file" in problem(write(tmp_path, "users.parquet", "user_id\nu1\n"))


@pytest.mark.parametrize("name", ["users.csv", "users.jsonl"])
def test_latin1_file(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".csv"):
        text = "user_id,country\nu1,US\nJosé,ES\n"
    else:
        text = '{"user_id": "u1"}\n{"user_id": "José"}\n'
    path.write_bytes(text.encode("latin-1"))
    message = problem(path)
    line = 3 if name.endswith(".csv") else 2
    assert f"not UTF-8 text (byte 0xE9 on line {line})" in message and "re-save the file as UTF-8" in message


def test_a_utf8_byte_order_mark_is_fine(tmp_path):
    path = tmp_path / "users.csv"
    path.write_bytes("user_id,country\nu1,España\n".encode("utf-8-sig"))
    assert read_units(path, TYPES, "user_id").columns["country"].tolist() == ["España"]


def test_malformed_json_lines(tmp_path):
    path = write(tmp_path, "users.jsonl", '{"user_id": "u1"}\n\n{"user_id": "u2",\n{"user_id": "u3"}\n')
    message = problem(path)
    assert "line 3 is not valid JSON" in message


def test_a_json_line_that_is_not_an_object(tmp_path):
    path = write(tmp_path, "users.jsonl", '{"user_id": "u1"}\n["u2"]\n')
    assert "line 2 is not a JSON object" in problem(path)


def test_a_csv_row_with_too_many_fields(tmp_path):
    path = write(tmp_path, "users.csv", "user_id,country\nu1,US\nu2,FR,extra\n")
    assert "line 3 has 3 fields, but the header has 2" in problem(path)


# ------------------------------------------------------------------ writing


def assignments() -> dict[str, np.ndarray]:
    return {
        "user_id": np.array(["u1", "u2", "u3", "9007199254740993"], dtype=object),
        "variant": np.array(["control", "", None, "treatment"], dtype=object),
        "bucket": np.array([0.125, math.nan, 0.5, 0.75]),
        "reason": np.array([0, 4, 3, 0], dtype=np.int8),
        "eligible": np.array([True, False, False, True]),
    }


def read_back(path: Path) -> list[tuple]:
    reader = {".csv": "read_csv", ".jsonl": "read_json", ".parquet": "read_parquet"}[path.suffix]
    options = ", all_varchar=true" if path.suffix == ".csv" else ""
    return duckdb.connect().execute(f"SELECT * FROM {reader}('{path}'{options})").fetchall()


def test_write_csv(tmp_path):
    path = tmp_path / "assignments.csv"
    write_assignments(path, assignments())
    assert path.read_text(encoding="utf-8").splitlines() == [
        "user_id,variant,bucket,reason,eligible",
        "u1,control,0.125,0,true",
        "u2,,,4,false",          # "" and None: an empty cell; NaN too
        "u3,,0.5,3,false",
        "9007199254740993,treatment,0.75,0,true",
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_write_jsonl_and_parquet_with_nulls(tmp_path, suffix):
    path = tmp_path / f"assignments{suffix}"
    write_assignments(path, assignments())
    assert read_back(path) == [
        ("u1", "control", 0.125, 0, True),
        ("u2", None, None, 4, False),     # "" and None are null, as is NaN
        ("u3", None, 0.5, 3, False),
        ("9007199254740993", "treatment", 0.75, 0, True),
    ]


def test_jsonl_lines_are_objects(tmp_path):
    path = tmp_path / "assignments.jsonl"
    write_assignments(path, assignments())
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[1])
    assert first == {"user_id": "u2", "variant": None, "bucket": None, "reason": 4, "eligible": False}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_round_trip_through_read_units(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    ids = np.array(["a", "b", "c"], dtype=np.str_)  # fixed-width numpy text works too
    write_assignments(path, {"user_id": ids, "country": np.array(["US", "", None], dtype=object),
                             "score": np.array([1.0, 2.5, math.nan])})
    units = read_units(path, TYPES, "user_id")
    assert units.columns["user_id"].tolist() == ["a", "b", "c"]
    assert units.columns["country"].tolist() == ["US", None, None]
    np.testing.assert_array_equal(units.columns["score"], [1.0, 2.5, math.nan])


def test_write_replaces_an_existing_file(tmp_path):
    path = tmp_path / "assignments.csv"
    path.write_text("old\n")
    write_assignments(path, {"user_id": np.array(["u1"], dtype=object)})
    assert path.read_text() == "user_id\nu1\n"
    assert os.listdir(tmp_path) == ["assignments.csv"]


@pytest.mark.parametrize("name", ["assignments.txt", "assignments.xlsx", "assignments"])
def test_write_refuses_other_extensions_before_any_work(tmp_path, name, monkeypatch):
    monkeypatch.setattr(tables, "_copy", lambda *a: pytest.fail("wrote something"))
    with pytest.raises(DataError, match="cannot write assignments to") as caught:
        write_assignments(tmp_path / name, assignments())
    assert str(tmp_path / name) in str(caught.value)
    assert os.listdir(tmp_path) == []


def test_write_into_a_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        write_assignments(tmp_path / "no" / "such" / "a.csv", assignments())


def test_a_write_that_fails_half_way_leaves_no_file(tmp_path, monkeypatch):
    def crash(con, sql):  # write part of the file, then fail as a full disk would
        target = sql.split(" TO '", 1)[1].split("'", 1)[0]
        Path(target).write_text("user_id,variant\nu1,con")
        raise duckdb.IOException("could not write: No space left on device")

    monkeypatch.setattr(tables, "_copy", crash)
    path = tmp_path / "assignments.csv"
    with pytest.raises(DataError, match="could not write the file .*No space left"):
        write_assignments(path, assignments())
    assert os.listdir(tmp_path) == []


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "assignments.parquet"
    write_assignments(path, assignments())
    before = path.read_bytes()

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tables.os, "replace", refuse)
    with pytest.raises(DataError, match="Permission denied"):
        write_assignments(path, {"user_id": np.array(["other"], dtype=object)})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["assignments.parquet"]


# ------------------------------------------------------------------ scale and start-up


def test_two_hundred_thousand_parquet_rows(tmp_path):
    """Sanity at scale (not timed): values line up with their ids across row groups, lists included."""
    path = tmp_path / "users.parquet"
    duckdb.connect().execute(f"""COPY (
        SELECT 'user-' || range AS user_id, ['US', 'FR', NULL][range % 3 + 1] AS country,
               (range % 365)::BIGINT AS signup_days, range / 8.0 AS score, range % 2 = 0 AS beta,
               CASE WHEN range % 5 = 4 THEN NULL ELSE ['a', 'b', 'c', 'd'][1:(range % 5)::INT] END AS interests
        FROM range(200000)) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 16384)""")
    units = read_units(path, TYPES, "user_id")
    assert len(units) == 200_000
    assert_units_shape(units.columns)
    i = np.array([0, 1, 2, 4, 131071, 199999])
    assert units.columns["user_id"][i].tolist() == [f"user-{k}" for k in i]
    assert units.columns["country"][i].tolist() == [["US", "FR", None][k % 3] for k in i]
    assert units.columns["signup_days"][i].tolist() == [float(k % 365) for k in i]
    assert units.columns["score"][i].tolist() == [k / 8 for k in i]
    assert units.columns["beta"][i].tolist() == [k % 2 == 0 for k in i]
    assert units.columns["interests"][i].tolist() == [
        None if k % 5 == 4 else tuple("abcd"[: k % 5]) for k in i]


def test_importing_the_module_does_not_load_duckdb():
    code = "import sys, expc.runtime.tables; print('duckdb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ reading in chunks (open_units)


def assert_same_units(got: tables.Units, want: tables.Units) -> None:
    """The same columns, types and values (NaN equal to NaN), element by element."""
    assert got.types == want.types
    assert list(got.columns) == list(want.columns)
    for name, values in want.columns.items():
        assert got.columns[name].dtype == values.dtype, name
        if values.dtype == np.float64:
            np.testing.assert_array_equal(got.columns[name], values)
        else:
            assert got.columns[name].tolist() == values.tolist(), name


def read_in_chunks(path: Path, chunk_rows: int, types: dict[str, str] = TYPES) -> tables.Units:
    """open_units' chunks put together again, after checking that each one (but the last) is full."""
    with tables.open_units(path, types, "user_id", chunk_rows=chunk_rows) as chunks:
        parts = list(chunks)
        assert chunks.n == sum(len(p) for p in parts)
        assert all(len(p) == chunk_rows for p in parts[:-1]) and 0 < len(parts[-1]) <= chunk_rows
        assert all(list(p.columns) == chunks.attributes for p in parts)
    return tables.Units({name: np.concatenate([p.columns[name] for p in parts]) for name in parts[0].columns},
                        parts[0].types)


def every_type_rows(n: int) -> list[dict]:
    """n units with a value, a null or a missing key in every declared type, varying from row to row."""
    rows = []
    for i in range(n):
        row: dict = {"user_id": f"u{i}" if i % 5 else f"ü{i}😀", "undeclared": i}
        if i % 3:
            row["country"] = ["US", "FR", "=cmd"][i % 3]
        if i % 4 != 1:
            row["interests"] = None if i % 4 == 2 else [f"t{k}" for k in range(i % 3)]
        row["signup_days"] = None if i % 7 == 0 else i % 50
        row["score"] = i / 4
        row["beta"] = [True, False, None][i % 3]
        if i % 2:
            row["app_version"] = f"1.{i}.0"
            row["signed_up"] = f"2024-01-{1 + i % 28:02d}"
        rows.append(row)
    return rows


def every_type_file(tmp_path: Path, kind: str, n: int) -> Path:
    rows = every_type_rows(n)
    if kind == "jsonl":
        return jsonl(tmp_path, f"units-{n}.jsonl", rows)
    lines = ["user_id,country,interests,signup_days,score,beta,app_version,signed_up"]
    for r in rows:
        cells = [r["user_id"], r.get("country"), "|".join(r["interests"]) if r.get("interests") else None,
                 r["signup_days"], r["score"], r["beta"], r.get("app_version"), r.get("signed_up")]
        lines.append(",".join("" if c is None else str(c).lower() if isinstance(c, bool) else str(c) for c in cells))
    csv_path = write(tmp_path, f"units-{n}.csv", "\n".join(lines) + "\n")
    if kind == "csv":
        return csv_path
    return parquet(tmp_path, f"units-{n}.parquet", f"""
        SELECT user_id, country, CASE WHEN interests IS NULL THEN NULL ELSE string_split(interests, '|') END
               AS interests, signup_days::BIGINT AS signup_days, score::DOUBLE AS score, beta::BOOLEAN AS beta,
               app_version, signed_up
        FROM read_csv('{csv_path}', all_varchar=true)""")


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("n", [1, 3, 4, 5, 8, 9, 13])
def test_chunks_put_together_are_the_whole_table(tmp_path, kind, n):
    path = every_type_file(tmp_path, kind, n)
    whole = read_units(path, TYPES, "user_id")
    assert len(whole) == n
    for chunk_rows in (1, 4, n, 1000):
        assert_same_units(read_in_chunks(path, chunk_rows), whole)


def test_chunks_come_in_file_order_at_scale(tmp_path):
    """Several DuckDB threads and row groups: each chunk is the next rows of the file, values with their ids."""
    n = 300_000
    path = tmp_path / "units.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(f'{{"user_id": "id{i}", "signup_days": {i % 1000}, "country": "c{i % 7}"}}\n')
    with tables.open_units(path, TYPES, "user_id", chunk_rows=65_536) as chunks:
        start = 0
        for chunk in chunks:
            i = np.arange(start, start + len(chunk))
            assert chunk.columns["user_id"].tolist() == [f"id{k}" for k in i]
            np.testing.assert_array_equal(chunk.columns["signup_days"], i % 1000)
            assert chunk.columns["country"].tolist() == [f"c{k % 7}" for k in i]
            start += len(chunk)
    assert start == n


def chunked_problem(path: Path, types: dict[str, str] = TYPES, chunk_rows: int = 2) -> str:
    with pytest.raises(DataError) as caught:
        with tables.open_units(path, types, "user_id", chunk_rows=chunk_rows) as chunks:
            for _ in chunks:
                pytest.fail("a chunk came out of a file that is refused")
    return str(caught.value)


LATE = [  # a file whose only problem is in its last rows, far past the first chunk
    ("null id", "csv", "user_id,country\n" + "".join(f"u{i},US\n" for i in range(9)) + ",US\n", TYPES),
    ("duplicate id", "csv", "user_id,country\n" + "".join(f"u{i},US\n" for i in range(9)) + "u1,FR\n", TYPES),
    ("bad integer", "csv", "user_id,signup_days\n" + "".join(f"u{i},{i}\n" for i in range(9)) + "u9,2.5\n", TYPES),
    ("bad boolean", "jsonl", "".join(f'{{"user_id": "u{i}", "beta": true}}\n' for i in range(9))
     + '{"user_id": "u9", "beta": "maybe"}\n', TYPES),
    ("string given a boolean", "jsonl", "".join(f'{{"user_id": "u{i}"}}\n' for i in range(9))
     + '{"user_id": "u9", "country": true}\n', TYPES),
    ("bad list", "jsonl", "".join(f'{{"user_id": "u{i}", "interests": ["a"]}}\n' for i in range(9))
     + '{"user_id": "u9", "interests": [1]}\n', TYPES),
    ("not an object", "jsonl", "".join(f'{{"user_id": "u{i}"}}\n' for i in range(9)) + '["u9"]\n', TYPES),
    ("not JSON", "jsonl", "".join(f'{{"user_id": "u{i}"}}\n' for i in range(9)) + '{"user_id": \n', TYPES),
    ("id beyond 2**53", "jsonl", "".join(f'{{"user_id": {i}}}\n' for i in range(9))
     + f'{{"user_id": {2**53 + 1}}}\n', {**TYPES, "user_id": "integer"}),
    ("ragged CSV", "csv", "user_id,country\n" + "".join(f"u{i},US\n" for i in range(9)) + "u9,US,x\n", TYPES),
]


@pytest.mark.parametrize("case, kind, text, types", LATE, ids=[c[0] for c in LATE])
def test_a_problem_in_a_later_chunk_is_refused_before_any_chunk(tmp_path, case, kind, text, types):
    path = write(tmp_path, f"units.{kind}", text)
    message = chunked_problem(path, types)
    assert message == problem(path, types)  # the same one line as reading it whole
    last = text.count("\n")
    assert re.search(rf"\blines? (\d+, )*(\d+ and )?{last}\b", message), message  # the file's last line


def test_a_late_problem_in_parquet_names_its_row(tmp_path):
    path = parquet(tmp_path, "units.parquet",
                   "SELECT 'u' || i AS user_id, CASE WHEN i = 99 THEN 'x' ELSE '3' END AS signup_days "
                   "FROM range(100) t(i)")
    message = chunked_problem(path, chunk_rows=7)
    assert message == problem(path) and "row 100 holds \"x\"" in message


@pytest.mark.parametrize("name, text, says", [
    ("users.csv", "user_id,country\n", "no units"),
    ("users.jsonl", "\n\n", "no units"),
    ("users.csv", "id,country\nu1,US\n", "`user_id` is missing"),
    ("users.jsonl", '{"id": "u1"}\n', "`user_id` is missing"),
])
def test_empty_files_and_missing_ids_in_chunks(tmp_path, name, text, says):
    path = write(tmp_path, name, text)
    assert says in chunked_problem(path) and chunked_problem(path) == problem(path)


def test_chunks_leave_no_temporary_folder(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tables.tempfile, "tempdir", str(scratch))
    good = every_type_file(tmp_path, "csv", 9)
    with tables.open_units(good, TYPES, "user_id", chunk_rows=2) as chunks:
        assert len(list(scratch.iterdir())) == 1  # DuckDB's spill folder, while the file is read
        list(chunks)
    chunked_problem(write(tmp_path, "bad.csv", "user_id\nu1\nu1\n"))
    assert list(scratch.iterdir()) == []


def test_chunk_size_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        with tables.open_units(every_type_file(tmp_path, "csv", 3), TYPES, "user_id", chunk_rows=0):
            pass


def test_jsonl_keys_with_only_nulls_are_columns_and_absent_keys_are_not(tmp_path):
    path = jsonl(tmp_path, "users.jsonl", [{"user_id": "u1", "country": None, "note": "interests"},
                                           {"user_id": "u2", "country": None}])
    for units in (read_units(path, TYPES, "user_id"), read_in_chunks(path, 1)):
        assert set(units.columns) == {"user_id", "country"}  # "interests" is only a value, never a key
        assert units.columns["country"].tolist() == [None, None]


def test_a_json_line_that_repeats_a_declared_key(tmp_path):
    path = write(tmp_path, "users.jsonl", '{"user_id": "u1"}\n{"user_id": "u2", "user_id": "u3"}\n')
    assert 'line 2 has the key "user_id" twice' in problem(path)


def test_jsonl_strings_with_escapes_and_numbers_as_written(tmp_path):
    path = write(tmp_path, "users.jsonl",
                 '{"user_id": "a\\"b", "country": "caf\\u00e9", "app_version": 2.5, "signup_days": "7"}\n'
                 '{"user_id": "\\u00fc😀", "country": "", "signed_up": 20240101, "signup_days": 1e3}\n')
    units = read_units(path, TYPES, "user_id")
    assert units.columns["user_id"].tolist() == ['a"b', "ü😀"]
    assert units.columns["country"].tolist() == ["café", ""]
    assert units.columns["app_version"].tolist() == ["2.5", None]
    assert units.columns["signed_up"].tolist() == [None, "20240101"]
    assert units.columns["signup_days"].tolist() == [7.0, 1000.0]


# ------------------------------------------------------------------ writing in chunks


def split(columns: dict[str, np.ndarray], size: int) -> list[dict[str, np.ndarray]]:
    n = len(next(iter(columns.values())))
    return [{k: v[i:i + size] for k, v in columns.items()} for i in range(0, n, size)]


def many_assignments(n: int) -> dict[str, np.ndarray]:
    i = np.arange(n)
    variants = np.array(["control", "treatment", "", None, "=x"], dtype=object)
    bucket = (i % 997) / 997
    bucket[i % 5 == 3] = np.nan
    return {"user_id": np.array([f"u{k}" if k % 9 else f"-x{k}" for k in i], dtype=object),
            "variant": variants[i % 5], "bucket": bucket}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("size", [1, 3, 7, 100])
def test_chunks_written_are_the_table_written_whole(tmp_path, suffix, size):
    columns = many_assignments(7)
    whole, chunked = tmp_path / f"whole{suffix}", tmp_path / f"chunked{suffix}"
    write_assignments(whole, columns)
    assert tables.write_assignment_chunks(chunked, iter(split(columns, size))) == 7
    if suffix == ".parquet":
        assert read_back(chunked) == read_back(whole)
    else:
        assert chunked.read_bytes() == whole.read_bytes()
    assert sorted(os.listdir(tmp_path)) == sorted([whole.name, chunked.name])


def test_csv_rows_keep_their_order_at_scale(tmp_path):
    """A large CSV keeps its rows in order (the formula guard once made DuckDB reorder them)."""
    columns = many_assignments(300_000)
    path = tmp_path / "assignments.csv"
    write_assignments(path, columns)
    ids = [line.split(",", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    assert ids == [("'" + u if u.startswith("-") else u) for u in columns["user_id"]]
    chunked = tmp_path / "chunked.csv"
    tables.write_assignment_chunks(chunked, iter(split(columns, 70_000)))
    assert chunked.read_bytes() == path.read_bytes()


def test_rendered_chunks_have_one_header(tmp_path):
    columns = many_assignments(5)
    parts = list(tables.render_assignments(iter(split(columns, 2)), "csv"))
    assert len(parts) == 3
    text = b"".join(parts).decode("utf-8")
    write_assignments(tmp_path / "whole.csv", columns)
    assert text == (tmp_path / "whole.csv").read_text(encoding="utf-8")
    assert text.count("user_id,variant,bucket") == 1


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_failure_in_a_later_chunk_leaves_no_file_and_the_earlier_one_as_it_was(tmp_path, suffix):
    path = tmp_path / f"assignments{suffix}"
    write_assignments(path, many_assignments(3))
    before = path.read_bytes()

    def chunks():
        yield from split(many_assignments(10), 4)[:2]
        raise DataError("units.csv: the disk holding its temporary data is full", "units.csv")

    with pytest.raises(DataError, match="temporary data is full"):
        tables.write_assignment_chunks(path, chunks())
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]


def test_a_write_that_fails_in_a_later_chunk_names_the_file(tmp_path, monkeypatch):
    copies = []

    def full_disk_on_the_third(con, sql):
        copies.append(sql)
        if len(copies) == 3:
            raise duckdb.IOException('could not write: {"errno": "28"}')
        con.execute(sql)

    monkeypatch.setattr(tables, "_copy", full_disk_on_the_third)
    path = tmp_path / "assignments.csv"
    with pytest.raises(DataError) as caught:
        tables.write_assignment_chunks(path, iter(split(many_assignments(10), 3)))
    assert str(caught.value) == f"{path}: cannot write: No space left on device"
    assert os.listdir(tmp_path) == []


def test_chunks_go_into_a_fifo_as_they_come(tmp_path):
    import threading

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    try:
        import time

        deadline = time.monotonic() + 10
        while True:  # the FIFO must have a reader before expc opens it (else: refused, not waited on)
            try:
                tables.write_assignment_chunks(fifo, iter(split(many_assignments(5), 2)))
                break
            except DataError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
    finally:
        reader.join(10)
    write_assignments(tmp_path / "whole.csv", many_assignments(5))
    assert got == [(tmp_path / "whole.csv").read_bytes()]
    assert stat_is_fifo(fifo)


def stat_is_fifo(path: Path) -> bool:
    import stat

    return stat.S_ISFIFO(os.stat(path).st_mode)
