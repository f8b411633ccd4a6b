"""What an engine is: somewhere the reduction's one query runs, over exposures and events it can read.

The reduction (:mod:`expc.runtime.stats.reduction_sql`) is one ``SELECT`` in
the engine's SQL dialect over two relations with the standard columns
(``exposures``: ``unit_id``, ``variant``, ``timestamp``; ``events``:
``unit_id``, ``event``, ``timestamp``, ``value``). An :class:`Engine` does two
things:

* :meth:`Engine.relation` turns a :class:`~expc.compiler.model.DataSource`
  (a table, a query, or a file or folder of files) into the ``SELECT`` that
  gives that relation, after checking that the columns it needs are there
  (a :class:`~expc.runtime.tables.DataError` names the source, what it lacks
  and what it has);
* :meth:`Engine.query` runs a query and returns its column names and rows.

Tables and queries are read the same way by every engine
(:meth:`Engine.source_relation`); files need the engine's own reader, so an
engine that reads files overrides :meth:`Engine.file_relation`. An engine
over any DB-API connection is :class:`~expc.runtime.engines.dbapi.DbApiEngine`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expc.compiler.datasources import FILE_FORMATS
from expc.compiler.errors import ExpcError
from expc.compiler.model import OPTIONAL_COLUMNS, STANDARD_COLUMNS, DataSource

from ..tables import DataError, _names

if TYPE_CHECKING:
    from sqlglot import exp



class EngineError(ExpcError):
    """An engine that cannot be used here: not installed, no Java, no connection (exit 2 unless told)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message, exit_code)


def describe(source: DataSource, what: str) -> str:
    """How messages name a source: the file's path, ``table `x```, or ``the data.events query``."""
    if source.path is not None:
        return source.path
    if source.table is not None:
        return f"table `{source.table}`"
    return f"the data.{what} query"


def file_format(source: DataSource, what: str) -> str:
    """The format of a path source: ``format``, else the extension, else that of the files in the folder.

    Raises :class:`DataError` when it cannot be told.
    """
    if source.format is not None:
        return source.format
    path = Path(source.path or "")
    kind = FILE_FORMATS.get(path.suffix.lower())
    if kind is None and path.is_dir():
        kinds = {FILE_FORMATS[p.suffix.lower()] for p in _files_in(path)}
        if len(kinds) == 1:
            kind = kinds.pop()
    if kind is None:
        found = ("the files in this folder" if path.is_dir() else
                 f"`{path.suffix}` files" if path.suffix else "files without an extension")
        raise DataError(f"{path}: cannot read {what} from {found}; use .csv, .jsonl (or .ndjson) or .parquet, "
                        "or say `format:` in the spec's data section", path)
    return kind


def _files_in(folder: Path, limit: int = 10_000) -> list[Path]:
    """Data files under ``folder`` (partitioned folders too), at most ``limit`` looked at; hidden ones skipped."""
    found = []
    for i, p in enumerate(folder.rglob("*")):
        if i >= limit:
            break
        if p.is_file() and p.suffix.lower() in FILE_FORMATS and not p.name.startswith(("_", ".")):
            found.append(p)
    return found


def relation_columns(what: str, value: bool, extra: Sequence[str] = ()) -> list[str]:
    """The columns of the typed relation ``what`` an engine reads: its standard and optional ones, then ``extra``.

    ``units`` (a units file, for segment attributes) has only ``unit_id`` besides them.
    """
    if what == "units":
        return ["unit_id", *extra]
    return needed_columns(what, value) + list(OPTIONAL_COLUMNS[what]) + list(extra)


def absent_columns(what: str, source: DataSource, has: Collection[str]) -> list[str]:
    """The optional columns a source lacks (read as NULL), and ``variant`` when ``variation_id`` stands for it."""
    if what not in OPTIONAL_COLUMNS:
        return []
    absent = [c for c in OPTIONAL_COLUMNS[what] if source.columns.get(c, c) not in has]
    if what == "exposures" and "variation_id" not in absent and source.columns.get("variant", "variant") not in has:
        absent.append("variant")
    return absent


def needed_columns(what: str, value: bool) -> list[str]:
    """The standard columns of ``what`` the reduction reads (``value`` only when some metric sums values)."""
    return [c for c in STANDARD_COLUMNS[what] if value or c != "value"]


def missing_columns_error(source: DataSource, what: str, missing: list[str], has: list[str],
                          alternatives: dict[str, str] | None = None) -> DataError:
    """The one line for a source that lacks columns: which (with any other name each may have), and what it has."""
    alternatives = alternatives or {}
    lack = ", ".join(f"`{c}`" + (f" (or `{alternatives[c]}`)" if c in alternatives else "") for c in missing)
    kind = "file" if source.path is not None else ("table" if source.table is not None else "query")
    return DataError(f"{describe(source, what)}: the {what} {kind} lacks the column{'s' * (len(missing) > 1)} "
                     f"{lack}; it has {_names(has) if has else 'none'} (a column of another name is mapped "
                     "with `columns:` in the spec's data section)", source.path)


class Engine(ABC):
    """Where the reduction runs (see the module documentation)."""

    name: str
    """The engine's name, as ``--engine`` takes it."""
    dialect: str
    """The SQL dialect its queries are written in (one of :data:`~expc.compiler.model.DIALECTS`)."""

    @abstractmethod
    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one query; its column names and rows. An error in the engine is a :class:`DataError`."""

    def columns(self, query: exp.Query) -> list[str]:
        """The column names ``query`` returns (it is run with ``LIMIT 0``)."""
        return self.query(query.limit(0).sql(dialect=self.dialect))[0]

    @abstractmethod
    def close(self) -> None:
        """Release the connection (the engine cannot be used after)."""

    def relation(self, what: str, source: DataSource, *, unit: str, value: bool, events: list[str],
                 repeated: bool = False, read: str | None = None, extra: Sequence[str] = ()) -> tuple[exp.Query, Any]:
        """The ``SELECT`` of relation ``what`` from ``source``, and a handle for :meth:`timestamp_problem`.

        ``unit`` is the experiment's unit column (files may name the id so
        instead of ``unit_id``), ``value`` whether ``value`` is read,
        ``events`` the metrics' events (a file reader may skip other rows);
        ``repeated`` that several cut-offs will read it (an engine may cache
        the rows); ``read`` is the dialect a table's name or a query is
        written in (the spec's ``data.dialect``); ``extra`` columns (segment
        attributes) are read as text beside the standard ones. Raises
        :class:`DataError` for a source it cannot read or that lacks a column.
        """
        if source.path is not None:
            return self.file_relation(what, source, unit=unit, value=value, events=events, repeated=repeated,
                                      extra=extra)
        return self.source_relation(what, source, value=value, read=read, extra=extra), None

    def source_relation(self, what: str, source: DataSource, *, value: bool, read: str | None = None,
                        extra: Sequence[str] = ()) -> exp.Query:
        """A table or query source (in dialect ``read``), with its column mapping, once its columns are checked."""
        from sqlglot import exp

        from expc.runtime.stats.reduction_sql import input_query

        selected = input_query(what, source, self.dialect, value=value, read=read, extra=extra)
        origin = selected.args["from_"].this.copy()
        try:
            has = self.columns(exp.select("*").from_(origin))
        except DataError as exc:
            raise DataError(f"{describe(source, what)}: {exc}") from None
        absent = absent_columns(what, source, has)
        missing = [c for c in [*needed_columns(what, value), *extra]
                   if c not in absent and source.columns.get(c, c) not in has]
        if missing:
            raise missing_columns_error(source, what, missing, has)
        return input_query(what, source, self.dialect, value=value, read=read, extra=extra, absent=absent)

    def file_relation(self, what: str, source: DataSource, *, unit: str, value: bool, events: list[str],
                      repeated: bool, extra: Sequence[str] = ()) -> tuple[exp.Query, Any]:
        """A path source (an engine that reads files overrides this)."""
        raise DataError(f"{source.path}: the {self.name} engine reads tables and queries, not files; "
                        f"load the file into a table, or use --engine duckdb", source.path)

    def timestamp_problem(self, what: str, source: DataSource, handle: Any, rows: int) -> str:
        """Why none of ``rows`` rows of ``what`` has a timestamp that can be read (for the error's message)."""
        return (f"{describe(source, what)}: none of the {rows:,} {what} rows has a `timestamp` that can be read; "
                "timestamps should be timestamps (in UTC) or ISO 8601 text, such as 2026-11-28T14:05:00Z")
