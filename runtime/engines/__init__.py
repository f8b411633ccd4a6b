"""Engines the reduction runs on, by name: a registry, as sqlglot's dialects are.

``duckdb`` (embedded, the default) and ``spark`` (PySpark: local, a cluster's
master URL or Spark Connect) are built in; :func:`register` adds another (for
a warehouse, :class:`~expc.runtime.engines.dbapi.DbApiEngine` over its DB-API
connection and a dialect name). Engines are imported only when opened, so
naming one (the command line lists them) imports nothing heavy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Engine, EngineError

__all__ = ["ENGINES", "Engine", "EngineError", "open_engine", "register"]

ENGINES: dict[str, str | Callable[[], Engine]] = {
    "duckdb": "expc.runtime.engines.duckdb:DuckDBEngine",
    "spark": "expc.runtime.engines.spark:SparkEngine",
}
"""Engine name -> its factory, or ``module:attribute`` naming it (imported on first use)."""


def register(name: str, factory: Callable[[], Engine]) -> None:
    """Make ``--engine name`` open ``factory()``."""
    ENGINES[name] = factory


def open_engine(name: str) -> Engine:
    """Open the engine called ``name``; :class:`EngineError` (exit 2) for an unknown name or one unusable here."""
    from .base import EngineError

    factory = ENGINES.get(name)
    if factory is None:
        raise EngineError(f"unknown engine {name!r}; use one of {', '.join(sorted(ENGINES))}")
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        factory = getattr(importlib.import_module(module), attribute)
    return factory()


def __getattr__(name: str) -> Any:
    """``Engine`` and ``EngineError``, imported from :mod:`.base` when first asked for."""
    if name in ("Engine", "EngineError"):
        from . import base

        return getattr(base, name)
    raise AttributeError(name)
