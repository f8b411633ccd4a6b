"""Any warehouse with a DB-API 2.0 connection: the connection and its SQL dialect are the whole engine.

The reduction's query is emitted in ``dialect`` by sqlglot and run through a
cursor; tables and queries of the spec's ``data`` section are read where they
are (the warehouse reads files its own way: load them into a table). Nothing
but the one row per arm comes back. To add a warehouse::

    from expc.runtime.engines import register
    from expc.runtime.engines.dbapi import DbApiEngine

    register("snowflake", lambda: DbApiEngine(lambda: snowflake.connector.connect(**profile), "snowflake"))

after which ``expc analyze --engine snowflake`` (from a script that registers
it) and ``expc.analyze(..., engine="snowflake")`` run there. Credentials stay
in the connection's own configuration, never in the spec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from expc.compiler.model import DIALECTS

from ..tables import DataError
from .base import Engine, EngineError


class DbApiEngine(Engine):
    """An engine over ``connect()``'s DB-API connection, speaking ``dialect`` (one of ``DIALECTS``)."""

    def __init__(self, connect: Callable[[], Any], dialect: str, name: str | None = None,
                 errors: tuple[type[BaseException], ...] = (Exception,)) -> None:
        if dialect not in DIALECTS:
            raise EngineError(f"unknown dialect {dialect!r}; use one of {', '.join(DIALECTS)}")
        self.dialect, self.name, self.errors = dialect, name or dialect, errors
        try:
            self.connection = connect()
        except errors as exc:
            raise EngineError(f"{self.name}: cannot connect ({_first_line(exc)})") from None

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run ``sql`` through a cursor; a database error is a :class:`DataError` with its first line."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql)
            return [d[0] for d in cursor.description], [tuple(r) for r in cursor.fetchall()]
        except self.errors as exc:
            raise DataError(f"{self.name}: {_first_line(exc)}") from None
        finally:
            cursor.close()

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
