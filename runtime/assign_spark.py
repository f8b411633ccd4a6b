"""Assignment on Apache Spark: ``expc assign SPEC --units U --engine spark``.

The units are read by Spark's readers (a CSV, JSON Lines or Parquet file, or a
folder of them, Hive-partitioned folders too) and assigned in Spark's
partitions, in parallel: each partition hands its rows to Python as Arrow
batches (``DataFrame.mapInArrow``), where they are typed and checked by the
same SQL as the embedded path (:class:`expc.runtime.tables._Reader`, run by an
in-process DuckDB on the batch) and assigned by the same numpy code
(:func:`expc.runtime.assign.assign`: audience condition, layer, hashing,
coverage). No Python runs per row, and the answer is the embedded path's, unit
for unit: each unit's outcome depends on that unit alone.

Reading, by format:

* **CSV**: a header; every cell text (``""`` and an empty cell are null), as
  the embedded reader. Spark splits a large file between its tasks, so a
  quoted cell may not hold a line break.
* **JSON Lines** (``.jsonl``, ``.ndjson``, and ``.json`` in a folder): Spark
  reads the lines as text; each is parsed once, in DuckDB, into the declared
  keys, as the embedded reader does. Blank lines are skipped; a line that is
  not a JSON object, or that gives a declared key twice, is refused.
* **Parquet**: native columns, as Spark reads them (timestamps without a time
  zone stay so).

Every check of the embedded path holds for the whole input before anything is
written: no units, a missing unit id column (named, with the columns the file
has), a value that does not fit its declared type, an integer id beyond
2**53 - 1, a null or empty id, an id on two rows (found with one shuffle of
the ids) and an attribute the audience needs that the units lack. Each is one
line naming the file and the line (CSV, JSON Lines) or row (Parquet). The
typed and assigned rows are cached by Spark meanwhile (memory, then disk), so
the input is read once.

Where the assignments go:

* a file (``-o assignments.parquet``, ``.csv``, ``.jsonl``) or stdout (CSV):
  the rows are collected to this process, in input order, and written by the
  embedded writer (:func:`expc.runtime.tables.write_assignment_chunks`): the
  same bytes as ``--engine duckdb``. The collected rows (about 50 bytes a unit)
  must fit this process's memory: up to some tens of millions of units.
* a folder (a path ending in ``/``, named with the format's extension:
  ``-o assignments.parquet/``): Spark's tasks write it in parallel, as part
  files (``part-*.parquet``, ``.csv`` with a header, or ``.json`` with one
  object a line), with the file's columns and values, made by the embedded
  writer's SQL (an empty variant and a NaN bucket are null; CSV cells defused
  against spreadsheet formulas; a CSV bucket written as DuckDB writes it). In
  JSON a bucket is a number as Spark writes it (``2.0E-4`` for ``0.0002``).
  This is the way for a 100-million-unit campaign: nothing passes through
  this process. A local folder is written beside its target and renamed when
  complete; an existing one is never replaced. Rows are in input order within
  each part; the parts follow Spark's partitions.

A path in a cluster's storage (``s3a://``, ``gs://``, ``hdfs://``, ...) is read
as given, its format told by its extension (for a folder, name its files:
``s3a://bucket/units/*.parquet``); only a local file or folder is looked at
by this process (UTF-8, depth of the files, line numbers in messages).

In local mode (``local[*]``) the Python workers are this interpreter; on a
cluster or through Spark Connect, the executors' Python needs expc (``pip
install expc`` where they run). Input order: a single file keeps its order
(Spark splits it in order); the order of a folder's files is Spark's.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from expc.compiler.diagnostics import did_you_mean

from .assign import ASSIGNED, NOT_IN_AUDIENCE, REASONS, Assignment, assign, check_attributes, output_columns
from .engines.base import FILE_FORMATS, _files_in
from .engines.spark import spark_ident
from .tables import (
    CHUNK_ROWS,
    FORMATS,
    MAX_SAFE_INTEGER,
    DataError,
    _check_readable,
    _explain,
    _ident,
    _json_path,
    _line_numbers,
    _literal,
    _names,
    _output_table,
    _Reader,
    _show,
)

if TYPE_CHECKING:
    from expc.compiler.plan import Plan

_POS = "_expc_pos"
_ID = "_expc_id"
_EXAMPLES = 3
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_KIND_NAMES = {"csv": "CSV", "jsonl": "JSON Lines", "parquet": "Parquet"}

#: What each partition hands back, per unit: the output row (id, variant, bucket), why it is (not) in, where
#: it was read, and what the checks need (null on every row that passes them).
OUTPUT_SCHEMA = (f"{_ID} STRING, variant STRING, bucket DOUBLE, reason TINYINT, {_POS} BIGINT, "
                 "missing BOOLEAN, bad_column INT, bad_value STRING, unsafe STRING, problem STRING, "
                 "keys ARRAY<STRING>")


def folder_output(path: str) -> bool:
    """Whether ``-o path`` names a folder for Spark to write (it ends with ``/``) rather than one file."""
    return path.endswith(("/", os.sep))


def assign_spark(plan: Plan, units: str | os.PathLike[str],
                 write: Callable[[Iterator[dict[str, np.ndarray]]], Any] | None = None, *,
                 folder: str | None = None, spark: Any = None) -> dict[str, Any]:
    """Assign the units of a file or folder on Spark; the counts, as :func:`expc.runtime.assign.assign_file`.

    Give either ``write``, which receives the :func:`~expc.runtime.assign.output_columns` tables in input
    order, in chunks, as :func:`~expc.runtime.assign.assign_file` gives them (the rows pass through this
    process), or ``folder``, a path ending in ``/`` whose extension names the format, for Spark to write
    in parallel. ``spark`` is the SparkSession (default: :func:`expc.runtime.engines.spark.session`, which
    raises :class:`~expc.runtime.engines.EngineError` when Spark cannot run here). Every check passes
    before anything is written; a problem with the units is a :class:`~expc.runtime.tables.DataError`.
    """
    if (write is None) == (folder is None):
        raise ValueError("give either write or folder")
    if spark is None:
        from .engines.spark import session

        spark = session()
    if folder is not None:
        _output_format(folder)
    source = _Source(spark, str(units), plan)
    job = _Job(spark, source, plan)
    try:
        counts = job.check()
        if folder is not None:
            job.write_folder(folder)
        else:
            assert write is not None
            write(job.tables())
    finally:
        job.close()
    return counts


# ====================================================================== the input


class _Source:
    """The units' file or folder as a Spark DataFrame of the declared attributes it has, with each row's
    position (``_expc_pos``); what the typing SQL needs to know about its columns."""

    def __init__(self, spark: Any, path: str, plan: Plan) -> None:
        self.spark, self.name, self.plan = spark, path, plan
        self.types = dict(plan.attributes)
        self.unit = plan.assignment.unit
        self.remote = bool(_URI.match(path))
        self.path = Path(path)
        self.folder = not self.remote and self.path.is_dir()
        self.kind = self._kind()
        if not self.remote and not self.folder:
            _check_readable(self.path)
            if self.kind in ("csv", "jsonl"):
                self._check_utf8()
        self.raw = self._read()
        self.present = [c for c in self.types if c in self.raw.columns]
        if self.kind != "jsonl" and self.unit not in self.present:
            raise self._missing_unit(self.all_columns)
        self.file_types = self._file_types()
        self.checks = self._checks()

    # ------------------------------------------------------------ reading

    def _kind(self) -> str:
        """The format: the file's extension, or that of the files in the folder (all at one depth)."""
        if self.folder:
            files = _files_in(self.path)
            kinds = {FILE_FORMATS[p.suffix.lower()] for p in files}
            if len(kinds) != 1:
                found = "no .csv, .jsonl or .parquet files" if not kinds else "files of several formats"
                raise DataError(f"{self.name}: cannot read units from this folder: it holds {found}; "
                                "give a folder of .csv, .jsonl (or .ndjson) or .parquet files", self.name)
            depths = {len(p.relative_to(self.path).parts): p for p in files}
            if len(depths) > 1:  # Spark would leave out some of the files' rows without a word
                shallow, deep = depths[min(depths)], depths[max(depths)]
                raise DataError(f"{self.name}: holds data files at different depths ({shallow.relative_to(self.path)} "
                                f"and {deep.relative_to(self.path)}); Spark reads a folder whose files are all at "
                                "one level, or in partition folders (key=value) of one depth: move them", self.name)
            return kinds.pop()
        suffix = Path(self.name.rstrip("/")).suffix.lower()
        kind = FORMATS.get(suffix) or (FILE_FORMATS.get(suffix) if self.remote else None)
        if kind is None:
            found = f"`{suffix}` files" if suffix else "files without an extension"
            raise DataError(f"{self.name}: cannot read units from {found}; use .csv, .jsonl (or .ndjson) "
                            "or .parquet", self.name)
        return kind

    def _check_utf8(self) -> None:
        """Spark would read bytes that are not UTF-8 as U+FFFD; the embedded reader refuses them, so do we."""
        from .tables import _first_non_utf8

        bad = _first_non_utf8(self.path)
        if bad is not None:
            raise _explain(RuntimeError("not UTF-8"), self.path, self.kind)

    def _read(self) -> Any:
        """The rows as Spark reads them (declared columns only, each row's position), or a one-line error."""
        from pyspark.sql import functions as F

        reader = self.spark.read.option("mode", "FAILFAST")
        if self.folder:
            reader = reader.option("pathGlobFilter", "*.{" + ",".join(
                ext[1:] for ext, kind in FILE_FORMATS.items() if kind == self.kind) + "}")
        try:
            if self.kind == "csv":
                raw = (reader.option("header", True).option("inferSchema", False).option("escape", '"')
                       .option("multiLine", False).csv(self.name))
                if raw.columns and raw.columns[0].startswith("\ufeff"):  # a byte-order mark in the header
                    raw = raw.withColumnRenamed(raw.columns[0], raw.columns[0][1:])
            elif self.kind == "parquet":
                raw = reader.parquet(self.name)
            else:
                raw = reader.text(self.name)
            self.all_columns = list(raw.columns)
            if self.kind == "jsonl":
                keep = ["value"]
            else:
                keep = [c for c in self.types if c in raw.columns]
            return raw.select(*[F.col(spark_ident(c)) for c in keep], F.monotonically_increasing_id().alias(_POS))
        except Exception as exc:
            raise self.read_error(exc) from None

    def read_error(self, exc: BaseException) -> DataError:
        """An error from Spark while reading -> one line naming the input (what is wrong with a local file).

        An exception in expc's own code on a worker is raised as it is: it is a bug, not the file's fault.
        """
        from pyspark.errors import PythonException

        if isinstance(exc, PythonException):
            raise exc
        first = _first_line(exc)
        if "PATH_NOT_FOUND" in first or "does not exist" in first:
            return DataError(f"{self.name}: no such file or folder", self.name)
        if not self.folder and not self.remote:
            return _explain(RuntimeError(first), self.path, self.kind, self.unit, self.types)
        return DataError(f"{self.name}: cannot be read as {_KIND_NAMES[self.kind]} ({first})", self.name)

    def _missing_unit(self, columns: list[str]) -> DataError:
        there = _names(columns) if columns else "none"
        message = f"the unit id column `{self.unit}` is missing; the file has the columns {there}"
        hint = None
        if self.kind == "csv" and len(columns) == 1:
            separator = next((s for s in (";", "\t", "|") if s in columns[0]), None)
            if separator:
                hint = f"expc reads comma-separated files, and this one looks separated by {separator!r}"
        hint = hint or did_you_mean(self.unit, columns)
        return DataError(f"{self.name}: {message}" + (f"; {hint}" if hint else ""), self.name)

    # ------------------------------------------------------------ typing

    def _file_types(self) -> dict[str, str]:
        """The DuckDB type of each declared column as the typing SQL sees it: text in CSV, JSON values in
        JSON Lines, and for Parquet the type DuckDB gives Spark's Arrow column."""
        if self.kind == "csv":
            return {name: "VARCHAR" for name in self.present}
        if self.kind == "jsonl":
            return {name: "JSON" for name in self.types}
        import duckdb
        from pyspark.sql.pandas.types import to_arrow_schema

        schema = to_arrow_schema(self.raw.drop(_POS).schema)
        con = duckdb.connect()
        try:
            con.register("batch", schema.empty_table())
            return {r[0]: r[1] for r in con.execute("DESCRIBE SELECT * FROM batch").fetchall()}
        finally:
            con.close()

    def _checks(self) -> list[tuple[str, str, bool]]:
        """What each index of a row's ``bad_column`` stands for: (attribute, "value" or "column", quote it),
        the order in which :class:`_Reader` tests them."""
        reader = _BatchReader(None, self.kind, self.types, self.unit, self.file_types)
        checks = []
        for name in self.file_types:
            _, _, text, quote, what = reader._typed(name, self.types[name], _ident(name))
            if text is not None:
                checks.append((name, what, quote))
        return checks

    # ------------------------------------------------------------ where

    def where(self, positions: list[int]) -> tuple[str, str]:
        """Where the rows at these positions (from 0, in Spark's order: the file's) are, for a message: the file
        and ``line 4``, ``lines 2 and 7`` or ``row 3``; rows in several files of a folder: the folder and
        ``a.csv line 2 and b.csv line 5``. Spark jobs over the input, only to word an error."""
        from pyspark.sql import functions as F

        if not (self.folder or self.remote):
            return self.name, _lines(self._numbers(self.raw, positions, self.path), self.kind)
        files = dict(self.raw.where(F.col(_POS).isin(positions)).select(_POS, F.input_file_name()).collect())
        groups: dict[str, list[int]] = {}
        for p in positions:
            groups.setdefault(files.get(p, ""), []).append(p)
        found = []
        for file, ps in sorted(groups.items()):
            name = _local_name(file)
            numbers = self._numbers(self.raw.where(F.input_file_name() == file), ps, Path(name))
            found.append((name, _lines(numbers, self.kind)))
        if len(found) == 1:
            return found[0]
        shown = [f"{os.path.relpath(name, self.name) if not self.remote else name} {at}" for name, at in found]
        return self.name, ", ".join(shown[:-1]) + " and " + shown[-1]

    def _numbers(self, rows: Any, positions: list[int], path: Path) -> list[int]:
        """The line (CSV, JSON Lines) or row (Parquet) of each position among ``rows``, those of one file."""
        from pyspark.sql import functions as F

        before = rows.agg(*[F.count(F.when(F.col(_POS) < p, 1)) for p in positions]).collect()[0]
        index = [int(b) for b in before]
        if self.kind == "csv" and path.is_file():  # records to lines: quoted line breaks, blank lines
            return _line_numbers(path, "csv", index)
        return [i + 1 for i in index]  # Parquet rows; JSON Lines: every line is a row of Spark's text reader


def _lines(numbers: list[int], kind: str) -> str:
    """``line 4``, ``lines 2, 3 and 7``, or ``row``/``rows`` for Parquet."""
    noun = "row" if kind == "parquet" else "line"
    if len(numbers) == 1:
        return f"{noun} {numbers[0]}"
    return f"{noun}s {', '.join(map(str, numbers[:-1]))} and {numbers[-1]}"


def _local_name(uri: str) -> str:
    """A path as Spark names its file (``file:///...``), as a person would (the local path)."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


# ====================================================================== each partition


class _BatchReader(_Reader):
    """The embedded reader's typing SQL over one batch of rows already in DuckDB (the view ``raw``): it builds
    the table ``u`` of typed values with, per row, the first column that does not fit and an inexact integer
    id; the checks themselves run over the whole input in Spark (:class:`_Job`)."""

    def __init__(self, con: Any, kind: str, types: Mapping[str, str], unit: str,
                 file_types: Mapping[str, str]) -> None:
        super().__init__(con, Path("<batch>"), kind, types, unit)
        self.file_types = dict(file_types)

    def _source(self) -> dict[str, str]:
        self.source = "raw"
        self.file_columns = list(self.file_types)
        return {name: _ident(name) for name in self.types if name in self.file_types}

    def _json_keys_present(self, names: list[str]) -> set[str]:
        return set(names)  # a key that no line of the batch has is null on every row: the same outcome

    def _check_values(self) -> None:
        pass

    def _check_unsafe_ids(self) -> None:
        pass

    def _check_ids(self) -> None:
        pass


class _Partition:
    """What each Spark partition runs on its Arrow batches (picklable: plain data only)."""

    def __init__(self, plan: Plan, kind: str, file_types: dict[str, str]) -> None:
        self.plan_data = plan.to_dict()
        self.kind, self.file_types = kind, file_types

    def __call__(self, batches: Iterable[Any]) -> Iterator[Any]:
        """Type, check and assign the partition's rows, a chunk of up to :data:`CHUNK_ROWS` at a time."""
        pa = _arrow()

        from expc.compiler.plan import Plan

        plan = Plan.from_dict(self.plan_data)
        pending: list[Any] = []
        size = 0
        for batch in batches:
            pending.append(batch)
            size += batch.num_rows
            if size >= CHUNK_ROWS:
                yield from self._chunk(plan, pa.Table.from_batches(pending))
                pending, size = [], 0
        if size:
            yield from self._chunk(plan, pa.Table.from_batches(pending))

    def _chunk(self, plan: Plan, table: Any) -> Iterator[Any]:
        import duckdb

        unit = plan.assignment.unit
        types = dict(plan.attributes)
        con = duckdb.connect()
        try:
            con.register("batch", table)
            problem, keys = self._raw_view(con, types)
            positions = con.sql(f"SELECT {_ident(_POS)} FROM rows").to_arrow_table().column(0)
            if not len(positions):
                return
            reader = _BatchReader(con, self.kind, types, unit, self.file_types)
            reader.load()
            units = reader.fetch()
            con.execute("SELECT 1").fetchall()  # the reader leaves a result open; DuckDB wants it finished
            try:
                result = assign(plan, units)
            except DataError:  # the units lack an attribute the audience needs: refused once all is read
                result = Assignment(np.full(len(units), -1), np.full(len(units), np.nan),
                                    np.full(len(units), NOT_IN_AUDIENCE, dtype=np.uint8))
            columns = output_columns(plan, units, result)
            uid = _ident(unit)
            has = _columns(con, "u")
            flags = con.sql(
                f"SELECT ({uid} IS NULL" + (f" OR {uid} = ''" if types[unit] != "integer" else "") + ") AS missing, "
                + (f"{_ident('bad column')} AS bad_column, {_ident('bad value')} AS bad_value, "
                   if "bad column" in has else "NULL::INTEGER AS bad_column, NULL::VARCHAR AS bad_value, ")
                + (f"{_ident('unsafe id')} AS unsafe" if "unsafe id" in has else "NULL::VARCHAR AS unsafe")
                + " FROM u").to_arrow_table()
            out: dict[str, Any] = {_ID: columns[unit], "variant": columns["variant"], "bucket": columns["bucket"]}
            out["reason"] = result.reason.astype(np.int8)
            out[_POS] = positions
            out.update((name, flags.column(name)) for name in ("missing", "bad_column", "bad_value", "unsafe"))
            out["problem"] = problem
            out["keys"] = [keys] + [None] * (len(positions) - 1)  # the batch's keys, once
            yield _batch(out)
        finally:
            con.close()

    def _raw_view(self, con: Any, types: Mapping[str, str]) -> tuple[Any, list[str] | None]:
        """The view ``raw`` of the batch's raw values (and ``rows``, its positions in the same order); for JSON
        Lines, each line's problem (null when it is a JSON object) and the declared keys some line has."""
        pa = _arrow()

        pos = _ident(_POS)
        if self.kind == "csv":  # "" is null, as DuckDB reads CSV; Hive partition values may come typed
            cells = ", ".join(f"NULLIF(CAST({_ident(c)} AS VARCHAR), '') AS {_ident(c)}" for c in self.file_types)
            con.execute(f"CREATE VIEW rows AS SELECT {pos} FROM batch")
            con.execute(f"CREATE VIEW raw AS SELECT {cells} FROM batch")
            return pa.nulls(_rows_count(con), pa.string()), None
        if self.kind == "parquet":
            con.execute(f"CREATE VIEW rows AS SELECT {pos} FROM batch")
            con.execute("CREATE VIEW raw AS SELECT * EXCLUDE (" + pos + ") FROM batch")
            return pa.nulls(_rows_count(con), pa.string()), None
        names = list(types)
        declared = "[" + ", ".join(_literal(k) for k in names) + "]"
        paths = "[" + ", ".join(_literal(_json_path(k)) for k in names) + "]"
        # Each line parsed once: its type, its keys (a declared key given twice is refused, as the embedded
        # reader refuses it) and the declared keys' values.
        con.execute(f"""
            CREATE TABLE lines AS
            SELECT {pos}, CASE WHEN NOT json_valid(l) THEN 'invalid'
                               WHEN json_type(l::JSON) <> 'OBJECT' THEN 'not an object' END AS problem, l
            FROM (SELECT {pos}, ltrim(value, chr(65279)) AS l FROM batch) WHERE trim(l) <> ''""")
        con.execute(f"""
            CREATE TABLE rows AS
            SELECT {pos}, coalesce(problem, CASE WHEN len(ks) > len(list_distinct(ks))
                THEN 'twice:' || list_filter({declared}, lambda d: len(list_filter(ks, lambda k: k = d)) > 1)[1] END)
                AS problem, x
            FROM (SELECT {pos}, problem,
                         CASE WHEN problem IS NULL
                              THEN list_filter(json_keys(l::JSON), lambda k: list_contains({declared}, k)) END AS ks,
                         CASE WHEN problem IS NULL THEN json_extract(l::JSON, {paths}) END AS x
                  FROM lines)""")
        values = ", ".join(f"CASE WHEN json_type(x[{i + 1}]) = 'NULL' THEN NULL ELSE x[{i + 1}] END AS {_ident(k)}"
                           for i, k in enumerate(names))
        con.execute(f"CREATE VIEW raw AS SELECT {values} FROM rows")
        present = con.execute("SELECT " + ", ".join(f"bool_or(x[{i + 1}] IS NOT NULL)" for i in range(len(names)))
                              + " FROM rows").fetchall()[0]
        keys = [k for k, there in zip(names, present or ()) if there]
        problem = con.sql("SELECT problem FROM rows").to_arrow_table().column(0)
        return problem, keys


def _rows_count(con: Any) -> int:
    """The number of rows of the view ``rows``."""
    return int(con.execute("SELECT count(*) FROM rows").fetchall()[0][0])


def _columns(con: Any, table: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]


def _batch(columns: dict[str, Any]) -> Any:
    """An Arrow batch of :data:`OUTPUT_SCHEMA` from its columns (arrays, chunked arrays, lists or None)."""
    pa = _arrow()

    types = {_ID: pa.string(), "variant": pa.string(), "bucket": pa.float64(),
             "reason": pa.int8(), _POS: pa.int64(), "missing": pa.bool_(), "bad_column": pa.int32(),
             "bad_value": pa.string(), "unsafe": pa.string(), "problem": pa.string(),
             "keys": pa.list_(pa.string())}
    n = len(columns[_ID])
    arrays = []
    for name, typ in types.items():
        column = columns[name]
        if column is None:
            arrays.append(pa.nulls(n, typ))
        elif isinstance(column, (pa.Array, pa.ChunkedArray)):
            arrays.append(_flat(column, typ))
        else:
            arrays.append(pa.array(column, type=typ))
    return pa.RecordBatch.from_arrays(arrays, names=list(types))


def _flat(column: Any, typ: Any) -> Any:
    """One Arrow array of type ``typ`` from a (chunked) column."""
    pa = _arrow()

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column if column.type == typ else column.cast(typ)


# ====================================================================== the job


class _Job:
    """The assigned rows of the whole input, cached by Spark; the checks over them; then the output."""

    def __init__(self, spark: Any, source: _Source, plan: Plan) -> None:
        from pyspark import StorageLevel

        self.spark, self.source, self.plan = spark, source, plan
        partition = _Partition(plan, source.kind, source.file_types)
        self.rows = source.raw.mapInArrow(partition, OUTPUT_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK)

    def close(self) -> None:
        """Drop the cached rows."""
        self.rows.unpersist()

    def _collect(self, frame: Any) -> list[Any]:
        try:
            return frame.collect()
        except Exception as exc:
            raise self.source.read_error(exc) from None

    def check(self) -> dict[str, Any]:
        """Every check of the embedded path over all the rows (:class:`DataError` for the first that fails);
        the counts per variant and per reason."""
        from pyspark.sql import functions as F

        source, plan = self.source, self.plan
        variant_ids = [v.id for v in plan.variants]
        col = F.col
        summary = self._collect(self.rows.agg(
            F.count(F.lit(1)).alias("n"),
            F.min(F.when(col("problem").isNotNull(), col(_POS))).alias("problem"),
            F.count(F.when(col("missing"), 1)).alias("missing"),
            F.min("bad_column").alias("bad_column"),
            F.count(col("unsafe")).alias("unsafe"),
            F.array_distinct(F.flatten(F.collect_list("keys"))).alias("keys"),
            *[F.count(F.when(col("reason") == k, 1)).alias(f"reason{k}") for k in range(len(REASONS))],
            *[F.count(F.when((col("reason") == ASSIGNED) & (col("variant") == v), 1)).alias(f"variant{i}")
              for i, v in enumerate(variant_ids)]))[0]
        n = int(summary["n"])
        if source.kind == "jsonl" and summary["problem"] is not None:
            self._bad_line(int(summary["problem"]))
        if n == 0:
            header = source.kind == "csv" and bool(source.all_columns)
            raise DataError(f"{source.name}: " + ("the file has a header but no units" if header
                                                  else "the file has no units"), source.name)
        attributes = source.present
        if source.kind == "jsonl":
            attributes = [k for k in source.types if k in set(summary["keys"] or [])]
            if source.unit not in attributes:
                raise source._missing_unit(self._json_keys())
        if summary["bad_column"] is not None:
            self._bad_value(int(summary["bad_column"]))
        if summary["unsafe"]:
            self._unsafe(int(summary["unsafe"]))
        if summary["missing"]:
            self._missing(int(summary["missing"]))
        self._duplicates()
        check_attributes(plan, attributes, source.name)
        return {
            "units": n,
            "assigned": {v: int(summary[f"variant{i}"]) for i, v in enumerate(variant_ids)},
            "excluded": {REASONS[k]: int(summary[f"reason{k}"]) for k in range(1, len(REASONS))},
        }

    # ------------------------------------------------------------ the checks' messages

    def _error(self, name: str, message: str) -> DataError:
        return DataError(f"{name}: {message}", name)

    def _bad_line(self, position: int) -> None:
        from pyspark.sql import functions as F

        source = self.source
        if not source.folder and not source.remote:  # the embedded reader's own words for a local file
            raise _explain(RuntimeError("a bad line"), source.path, "jsonl", source.unit, source.types)
        problem = self._collect(self.rows.where(F.col(_POS) == position).select("problem"))[0][0]
        name, where = source.where([position])
        if problem.startswith("twice:"):
            raise self._error(name, f"{where} has the key \"{problem[6:]}\" twice; each key may appear once "
                                    "in an object")
        if problem == "not an object":
            raise self._error(name, f"{where} is not a JSON object; each line must be one object, such as "
                                    f"{{\"{source.unit}\": \"u1\", ...}}")
        raise self._error(name, f"{where} is not valid JSON; each line must be one JSON object")

    def _json_keys(self) -> list[str]:
        """The keys the lines have (at most 100, sorted), for the message about a missing unit id key."""
        try:
            names = self.spark.read.json(self.source.name).columns
        except Exception:
            return []
        return sorted(k for k in names if k != "_corrupt_record")[:100]

    def _bad_value(self, index: int) -> None:
        from pyspark.sql import functions as F

        source = self.source
        name, what, quote = source.checks[index]
        bad = self.rows.where(F.col("bad_column") == index)
        count, position = self._collect(bad.agg(F.count(F.lit(1)), F.min(_POS)))[0]
        value = self._collect(bad.where(F.col(_POS) == position).select("bad_value"))[0][0]
        file, where = source.where([int(position)])
        typ = source.types[name]
        shown = _show(value, quote)
        hint = _BatchReader(None, source.kind, source.types, source.unit, source.file_types)._type_hint(typ)
        if what == "column":
            message = (f"column `{name}` is declared {typ}, but the file stores it as "
                       f"{source.file_types[name]} (e.g. {shown} at {where})")
        else:
            others = f" ({count:,} values in this column do not fit)" if count > 1 else ""
            message = f"column `{name}` is declared {typ}, but {where} holds {shown}{others}"
        raise self._error(file, f"{message}; {hint}")

    def _unsafe(self, count: int) -> None:
        from pyspark.sql import functions as F

        source = self.source
        position, value = self._collect(self.rows.where(F.col("unsafe").isNotNull())
                                        .orderBy(_POS).select(_POS, "unsafe").limit(1))[0]
        file, where = source.where([int(position)])
        more = f" ({count:,} ids in all)" if count > 1 else ""
        raise self._error(file, f"the unit id {value} at {where} is beyond {MAX_SAFE_INTEGER:,}, the largest "
                                "integer a JavaScript number holds exactly, so GrowthBook could not hash it "
                                f"exactly{more}; declare `{source.unit}: string` and pass the id to GrowthBook "
                                "as a string")

    def _missing(self, count: int) -> None:
        from pyspark.sql import functions as F

        source = self.source
        positions = [int(r[0]) for r in self._collect(
            self.rows.where(F.col("missing")).orderBy(_POS).select(_POS).limit(_EXAMPLES))]
        file, where = source.where(positions)
        units = "1 unit has" if count == 1 else f"{count:,} units have"
        first = "at" if count <= _EXAMPLES else "first at"
        raise self._error(file, f"{units} no `{source.unit}` (empty or null), {first} {where}; "
                                "every unit needs an id")

    def _duplicates(self) -> None:
        """Each id on one row: the ids' 64-bit hashes are shuffled (small keys), and only the ids whose hash
        repeats (a repeated id, or a rare collision) are compared; a :class:`DataError` names the first."""
        from pyspark.sql import functions as F

        key = F.xxhash64(_ID)
        shared = self.rows.groupBy(key.alias("h")).count().where(F.col("count") > 1).select("h")
        if not self._collect(shared.limit(1)):
            return
        candidates = self.rows.where(key.isin([r[0] for r in self._collect(shared.limit(100_000))]))
        repeated = (candidates.groupBy(_ID).agg(F.count(F.lit(1)).alias("n"), F.min(_POS).alias("first"))
                    .where(F.col("n") > 1))
        ids, rows = self._collect(repeated.agg(F.count(F.lit(1)), F.sum("n")))[0]
        if not ids:
            return
        source = self.source
        examples = []
        file = source.name
        for uid, _, _ in self._collect(repeated.orderBy("first").limit(_EXAMPLES)):
            positions = [int(r[0]) for r in self._collect(
                self.rows.where(F.col(_ID) == uid).orderBy(_POS).select(_POS).limit(_EXAMPLES))]
            file, where = source.where(positions)
            examples.append(f"`{uid}` at {where}")
        lead = ("1 id appears" if ids == 1 else f"{ids:,} ids appear") + f" more than once ({int(rows):,} rows)"
        raise self._error(file, f"{lead}: {'; '.join(examples)}; each unit must appear once, because its "
                                "attributes decide its audience")

    # ------------------------------------------------------------ output

    def tables(self) -> Iterator[dict[str, np.ndarray]]:
        """The :func:`~expc.runtime.assign.output_columns` tables, in input order, a chunk at a time."""
        unit = self.plan.assignment.unit
        try:
            table = self.rows.select(_ID, "variant", "bucket").toArrow()
        except Exception as exc:
            raise self.source.read_error(exc) from None
        for lo in range(0, table.num_rows, CHUNK_ROWS):
            chunk = table.slice(lo, CHUNK_ROWS)
            bucket = chunk.column("bucket").to_numpy()
            yield {unit: chunk.column(_ID).to_numpy(zero_copy_only=False).astype(object),
                   "variant": chunk.column("variant").to_numpy(zero_copy_only=False).astype(object),
                   "bucket": np.asarray(bucket, dtype=np.float64)}

    def write_folder(self, folder: str) -> None:
        """Spark's tasks write the assignments as part files in ``folder`` (see the module documentation)."""

        from pyspark.sql.types import DoubleType, StringType, StructField, StructType

        kind = _output_format(folder)
        unit = self.plan.assignment.unit
        schema = StructType([StructField(unit, StringType()), StructField("variant", StringType()),
                             StructField("bucket", StringType() if kind == "csv" else DoubleType())])
        rows = self.rows.select(_ID, "variant", "bucket").mapInArrow(_Written(unit, kind), schema)
        target = folder.rstrip("/" + os.sep) or folder
        local = not _URI.match(target)
        if local:
            path = Path(target)
            if path.exists() or path.is_symlink():
                raise DataError(f"{folder}: already exists; expc writes a new folder and never replaces one: "
                                "name another, or remove it first", folder)
            if not path.parent.is_dir():
                raise DataError(f"{folder}: cannot write: the folder {path.parent} does not exist", folder)
            try:
                scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
            except OSError as exc:
                raise DataError(f"{folder}: cannot write: {exc.strerror or exc}", folder) from None
            into = str(scratch / "out")
        else:
            into = target
        writer = rows.write.mode("errorifexists")
        try:
            if kind == "csv":
                writer.option("header", True).option("escape", '"').option("quote", '"').csv(into)
            elif kind == "jsonl":
                writer.option("ignoreNullFields", False).json(into)
            else:
                writer.parquet(into)
            if local:
                os.rename(into, target)
        except Exception as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"{folder}: could not write the folder ({_first_line(exc)})", folder) from None
        finally:
            if local:
                shutil.rmtree(scratch, ignore_errors=True)


class _Written:
    """What each partition's rows become in a folder: the values the embedded writer writes, by its own SQL
    (:func:`expc.runtime.tables._output_table`: an empty variant and a NaN bucket null, CSV cells defused
    against spreadsheet formulas), and in CSV the bucket as DuckDB writes it (``0.0002``, not ``2.0E-4``)."""

    def __init__(self, unit: str, kind: str) -> None:
        self.unit, self.kind = unit, kind

    def __call__(self, batches: Iterable[Any]) -> Iterator[Any]:
        """The written form of each batch of (id, variant, bucket)."""
        import duckdb

        con = duckdb.connect()
        try:
            for batch in batches:
                columns = {self.unit: batch.column(0).to_numpy(zero_copy_only=False),
                           "variant": batch.column(1).to_numpy(zero_copy_only=False),
                           "bucket": batch.column(2).to_numpy(zero_copy_only=False)}
                table, select = _output_table(columns, self.kind)
                con.register("chunk", table)
                bucket = _ident("bucket")
                text = f" REPLACE (CAST({bucket} AS VARCHAR) AS {bucket})" if self.kind == "csv" else ""
                yield from con.sql(f"SELECT *{text} FROM (SELECT {select} FROM chunk)").to_arrow_table().to_batches()
                con.unregister("chunk")
        finally:
            con.close()


def _output_format(folder: str) -> str:
    """The format of a folder output, from its name's extension (``assignments.parquet/``)."""
    suffix = Path(folder.rstrip("/" + os.sep)).suffix.lower()
    kind = FORMATS.get(suffix)
    if kind is None:
        raise DataError(f"{folder}: cannot tell the format of the folder to write; name it with .csv, .jsonl "
                        "or .parquet, such as assignments.parquet/", folder)
    return kind


# ====================================================================== helpers


def _arrow() -> Any:
    """pyarrow, which PySpark's Arrow functions need (``pyspark[sql]`` installs it; it has no type hints)."""
    import pyarrow  # type: ignore[import-untyped, import-not-found, unused-ignore]

    return pyarrow


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
