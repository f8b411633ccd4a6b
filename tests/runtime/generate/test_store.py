"""The content store: keys, round trips, one commit per call, WAL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from expc.runtime.files import OutputError
from expc.runtime.generate.store import Record, Store, request_key

MSGS = [{"role": "user", "content": "hi"}]


def _record(key: str, content: str = "hello") -> Record:
    return Record(key=key, model="m", api_base=None, request={"messages": MSGS}, content=content,
                  response_model="m", prompt_tokens=3, completion_tokens=2, cost=0.01, cost_known=True,
                  latency=0.1, attempts=1, checks=[])


def test_key_depends_on_everything_that_decides_the_reply() -> None:
    base = request_key("m", None, {"temperature": 0.5}, MSGS, 0)
    assert base == request_key("m", None, {"temperature": 0.5}, MSGS, 0)
    assert base == request_key("m", "", {"temperature": 0.5}, MSGS, 0)
    others = {
        request_key("m2", None, {"temperature": 0.5}, MSGS, 0),
        request_key("m", "http://x/v1", {"temperature": 0.5}, MSGS, 0),
        request_key("m", None, {"temperature": 0.6}, MSGS, 0),
        request_key("m", None, {"temperature": 0.5}, [{"role": "user", "content": "ho"}], 0),
        request_key("m", None, {"temperature": 0.5}, MSGS, 1),
    }
    assert base not in others and len(others) == 5


def test_round_trip_and_commit_per_call(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.put(_record("a"))
        # another connection sees it at once: committed, not waiting for close
        assert sqlite3.connect(path).execute("select content from calls where key='a'").fetchone() == ("hello",)
        store.put(_record("b", "bye"))
        found = store.get_many(["a", "b", "c"])
    assert set(found) == {"a", "b"} and found["b"].content == "bye" and found["a"].tokens == 5
    with Store(path) as store:
        assert store.count() == 2
        assert sqlite3.connect(path).execute("pragma journal_mode").fetchone()[0] == "wal"


def test_many_keys(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        for i in range(2000):
            store.put(_record(f"k{i}"))
        assert len(store.get_many(f"k{i}" for i in range(0, 4000, 2))) == 1000


# ---------------------------------------------------------------- where the store may be, and write errors


@pytest.mark.parametrize("name", ["s.sqlite", "s.sqlite-wal", "s.sqlite-journal"])
def test_a_link_planted_at_the_store_is_refused_and_its_target_kept(tmp_path: Path, name: str) -> None:
    victim = tmp_path / "victim.db"
    victim.write_bytes(b"precious")
    (tmp_path / name).symlink_to(victim)
    with pytest.raises(OutputError, match=f"{name}: is a symbolic link"):
        Store(tmp_path / "s.sqlite")
    assert victim.read_bytes() == b"precious"


def test_a_file_that_is_not_sqlite_is_one_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "s.sqlite").write_text("my notes, not a database\n" * 100)
    with pytest.raises(OutputError, match="s.sqlite: the content store cannot be used: it is not a SQLite file"):
        Store(tmp_path / "s.sqlite")


def test_a_store_under_a_regular_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("a file")
    with pytest.raises(OutputError, match="notes is a file, not a folder"):
        Store(tmp_path / "notes" / "s.sqlite")


def test_a_full_disk_while_storing_a_call_is_one_error_naming_the_store(tmp_path: Path) -> None:
    class Full:
        def execute(self, *args: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        def close(self) -> None:
            pass

    with Store(tmp_path / "s.sqlite") as store:
        store.put(_record("a"))
        real, store._db = store._db, Full()
        with pytest.raises(OutputError, match="s.sqlite: the content store cannot be used: No space left on device"):
            store.put(_record("b"))
        store._db = real
        assert store.count() == 1
