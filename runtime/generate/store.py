"""The content store: every completed model call, in one SQLite file.

A call is identified by :func:`request_key`, the SHA-256 of its model, API
base, parameters, rendered messages and seed: the same request is never paid
for twice. A request that carries personal values (``pii`` attributes) is
keyed by HMAC-SHA256 under the store's own random secret (:meth:`Store.secret`)
instead, and recorded with placeholders in their place (see :mod:`.personal`).
Each completed call is committed on its own (WAL mode), so a process killed in
the middle loses nothing that finished. The ``batches`` table records the
provider batches in flight (:mod:`.batch`), so a re-run collects them instead
of submitting the calls again. API keys are never part of a request as
stored: :func:`request_key` and :meth:`Store.put` take only what
:mod:`expc.runtime.generate.calls` passes, which holds no secret.

The store is never opened through a symbolic link (a link planted at its name,
or at SQLite's ``-wal``, ``-shm`` or ``-journal`` beside it, is refused), and a
store that cannot be opened or written (disk full, read-only, permission
denied, not a SQLite file) raises :class:`~expc.runtime.files.OutputError`,
one line naming it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import sqlite3
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import OutputError, output_error
from .personal import keyed_digest

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    api_base TEXT,
    request TEXT NOT NULL,
    content TEXT,
    response_model TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    cost_known INTEGER NOT NULL,
    latency REAL NOT NULL,
    attempts INTEGER NOT NULL,
    checks TEXT NOT NULL,
    created REAL NOT NULL,
    deployment TEXT
)
"""
SECRETS = """
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
)
"""
BATCHES = """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    open INTEGER NOT NULL,
    created REAL NOT NULL
)
"""


def request_key(model: str, api_base: str | None, params: dict[str, Any], messages: list[dict[str, str]],
                seed: int | None, secret: bytes | None = None) -> str:
    """The store key of a request: a digest of everything that decides the reply (and nothing secret).

    With ``secret`` (a request that carries personal values), the digest is
    keyed (HMAC-SHA256): a key cannot be matched against guessed values.
    """
    canonical = json.dumps([model, api_base or "", params, messages, seed], sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"))
    if secret is not None:
        return keyed_digest(secret, canonical)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Record:
    """One completed call as stored."""

    key: str
    model: str
    api_base: str | None
    request: dict[str, Any]
    content: str | None
    response_model: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float
    cost_known: bool
    latency: float
    attempts: int
    checks: list[str]
    deployment: str | None = None  # the deployment of the prompt that served it (None: the prompt's own model)

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


_SQLITE_REASONS = {
    "database or disk is full": os.strerror(errno.ENOSPC),
    "attempt to write a readonly database": "it is read-only (the file or its folder)",
    "unable to open database file": "it cannot be opened (a read-only folder, or permission denied)",
    "file is not a database": "it is not a SQLite file",
}

_COLUMNS = ("key", "model", "api_base", "request", "content", "response_model", "prompt_tokens",
            "completion_tokens", "cost", "cost_known", "latency", "attempts", "checks", "deployment")


class Store:
    """The SQLite content store (a context manager; close it when done)."""

    def __init__(self, path: str | Path) -> None:
        """Open (or create) the store at ``path``; :class:`OutputError` when it cannot be."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise output_error(path, exc) from None
        for name in (path.name, *(f"{path.name}{s}" for s in ("-wal", "-shm", "-journal"))):
            try:
                mode = os.lstat(path.parent / name).st_mode
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(mode):
                what = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
                raise OutputError(f"{path.parent / name}: is {what}; the content store is never opened through "
                                  "it: remove it, or give another store", path)
        self.path = path
        db = None
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a commit survives a killed process (not a power cut)
            db.execute("PRAGMA busy_timeout=10000")
            db.execute(SCHEMA)
            if "deployment" not in {row[1] for row in db.execute("PRAGMA table_info(calls)")}:
                db.execute("ALTER TABLE calls ADD COLUMN deployment TEXT")  # a store made before routing
            db.execute(SECRETS)
            db.execute(BATCHES)
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            raise _store_error(path, exc) from None
        self._db = db

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def get_many(self, keys: Iterable[str]) -> dict[str, Record]:
        """The stored records among ``keys``."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Record] = {}
        for start in range(0, len(keys), 900):  # SQLite's parameter limit
            chunk = keys[start:start + 900]
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM calls WHERE key IN ({', '.join('?' * len(chunk))})", chunk)
            for row in rows:
                found[row[0]] = _record(row)
        return found

    def put(self, record: Record) -> None:
        """Store one completed call and commit it at once (:class:`OutputError` when it cannot be written)."""
        try:
            self._db.execute(
                f"INSERT OR REPLACE INTO calls ({', '.join(_COLUMNS)}, created) VALUES ({', '.join('?' * 15)})",
                (record.key, record.model, record.api_base, json.dumps(record.request, sort_keys=True),
                 record.content, record.response_model, record.prompt_tokens, record.completion_tokens,
                 record.cost, int(record.cost_known), record.latency, record.attempts,
                 json.dumps(record.checks), record.deployment, time.time()),
            )
        except sqlite3.OperationalError as exc:
            raise _store_error(self.path, exc) from None

    def secret(self) -> bytes:
        """The store's random secret that keys the requests carrying personal values (made on first use)."""
        try:
            self._db.execute("INSERT OR IGNORE INTO secrets (name, value) VALUES ('personal', ?)",
                             (secrets.token_bytes(32),))
            row = self._db.execute("SELECT value FROM secrets WHERE name = 'personal'").fetchone()
        except sqlite3.OperationalError as exc:
            raise _store_error(self.path, exc) from None
        return bytes(row[0])

    def put_batch(self, local_id: str, state: dict[str, Any], open: bool = True) -> None:
        """Record (commit at once) the state of a provider batch this store's calls went to (see :mod:`.batch`)."""
        try:
            self._db.execute(
                "INSERT INTO batches (id, state, open, created) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE "
                "SET state = excluded.state, open = excluded.open",
                (local_id, json.dumps(state, sort_keys=True), int(open), time.time()))
        except sqlite3.OperationalError as exc:
            raise _store_error(self.path, exc) from None

    def open_batches(self) -> list[tuple[str, dict[str, Any]]]:
        """The recorded batches not yet collected, oldest first: (local id, state)."""
        rows = self._db.execute("SELECT id, state FROM batches WHERE open = 1 ORDER BY created, id")
        return [(row[0], json.loads(row[1])) for row in rows]

    def count(self) -> int:
        """How many calls are stored."""
        return int(self._db.execute("SELECT count(*) FROM calls").fetchone()[0])


def _store_error(path: Path, exc: sqlite3.Error) -> OutputError:
    """One line naming the store and what SQLite found, in words that say what to do."""
    why = _SQLITE_REASONS.get(str(exc), str(exc))
    return OutputError(f"{path}: the content store cannot be used: {why}", path)


def _record(row: tuple[Any, ...]) -> Record:
    return Record(key=row[0], model=row[1], api_base=row[2], request=json.loads(row[3]), content=row[4],
                  response_model=row[5], prompt_tokens=row[6], completion_tokens=row[7], cost=row[8],
                  cost_known=bool(row[9]), latency=row[10], attempts=row[11], checks=json.loads(row[12]),
                  deployment=row[13])
