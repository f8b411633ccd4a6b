"""The embedded engine: an in-memory DuckDB that reads files, or the tables of a DuckDB database file.

Files (CSV, JSON Lines, Parquet; a file or a folder of them, Hive-partitioned
folders too) are read into typed columns with DuckDB's own functions: CSV text
is trimmed and parsed, ids written as whole floats lose their ``.0``,
timestamps are ISO 8601 text (an offset or ``Z`` converted to UTC; none means
UTC) or native dates and timestamps, and a ``value`` that is missing, not a
number, NaN or infinite is NULL. For events, only the rows of the metrics'
events (and rows without an event name, which are bad rows) are read; on
Parquet the filter is on the raw column, so the reader skips other rows
without decoding them.

Tables come from the DuckDB database file named by ``EXPC_DUCKDB_DATABASE``
(opened read-only). Once the relations are set up, the connection may read
only the files it was given (DuckDB's ``enable_external_access`` off, with
those paths allowed, and the configuration locked), so a spec's query cannot
read other files of the machine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
from sqlglot import exp

from expc.compiler.model import DataSource

from ..tables import DataError, _check_readable, _explain, _ident, _literal
from .base import Engine, EngineError, absent_columns, file_format, missing_columns_error, relation_columns

DATABASE_ENV = "EXPC_DUCKDB_DATABASE"
"""The environment variable naming a DuckDB database file whose tables ``data`` sources may name."""

_TEMPORAL_PREFIXES = ("TIMESTAMP", "DATE")
_TEXT_TYPES = ("VARCHAR", "JSON")
_USER_ERRORS = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException)


class DuckDBEngine(Engine):
    """An in-memory DuckDB (see the module documentation)."""

    name = "duckdb"
    dialect = "duckdb"

    def __init__(self) -> None:
        database = os.environ.get(DATABASE_ENV)
        try:
            self.con = duckdb.connect(database, read_only=True) if database else duckdb.connect()
        except duckdb.Error as exc:
            raise EngineError(f"{database}: cannot open the DuckDB database named by {DATABASE_ENV} "
                              f"({str(exc).splitlines()[0]})") from None
        self.con.execute("SET TimeZone = 'UTC'")
        self.paths: list[str] = []
        self.readers: list[_FileReader] = []
        self.locked = False

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run ``sql``; a DuckDB error is a :class:`DataError` with its first line."""
        self._lock()
        try:
            cursor = self.con.execute(sql)
            return [d[0] for d in cursor.description], cursor.fetchall()
        except duckdb.InternalException:
            raise
        except duckdb.Error as exc:
            for reader in self.readers:  # an error reading a file names it
                if reader.glob in str(exc) or str(reader.path) in str(exc):
                    raise _explain(exc, reader.path, reader.kind) from None
            raise DataError(f"DuckDB: {str(exc).splitlines()[0]}") from None

    def columns(self, query: exp.Query) -> list[str]:
        """The column names of ``query``; a table or column that does not exist is a :class:`DataError`."""
        self._lock()  # a spec's table or query: from here on, only the files already given can be read
        try:
            return [r[0] for r in self.con.execute(f"DESCRIBE {query.sql(dialect='duckdb')}").fetchall()]
        except duckdb.Error as exc:
            raise DataError(f"DuckDB: {str(exc).splitlines()[0]}") from None

    def close(self) -> None:
        """Close the connection."""
        self.con.close()

    def _lock(self) -> None:
        """From now on, read only the files given (see the module documentation)."""
        if self.locked:
            return
        self.locked = True
        allowed = ", ".join(_literal(p) for p in self.paths)
        self.con.execute(f"SET allowed_directories = [{allowed}]; SET allowed_paths = [{allowed}]; "
                         "SET enable_external_access = false; SET lock_configuration = true")

    def file_relation(self, what: str, source: DataSource, *, unit: str, value: bool, events: list[str],
                      repeated: bool, extra: Sequence[str] = ()) -> tuple[exp.Query, Any]:
        """Typed rows of a file or folder, as a view (a table when ``repeated``: the files are read once)."""
        reader = _FileReader(self.con, source, what, unit, repeated)
        self.readers.append(reader)
        self.paths.append(reader.glob)
        if reader.folder:
            self.paths.append(str(Path(source.path or "").resolve()) + os.sep)
        name = f"expc_{what}_typed"
        if what == "exposures":
            reader.load_exposures(name, extra)
        elif what == "units":
            reader.load_units(name, extra)
        else:
            reader.load_events(name, events, value)
        columns = relation_columns(what, value, extra)
        return exp.select(*(exp.column(c, quoted=True) for c in columns)).from_(name), reader

    def timestamp_problem(self, what: str, source: DataSource, handle: Any, rows: int) -> str:
        """Whether no row has a timestamp, or none of those written can be read (with the first)."""
        return handle.timestamp_problem(rows)


class _FileReader:
    """One file (or folder of files) as typed rows in a view or table; errors reading it name it."""

    def __init__(self, con: Any, source: DataSource, what: str, unit: str, materialise: bool) -> None:
        self.con, self.source, self.what, self.unit = con, source, what, unit
        self.path = Path(source.path or "")
        self.relation = "TABLE" if materialise else "VIEW"
        self.folder = self.path.is_dir()
        if self.folder:
            self.kind = file_format(source, what)
            self.glob = str(self.path.resolve() / "**" / "*")
        else:
            _check_readable(self.path, f"the {what} file is empty")
            self.kind = file_format(source, what)
            self.glob = str(self.path.resolve())
        self.trim = self.kind != "parquet"  # text in CSV and JSON may carry stray spaces

    def _source(self) -> str:
        lit = _literal(self.glob)
        hive = ", hive_partitioning=true" if self.folder else ""
        if self.kind == "csv":
            return (f"read_csv({lit}, header=true, all_varchar=true, delim=',', quote='\"', "
                    f"escape='\"', comment='', skip=0{hive})")
        if self.kind == "parquet":
            return f"read_parquet({lit}{hive})"
        return f"read_json({lit}, format='newline_delimited', sample_size=-1{hive})"

    def _columns(self) -> dict[str, str]:
        """Every column of the source and its type."""
        self.source_sql = self._source()
        try:
            rows = self.con.execute(f"DESCRIBE SELECT * FROM {self.source_sql}").fetchall()
        except _USER_ERRORS + (duckdb.InternalException,):
            raise
        except duckdb.Error as exc:
            if self.folder:
                raise DataError(f"{self.path}: {str(exc).splitlines()[0]}", self.path) from None
            raise _explain(exc, self.path, self.kind) from None
        return {r[0]: r[1] for r in rows}

    def _types(self, required: list[str], types: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
        types = self._columns() if types is None else types
        mapped = self.source.columns
        id_col = mapped.get("unit_id") or (self.unit if self.unit in types else "unit_id")
        names = {c: mapped.get(c, c) for c in required}
        missing = [c for c in ["unit_id", *required] if (id_col if c == "unit_id" else names[c]) not in types]
        if missing:
            has = list(types) if list(types) != ["column0"] else []
            named = {c: (id_col if c == "unit_id" else names[c]) for c in missing}
            if "unit_id" in missing and "unit_id" not in mapped and self.unit != "unit_id":
                named["unit_id"] = self.unit
            alternatives = {self.unit: "unit_id"} if named.get("unit_id") == self.unit else {}
            raise missing_columns_error(self.source, self.what, list(named.values()), has, alternatives)
        self.names = {"unit_id": id_col, **names}
        return {c: types[self.names[c]] for c in self.names}, id_col

    def _query(self, sql: str) -> None:
        try:
            self.con.execute(sql)
        except _USER_ERRORS + (duckdb.InternalException,):
            raise
        except duckdb.Error as exc:
            raise _explain(exc, self.path, self.kind) from None

    def load_exposures(self, name: str, extra: Sequence[str] = ()) -> None:
        has = self._columns()
        absent = absent_columns("exposures", self.source, has)
        columns = relation_columns("exposures", False, extra)
        types, _ = self._types([c for c in columns if c != "unit_id" and c not in absent], has)
        n = self.names

        def typed(c: str) -> str:
            if c in absent:
                return "CAST(NULL AS VARCHAR)"
            return _timestamp(n[c], types[c]) if c == "timestamp" else _text(n[c], types[c], self.trim)

        self._query(f"CREATE OR REPLACE TEMP {self.relation} {name} AS SELECT "
                    + ", ".join(f"{typed(c)} AS {_ident(c)}" for c in columns) + f" FROM {self.source_sql}")

    def load_units(self, name: str, extra: Sequence[str]) -> None:
        types, _ = self._types(list(extra))
        n = self.names
        attributes = "".join(f", {_text(n[a], types[a], self.trim)} AS {_ident(a)}" for a in extra)
        self._query(f"CREATE OR REPLACE TEMP {self.relation} {name} AS SELECT "
                    f"{_text(n['unit_id'], types['unit_id'], self.trim)} AS unit_id{attributes} "
                    f"FROM {self.source_sql}")

    def load_events(self, name: str, events: list[str], need_value: bool) -> None:
        required = ["event", "timestamp"] + (["value"] if need_value else [])
        types, _ = self._types(required)
        n = self.names
        value = f"{_number(n['value'], types['value'])} AS value, " if need_value else ""
        event = _text(n["event"], types["event"], self.trim)
        keep = _event_filter(n["event"], event, types["event"], self.trim, events)
        self._query(f"CREATE OR REPLACE TEMP {self.relation} {name} AS SELECT "
                    f"{_text(n['unit_id'], types['unit_id'], self.trim)} AS unit_id, {event} AS event, "
                    f"{value}{_timestamp(n['timestamp'], types['timestamp'])} AS \"timestamp\" "
                    f"FROM {self.source_sql} WHERE {keep}")

    def timestamp_problem(self, rows: int) -> str:
        """No row has a timestamp, or none of those written can be read (the first is shown)."""
        column = _ident(self.names["timestamp"])
        written, example = self.con.execute(
            f"SELECT COUNT({column}), CAST(ANY_VALUE({column}) AS VARCHAR) FROM {self.source_sql}").fetchone()
        if not written:
            return f"{self.path}: no row has a `timestamp`; every {self.what[:-1]} needs one"
        return (f"{self.path}: none of the {written:,} timestamps can be read (the first is {example!r}); "
                "write ISO 8601 timestamps, such as 2026-11-28T14:05:00Z")


def _event_filter(column: str, event: str, typ: str, trim: bool, names: list[str]) -> str:
    """Rows of the metrics' events, or without an event name (bad rows, counted).

    For untrimmed text (Parquet) the test is on the raw column, a plain filter that
    the Parquet reader applies before decoding the other columns, so other events'
    rows cost only their event name.
    """
    listed = "(" + ", ".join(_literal(v) for v in names) + ")" if names else "(NULL)"
    if typ == "VARCHAR" and not trim:
        c = _ident(column)
        return f"{c} IN {listed} OR {c} IS NULL OR {c} = ''"
    return f"{event} IN {listed} OR {event} IS NULL"


def _text(col: str, typ: str, trim: bool = True) -> str:
    """Text, trimmed; empty -> NULL. Whole floats (ids from a float column) lose their `.0`."""
    c = _ident(col)
    if typ in ("FLOAT", "DOUBLE") or typ.startswith("DECIMAL"):
        return (f"CASE WHEN isfinite(CAST({c} AS DOUBLE)) AND {c} = round({c}) "
                f"THEN CAST(CAST({c} AS BIGINT) AS VARCHAR) ELSE CAST({c} AS VARCHAR) END")
    if typ == "VARCHAR" and not trim:
        return f"NULLIF({c}, '')"
    return f"NULLIF(trim(CAST({c} AS VARCHAR)), '')"


def _timestamp(col: str, typ: str) -> str:
    """A UTC TIMESTAMP, NULL when the value does not parse (text) or cannot be a time (numbers)."""
    c = _ident(col)
    if typ.startswith(_TEMPORAL_PREFIXES):
        return f"CAST({c} AS TIMESTAMP)"  # with time zone: in the session's UTC
    if typ in _TEXT_TYPES:
        t = f"json_extract_string({c}, '$')" if typ == "JSON" else c  # a JSON string keeps its quotes
        return f"CAST(TRY_CAST(trim({t}) AS TIMESTAMPTZ) AS TIMESTAMP)"
    return "CAST(NULL AS TIMESTAMP)"


def _number(col: str, typ: str) -> str:
    """A finite DOUBLE, NULL when missing, not a number, NaN or infinite."""
    c = _ident(col)
    if typ in _TEXT_TYPES:
        t = f"json_extract_string({c}, '$')" if typ == "JSON" else c
        d = f"TRY_CAST(trim({t}) AS DOUBLE)"
    elif typ == "BOOLEAN" or typ.startswith(_TEMPORAL_PREFIXES) or "[" in typ or typ.startswith("STRUCT"):
        return "CAST(NULL AS DOUBLE)"
    else:
        d = f"TRY_CAST({c} AS DOUBLE)"
    return f"CASE WHEN isfinite({d}) THEN {d} END"
