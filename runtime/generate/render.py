"""Prompt templates to messages, in a sandbox, with a cap on the output size.

Templates are written by spec authors, but they run on data (unit attributes)
and their text is reviewed like code, so they are treated as untrusted:

* every template is first analysed statically (:mod:`expc.compiler.templates`)
  and refused when it reaches for private attributes (``__class__``, ``_x``),
  the ``attr`` filter or ``format`` methods, the usual building blocks of
  server-side template injection;
* it then renders in :class:`jinja2.sandbox.SandboxedEnvironment` (stricter
  still: see :class:`_Sandbox`) with :class:`jinja2.StrictUndefined`, so a
  missing value is an error rather than an empty string;
* rendering is streamed and stops with an error once the text passes
  :data:`MAX_RENDERED_CHARS`, so a template loop cannot build megabytes.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from expc.compiler.templates import analyse
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

#: The longest text a template may render (characters): far beyond any real prompt.
MAX_RENDERED_CHARS = 100_000
_REFUSED_NAMES = {"format", "format_map", "mro", "func_globals", "gi_frame", "cr_frame", "f_globals"}


class RenderError(Exception):
    """A template could not be rendered: the message says which and why (for a person)."""


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, minus private attributes, ``format`` methods and the ``attr`` filter."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr.startswith("_") or attr in _REFUSED_NAMES:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(attribute, str) and (attribute.startswith("_") or attribute in _REFUSED_NAMES):
            return self.unsafe_undefined(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, str) and (argument.startswith("_") or argument in _REFUSED_NAMES) \
                and not isinstance(obj, dict):
            return self.unsafe_undefined(obj, argument)
        return super().getitem(obj, argument)


@lru_cache(maxsize=1)
def _environment() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters.pop("attr", None)
    return env


@lru_cache(maxsize=256)
def _compiled(source: str) -> Any:
    """Check a template statically, then compile it (cached: one spec has few templates)."""
    analysis = analyse(source)
    if analysis.syntax_error:
        raise RenderError(f"template syntax error on line {analysis.error_line}: {analysis.syntax_error}")
    for use in analysis.uses:
        if use.kind in ("private", "unsafe"):
            raise RenderError(f"template line {use.line}: `{use.name}` is not allowed in a template "
                              "(private attributes, `attr` and `format` are refused: they are how templates are "
                              "used to reach Python internals)")
    try:
        return _environment().from_string(source)
    except TemplateError as exc:
        raise RenderError(f"template error: {exc}") from None


def render(source: str, context: dict[str, Any], limit: int = MAX_RENDERED_CHARS) -> str:
    """Render one template with ``context``; raise :class:`RenderError` on any problem.

    The text is produced piece by piece and abandoned as soon as it is longer
    than ``limit`` characters. Leading and trailing whitespace is stripped.
    """
    template = _compiled(source)
    size = 0
    parts: list[str] = []
    try:
        for chunk in template.generate(context):
            size += len(chunk)
            if size > limit:
                raise RenderError(f"the template renders more than {limit:,} characters; "
                                  "check its loops (output cut off)")
            parts.append(chunk)
    except RenderError:
        raise
    except TemplateError as exc:  # includes SecurityError and UndefinedError
        raise RenderError(f"template error: {exc.message or exc}") from None
    except (ArithmeticError, TypeError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
        raise RenderError(f"template error: {type(exc).__name__}: {exc}") from None
    return "".join(parts).strip()


def plain(value: Any, kind: str = "") -> Any:
    """A unit attribute as a template sees it: numpy scalars to Python, tuples to lists, NaN to None.

    ``kind`` is the declared type: integers (held as float64 in a column) render as ``42``, not ``42.0``;
    a null list is ``[]`` and a null text ``""`` (so that filters such as ``join`` work on them).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return [] if kind == "list[string]" else "" if kind in ("string", "version", "datetime") else None
    if hasattr(value, "item") and not isinstance(value, (list, tuple, str)):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if kind == "integer" and value.is_integer() else value
    if isinstance(value, tuple):
        return list(value)
    return value
