"""Quantities a person writes in a spec: durations (``7d``) and percentages (``5%``).

Each parser returns the value in base units (seconds, fractions) or raises
``PydanticCustomError`` with a type name the validator maps to a diagnostic
code (``duration`` -> E024, ``percentage`` -> E025).
"""

from __future__ import annotations

import math
import re

from pydantic_core import PydanticCustomError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw])\s*\Z")
_PERCENT = re.compile(r"\s*(-?[0-9]+(?:\.[0-9]+)?)\s*%\s*\Z")

DURATION_PATTERN = r"^\s*[0-9]+(\.[0-9]+)?\s*[smhdw]\s*$"
PERCENT_PATTERN = r"^\s*-?[0-9]+(\.[0-9]+)?\s*%\s*$"


def parse_duration(value: object) -> int:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"45s"``, ``"2w"`` -> whole seconds (> 0)."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            seconds = float(m.group(1)) * _UNITS[m.group(2)]
            if 1 <= seconds < math.inf and seconds == int(seconds):  # 1e400d is no duration
                return int(seconds)
    hint = " (a bare number is ambiguous: add a unit)" if isinstance(value, (int, float)) else ""
    raise PydanticCustomError(
        "duration",
        "`{value}` is not a duration; write a number and a unit: 45s, 30m, 12h, 7d or 2w{hint}",
        {"value": value, "hint": hint},
    )


def format_duration(seconds: int) -> str:
    """The shortest exact spelling of a duration: 604800 -> ``"7d"``."""
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_percent(value: object) -> float:
    """``"5%"`` or ``0.05`` -> 0.05; a fraction in [0, 1]."""
    if isinstance(value, bool):
        fraction = math.nan
    elif isinstance(value, (int, float)):
        fraction = float(value)
    elif isinstance(value, str) and (m := _PERCENT.match(value)):
        fraction = float(m.group(1)) / 100.0
    else:
        fraction = math.nan
    if not 0.0 <= fraction <= 1.0:
        hint = ""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 1 < value <= 100:
            hint = f"; did you mean {value}%?"
        raise PydanticCustomError(
            "percentage",
            "`{value}` is not a share between 0 and 1; write it as a percentage such as 5% "
            "or a fraction such as 0.05{hint}",
            {"value": value, "hint": hint},
        )
    return fraction


def parse_amount(value: object) -> float:
    """A plain number, or a percentage string (``"6%"`` -> 0.06); any finite value."""
    if isinstance(value, str) and (m := _PERCENT.match(value)):
        return float(m.group(1)) / 100.0
    return value  # type: ignore[return-value]  # the model's float validation takes it from here
