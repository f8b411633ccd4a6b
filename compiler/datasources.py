"""What a spec's ``data`` section may name: paths inside its folder, plain table names, one read-only ``SELECT``.

A spec may come from an untrusted pull request and be run by CI with the
team's secrets and files on the machine. Its ``data`` section says where
exposures and events are, so it must not be a way to read anything else:

- a ``path`` is relative and stays inside the spec's folder (no absolute
  path, no ``..`` that leaves it, no ``~``, no URL such as ``s3://``). The
  command line's ``--exposures`` and ``--events`` take any path: the user
  chooses those, not the spec. Nothing here looks at the filesystem (the data
  need not exist where the spec is reviewed), so a symbolic link is the
  runtime's to refuse;
- a ``table`` is a table name in ``data.dialect`` (at most
  ``catalog.db.table``) and nothing else;
- a ``query`` is exactly one statement that only reads (``SELECT``, a set
  operation, ``WITH ... SELECT``): no DDL or DML, not even in a ``WITH``, no
  ``SELECT ... INTO``, no ``FOR UPDATE``;
- and neither reads outside the warehouse's tables: no table function
  (``read_csv``, ``read_files``, ClickHouse's ``file``, ``url`` and
  ``executable``, ...; ``UNNEST``, ``explode`` and ``generate_series`` are
  allowed), no file as a table (DuckDB's ``'x.csv'`` and ``x.csv``, Spark's
  ``parquet.`/tmp/x```, Snowflake's ``@stage``), no function that reads the
  machine (``getenv``, ``reflect``, ``pg_read_file``, ...). This is defence
  in depth: an engine should refuse such reads too (the DuckDB engine turns
  external access off).

Each function returns the problems it finds as :class:`Problem` values
(a diagnostic code and a message); :mod:`expc.compiler.checks` locates them.
sqlglot is imported only by :func:`table_problems` and :func:`query_problems`,
so reading a spec without tables or queries stays fast.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlglot import exp

__all__ = ["FILE_FORMATS", "MAX_QUERY_PROBLEMS", "Problem", "column_problem", "format_problem", "path_problem",
           "query_problems", "table_problems"]

FILE_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
"""The extensions that say a path's format (``format`` is then optional)."""

_TOKEN = re.compile(r"<Token token_type: [^,>]*, text: ([^,>]*)[^>]*>?")
_COLUMN = re.compile(r"[^\W\d]\w*\Z")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NOT_IN_A_NAME = re.compile(r"[/\\:.'\"`\x00-\x1f\x7f-\x9f]")

# Table-valued functions that only unnest values the query already has.
_ROW_FUNCTIONS = ("Unnest", "Explode", "ExplodeOuter", "Posexplode", "PosexplodeOuter", "GenerateSeries")
# Scalar functions that read the machine (files, the environment, settings) or run host code.
_HOST_FUNCTIONS = frozenset({
    "getenv", "get_env", "current_setting", "reflect", "try_reflect", "java_method", "pg_read_file",
    "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import", "lo_export", "dblink", "dblink_exec",
    "load_file", "read_text", "read_blob", "read_file", "read_files", "sys_exec", "sys_eval",
})
# `parquet.`/tmp/x`` reads files in Spark (and Databricks).
_SPARK_FILE_SOURCES = frozenset({"parquet", "csv", "json", "orc", "avro", "text", "binaryfile", "delta", "jdbc",
                                 "xml", "libsvm", "image"})
# DuckDB reads `events.csv` (a two-part name ending in a data file's extension) as the file.
_DUCKDB_FILE_EXTENSIONS = frozenset({"csv", "tsv", "txt", "parquet", "json", "jsonl", "ndjson", "gz", "zst",
                                     "xlsx", "arrow", "avro", "orc"})
# Statements, and parts of statements, that write, lock or change the session.
_WRITES = ("Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable", "Copy", "Command",
           "Into", "Lock", "Pragma", "Attach", "Detach", "Set", "Use", "Transaction", "Commit", "Rollback", "Grant",
           "LoadData", "Cache", "Uncache", "Refresh", "Install", "Export", "Kill", "Execute", "Declare", "Analyze")


MAX_QUERY_PROBLEMS = 5
"""At most this many findings per query (a long query could repeat one mistake thousands of times)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a data source: its diagnostic code, message and hint."""

    code: str
    message: str
    hint: str | None = None


def _short(text: str, limit: int = 60) -> str:
    """``text`` on one line and at most ``limit`` characters (a message quotes it)."""
    one = " ".join(str(text).split())
    return one if len(one) <= limit else one[: limit - 3] + "..."


# ---------------------------------------------------------------- columns


def column_problem(name: str) -> str | None:
    """Why ``name`` is not a plain column name (one identifier: letters, digits, ``_``), or None."""
    if _COLUMN.match(name):
        return None
    return (f"`{_short(name)}` is not a plain column name (letters, digits and `_`, not starting with a digit; "
            "no quotes, dots, spaces or SQL)")


# ------------------------------------------------------------------ paths


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a relative path inside the spec's folder, or None. Looks at the text only."""
    shown = _short(path)
    if _CONTROL.search(path):
        return f"`{shown}` holds a control character"
    if _SCHEME.match(path):
        what = "a Windows drive" if re.match(r"[A-Za-z]:", path) else "a URL"
        return f"`{shown}` is {what}, not a path inside the spec's folder"
    if path.startswith(("/", "\\")):
        return f"`{shown}` is an absolute path"
    depth = 0
    for part in re.split(r"[/\\]", path):
        if part.startswith("~"):
            return f"`{shown}` starts a part with `~` (a home folder)"
        if part.startswith(".") and part not in (".", ".."):
            return f"`{shown}` names a hidden file or folder (`{_short(part)}`), where secrets live (`.env`, `.git`)"
        if part == "..":
            depth -= 1
            if depth < 0:
                return f"`{shown}` leaves the spec's folder with `..`"
        elif part not in ("", "."):
            depth += 1
    return None


def format_problem(path: str, fmt: str | None) -> str | None:
    """Why the format of ``path`` cannot be told, or disagrees with ``fmt``; None when it is clear.

    A known extension (:data:`FILE_FORMATS`) says the format; a path without
    one is a folder, whose files say it when the data is read (``format``
    says it in the spec); any other extension needs ``format``.
    """
    suffix = PurePosixPath(path.replace("\\", "/")).suffix.lower()
    known = FILE_FORMATS.get(suffix)
    if known is not None and fmt is not None and known != fmt:
        return f"`format: {fmt}` disagrees with the extension of `{_short(path)}` ({known})"
    if known is None and suffix and fmt is None:
        return f"cannot tell the format of `{_short(path)}` from its extension `{_short(suffix, 20)}`"
    return None


# -------------------------------------------------------------------- SQL


@contextmanager
def _quiet() -> Iterator[None]:
    """sqlglot logs a warning when it falls back to a generic command: the check reports it instead."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _parse_failure(exc: BaseException, what: str) -> str:
    """Why sqlglot could not read ``what``, on one line, with the position in the text when it gives one."""
    from sqlglot.errors import ParseError, TokenError

    if isinstance(exc, RecursionError):
        return "it nests too deeply to be read"
    if isinstance(exc, ParseError) and exc.errors:
        first = exc.errors[0]
        highlight, line, col = str(first.get("highlight") or ""), first.get("line"), first.get("col")
        if isinstance(col, int) and highlight and "\n" not in highlight:
            col = max(col - len(highlight) + 1, 1)  # sqlglot gives the column where the token ends
        where = f" at line {line}, column {col} of the {what}" if line else ""
        near = f" near `{_short(highlight, 30)}`" if highlight else ""
        description = _TOKEN.sub(r"`\1`", first.get("description") or "syntax error")
        return f"{_short(description, 80)}{near}{where}"
    if isinstance(exc, TokenError):
        return f"it cannot be split into tokens (an unclosed quote or comment?): {_short(str(exc), 60)}"
    return _short(str(exc) or type(exc).__name__, 80)


def _position(node: exp.Expr, text: str) -> str:
    """`` (line L, column C of the query)``: where ``node`` starts in ``text``, when sqlglot kept it."""
    starts = [meta["start"] for n in node.walk() if "start" in (meta := getattr(n, "_meta", None) or {})]
    if not starts:
        return ""
    start = min(starts)
    line = text.count("\n", 0, start) + 1
    return f" (line {line}, column {start - text.rfind(chr(10), 0, start)} of the query)"


def _classes(names: tuple[str, ...]) -> tuple[type, ...]:
    """The sqlglot expression classes of ``names`` that this version has."""
    from sqlglot import exp

    return tuple(c for c in (getattr(exp, n, None) for n in names) if isinstance(c, type))


def _function_name(node: exp.Func) -> str:
    from sqlglot import exp

    return (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()


def _file_name(parts: list[Any], dialect: str) -> str | None:
    """Why a table's name parts name a file rather than a table, or None."""
    names = [p.name for p in parts]
    for name in names:
        if _NOT_IN_A_NAME.search(name) or name.startswith("~"):
            return f"`{_short(name)}` is a file's name or path, not a table's"
    if dialect in ("spark", "databricks") and len(names) == 2 and names[0].lower() in _SPARK_FILE_SOURCES:
        return f"`{_short('.'.join(names))}` reads files of the format `{names[0]}` in {dialect}"
    if dialect == "duckdb" and len(names) >= 2 and names[-1].lower() in _DUCKDB_FILE_EXTENSIONS:
        return f"`{_short('.'.join(names))}` reads the file of that name in duckdb"
    return None


def _table_node_problem(table: exp.Table, dialect: str, standalone: bool) -> Problem | None:
    """What a table reference reads that is not a table (E057), or why it is not a name (E055, E056).

    ``standalone`` for the ``table`` key itself; otherwise a table the query reads.
    """
    from sqlglot import exp

    this = table.this
    shown = _short(table.sql(dialect=dialect), 40)
    if isinstance(this, _classes(_ROW_FUNCTIONS)):
        return Problem("E055", f"`{shown}` is not a table name in {dialect}") if standalone else None
    if isinstance(this, (exp.Func, exp.Literal, exp.Var)):
        what = f"`{shown}` is not a table" if standalone else f"the query reads `{shown}`, which is not a table"
        return Problem("E057", f"{what}: a spec's data comes from the warehouse's tables",
                       "name a table or view, or give a path to files")
    parts = table.parts
    if not parts or not all(isinstance(p, exp.Identifier) for p in parts):
        what = f"`{shown}` is not" if standalone else f"the query reads `{shown}`, which is not"
        return Problem("E055" if standalone else "E056", f"{what} a table name in {dialect}")
    reason = _file_name(parts, dialect)
    if reason is not None:
        return Problem("E057", f"{'' if standalone else 'in the query, '}{reason}; a spec's data comes from the "
                       "warehouse's tables or from files inside the spec's folder",
                       "give the files as `path`, or name a table or view")
    return None


def table_problems(name: str, dialect: str) -> list[Problem]:
    """Why ``name`` is not a plain table name (``table``, ``db.table`` or ``catalog.db.table``) in ``dialect``."""
    import sqlglot
    from sqlglot import exp

    try:
        with _quiet():
            table = sqlglot.parse_one(name, into=exp.Table, read=dialect)
    except Exception as exc:  # untrusted text: any failure to parse is the spec's
        return [Problem("E055", f"`{_short(name)}` is not a table name in {dialect}: "
                        f"{_parse_failure(exc, 'name')}", "write it as `table`, `db.table` or `catalog.db.table`, "
                        "quoted as the dialect quotes names")]
    if not isinstance(table, exp.Table):
        return [Problem("E055", f"`{_short(name)}` is not a table name in {dialect}")]
    problem = _table_node_problem(table, dialect, standalone=True)
    if problem is not None:
        return [problem]
    extra = sorted(k for k, v in table.args.items() if v and k not in ("this", "db", "catalog"))
    if len(table.parts) > 3 or extra or table.comments:
        return [Problem("E055", f"`{_short(name)}` is more than a table name in {dialect}",
                        "write it as `table`, `db.table` or `catalog.db.table`; anything more goes in a `query`")]
    return []


def _statement_name(node: exp.Expr) -> str:
    from sqlglot import exp

    if isinstance(node, exp.Command):
        return _short(str(node.this), 20).upper()
    if isinstance(node, exp.Into):
        return "SELECT ... INTO"
    if isinstance(node, exp.Lock):
        return "FOR UPDATE"
    return node.key.upper()


def query_problems(query: str, dialect: str) -> list[Problem]:
    """Why ``query`` is not exactly one read-only query in ``dialect``, or what it reads beyond tables."""
    import sqlglot

    try:
        with _quiet():
            statements = [s for s in sqlglot.parse(query, read=dialect) if s is not None]
    except Exception as exc:  # untrusted text: any failure to parse is the spec's
        return [Problem("E056", f"the query does not parse in {dialect}: {_parse_failure(exc, 'query')}",
                        f"the query is read as {dialect} SQL (`data.dialect`)")]
    if len(statements) != 1:
        if not statements:
            return [Problem("E056", "the query holds no statement", "write one `SELECT` that returns the columns")]
        return [Problem("E056", f"the query holds {len(statements)} statements; it must be exactly one `SELECT`",
                        "remove the others (and the `;` between them)")]
    try:
        return _read_only_problems(statements[0], query, dialect)
    except RecursionError:  # a tree sqlglot could build but not walk or print
        return [Problem("E056", f"the query does not parse in {dialect}: {_parse_failure(RecursionError(), 'query')}")]


def _read_only_problems(statement: exp.Expr, query: str, dialect: str) -> list[Problem]:
    """Why the one ``statement`` of ``query`` does not only read tables (see the module documentation)."""
    from sqlglot import exp

    body = statement.unnest() if isinstance(statement, exp.Subquery) else statement
    if not isinstance(body, (exp.Select, exp.SetOperation)):
        return [Problem("E056", f"the query is a `{_statement_name(body)}` statement, not a `SELECT`",
                        "a data query only reads: `SELECT ...`, `WITH ... SELECT ...` or a `UNION` of them")]
    found: list[Problem] = []
    writes, row_functions, from_rows = _classes(_WRITES), _classes(_ROW_FUNCTIONS), _classes(("TableFromRows",))
    for node in statement.walk():
        if isinstance(node, writes):
            found.append(Problem("E056", f"the query holds `{_statement_name(node)}`{_position(node, query)}: a data "
                                 "query only reads", "remove it: a data query is one `SELECT`"))
        elif isinstance(node, exp.Table):
            problem = _table_node_problem(node, dialect, standalone=False)
            if problem is not None:
                found.append(Problem(problem.code, problem.message + _position(node, query), problem.hint))
        elif isinstance(node, from_rows):
            if not isinstance(node.this, row_functions):
                shown = _short(node.sql(dialect=dialect), 40)
                found.append(Problem("E057", f"the query reads `{shown}`, which is not a table: a spec's data "
                                     "comes from the warehouse's tables", "name a table or view"))
        elif (isinstance(node, exp.Func) and not isinstance(node.parent, (exp.Table, *from_rows))
              and _function_name(node) in _HOST_FUNCTIONS):  # a table function is reported as the table
            found.append(Problem("E057", f"the query calls `{_function_name(node)}`, which reads the machine "
                                 f"(files, environment or settings) or runs code there{_position(node, query)}",
                                 "compute the columns from the warehouse's tables only"))
    return _unique(found)[:MAX_QUERY_PROBLEMS]


def _unique(problems: list[Problem]) -> list[Problem]:
    """``problems`` without repeats, in order."""
    return list(dict.fromkeys(problems))
