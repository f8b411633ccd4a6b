"""Apache Spark through PySpark: local mode on one machine, a cluster by its master URL, or Spark Connect.

Where Spark runs is configured outside the spec, in the environment (a spec
cannot point expc at a cluster or carry its credentials):

* ``EXPC_SPARK_REMOTE``: a Spark Connect URL (``sc://host:15002``, with any
  token the server needs); needs ``pip install 'pyspark[connect]'``;
* ``EXPC_SPARK_MASTER``: a master URL (``spark://host:7077``, ``yarn``, ...),
  default ``local[*]``;
* ``EXPC_SPARK_CONF``: a properties file (``key value`` per line, as
  ``spark-defaults.conf``) of further settings;
* ``EXPC_SPARK_VERBOSE=1``: let the local JVM write its logs to stderr (by
  default it writes nothing there: errors reach the user as expc's one line).

The session's time zone is UTC (timestamps without a zone are UTC, as in the
embedded engine), its progress bars and INFO logs are off, and one session
serves the whole process (``getOrCreate``).

Files are read with Spark's readers (a file, or a folder of files, partitioned
folders too; CSV with a header, every cell text; JSON Lines; Parquet), then
typed as the embedded engine types them: text trimmed with empty as NULL,
whole floats as integers' text, ISO 8601 timestamps (an offset converted to
UTC), and ``value`` a double (NULL when it is not a number). Malformed CSV or
JSON is an error, as in DuckDB, rather than rows quietly dropped. Tables and
queries are read as every engine reads them (:class:`.base.Engine`). With
``repeated`` (a run's looks) the typed rows are cached, so the files are read
once per run.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from sqlglot import exp

from expc.compiler.model import DataSource

from ..tables import DataError
from .base import (
    FILE_FORMATS,
    Engine,
    EngineError,
    absent_columns,
    describe,
    file_format,
    missing_columns_error,
    relation_columns,
)

REMOTE_ENV, MASTER_ENV, CONF_ENV = "EXPC_SPARK_REMOTE", "EXPC_SPARK_MASTER", "EXPC_SPARK_CONF"
VERBOSE_ENV = "EXPC_SPARK_VERBOSE"
"""Set to 1 to let the local JVM write its own logs and stack traces to stderr (by default it writes none)."""
INSTALL_HINT = "pip install 'expc[spark]'"
_LOG_CONFIG = Path(__file__).with_name("spark-log4j2.properties")
warnings.filterwarnings("ignore", message="PySpark does not yet fully support", category=FutureWarning)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def spark_conf(path: str) -> dict[str, str]:
    """The settings of a ``spark-defaults.conf``-style file (``key value`` or ``key=value``; ``#`` comments)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineError(f"{path}: cannot read the Spark settings named by {CONF_ENV} ({exc})") from None
    conf = {}
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.replace("=", " ", 1).partition(" ")
        if not sep or not key.startswith("spark."):
            raise EngineError(f"{path}:{number}: not a Spark setting (`spark.key value`)")
        conf[key] = value.strip()
    return conf


def session() -> Any:
    """The process's SparkSession, created on first use as the environment says (see the module documentation).

    Raises :class:`EngineError` (exit 2, one line) when PySpark is not installed,
    Java is missing or the session cannot start.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineError(f"--engine spark needs PySpark, which is not installed: {INSTALL_HINT}") from None
    conf = spark_conf(os.environ[CONF_ENV]) if os.environ.get(CONF_ENV) else {}
    remote = os.environ.get(REMOTE_ENV)
    builder = SparkSession.builder.appName("expc")
    if remote:
        try:
            builder = builder.remote(remote)
        except Exception as exc:  # PySpark raises several kinds for a missing Connect client
            raise EngineError(f"Spark Connect ({remote}) cannot be used: {_first_line(exc)}; "
                              "pip install 'pyspark[connect]'") from None
    else:
        if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
            raise EngineError("--engine spark needs Java 17 or later, which is not installed: install a JDK "
                              "(for example `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME")
        cores = os.cpu_count() or 2
        master = os.environ.get(MASTER_ENV, "local[*]")
        if master.startswith("local"):  # Python workers (assignment) import expc, as this interpreter does
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (builder.master(master)
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false")
                   .config("spark.sql.shuffle.partitions", str(conf.get("spark.sql.shuffle.partitions", 2 * cores)))
                   .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={_LOG_CONFIG.as_uri()}"))
    for key, value in conf.items():
        builder = builder.config(key, value)
    builder = builder.config("spark.sql.session.timeZone", "UTC").config("spark.sql.runSQLOnFiles", "false")
    try:
        with _quiet_jvm(remote is None and os.environ.get(VERBOSE_ENV) != "1"):
            spark = builder.getOrCreate()
    except Exception as exc:  # a JVM that does not start raises PySpark's and Py4J's errors
        raise EngineError(f"Spark could not start: {_first_line(exc)}") from None
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.runSQLOnFiles", "false")  # a spec's query reads tables, never parquet.`/a/path`
    return spark


class SparkEngine(Engine):
    """Spark through PySpark (see the module documentation)."""

    name = "spark"
    dialect = "spark"

    def __init__(self) -> None:
        self.spark = session()
        self.cached: list[Any] = []
        self.views: list[str] = []

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run ``sql`` and collect its rows (a few: the reduction's one per arm)."""
        from pyspark.errors import PySparkException

        try:
            frame = self.spark.sql(sql)
            return list(frame.columns), [tuple(r) for r in frame.collect()]
        except (PySparkException, _py4j_error()) as exc:
            raise DataError(f"Spark: {_first_line(exc)}") from None

    def columns(self, query: exp.Query) -> list[str]:
        """The column names of ``query`` (Spark resolves them without running it)."""
        from pyspark.errors import PySparkException

        try:
            return list(self.spark.sql(query.sql(dialect="spark")).columns)
        except (PySparkException, _py4j_error()) as exc:
            raise DataError(f"Spark: {_first_line(exc)}") from None

    def close(self) -> None:
        """Drop the engine's views and cached rows; the session stays for the process's next engine."""
        for frame in self.cached:
            frame.unpersist()
        for view in self.views:
            self.spark.catalog.dropTempView(view)

    def file_relation(self, what: str, source: DataSource, *, unit: str, value: bool, events: list[str],
                      repeated: bool, extra: Sequence[str] = ()) -> tuple[exp.Query, Any]:
        """Typed rows of a file or folder as a temporary view (cached when ``repeated``)."""
        from pyspark.errors import PySparkException

        path = source.path or ""
        if "://" in path:  # a lake (s3a://, gs://, abfss://, hdfs://): Spark's to find; a folder is Parquet
            kind = source.format or FILE_FORMATS.get(PurePosixPath(path).suffix.lower(), "parquet")
        else:
            if not Path(path).exists():
                raise DataError(f"{path}: no such file or folder", path)
            kind = file_format(source, what)
        reader = self.spark.read.option("mode", "FAILFAST")
        try:
            if kind == "parquet":
                raw = reader.parquet(path)
            elif kind == "csv":
                raw = reader.option("header", True).option("inferSchema", False).csv(path)
            else:
                raw = reader.json(path)
            types = {f.name: f.dataType.typeName() for f in raw.schema.fields}
        except (PySparkException, _py4j_error()) as exc:
            raise DataError(f"{path}: cannot be read as {kind} ({_first_line(exc)})", path) from None
        absent = absent_columns(what, source, types)
        wanted = relation_columns(what, value, extra)
        mapped = source.columns
        id_col = mapped.get("unit_id") or (unit if unit in types else "unit_id")
        names = {"unit_id": id_col, **{c: mapped.get(c, c) for c in wanted if c != "unit_id" and c not in absent}}
        missing = [c for c in names.values() if c not in types]
        if missing:
            alternatives = {unit: "unit_id"} if unit in missing and "unit_id" not in mapped else {}
            raise missing_columns_error(source, what, missing, [] if not types else list(types), alternatives)
        trim = kind != "parquet"

        def expression(c: str) -> str:
            if c in absent:
                return "CAST(NULL AS STRING)"
            if c == "timestamp":
                return _timestamp(names[c], types[names[c]])
            return _number(names[c], types[names[c]]) if c == "value" else _text(names[c], types[names[c]], trim)

        columns = [f"{expression(c)} AS {spark_ident(c)}" for c in wanted]
        if what == "events":  # only the metrics' events (and rows without a name: bad rows, counted)
            listed = ", ".join(exp.Literal.string(e).sql(dialect="spark") for e in events) or "NULL"
            if not trim and types[names["event"]] == "string":  # on the raw column: Parquet skips other rows
                name = spark_ident(names["event"])
                raw = raw.where(f"{name} IN ({listed}) OR {name} IS NULL OR {name} = ''")
                typed = raw.selectExpr(*columns)
            else:
                typed = raw.selectExpr(*columns).where(f"event IN ({listed}) OR event IS NULL")
        else:
            typed = raw.selectExpr(*columns)
        if repeated:
            typed = typed.cache()
            self.cached.append(typed)
        view = f"expc_{what}_typed"
        typed.createOrReplaceTempView(view)
        self.views.append(view)
        out = relation_columns(what, value, extra)
        return exp.select(*(exp.column(c, quoted=True) for c in out)).from_(view), (raw, names.get("timestamp"))

    def timestamp_problem(self, what: str, source: DataSource, handle: Any, rows: int) -> str:
        """No row has a timestamp, or none of those written can be read (the first is shown)."""
        if handle is None:
            return super().timestamp_problem(what, source, handle, rows)
        raw, column = handle
        written = raw.where(raw[column].isNotNull()).select(raw[column].cast("string")).limit(1).collect()
        if not written:
            return f"{describe(source, what)}: no row has a `timestamp`; every {what[:-1]} needs one"
        return (f"{describe(source, what)}: none of the {rows:,} timestamps can be read (the first is "
                f"{written[0][0]!r}); write ISO 8601 timestamps, such as 2026-11-28T14:05:00Z")


@contextmanager
def _quiet_jvm(quiet: bool) -> Iterator[None]:
    """While the local JVM starts, its stderr (which it keeps) is /dev/null: expc's one line says what failed."""
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _py4j_error() -> type[BaseException]:
    from py4j.protocol import Py4JError  # type: ignore[import-untyped]

    return Py4JError


def spark_ident(column: str) -> str:
    """A Spark SQL identifier, back-quoted."""
    return "`" + column.replace("`", "``") + "`"


def _text(column: str, typ: str, trim: bool) -> str:
    """Text, trimmed; empty -> NULL. Whole floats (ids from a float column) lose their `.0`."""
    c = spark_ident(column)
    if typ in ("float", "double") or typ.startswith("decimal"):
        whole = f"try_cast({c} AS BIGINT)"
        return (f"CASE WHEN {c} - {c} = 0 AND {c} = round({c}) AND {whole} IS NOT NULL "
                f"THEN CAST({whole} AS STRING) ELSE CAST({c} AS STRING) END")
    if typ == "string" and not trim:
        return f"NULLIF({c}, '')"
    return f"NULLIF(trim(CAST({c} AS STRING)), '')"


def _timestamp(column: str, typ: str) -> str:
    """A timestamp (UTC), NULL when text does not parse or the value cannot be a time."""
    c = spark_ident(column)
    if typ in ("timestamp", "timestamp_ntz", "date"):
        return f"CAST({c} AS TIMESTAMP)"
    if typ == "string":
        return f"try_cast(trim({c}) AS TIMESTAMP)"
    return "CAST(NULL AS TIMESTAMP)"


def _number(column: str, typ: str) -> str:
    """A double, NULL when missing or not a number (the reduction drops NaN and infinities)."""
    c = spark_ident(column)
    if typ == "string":
        return f"try_cast(trim({c}) AS DOUBLE)"
    if typ in ("byte", "short", "integer", "long", "float", "double") or typ.startswith("decimal"):
        return f"CAST({c} AS DOUBLE)"
    return "CAST(NULL AS DOUBLE)"
