"""Content checks: does a generated text pass its prompt's ``checks``?

Pure functions over a text and the prompt's typed ``checks``
(:class:`~expc.compiler.model.Checks`, as in the plan).
Every failing check adds one reason, so a text that fails twice says both.
Empty text always fails. ``json_schema`` parses the text as JSON (a fenced
```json block is accepted) and validates it with ``jsonschema``.
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
    return reasons


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
