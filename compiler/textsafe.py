"""Text that is safe to print: no terminal control, no bidi trick, no CI log command.

Anything expc prints can carry text it did not write: spec values, file names,
a provider's error body, generated content. Printed raw, an escape sequence
can retitle or clear the terminal (``ESC ] 0 ; title BEL``, ``ESC [ 2 J``), a
carriage return can overwrite what came before, a bidi control (U+202E) can
show a line in another order than it reads, and a line that starts with
``::`` is a GitHub Actions workflow command. :func:`terminal_safe` turns each
such character into a visible escape (``\\x1b``, ``\\u202e``), so the output
shows what the text holds and does nothing else.

Escaped: the C0 controls (except tab, and newline where several lines are
meant), DEL, the C1 controls (U+0080-U+009F: U+009B is a one-character CSI),
every invisible format character (Unicode category Cf: bidi embeddings,
overrides and isolates, LRM/RLM/ALM, zero-width spaces, the BOM, tag
characters) except the zero-width joiner of emoji sequences, the line and
paragraph separators, the Hangul fillers (blank letters) and lone surrogates
(the undecodable bytes of a file name, which a UTF-8 terminal cannot even
encode). Because every escape character is escaped, no escape *sequence*
survives: what follows an escaped ESC is plain text.

:func:`json_safe` does the same for a JSON document (a plan, a report, JSON
Lines) on its way to a terminal: the same characters become ``\\uXXXX``
escapes inside its strings, so the document means exactly what it meant.
"""

from __future__ import annotations

import re

__all__ = ["json_safe", "terminal_safe"]

# Unicode category Cf (format characters) without U+200D (the emoji joiner), as of Unicode 15,
# with the line/paragraph separators (Zl, Zp) and the Hangul fillers, which print as nothing.
_INVISIBLE = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200c\u200e\u200f"
    "\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
    "\u115f\u1160\u3164\uffa0"
    "\ud800-\udfff"
)
_ONE_LINE = re.compile(f"[\x00-\x08\x0a-\x1f\x7f-\x9f{_INVISIBLE}]")
_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_INVISIBLE}]")
_JSON = re.compile(f"[\x7f-\x9f{_INVISIBLE}]")  # json.dumps already escapes the C0 controls
# GitHub Actions reads `::command::` at the start of a line (after blanks) and `##[command]` anywhere.
_COMMAND_AT_START = re.compile(r"\A(\s*):(?=:)")
_COMMAND_AT_LINE = re.compile(r"^(\s*):(?=:)", re.MULTILINE)
_OLD_COMMAND = "##["


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def terminal_safe(text: str, multiline: bool = False) -> str:
    """``text`` with every control, escape, bidi and invisible format character shown as an escape.

    Newlines are kept only when ``multiline`` (a report, a summary); one-line
    text (a message, a file name) has them escaped too, so a value cannot
    forge a line of its own. A ``::`` that starts a line, and any ``##[``,
    are defused too (``\\x3a:``, ``#\\x23[``): GitHub Actions would take them
    as workflow commands in a CI log. Tabs are kept. Plain text, including
    every printable non-ASCII character, comes back unchanged.
    """
    safe = (_LINES if multiline else _ONE_LINE).sub(_visible, text)
    safe = (_COMMAND_AT_LINE if multiline else _COMMAND_AT_START).sub(r"\1\\x3a", safe)
    return safe.replace(_OLD_COMMAND, "#\\x23[") if _OLD_COMMAND in safe else safe


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_safe(document: str) -> str:
    """A JSON text with the characters :func:`terminal_safe` escapes written as ``\\uXXXX`` escapes.

    Those characters can only stand inside the document's strings (JSON's
    own syntax is ASCII), where a ``\\u`` escape means the same character: the
    parsed document is unchanged. ``json.dumps`` already escapes the C0
    controls; use this on its output when it was made with
    ``ensure_ascii=False``.
    """
    return _JSON.sub(_json_escape, document)
