"""Content checks: does a generated text pass its prompt's ``checks``?

Pure functions over a text and the prompt's typed ``checks``
(:class:`~expc.compiler.model.Checks`, as in the plan).
Every failing check adds one reason, so a text that fails twice says both.
Empty text always fails. ``json_schema`` parses the text as JSON (a fenced
```json block is accepted) and validates it with ``jsonschema``.

``no_pii`` rejects text that looks like it holds personal data
(:func:`pii_reasons`): an e-mail address; a card-like number (13 to 19 digits,
spaces or dashes between groups allowed, passing the Luhn check); a phone
number (7 to 15 digits after a ``+``, else 9 to 15, in groups separated by
spaces, dots, dashes or parentheses; ISO dates and thousands written with
dots are not phone numbers). The reasons never quote what was found: they end
up in reports.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from expc.compiler.model import Checks

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def check_text(text: str | None, checks: Checks) -> list[str]:
    """The reasons ``text`` fails ``checks`` (an empty list when it passes)."""
    if text is None or not text.strip():
        return ["empty content"]
    reasons: list[str] = []
    n = len(text)
    if checks.max_chars is not None and n > checks.max_chars:
        reasons.append(f"{n} characters, more than max_chars {checks.max_chars}")
    if checks.min_chars is not None and n < checks.min_chars:
        reasons.append(f"{n} characters, fewer than min_chars {checks.min_chars}")
    lowered = text.casefold()
    for phrase in checks.forbid:
        if phrase.casefold() in lowered:
            reasons.append(f"contains forbidden phrase {phrase!r}")
    for pattern in checks.require:
        if not _regex(pattern).search(text):
            reasons.append(f"does not match required pattern {pattern!r}")
    if checks.json_schema is not None:
        reasons.extend(_json_reasons(text, checks.json_schema))
    if checks.no_pii:
        reasons.extend(pii_reasons(text))
    return reasons


_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])")
_DIGITS = re.compile(r"(?<![\w@+.-])\+?\(?\d(?:[ .()-]{0,2}\d)+\)?(?![\w@])")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+")


def pii_reasons(text: str) -> list[str]:
    """Why ``text`` fails ``no_pii``: an e-mail address, a card-like number, a phone number (each said once)."""
    found: list[str] = []
    if _EMAIL.search(text):
        found.append("contains an e-mail address (no_pii)")
    card = phone = False
    for match in _DIGITS.finditer(text):
        run = match.group()
        digits = re.sub(r"\D", "", run)
        if 13 <= len(digits) <= 19 and not re.search(r"[.()]", run) and _luhn(digits):
            card = True
        elif _phone(run, digits):
            phone = True
    if card:
        found.append("contains a card-like number (no_pii)")
    if phone:
        found.append("contains a phone number (no_pii)")
    return found


def _phone(run: str, digits: str) -> bool:
    if _ISO_DATE.match(run.lstrip("+(")) or _THOUSANDS.fullmatch(run):
        return False
    return 7 <= len(digits) <= 15 if run.startswith("+") else 9 <= len(digits) <= 15


def _luhn(digits: str) -> bool:
    """The Luhn checksum of a card number holds."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _json_reasons(text: str, schema: dict[str, Any]) -> list[str]:
    import jsonschema

    fenced = _FENCE.match(text)
    try:
        value = json.loads(fenced.group(1) if fenced else text)
    except json.JSONDecodeError as exc:
        return [f"not valid JSON ({exc.msg} at character {exc.pos})"]
    except ValueError as exc:  # an integer of more digits than Python converts
        return [f"not valid JSON ({exc})"]
    except RecursionError:
        return ["not valid JSON (nested too deeply)"]
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return [f"JSON does not fit the schema at /{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in errors[:3]]
