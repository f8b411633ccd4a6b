"""Load a spec file: safe YAML into plain data that remembers where each node was.

PyYAML's own loaders keep the last of duplicate keys silently, turn ``NO`` into
``False`` and ``2024-05-01`` into a date, and expand aliases without limit. So
expc parses the YAML *event stream* (libyaml's C parser where available) and
builds the tree itself, in one iterative pass that:

* records the line and column of every key and value (by path),
* rejects duplicate keys, non-scalar keys and unsupported tags,
* resolves plain scalars by the YAML 1.2 core schema (only ``true``/``false``
  are booleans; dates stay strings),
* bounds file size, nesting depth and the node count after alias expansion,
  so an alias bomb or a huge file ends in a clear error, fast,
* reads only regular files (a named pipe or a device is refused before a
  byte is read) and never more than the size limit plus one byte,
* refuses numbers no spec needs: an integer of more than 30 digits (never
  converted: turning 100,000 digits into a Python int takes long, and past
  4,300 digits Python refuses) and a float beyond the largest double.

The result is a :class:`Document` (plain dicts, lists and scalars plus a
location index), or a list of diagnostics saying why there is none.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .diagnostics import Diagnostic, error
from .sources import NotRegularFile, TooLarge, read_regular

try:  # libyaml is much faster; the pure-Python parser gives the same events
    _Parser = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Parser = yaml.SafeLoader

MAX_BYTES = 1 << 20  #: 1 MiB: a spec is hand-written, never this large
MAX_DEPTH = 64  #: mappings and sequences nested deeper than this are refused
MAX_NODES = 100_000  #: nodes after alias expansion
MAX_INT_DIGITS = 30  #: an integer in a spec has at most this many digits (10**30 is more than any count)

PathT = tuple[str | int, ...]

_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_INT = re.compile(r"[-+]?[0-9]+\Z")
_OCT = re.compile(r"0o[0-7]+\Z")
_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)\Z")
_NAN = re.compile(r"\.(nan|NaN|NAN)\Z")

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null")}
_COLLECTION_TAGS = {_CORE + "map", _CORE + "seq"}


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a node starts: 1-based line and column, and its scalar style."""

    line: int
    col: int
    style: str | None = None  # None (plain), "'", '"', "|" or ">"
    end_line: int | None = None  # last line of a scalar


@dataclass
class Document:
    """A loaded spec: its data and the location of every key and value."""

    path: str
    text: str
    data: dict[str, Any]
    values: dict[PathT, Mark] = field(default_factory=dict)
    keys: dict[PathT, Mark] = field(default_factory=dict)

    def where(self, path: PathT, key: bool = False) -> tuple[str, int, int]:
        """(file, line, col) of the node at ``path`` (its key if ``key``).

        A path that has no mark of its own (inside an expanded alias, or a key
        that is missing) falls back to its nearest ancestor.
        """
        path = tuple(path)
        while True:
            mark = (self.keys if key else self.values).get(path) or self.values.get(path)
            if mark is not None:
                return (self.path, mark.line, mark.col)
            if not path:
                return (self.path, 1, 1)
            path = path[:-1]

    def mark(self, path: PathT) -> Mark | None:
        """The mark of the value at exactly ``path``, if it has one."""
        return self.values.get(tuple(path))

    def line_text(self, line: int) -> str:
        """The source text of a 1-based line ('' when out of range)."""
        lines = self.text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""


class _LoadError(Exception):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


def load_file(path: str | Path, display: str | None = None) -> tuple[Document | None, list[Diagnostic]]:
    """Read and load a spec file. Returns the document, or None and why not."""
    name = display or str(path)
    try:
        raw = read_regular(path, MAX_BYTES)
    except TooLarge as exc:
        size = f"is {_size(exc.size)}" if exc.size is not None else f"holds more than {_size(MAX_BYTES)}"
        return None, [error("E002", f"the file {size}; a spec may be at most {_size(MAX_BYTES)}",
                            (name, 1, 1), "split the spec or remove generated content from it")]
    except (NotRegularFile, IsADirectoryError) as exc:
        if not isinstance(exc, NotRegularFile) or exc.kind == "a folder":
            return None, [error("E001", "this is a folder, not a file", (name, 1, 1))]
        return None, [error("E001", f"this is {exc.kind}, not a regular file: a spec is read only from a file",
                            (name, 1, 1), "give the path of a .yaml file")]
    except OSError as exc:
        return None, [error("E001", f"cannot read the file: {exc.strerror or exc}", (name, 1, 1))]
    return load_bytes(raw, name)


def _size(n: int) -> str:
    return f"{n:,} bytes ({n / (1 << 20):.1f} MiB)" if n >= 1 << 20 else f"{n:,} bytes"


def _column(prefix: bytes) -> tuple[int, int]:
    """1-based line and column (in characters) just after ``prefix`` of UTF-8 bytes."""
    line_start = prefix.rfind(b"\n") + 1
    return prefix.count(b"\n") + 1, len(prefix[line_start:].decode("utf-8", "replace")) + 1


def _position(text: str, position: int) -> tuple[int, int]:
    """Line and column of a reader error: libyaml counts UTF-8 bytes, the Python reader characters."""
    if _Parser is yaml.SafeLoader:
        return _column(text[:position].encode("utf-8"))
    return _column(text.encode("utf-8")[:position])


def load_bytes(raw: bytes, name: str = "<spec>") -> tuple[Document | None, list[Diagnostic]]:
    """Decode and load spec bytes (see :func:`load_text`)."""
    if len(raw) > MAX_BYTES:
        return None, [error("E002", f"the spec is {_size(len(raw))}; a spec may be at most {_size(MAX_BYTES)}",
                            (name, 1, 1), "split the spec or remove generated content from it")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, col = _column(raw[: exc.start])
        return None, [error("E003", f"byte 0x{raw[exc.start]:02x} is not valid UTF-8", (name, line, col),
                            "save the file as UTF-8")]
    return load_text(text, name)


def load_text(text: str, name: str = "<spec>") -> tuple[Document | None, list[Diagnostic]]:
    """Load YAML text into a :class:`Document`; diagnostics explain a failure."""
    doc = Document(name, text, {})
    try:
        data = _Builder(doc).build()
    except _LoadError as exc:
        return None, [exc.diagnostic]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(x) for x in (exc.context, exc.problem) if x) or "invalid YAML"
        if "nesting depth" in message:
            return None, [error("E010", f"nesting is deeper than {MAX_DEPTH} levels", (name, line, col))]
        return None, [error("E005", f"YAML syntax error: {message}", (name, line, col))]
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow; carries a position, not a mark
        line, col = _position(text, exc.position)
        return None, [error("E005", f"character {exc.character!r} is not allowed in YAML: {exc.reason}",
                            (name, line, col), "remove it, or write it as an escape inside double quotes")]
    doc.data = data
    return doc, []


@dataclass(slots=True)
class _Frame:
    """An open mapping or list while its events arrive."""

    container: dict | list
    path: PathT
    anchor: str | None = None
    start: int = 0  # node count when it opened: its expanded size is known when it closes
    key: Any = None  # a mapping's key waiting for its value
    key_mark: Mark | None = None
    seen: dict[Any, Mark] = field(default_factory=dict)  # a mapping's keys so far, for duplicates

    def child_path(self) -> PathT:
        """The path of the next value added to this container."""
        return self.path + ((len(self.container),) if isinstance(self.container, list) else (self.key,))


class _Builder:
    """Turns the YAML event stream into plain data plus marks, iteratively."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, expanded node count)
        self.nodes = 0

    def _fail(self, code: str, message: str, mark: Any, hint: str | None = None) -> None:
        raise _LoadError(error(code, message, (self.doc.path, mark.line + 1, mark.column + 1), hint))

    def _count(self, n: int, mark: Any) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            self._fail("E009", f"the spec expands to more than {MAX_NODES:,} nodes", mark,
                       "aliases (`*name`) multiply what they point to; write the content out instead")

    def build(self) -> dict[str, Any]:
        events = yaml.parse(self.doc.text, Loader=_Parser)
        documents = 0
        result: Any = None
        stack: list[_Frame] = []

        def attach(value: Any, mark: Any, style: str | None = None, end: int | None = None) -> None:
            nonlocal result
            here = Mark(mark.line + 1, mark.column + 1, style, end)
            if not stack:
                result = value
                self.doc.values[()] = here
                return
            frame = stack[-1]
            if isinstance(frame.container, list):
                self.doc.values.setdefault(frame.path + (len(frame.container),), here)
                frame.container.append(value)
            elif frame.key is None:  # this value is a key
                if isinstance(value, (dict, list)):
                    self._fail("E011", "a mapping key must be a plain value, not a mapping or list", mark)
                if value in frame.seen:
                    self._fail("E008", f"duplicate key `{value}`", mark,
                               f"`{value}` is first defined at line {frame.seen[value].line}; "
                               "YAML would silently keep only the last")
                frame.key, frame.key_mark = value, Mark(mark.line + 1, mark.column + 1)
                frame.seen[value] = frame.key_mark
            else:
                p = frame.path + (frame.key,)
                frame.container[frame.key] = value
                assert frame.key_mark is not None  # set with the key
                self.doc.keys.setdefault(p, frame.key_mark)
                self.doc.values.setdefault(p, here)
                frame.key = None

        for event in events:
            kind = type(event)
            if kind is yaml.ScalarEvent:
                in_key = bool(stack) and isinstance(stack[-1].container, dict) and stack[-1].key is None
                value = event.value if in_key else self._scalar(event)
                if in_key and event.tag not in (None, "!", _CORE + "str"):
                    self._fail("E011", f"unsupported tag `{_short(event.tag)}` on a key", event.start_mark)
                self._count(1, event.start_mark)
                attach(value, event.start_mark, event.style or None, event.end_mark.line + 1)
                if event.anchor:
                    self.anchors[event.anchor] = (value, 1)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                if event.tag not in (None, "!") and event.tag not in _COLLECTION_TAGS:
                    self._fail("E011", f"unsupported tag `{_short(event.tag)}`", event.start_mark,
                               "specs use plain mappings, lists and scalars only")
                if len(stack) >= MAX_DEPTH:
                    self._fail("E010", f"nesting is deeper than {MAX_DEPTH} levels", event.start_mark)
                self._count(1, event.start_mark)
                container: Any = {} if kind is yaml.MappingStartEvent else []
                path = stack[-1].child_path() if stack else ()
                attach(container, event.start_mark)  # filled in place as its events arrive
                stack.append(_Frame(container, path, anchor=event.anchor, start=self.nodes))
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                frame = stack.pop()
                if frame.anchor:
                    self.anchors[frame.anchor] = (frame.container, self.nodes - frame.start + 1)
            elif kind is yaml.AliasEvent:
                if event.anchor not in self.anchors:
                    self._fail("E005", f"alias `*{event.anchor}` refers to an unknown anchor", event.start_mark)
                value, size = self.anchors[event.anchor]
                self._count(size, event.start_mark)
                attach(value, event.start_mark)
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    self._fail("E006", "the file holds more than one YAML document", event.start_mark,
                               "keep one spec per file (remove the `---` separator)")
        if documents == 0 or result is None:
            raise _LoadError(error("E004", "the file is empty: it holds no spec", (self.doc.path, 1, 1),
                                   "run `expc init` for a starter spec"))
        if not isinstance(result, dict):
            # never the value itself: the file may be a link to a secret (a `.env`), and this line reaches CI logs
            kind_name = "a list" if isinstance(result, list) else "a single value"
            raise _LoadError(error("E007", f"the top level is {kind_name}, not a mapping of sections",
                                   self.doc.where(()), "a spec starts with `version: 1` and `experiment:`"))
        return result

    def _scalar(self, event: yaml.ScalarEvent) -> Any:
        value, tag = event.value, event.tag
        if tag in (None, "!") or tag == _CORE + "str":
            if tag is None and event.implicit[0]:  # plain, untagged: resolve
                return self._resolve(value, event)
            return value
        if tag not in _SCALAR_TAGS:
            self._fail("E011", f"unsupported tag `{_short(tag)}`", event.start_mark,
                       "specs use plain mappings, lists and scalars only")
        resolved = self._resolve(value, event)
        want = {"int": int, "float": float, "bool": bool, "null": type(None)}[tag.rsplit(":", 1)[1]]
        if want is float and type(resolved) is int:
            return float(resolved)
        if type(resolved) is not want:
            self._fail("E011", f"`{value}` is not a valid {tag.rsplit(':', 1)[1]}", event.start_mark)
        return resolved


    def _resolve(self, value: str, event: yaml.ScalarEvent) -> Any:
        try:
            return resolve_plain(value)
        except NumberTooLarge as exc:
            self._fail("E012", str(exc), event.start_mark, exc.hint)


class NumberTooLarge(ValueError):
    """A plain scalar is a number beyond what a spec may hold; the message says which limit."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def _short(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


_QUOTE_IT = "if it is a name or a code rather than a number, put it in quotes"


def _abbreviated(text: str, limit: int = 24) -> str:
    return f"`{text}`" if len(text) <= limit else f"`{text[: limit - 6]}...{text[-3:]}`"


def resolve_plain(text: str) -> Any:
    """Resolve a plain (unquoted) scalar by the YAML 1.2 core schema.

    Raises :class:`NumberTooLarge` for an integer of more than
    :data:`MAX_INT_DIGITS` digits (checked before converting it) and for a
    float too large for a double (``1e309``; ``.inf`` is infinity on purpose).
    """
    if text in _NULL:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT.match(text):
        digits = len(text.lstrip("+-").lstrip("0"))
        if digits > MAX_INT_DIGITS:
            raise NumberTooLarge(f"the integer {_abbreviated(text)} has {digits:,} digits; a number in a spec "
                                 f"has at most {MAX_INT_DIGITS}", _QUOTE_IT)
        return int(text)
    if _OCT.match(text) or _HEX.match(text):
        value = int(text[2:], 8 if text[1] == "o" else 16)  # linear time in any length
        if value >= 10**MAX_INT_DIGITS:
            raise NumberTooLarge(f"the integer {_abbreviated(text)} is larger than 10^{MAX_INT_DIGITS}, the largest "
                                 "number a spec may hold", _QUOTE_IT)
        return value
    if _FLOAT.match(text):
        number = float(text)
        if math.isinf(number):
            raise NumberTooLarge(f"the number {_abbreviated(text)} is too large for a floating-point number "
                                 "(the largest is about 1.8e308)",
                                 "write a smaller number")
        return number
    if _INF.match(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.match(text):
        return math.nan
    return text
