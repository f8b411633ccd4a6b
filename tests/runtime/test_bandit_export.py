"""The GrowthBook export of a bandit: the current weights, and sticky bucketing keeps each user's first arm."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import plan_of_text
from growthbook import GrowthBook, InMemoryStickyBucketService
from test_bandit_run import SPEC

from expc.runtime.bandit import current_weights
from expc.runtime.export import STICKY, growthbook_export


def _look(folder: Path, index: int, weights: dict[str, float]) -> None:
    (folder / "looks").mkdir(parents=True, exist_ok=True)
    (folder / "looks" / f"look-{index:03d}.json").write_text(json.dumps({"bandit": {"next_weights": weights}}))


def test_the_export_serves_the_last_looks_weights_and_says_to_use_sticky_bucketing(tmp_path: Path) -> None:
    plan = plan_of_text(SPEC)
    assert current_weights(plan, tmp_path).weights == [1 / 3] * 3  # before the first look: exploration
    _look(tmp_path, 1, {"control": 0.2, "b": 0.6, "c": 0.2})
    _look(tmp_path, 2, {"control": 0.1, "b": 0.8, "c": 0.1})
    (tmp_path / "looks" / "look-003.json").write_text("{not json")  # passed over
    current = current_weights(plan, tmp_path)
    assert current.weights == [0.1, 0.8, 0.1] and current.look == 2
    exported = growthbook_export(plan, None, current)
    rule = exported.payload["features"]["bandit-run"]["rules"][0]
    assert rule["weights"] == [0.1, 0.8, 0.1]
    assert exported.payload["expc"]["bandit"]["from_look"] == 2
    assert STICKY in exported.warnings


def test_with_sticky_bucketing_users_keep_their_arm_when_the_weights_move() -> None:
    plan = plan_of_text(SPEC)
    first = growthbook_export(plan, None).payload
    moved = growthbook_export(plan, None, type("W", (), {"weights": [0.05, 0.9, 0.05], "look": 3})()).payload
    store = InMemoryStickyBucketService()

    def variant(payload: dict, user: str, sticky: bool) -> str:
        gb = GrowthBook(attributes={"user_id": user}, features=payload["features"],
                        sticky_bucket_service=store if sticky else None)
        return gb.get_feature_value("bandit-run", None)

    users = [f"u{i}" for i in range(300)]
    before = {u: variant(first, u, True) for u in users}
    after_sticky = {u: variant(moved, u, True) for u in users}
    after_plain = {u: variant(moved, u, False) for u in users}
    assert after_sticky == before
    assert sum(before[u] != after_plain[u] for u in users) > 50  # without it, many users would switch arms
    assert sum(after_plain[u] == "b" for u in users) > 200
