"""Personal values out of everything generation writes, but the generated copy itself.

A unit's personal attributes (``pii: true``) reach a model only through a
prompt that lists them in ``send_pii`` (the compiler checks it; the runtime
never puts the others in a template's context). What generation writes about a
request that carries personal values:

* the **store key** is HMAC-SHA256 of the request under a random secret kept in
  the store (:func:`keyed_digest`), not a plain digest that a list of first
  names could be tried against;
* the **recorded request** (the store's ``request`` column) holds the messages
  rendered again with each personal value replaced by a placeholder such as
  ``[first_name]`` (:func:`placeholder`);
* **reasons and errors** (content.jsonl, reports, the terminal) and the
  reports' **content samples** have each personal value that was sent replaced
  by ``[first_name]`` (:func:`redact`).

Only the generated text (content.jsonl's ``content``, the store's ``content``)
may hold what its prompt was allowed to send.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["Personal", "keyed_digest", "placeholder", "redact"]

Personal = tuple[tuple[str, Any], ...]
"""The personal values one request carries: ``(attribute, value)`` pairs."""


def placeholder(name: str, kind: str) -> Any:
    """What a template reads in place of the personal attribute ``name`` (of type ``kind``) for the record."""
    if kind == "list[string]":
        return [f"[{name}]"]
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    return f"[{name}]"


def keyed_digest(secret: bytes, canonical: str) -> str:
    """HMAC-SHA256 of ``canonical`` under ``secret``, as hex."""
    return hmac.new(secret, canonical.encode("utf-8"), hashlib.sha256).hexdigest()


def _texts(value: Any) -> Iterable[str]:
    """The forms of a personal value that may show in text (each item of a list; no booleans)."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)
        return
    if isinstance(value, float) and value.is_integer():
        yield str(int(value))
    text = str(value).strip()
    if text:
        yield text


def redact(text: str | None, personal: Personal) -> str | None:
    """``text`` with every personal value of ``personal`` (as a whole word, any case) replaced by ``[name]``."""
    if not text or not personal:
        return text
    pairs = sorted(((t, name) for name, value in personal for t in _texts(value)), key=lambda p: -len(p[0]))
    for value, name in pairs:  # longest first: an e-mail address before the name inside it
        text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", f"[{name}]", text, flags=re.IGNORECASE)
    return text
