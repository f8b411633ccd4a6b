"""Data files in and out: units from CSV, JSON Lines or Parquet; assignments back out.

Everything goes through an embedded, in-memory DuckDB (imported inside the
functions, so commands that read no data never load it). Values are parsed
and checked in SQL, column by column, so a million rows take about a second;
only list columns need a Python step per row (to build the tuples).

Reading (:func:`read_units`, :func:`open_units`)
================================================

:func:`read_units` returns the whole table; :func:`open_units` checks the
whole file the same way, then hands it out in chunks of a few hundred
thousand units, so that a file of any size is assigned in bounded memory
(DuckDB keeps the typed values, spilling beyond :data:`SCRATCH_MEMORY` to a
private temporary folder). Both run the same SQL, defined once in
:class:`_Reader`.

The declared attributes that the file has become columns of a
:class:`~expc.runtime.units.Units`, in the representation that
:mod:`expc.runtime.units` fixes for their type. Columns the spec does not
declare are ignored; declared attributes the file lacks are left out (null for
every unit), except the unit id, which every file must have.

How values are read, by format:

* **CSV**: comma-separated, ``"`` quotes, a header row, UTF-8 (a byte-order
  mark is fine). Every cell is text and is parsed by the declared type. An
  empty cell is null (so is ``""``): a CSV cannot tell an empty string from a
  missing one.

  - integer, number: ``42``, ``-3``, ``1.5``, ``1e3`` (surrounding spaces are
    fine); an integer must be a whole number.
  - boolean: ``true``/``false`` in any case, or ``1``/``0``.
  - list[string]: either a JSON array of strings, ``["a","b"]`` (``[]`` is the
    empty list), or ``|``-separated items, ``a|b``; items are trimmed and empty
    items dropped. A cell that starts with ``[`` must be a JSON array.

* **JSON Lines** (``.jsonl``, ``.ndjson``): one JSON object per line; blank
  lines are skipped. A missing key and ``null`` are both null. Numbers (or
  numeric strings) for integer and number; ``true``/``false`` (or the CSV
  spellings) for boolean; strings (or numbers, taken as text) for string,
  version and datetime; a real JSON array of strings for list[string]. A
  line that gives a declared key twice is refused (which value would count?).
  DuckDB's JSON reader parses each line once, into one value per declared
  key; keys are matched exactly (case matters).

* **Parquet**: native columns. Integer and floating columns fit integer (whole
  values only) and number; booleans (or 0/1 integers) fit boolean; a list of
  strings fits list[string]; dates and timestamps fit datetime (written as ISO
  8601, UTC with ``Z`` when the timestamp has a time zone). Text columns are
  parsed as in a CSV. A floating NaN is null.

The unit id
-----------

Every unit must have an id, and exactly one row: its attributes decide its
audience, so two rows for one id would be two contradictory units. Null (or
empty) ids and duplicate ids are refused with the count and the first rows.

An integer id must be exact. GrowthBook's JavaScript SDK holds numbers as
doubles and hashes ``String(id)``; up to 2**53 - 1 (9,007,199,254,740,991)
that is the id's own digits, which the float64 column of
:mod:`expc.runtime.units` holds exactly. Beyond that, a double cannot tell
``9007199254740993`` from ``9007199254740992``: two units could share a hash,
and the JavaScript SDK, the Python SDK (which hashes the exact digits) and
expc would disagree. Such ids are refused, with the advice to declare the unit
as a ``string`` (and to pass it to GrowthBook as a string).

Writing (:func:`write_assignments`, :func:`write_assignment_chunks`)
=====================================================================

A table of numpy columns goes to CSV (with a header), JSON Lines or Parquet,
by the file's extension, atomically: DuckDB writes a hidden temporary file in
the same folder, which replaces the target only once it is complete.
:func:`write_assignment_chunks` writes a table that comes chunk by chunk into
the same file, byte for byte, holding one chunk at a time (CSV and JSON Lines
rows go out as they come; Parquet rows wait in DuckDB until the last chunk);
:func:`render_assignments` gives the chunks' CSV for a stream such as stdout.

Nulls: in a text (object) column, ``None`` and ``""`` both mean "none" (a unit
outside the experiment has no variant): an empty cell in CSV, ``null`` in JSON
Lines and Parquet. A NaN in a float column (e.g. the bucket of a unit that was
not hashed) is written the same way.

Spreadsheet formulas: in CSV, a text cell that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return is written with a ``'`` in front
(``=HYPERLINK(...)`` becomes ``'=HYPERLINK(...)``), so that a spreadsheet
opening the file shows it as text instead of running it (OWASP's advice on
CSV injection). A cell that is a plain number (``-5``, ``+1.5``) is left as it
is: a spreadsheet reads it as that number. JSON Lines and Parquet hold the
values unchanged.

The file is written by :func:`expc.runtime.files.atomic_path`: never through
a symbolic link, never over a device or FIFO (written into instead); a file
that cannot be written (disk full, read-only, permission denied, a part of
the path that is a file) is a :class:`DataError` naming it.

Problems with a file raise :class:`DataError`, whose message is one line for a
person: the file, where (line or row, column) and what to do.
"""

from __future__ import annotations

import codecs
import csv
import gc
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from expc.compiler.diagnostics import did_you_mean
from expc.compiler.errors import EXIT_INVALID, ExpcError
from expc.compiler.sources import NotRegularFile, open_regular

from .units import Units

#: File extensions (lower case) and the format each one holds.
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}

#: The largest integer a double (JavaScript's only number) holds exactly, with all below it.
MAX_SAFE_INTEGER = 2**53 - 1

_SCALAR_TEXT = ("string", "version", "datetime")
_INTS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
         "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
_FLOATS = {"FLOAT", "DOUBLE"}
_EXAMPLES = 3  # how many rows or ids a message names


class DataError(ExpcError):
    """A problem with a data file; the message, for a person, names the file and where.

    Commands report it as one line and exit 1 (never with a traceback).
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message, EXIT_INVALID)
        self.path = None if path is None else str(path)


# ===================================================================== reading


def read_units(path: str | os.PathLike[str], types: Mapping[str, str], unit: str) -> Units:
    """Read the units in a ``.csv``, ``.jsonl``/``.ndjson`` or ``.parquet`` file.

    ``types`` maps each declared attribute to its type; ``unit`` names the id
    attribute (declared as string or integer). See the module's documentation
    for how each format's values are read. Raises :class:`DataError` when the
    file is missing, unreadable, empty or malformed; when it lacks the unit id
    column; when a value does not fit its declared type; and when an id is
    null, duplicated (a unit must appear once, because its attributes decide
    its audience) or, for integer ids, beyond 2**53 - 1.

    The whole table is held in memory; :func:`open_units` reads the same file,
    with the same checks, one chunk at a time.
    """
    if unit not in types:
        raise ValueError(f"the unit attribute {unit!r} is not among the declared attributes")
    path = Path(path)
    kind = _format_of(path, "read units from")
    _check_readable(path)

    import duckdb

    con = duckdb.connect()
    try:
        reader = _Reader(con, path, kind, types, unit)
        with _explained(reader):
            reader.load()
            return reader.fetch()
    finally:
        con.close()


#: Units per chunk of :func:`open_units` (a few hundred thousand: tens of MB in numpy, whatever the file's size).
CHUNK_ROWS = 1 << 18

#: What DuckDB may hold in memory while :func:`open_units` loads and checks a file; beyond it, it spills
#: to the temporary folder (the duplicate-id check over ten million ids needs about this much).
SCRATCH_MEMORY = "1GB"


class UnitChunks:
    """The units of a file, checked as a whole, then handed out as :class:`Units` chunks in file order.

    Made by :func:`open_units`; iterate it for the chunks. ``n`` is the number
    of units and ``attributes`` the declared attributes the file has (every
    chunk has these columns).
    """

    def __init__(self, reader: _Reader, chunk_rows: int) -> None:
        self._reader = reader
        self.chunk_rows = chunk_rows
        self.n: int = reader.n
        self.attributes: list[str] = [name for name, _ in reader.columns]

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[Units]:
        for start in range(0, self.n, self.chunk_rows):
            with _explained(self._reader):
                chunk = self._reader.fetch(start, min(start + self.chunk_rows, self.n))
            yield chunk


@contextmanager
def open_units(path: str | os.PathLike[str], types: Mapping[str, str], unit: str,
               chunk_rows: int | None = None) -> Iterator[UnitChunks]:
    """Read the units of a file as :func:`read_units` does, but hand them out in chunks of ``chunk_rows``.

    Every check of :func:`read_units` (an empty file, a missing id column, a
    value that does not fit its type, null, duplicate or inexact ids) runs over
    the whole file when the block is entered, before the first chunk, with the
    same messages: a consumer that writes chunk by chunk never starts on a file
    that would be refused. The typed values wait in DuckDB, whose memory is
    capped (:data:`SCRATCH_MEMORY`): beyond the cap they go to a private
    temporary folder (removed on exit), so the memory needed depends on the
    chunk size, not on the file's. ``chunk_rows`` defaults to :data:`CHUNK_ROWS`.
    """
    if unit not in types:
        raise ValueError(f"the unit attribute {unit!r} is not among the declared attributes")
    rows = CHUNK_ROWS if chunk_rows is None else chunk_rows
    if rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {rows}")
    path = Path(path)
    kind = _format_of(path, "read units from")
    _check_readable(path)

    import duckdb

    try:
        scratch = Path(tempfile.mkdtemp(prefix="expc-units-"))
    except OSError as exc:
        raise DataError(f"{path}: cannot make a temporary folder to read it in "
                        f"({exc.strerror or exc}); set TMPDIR to a writable folder", path) from None
    con = None
    try:
        try:
            # in memory up to the cap, beyond it in the temporary folder (uncompressed, but no compression cost
            # for the files that fit)
            con = duckdb.connect(":memory:", config={"memory_limit": SCRATCH_MEMORY, "temp_directory": str(scratch)})
        except duckdb.Error as exc:
            raise _scratch_error(exc, path, scratch) from None
        reader = _Reader(con, path, kind, types, unit, scratch=scratch)
        with _explained(reader):
            reader.load()
        yield UnitChunks(reader, rows)
    finally:
        if con is not None:
            con.close()
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def _explained(reader: _Reader) -> Iterator[None]:
    """DuckDB errors while reading -> :class:`DataError` (a mistake in expc's own SQL is raised as it is)."""
    import duckdb

    try:
        yield
    except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException, duckdb.InternalException):
        raise  # a mistake in expc's SQL, not in the file
    except duckdb.Error as exc:
        if reader.scratch is not None and (str(reader.scratch) in str(exc)
                                           or isinstance(exc, duckdb.OutOfMemoryException)):
            raise _scratch_error(exc, reader.path, reader.scratch) from None
        raise _explain(exc, reader.path, reader.kind, reader.unit, reader.types) from None


def _scratch_error(exc: Exception, path: Path, scratch: Path) -> DataError:
    """The temporary database of :func:`open_units` could not be written (disk full, memory, permissions)."""
    code = re.search(r'"errno"\s*:\s*"?([0-9]+)', str(exc))
    detail = os.strerror(int(code.group(1))) if code else _first_line(exc)
    return DataError(f"{path}: cannot hold its units in the temporary folder {scratch.parent} ({detail}); "
                     "free some space there or set TMPDIR to another folder", path)


def _first_line(exc: Exception) -> str:
    detail = str(exc).strip()
    first = detail.splitlines()[0] if detail else type(exc).__name__
    return re.sub(r"^[A-Za-z ]*Error: ", "", first)


class _Reader:
    """One read: the file's typed values in a table ``u`` of ``con``, every check over it, then numpy.

    :meth:`load` builds ``u`` and checks the whole file; :meth:`fetch` turns
    all of ``u``, or a range of its rows, into :class:`Units`. How a value of
    each type is read is defined once, here and in the SQL pieces below, for
    :func:`read_units` and :func:`open_units` alike.
    """

    def __init__(self, con: Any, path: Path, kind: str, types: Mapping[str, str], unit: str,
                 scratch: Path | None = None) -> None:
        self.con, self.path, self.kind, self.types, self.unit = con, path, kind, types, unit
        self.name = str(path)
        self.scratch = scratch
        self.n = 0
        self.columns: list[tuple[str, str]] = []  # (attribute, type) of the declared attributes the file has

    # ------------------------------------------------------------- the steps

    def load(self) -> int:
        """Create ``u`` and run every check over the whole file; the number of units."""
        present = self._source()  # declared attributes the file may have -> SQL expression of the raw value
        if self.kind != "jsonl" and self.unit not in present:
            self._missing_unit()
        columns = [(name, self.types[name], raw) for name, raw in present.items()]
        # Two steps, so that each value is parsed once: the inner SELECT parses, the outer keeps the value
        # and, for a row where a value did not parse, which column (the first, by self.checks) and its raw
        # text: two columns for the whole row, not one per attribute, so that ``u`` stays small.
        inner, outer = [], []
        self.checks: list[tuple[str, str, bool]] = []  # (attribute, "value" or "column", quote it)
        failed, shown = [], []
        for name, typ, raw in columns:
            value, nonnull, text, quote, what = self._typed(name, typ, raw)
            inner.append(f"{value} AS {_ident(name)}")
            outer.append(_ident(name))
            if text is not None:
                raw_ref, present_ref = _ident("raw " + name), _ident("present " + name)
                inner += [f"{raw} AS {raw_ref}", f"{nonnull} AS {present_ref}"]
                failed.append(f"{present_ref} AND {_ident(name)} IS NULL")
                shown.append(text(raw_ref))
                self.checks.append((name, what, quote))
        if self.checks:
            outer.append("CASE " + " ".join(f"WHEN {f} THEN {k}" for k, f in enumerate(failed))
                         + f" END AS {_ident('bad column')}")
            outer.append("CASE " + " ".join(f"WHEN {f} THEN {t}" for f, t in zip(failed, shown))
                         + f" END AS {_ident('bad value')}")
        unsafe = self._unsafe_id(present[self.unit]) if self.unit in present else None
        if unsafe is not None:
            inner.append(f"{unsafe} AS {_ident('unsafe id')}")
            outer.append(_ident("unsafe id"))
        self.con.execute(f"CREATE TABLE u AS SELECT {', '.join(outer)} "
                         f"FROM (SELECT {', '.join(inner)} FROM {self.source})")

        n = self.con.execute("SELECT count(*) FROM u").fetchone()[0]
        if n == 0:
            raise self._error("the file has a header but no units" if self.kind == "csv"
                              else "the file has no units")
        if self.kind == "jsonl":
            keys = self._json_keys_present([name for name, _, _ in columns])
            if self.unit not in keys:
                self._missing_unit()
            columns = [c for c in columns if c[0] in keys]  # a key no line has holds no value to check
        self._check_values()
        if unsafe is not None:
            self._check_unsafe_ids()
        self._check_ids()
        self.n = n
        self.columns = [(name, typ) for name, typ, _ in columns]
        return n

    def _source(self) -> dict[str, str]:
        """Set ``self.source`` (a FROM clause) and return the declared columns present -> raw value SQL.

        For JSON Lines every declared attribute is a column of the source (SQL
        NULL where a line lacks the key, or holds null): which keys the file
        has is known only after reading (:meth:`_json_keys_present`).
        """
        lit = _literal(str(self.path))
        if self.kind == "csv":
            self.source = (f"read_csv({lit}, header=true, all_varchar=true, delim=',', quote='\"', "
                           "escape='\"', comment='', skip=0)")
            names = [r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {self.source}").fetchall()]
            self.file_columns = names
            self.file_types = {name: "VARCHAR" for name in names}
        elif self.kind == "parquet":
            self.source = f"read_parquet({lit})"
            rows = self.con.execute(f"DESCRIBE SELECT * FROM {self.source}").fetchall()
            self.file_columns = [r[0] for r in rows]
            self.file_types = {r[0]: r[1] for r in rows}
        else:  # JSON Lines: DuckDB's JSON reader parses each line once, into one JSON value per declared key
            spec = ", ".join(f"{_literal(name)}: 'JSON'" for name in self.types)
            self.source = (f"read_json({lit}, format='newline_delimited', records=true, auto_detect=false, "
                           f"columns={{{spec}}})")
            self.file_columns = list(self.types)
            self.file_types = {name: "JSON" for name in self.types}
        return {name: _ident(name) for name in self.types if name in self.file_types}

    def _json_keys_present(self, names: list[str]) -> set[str]:
        """The declared keys that some line of a JSON Lines file has (a key whose every value is null counts)."""
        counts = self.con.execute(
            "SELECT " + ", ".join(f"count({_ident(name)})" for name in names) + " FROM u").fetchone()
        keys = {name for name, count in zip(names, counts) if count}
        # No value that reads as the type: a key that no line has (common: a declared attribute the file
        # leaves out), or one with only nulls or values that do not fit. A key never written in the file is
        # found absent at the speed of a byte search; the others are asked of the lines themselves.
        unseen = [name for name in names if name not in keys and _mentions(self.path, _json_key_text(name))]
        if unseen:
            found = self.con.execute("SELECT " + ", ".join(
                f"bool_or(json_exists(json, {_literal(_json_path(name))}))" for name in unseen)
                + f" FROM read_ndjson_objects({_literal(str(self.path))})").fetchone()
            keys |= {name for name, there in zip(unseen, found) if there}
        return keys

    def _missing_unit(self) -> None:
        if self.kind == "jsonl":  # only after reading: the file has rows
            has_rows = True
            keys = [r[0] for r in self.con.execute(
                "SELECT DISTINCT unnest(json_keys(json)) AS k FROM "
                f"read_ndjson_objects({_literal(str(self.path))}) ORDER BY k LIMIT 100"
            ).fetchall()]
        else:
            has_rows = self.con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {self.source} LIMIT 1)").fetchone()[0] > 0
            keys = self.file_columns
        if not has_rows and (self.kind != "csv" or not keys or keys == ["column0"]):
            raise self._error("the file has no units")
        there = _names(keys) if keys else "none"
        message = f"the unit id column `{self.unit}` is missing; the file has the columns {there}"
        hint = None
        if self.kind == "csv" and len(keys) == 1:
            separator = next((s for s in (";", "\t", "|") if s in keys[0]), None)
            if separator:
                hint = f"expc reads comma-separated files, and this one looks separated by {separator!r}"
        hint = hint or did_you_mean(self.unit, keys)
        raise self._error(message + (f"; {hint}" if hint else ""))

    # ------------------------------------------------------------ conversion

    def _typed(self, name: str, typ: str, raw: str) -> tuple[str, str, Callable[[str], str] | None, bool, str]:
        """SQL for the typed value and for "the file has a value"; how to show a raw value that does not
        fit (None: every value fits); whether to quote it; and what does not fit ("value" or "column")."""
        source = self.file_types[name]
        text: Callable[[str], str] | None
        value: str | None
        if self.kind == "csv":
            value, nonnull, text, quote = _from_text(raw, typ), f"{raw} IS NOT NULL", str, True
        elif self.kind == "jsonl":  # a JSON null is SQL NULL already
            nonnull = f"{raw} IS NOT NULL"
            text, quote = _as_text, False
            value = _from_json(raw, typ)
        else:
            nonnull, text, quote = f"{raw} IS NOT NULL", _as_text, source == "VARCHAR"
            if source in _FLOATS:
                nonnull = f"({raw} IS NOT NULL AND NOT isnan({raw}))"
            value = _from_native(raw, source, typ)
        what = "value" if value is not None else "column"
        if value is None:  # the file's column type cannot hold this attribute at all
            value = {"integer": "NULL::DOUBLE", "number": "NULL::DOUBLE", "boolean": "NULL::BOOLEAN",
                     "list[string]": "NULL::VARCHAR[]"}.get(typ, "NULL::VARCHAR")
        if value in (raw, f"CAST({raw} AS DOUBLE)", f"CAST({raw} AS VARCHAR)"):
            text = None  # a plain copy or widening cast cannot fail
        return value, nonnull, text, quote, what

    def _unsafe_id(self, raw: str) -> str | None:
        """SQL that is the id's text when an integer id is beyond what a double holds exactly."""
        if self.types[self.unit] != "integer":
            return None
        source = self.file_types[self.unit]
        if source in _INTS:
            return f"CASE WHEN abs(CAST({raw} AS HUGEINT)) > {MAX_SAFE_INTEGER} THEN CAST({raw} AS VARCHAR) END"
        if source in _FLOATS or source.startswith("DECIMAL"):
            return f"CASE WHEN abs(CAST({raw} AS DOUBLE)) > {MAX_SAFE_INTEGER} THEN CAST({raw} AS VARCHAR) END"
        if source == "JSON":
            text = _json_text(raw)
        elif source == "VARCHAR":
            text = raw
        else:
            return None
        exact = f"TRY_CAST(trim({text}) AS HUGEINT)"
        return (f"CASE WHEN {exact} IS NOT NULL AND abs({exact}) > {MAX_SAFE_INTEGER} THEN trim({text}) "
                f"WHEN {exact} IS NULL AND abs(TRY_CAST(trim({text}) AS DOUBLE)) > {MAX_SAFE_INTEGER} "
                f"THEN trim({text}) END")

    # ---------------------------------------------------------------- checks

    def _check_values(self) -> None:
        if not self.checks:
            return
        first = self.con.execute(  # the first column (in self.checks' order) with a value that does not fit
            f"SELECT {_ident('bad column')}, count(*) FROM u WHERE {_ident('bad column')} IS NOT NULL "
            "GROUP BY 1 ORDER BY 1 LIMIT 1").fetchone()
        if first is None:
            return
        # Rows where an earlier column failed record that one instead; but no earlier column failed anywhere,
        # so the count is every value of this column that does not fit.
        index, count = first
        name, what, quote = self.checks[index]
        row, value = self.con.execute(
            f"SELECT rowid, {_ident('bad value')} FROM u WHERE {_ident('bad column')} = {int(index)} "
            "ORDER BY rowid LIMIT 1").fetchone()
        typ = self.types[name]
        shown = _show(value, quote)
        if what == "column":
            message = (f"column `{name}` is declared {typ}, but the file stores it as "
                       f"{self.file_types[name]} (e.g. {shown} at {self._where([row])})")
        else:
            others = f" ({count:,} values in this column do not fit)" if count > 1 else ""
            message = (f"column `{name}` is declared {typ}, but {self._where([row])} holds {shown}"
                       f"{others}")
        raise self._error(message + "; " + self._type_hint(typ))

    def _type_hint(self, typ: str) -> str:
        verb = "store" if self.kind == "parquet" else "write"
        if typ == "integer":
            return f"{verb} whole numbers, such as 42"
        if typ == "number":
            return f"{verb} numbers, such as 3.5"
        if typ == "boolean":
            return f"{verb} true or false (or 1 or 0)"
        if typ == "list[string]":
            if self.kind == "csv":
                return 'write a JSON array of strings, ["a","b"], or items separated by |, a|b'
            if self.kind == "jsonl":
                return 'write a JSON array of strings, such as ["a", "b"]'
            return "store a list of strings"
        return f"store {typ} values as text"

    def _check_unsafe_ids(self) -> None:
        col = _ident("unsafe id")
        found = self.con.execute(
            f"SELECT count({col}) OVER (), rowid, {col} FROM u WHERE {col} IS NOT NULL ORDER BY rowid LIMIT 1"
        ).fetchone()
        if found:
            count, row, value = found
            more = f" ({count:,} ids in all)" if count > 1 else ""
            raise self._error(
                f"the unit id {value} at {self._where([row])} is beyond {MAX_SAFE_INTEGER:,}, the largest "
                f"integer a JavaScript number holds exactly, so GrowthBook could not hash it exactly{more}; "
                f"declare `{self.unit}: string` and pass the id to GrowthBook as a string")

    def _check_ids(self) -> None:
        uid = _ident(self.unit)
        missing = f"{uid} IS NULL" + (f" OR {uid} = ''" if self.types[self.unit] != "integer" else "")
        rows = self.con.execute(
            f"SELECT count(*) OVER (), rowid FROM u WHERE {missing} ORDER BY rowid LIMIT {_EXAMPLES}").fetchall()
        if rows:
            count = rows[0][0]
            units = "1 unit has" if count == 1 else f"{count:,} units have"
            first = "at" if count <= _EXAMPLES else "first at"
            raise self._error(f"{units} no `{self.unit}` (empty or null), {first} "
                              f"{self._where([r[1] for r in rows])}; every unit needs an id")
        # First by two 64-bit hashes (small keys: ten million fit in DuckDB's memory, where the ids themselves
        # would spill); only when two ids share both (a repeated id, or a rare collision) are the ids compared.
        # One hash is not enough: DuckDB's collides for many pairs of similar short texts.
        key = uid if self.types[self.unit] == "integer" else f"hash({uid}), hash(reverse({uid}))"  # doubles: small
        repeated = self.con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM u GROUP BY {key} HAVING count(*) > 1)").fetchone()[0]
        if not repeated:
            return
        dups = self.con.execute(
            f"SELECT count(*) OVER (), sum(n) OVER (), id, first, rows FROM ("
            f"SELECT {uid} AS id, count(*) AS n, min(rowid) AS first, "
            f"list(rowid ORDER BY rowid)[1:{_EXAMPLES}] AS rows FROM u GROUP BY {uid} HAVING count(*) > 1"
            f") ORDER BY first LIMIT {_EXAMPLES}").fetchall()
        if dups:
            ids, rows_ = dups[0][0], int(dups[0][1])
            lead = ("1 id appears" if ids == 1 else f"{ids:,} ids appear") + f" more than once ({rows_:,} rows)"
            examples = "; ".join(f"`{_id_text(d[2])}` at {self._where(list(d[4]))}" for d in dups)
            raise self._error(f"{lead}: {examples}; each unit must appear once, because its attributes "
                              "decide its audience")

    # ------------------------------------------------------------- to numpy

    def fetch(self, start: int = 0, stop: int | None = None) -> Units:
        """Units ``start`` to ``stop`` (0-based, ``stop`` excluded; default: all) of ``u``, as numpy columns."""
        stop = self.n if stop is None else stop
        where = "" if (start, stop) == (0, self.n) else f" WHERE rowid >= {int(start)} AND rowid < {int(stop)}"
        if not self.columns:
            return Units({}, dict(self.types))
        scalars = [name for name, typ in self.columns if typ != "list[string]"]
        result = self.con.execute(
            "SELECT " + ", ".join(_ident(name) for name in scalars) + f" FROM u{where}").fetchnumpy() if scalars else {}
        out: dict[str, np.ndarray] = {}
        for name, typ in self.columns:
            out[name] = _convert(result[name], typ) if name in result else self._fetch_list(name, stop - start, where)
        return Units(out, dict(self.types))

    def _fetch_list(self, name: str, n: int, where: str) -> np.ndarray:
        """A list column as tuples: the lengths and the flattened items come out of DuckDB as two arrays
        (much faster than fetching lists), then one Python step per row slices out its tuple."""
        col = _ident(name)
        lengths = self.con.execute(f"SELECT len({col}) AS n FROM u{where}").fetchnumpy()["n"]
        missing = np.ma.getmaskarray(lengths)
        sizes = np.where(missing, 0, np.ma.getdata(lengths)).astype(np.int64)
        items = self.con.execute(f"SELECT unnest({col}) AS item FROM u{where}").fetchnumpy()["item"]
        flat = np.ma.getdata(items).tolist()
        if len(flat) != int(sizes.sum()):  # cannot happen: null items are refused when reading
            raise RuntimeError(f"list column {name!r}: {len(flat)} items for lengths summing to {sizes.sum()}")
        ends = np.cumsum(sizes)
        starts = ends - sizes
        collecting = gc.isenabled()
        gc.disable()  # a million new tuples would set off the cyclic collector again and again, for nothing
        try:
            out = np.fromiter((tuple(flat[a:b]) for a, b in zip(starts.tolist(), ends.tolist())),
                              dtype=object, count=n)
        finally:
            if collecting:
                gc.enable()
        out[missing] = None
        return out

    # -------------------------------------------------------------- messages

    def _error(self, message: str) -> DataError:
        return DataError(f"{self.name}: {message}", self.path)

    def _where(self, rows: list[int]) -> str:
        """``line 4`` (CSV, JSON Lines) or ``row 3`` (Parquet) for 0-based record numbers."""
        rows = [int(r) for r in rows]
        if self.kind == "parquet":
            numbers, noun = [r + 1 for r in rows], "row"
        else:
            numbers, noun = _line_numbers(self.path, self.kind, rows), "line"
        if len(numbers) == 1:
            return f"{noun} {numbers[0]}"
        return f"{noun}s {', '.join(map(str, numbers[:-1]))} and {numbers[-1]}"


# ---------------------------------------------------------------- SQL pieces


def _as_text(sql: str) -> str:
    return f"CAST({sql} AS VARCHAR)"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _json_key_text(name: str) -> bytes:
    """How a key is written in JSON text (``"name"``, escaped as :func:`json.dumps` escapes it), in UTF-8."""
    import json

    return json.dumps(name, ensure_ascii=False).encode("utf-8")


def _mentions(path: Path, needle: bytes) -> bool:
    """Whether the bytes ``needle`` occur in the file (a memory-mapped search: fast, whatever its size)."""
    import mmap

    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return False
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return data.find(needle) >= 0


def _json_path(name: str) -> str:
    return '$."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _from_text(t: str, typ: str) -> str:
    """SQL for the typed value of text ``t`` (NULL when it does not parse)."""
    if typ in _SCALAR_TEXT:
        return t
    if typ == "number":
        return f"TRY_CAST(trim({t}) AS DOUBLE)"
    if typ == "integer":
        d = f"TRY_CAST(trim({t}) AS DOUBLE)"
        return f"CASE WHEN isfinite({d}) AND {d} = round({d}) THEN {d} END"
    if typ == "boolean":
        return (f"CASE lower(trim({t})) WHEN 'true' THEN true WHEN '1' THEN true "
                "WHEN 'false' THEN false WHEN '0' THEN false END")
    if typ == "list[string]":  # CSV: a JSON array of strings, or a|b
        return (f"CASE WHEN starts_with(ltrim({t}), '[') THEN {_json_list(f'TRY_CAST({t} AS JSON)')} "
                f"ELSE list_filter(list_transform(string_split({t}, '|'), lambda x: trim(x)), lambda x: x <> '') END")
    raise ValueError(f"unknown attribute type {typ!r}")


def _json_list(j: str) -> str:
    """SQL: the JSON value ``j`` as a list of strings when it is an array of strings, else NULL."""
    return (f"CASE WHEN json_type({j}) = 'ARRAY' AND coalesce(list_bool_and(list_transform("
            f"json_extract({j}, '$[*]'), lambda x: json_type(x) = 'VARCHAR')), true) "
            f"THEN from_json({j}, '[\"VARCHAR\"]') END")


def _json_text(j: str) -> str:
    """SQL: the text of the JSON value ``j``: a string's own characters, anything else as JSON writes it.

    A string without escapes is cut out of the JSON text directly; only one
    with a backslash is parsed (``json_extract_string``).
    """
    t = f"CAST({j} AS VARCHAR)"
    return (f"CASE WHEN NOT starts_with({t}, '\"') THEN {t} "
            f"WHEN contains({t}, '\\') THEN json_extract_string({j}, '$') ELSE {t}[2:-2] END")


def _from_json(j: str, typ: str) -> str:
    """SQL for the typed value of the JSON value ``j`` (NULL when it does not fit ``typ``)."""
    if typ == "list[string]":
        return _json_list(j)
    if typ in _SCALAR_TEXT:  # strings, and numbers taken as written (not booleans, arrays or objects)
        t = f"CAST({j} AS VARCHAR)"
        return (f"CASE WHEN starts_with({t}, '\"') THEN {_json_text(j)} "
                f"WHEN json_type({j}) NOT IN ('ARRAY', 'OBJECT', 'NULL', 'BOOLEAN') "
                f"THEN json_extract_string({j}, '$') END")
    # numbers and booleans: parsed from the text, as in a CSV (an array or object never parses)
    return _from_text(_json_text(j), typ)


def _from_native(c: str, source: str, typ: str) -> str | None:
    """SQL for a Parquet column of DuckDB type ``source`` as ``typ``; None when the type cannot fit."""
    numeric = source in _INTS or source in _FLOATS or source.startswith("DECIMAL")
    temporal = source == "DATE" or source.startswith("TIMESTAMP")
    if source == "VARCHAR" and typ != "list[string]":
        return _from_text(c, typ)
    if typ in ("string", "version"):
        if numeric or source == "UUID" or (typ == "string" and temporal):
            return _iso(c, source) if temporal else f"CAST({c} AS VARCHAR)"
        return None
    if typ == "datetime":
        return _iso(c, source) if temporal else None
    if typ == "number":
        return f"CAST({c} AS DOUBLE)" if numeric else None
    if typ == "integer":
        if source in _INTS:
            return f"CAST({c} AS DOUBLE)"
        if numeric:
            d = f"CAST({c} AS DOUBLE)"
            return f"CASE WHEN isfinite({d}) AND {d} = round({d}) THEN {d} END"
        return None
    if typ == "boolean":
        if source == "BOOLEAN":
            return c
        if source in _INTS:
            return f"CASE {c} WHEN 1 THEN true WHEN 0 THEN false END"
        return None
    if typ == "list[string]":
        if source == "VARCHAR[]":  # a null item is not a string
            return f"CASE WHEN list_bool_and(list_transform({c}, lambda x: x IS NOT NULL)) IS NOT false THEN {c} END"
        return None
    raise ValueError(f"unknown attribute type {typ!r}")


def _iso(c: str, source: str) -> str:
    if source == "DATE":
        return f"strftime({c}, '%Y-%m-%d')"
    if "TIME ZONE" in source:  # an instant: in UTC, as JavaScript's toISOString() writes it
        return f"strftime(timezone('UTC', {c}), '%Y-%m-%dT%H:%M:%S.%g') || 'Z'"
    ts = f"CAST({c} AS TIMESTAMP)"
    return (f"CASE WHEN microsecond({ts}) = 0 THEN strftime({ts}, '%Y-%m-%dT%H:%M:%S') "
            f"ELSE strftime({ts}, '%Y-%m-%dT%H:%M:%S.%f') END")


# ------------------------------------------------------------ numpy columns


def _convert(array: np.ndarray, typ: str) -> np.ndarray:
    """A fetched (possibly masked) array -> the representation of :mod:`expc.runtime.units`."""
    mask = np.ma.getmaskarray(array)
    data = np.ma.getdata(array)
    if typ in ("integer", "number"):
        values = np.array(data, dtype=np.float64)
        values[mask] = np.nan
        return values
    if typ == "boolean":
        out = np.full(len(data), None, dtype=object)
        flags = np.asarray(data, dtype=bool)
        out[~mask & flags] = True
        out[~mask & ~flags] = False
        return out
    values = np.array(data, dtype=object)
    values[mask] = None
    return values


# ---------------------------------------------------------------- messages


def _format_of(path: Path, doing: str) -> str:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        found = f"`{path.suffix}` files" if path.suffix else "files without an extension"
        raise DataError(f"{path}: cannot {doing} {found}; use .csv, .jsonl (or .ndjson) or .parquet", path)
    return kind


def check_input(path: str | os.PathLike[str], what: str) -> None:
    """Fail early, before any work, on a data file that cannot be read: :class:`DataError` naming it.

    ``what`` says what the file holds (``units``, ``exposures``, ``events``).
    """
    path = Path(path)
    _format_of(path, f"read {what} from")
    _check_readable(path, empty=f"the file is empty; it has no {what}")


def _check_readable(path: Path, empty: str = "the file is empty; it has no units") -> None:
    """A regular file with at least one byte, or :class:`DataError`; a pipe or device is refused unread."""
    try:
        with os.fdopen(open_regular(path), "rb") as f:  # never blocks: a FIFO cannot hang the read
            first = f.read(1)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file", path) from None
    except (NotRegularFile, IsADirectoryError) as exc:
        kind = getattr(exc, "kind", "a folder")
        raise DataError(f"{path}: is {kind}, not a data file; give the path of a regular file", path) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})", path) from None
    if not first:
        raise DataError(f"{path}: {empty}", path)


#: What a column name looks like, as an error message may repeat it: a file given by a spec may be a secret
#: (a `.env` read as CSV has `KEY=value` for its header), and messages reach CI logs.
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ .-]{0,31}")


def _names(names: list[str], limit: int = 12) -> str:
    plain = [n for n in names if _PLAIN_NAME.fullmatch(str(n))]
    shown = ", ".join(f"`{n}`" for n in plain[:limit])
    more = len(names) - min(len(plain), limit)
    if not shown:
        return f"{more} column(s) whose names are not shown (not plain names)"
    return shown + (f" and {more} more" if more else "")


def _show(value: str, quote: bool, limit: int = 60) -> str:
    text = value if len(value) <= limit else value[: limit - 3] + "..."
    return f'"{text}"' if quote else text


def _id_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _explain(exc: Exception, path: Path, kind: str, unit: str | None = None,
             keys: Iterable[str] = ()) -> DataError:
    """A DuckDB error while reading -> what a person needs to know."""
    first = _first_line(exc).replace(f" '{path}'", "").replace(f' "{path}"', "")
    if kind in ("csv", "jsonl"):
        bad = _first_non_utf8(path)
        if bad is not None:
            line, byte = bad
            excel = ' (in Excel: "CSV UTF-8")' if kind == "csv" else ""
            what = f"byte 0x{byte:02X}" if byte is not None else "an unfinished character"
            return DataError(f"{path}: not UTF-8 text ({what} on line {line}); "
                             f"re-save the file as UTF-8{excel}", path)
    if kind == "parquet":
        return DataError(f"{path}: not a valid Parquet file: it is truncated or corrupt ({first})", path)
    if kind == "jsonl":
        bad_json = _bad_json_line(path, keys)
        if bad_json is not None:
            line, problem = bad_json
            if problem is None:
                example = "{\"" + (unit or "id") + "\": \"u1\", ...}"
                return DataError(f"{path}: line {line} is not a JSON object; each line must be one object, "
                                 f"such as {example}", path)
            if problem.startswith("the key "):
                return DataError(f"{path}: line {line} has {problem}; each key may appear once in an object", path)
            return DataError(f"{path}: line {line} is not valid JSON ({problem}); "
                             "each line must be one JSON object", path)
        return DataError(f"{path}: cannot be read as JSON Lines ({first})", path)
    ragged = _ragged_csv_line(path)
    if ragged is not None:
        line, got, want = ragged
        return DataError(f"{path}: line {line} has {got} field{'s' * (got != 1)}, but the header has {want}; "
                         "check the quoting and the commas on that line", path)
    return DataError(f"{path}: cannot be read as CSV ({first})", path)


class _Repeated(dict):
    """A JSON object in which ``key`` appears more than once (Python keeps the last value; DuckDB refuses a
    declared key given twice)."""

    key = ""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) < len(pairs):
        repeated, seen = _Repeated(out), set()
        for key, _ in pairs:
            if key in seen:
                repeated.key = key
                break
            seen.add(key)
        return repeated
    return out


def _bad_json_line(path: Path, keys: Iterable[str] = ()) -> tuple[int, str | None] | None:
    """(line, problem) of the first line that is not a JSON object (problem None: valid JSON, but not an
    object) or that gives one of ``keys`` twice, or None. Only called once reading has failed: DuckDB's own
    line numbers count records, not the file's lines."""
    import json

    declared = set(keys)
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, text in enumerate(f, 1):
            if text.strip():
                try:
                    value = json.loads(text, object_pairs_hook=_object)
                except ValueError as exc:
                    return number, exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                if not isinstance(value, dict):
                    return number, None
                if isinstance(value, _Repeated) and value.key in declared:
                    return number, f"the key {json.dumps(value.key, ensure_ascii=False)} twice"
    return None


def _first_non_utf8(path: Path) -> tuple[int, int | None] | None:
    """(line, byte) of the first byte that is not UTF-8 (byte None: the file ends mid-character),
    or None when the file is UTF-8. Read in chunks: only called once reading has failed."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                # positions count the up to 3 bytes of a character held back from the last chunk
                at = min(max(exc.start - len(exc.object) + len(chunk), 0), len(chunk) - 1)
                return line + chunk.count(b"\n", 0, at), chunk[at]
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return line, None
    return None


def _ragged_csv_line(path: Path) -> tuple[int, int, int] | None:
    """(line, fields, header fields) of the first CSV record whose length differs from the header's."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                return None
            start = reader.line_num + 1
            for record in reader:
                if record and len(record) != len(header):
                    return start, len(record), len(header)
                start = reader.line_num + 1
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None


def _line_numbers(path: Path, kind: str, rows: list[int]) -> list[int]:
    """The line on which each 0-based record starts (blank lines are not records)."""
    wanted, found, last = set(rows), {}, max(rows)
    with open(path, encoding="utf-8-sig", newline="" if kind == "csv" else None) as f:
        if kind == "csv":
            reader = csv.reader(f)
            next(reader, None)  # the header
            start, index = reader.line_num + 1, 0
            for record in reader:
                if record:
                    if index in wanted:
                        found[index] = start
                    index += 1
                    if index > last:
                        break
                start = reader.line_num + 1
        else:
            index = 0
            for number, text in enumerate(f, 1):
                if text.strip():
                    if index in wanted:
                        found[index] = number
                    index += 1
                    if index > last:
                        break
    return [found.get(r, r + 1) for r in rows]


# ===================================================================== writing


_OPTIONS = {"csv": "FORMAT csv, HEADER true, DELIMITER ','", "jsonl": "FORMAT json", "parquet": "FORMAT parquet"}


def write_assignments(path: str | os.PathLike[str], columns: dict[str, np.ndarray]) -> None:
    """Write a table (unit id, variant, bucket, ...) to ``.csv``, ``.jsonl`` or ``.parquet``, atomically.

    Columns are written in the order of ``columns``. Text columns should hold
    ``str`` (give integer ids as their text, so they stay exact); ``None`` and
    ``""`` are written as an empty CSV cell or JSON/Parquet null, as is NaN in
    a float column. The file appears complete or not at all: a failure leaves
    any earlier file as it was and no temporary file behind. Raises
    :class:`DataError` for an unsupported extension (before any work), a
    missing folder, or a failed write.
    """
    path = Path(path)
    kind = _format_of(path, "write assignments to")
    table, select = _output_table(columns, kind)
    _check_folder(path)

    import duckdb

    con = duckdb.connect()
    try:
        con.register("assignments", table)
        copy_atomic(con, f"SELECT {select} FROM assignments", path, _OPTIONS[kind])
    finally:
        con.close()


def write_assignment_chunks(path: str | os.PathLike[str], chunks: Iterable[dict[str, np.ndarray]]) -> int:
    """Write a table that comes in chunks (the same columns in each) to one file; the number of rows.

    The file is the one :func:`write_assignments` would write for all the
    chunks put together, but only one chunk is in memory at a time: CSV and
    JSON Lines rows go out as each chunk comes; Parquet rows wait in DuckDB
    (in memory up to :data:`SCRATCH_MEMORY`, then in a temporary folder) until
    the last chunk, then DuckDB writes the file. Atomic as :func:`write_assignments`: the file appears complete or not
    at all, so an exception while the chunks are made (raised by the iterator)
    leaves no file, and no earlier file changed; a device or FIFO is written
    into as the rows come, never replaced. Raises :class:`DataError` as
    :func:`write_assignments` does.
    """
    path = Path(path)
    kind = _format_of(path, "write assignments to")
    _check_folder(path)

    import duckdb

    from .files import OutputError, open_output

    with tempfile.TemporaryDirectory(prefix="expc-out-") as folder:
        scratch = Path(folder)
        if kind != "parquet":
            try:
                with open_output(path) as out:
                    rows = 0
                    for data, n in _rendered(chunks, kind, scratch, path):
                        out.write(data)
                        rows += n
                return rows
            except OutputError as exc:
                raise DataError(str(exc), path) from None
        con = duckdb.connect(":memory:", config={"memory_limit": SCRATCH_MEMORY, "temp_directory": str(scratch)})
        try:
            rows = 0
            for columns in chunks:
                table, select = _output_table(columns, kind)
                con.register("chunk", table)
                try:
                    verb = "INSERT INTO assignments" if rows else "CREATE TABLE assignments AS"
                    con.execute(f"{verb} SELECT {select} FROM chunk")
                except duckdb.Error as exc:
                    raise _write_error(exc, path) from None
                finally:
                    con.unregister("chunk")
                rows += len(next(iter(table.values())))
            if not rows:
                raise ValueError("no rows to write")
            copy_atomic(con, "SELECT * FROM assignments", path, _OPTIONS[kind])
            return rows
        finally:
            con.close()


def render_assignments(chunks: Iterable[dict[str, np.ndarray]], kind: str = "csv",
                       name: str = "<stdout>") -> Iterator[bytes]:
    """Each chunk's rows as :func:`write_assignments` writes them in ``kind`` (``csv``, with the header before
    the first chunk's rows, or ``jsonl``), as UTF-8 bytes, one chunk at a time (for a stream such as stdout).

    ``name`` is what a :class:`DataError` calls the output when DuckDB cannot render a chunk.
    """
    if kind not in ("csv", "jsonl"):
        raise ValueError(f"cannot render {kind!r} chunk by chunk; use csv or jsonl")
    with tempfile.TemporaryDirectory(prefix="expc-out-") as folder:
        for data, _ in _rendered(chunks, kind, Path(folder), Path(name)):
            yield data


def _rendered(chunks: Iterable[dict[str, np.ndarray]], kind: str, scratch: Path,
              path: Path) -> Iterator[tuple[bytes, int]]:
    """(bytes, rows) of each chunk in CSV or JSON Lines, by DuckDB's COPY (one small file in ``scratch``)."""
    import duckdb

    part = scratch / f"part.{kind}"
    con = duckdb.connect()
    try:
        for i, columns in enumerate(chunks):
            table, select = _output_table(columns, kind)
            options = _OPTIONS[kind] if i == 0 else _OPTIONS[kind].replace("HEADER true", "HEADER false")
            con.register("chunk", table)
            try:
                _copy(con, f"COPY (SELECT {select} FROM chunk) TO {_literal(str(part))} ({options}, "
                           "USE_TMP_FILE false)")
            except duckdb.Error as exc:
                raise _write_error(exc, path) from None
            finally:
                con.unregister("chunk")
            yield part.read_bytes(), len(next(iter(table.values())))
    finally:
        con.close()
        part.unlink(missing_ok=True)


def _output_table(columns: dict[str, np.ndarray], kind: str) -> tuple[dict[str, np.ndarray], str]:
    """The arrays to register with DuckDB (as ``c0``, ``c1``, ...) and the SELECT list that writes them:
    text nulls and "" as null, NaN as null, CSV cells defused against spreadsheet formulas."""
    if not columns:
        raise ValueError("no columns to write")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"columns of different lengths: { {k: len(v) for k, v in columns.items()} }")
    table, select = {}, []
    for i, (name, values) in enumerate(columns.items()):
        key = f"c{i}"
        array = np.asarray(values)
        if array.dtype.kind in "US":  # fixed-width numpy text would become a DuckDB ENUM
            array = array.astype(object)
        table[key] = array
        col = _ident(key)
        if array.dtype.kind == "O":
            expr = f"NULLIF(CAST({col} AS VARCHAR), '')"
            if kind == "csv":
                expr = _csv_text(expr)
        elif array.dtype.kind == "f":
            expr = f"CASE WHEN isnan({col}) THEN NULL ELSE {col} END"
        else:
            expr = col
        select.append(f"{expr} AS {_ident(name)}")
    return table, ", ".join(select)


def _check_folder(path: Path) -> None:
    """:class:`DataError` when the folder that would hold ``path`` does not exist (or a file is in the way)."""
    folder = path.parent
    if not folder.is_dir():
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker else f"the folder {folder} does not exist"
        raise DataError(f"{path}: cannot write: {why}", path)


def _write_error(exc: Exception, path: Path) -> DataError:
    """A DuckDB error while writing ``path`` -> one line naming it (the system's reason when there is one)."""
    code = re.search(r'"errno"\s*:\s*"?([0-9]+)', str(exc))
    if code:
        return DataError(f"{path}: cannot write: {os.strerror(int(code.group(1)))}", path)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(f"{path}: could not write the file ({first})", path)


def _csv_text(expr: str) -> str:
    """SQL that puts a ``'`` before a text cell a spreadsheet would take for a formula (not before a number)."""
    # A regular expression, not `left(x, 1) IN (..., chr(9))`: DuckDB turns that IN list into a join,
    # which does not keep the rows in order.
    return (f"CASE WHEN regexp_matches({expr}, '^[-=+@\\t\\r]') "
            f"AND NOT regexp_full_match({expr}, '[+-]?[0-9]+([.][0-9]+)?') THEN '''' || {expr} ELSE {expr} END")


def copy_atomic(con: Any, query: str, path: Path, options: str) -> None:
    """Write ``query``'s rows to ``path`` with DuckDB's COPY (``options``, e.g. ``FORMAT parquet``), atomically.

    The rows go to a hidden temporary file of our own next to ``path``, which
    then replaces it (:func:`expc.runtime.files.atomic_path`): the file appears
    complete or not at all, and a failure leaves no temporary file behind. A
    device or FIFO is written into, never replaced; a link to a file is
    refused. Raises :class:`DataError` naming ``path`` when it cannot be
    written or the COPY fails.
    """
    import duckdb

    from .files import OutputError, atomic_path

    try:
        with atomic_path(path) as tmp:  # already a temporary file: DuckDB need not make its own (tmp_...)
            _copy(con, f"COPY ({query}) TO {_literal(str(tmp))} ({options}, USE_TMP_FILE false)")
    except duckdb.Error as exc:
        raise _write_error(exc, path) from None
    except OutputError as exc:
        raise DataError(str(exc), path) from None


def _copy(con: Any, sql: str) -> None:
    """Run DuckDB's COPY (a seam for tests that simulate a failure half-way)."""
    con.execute(sql)
