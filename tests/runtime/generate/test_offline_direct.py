"""The offline model served directly (no litellm) stores what litellm's ``offline`` provider stores.

Each case runs :func:`generate` twice into two fresh stores: once as expc
runs (the offline model answered in :mod:`~expc.runtime.generate.calls`,
with litellm made unimportable to prove it is not needed), once with the
calls sent through ``litellm.acompletion`` and the custom provider. The
items, the calls, the cost and every stored record (key, request, content,
tokens, cost, checks; not the latency) must be the same.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gen_helpers import plan_of, spec_text

from expc.compiler.model import Checks
from expc.compiler.plan import Plan
from expc.runtime.generate import calls
from expc.runtime.generate.runner import GenerateOptions, GenerationResult, generate
from expc.runtime.generate.store import Store
from expc.runtime.units import Units

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")  # before any import of litellm: no price-table download

ROOT = Path(__file__).resolve().parents[3]
COLUMNS = ("key, model, api_base, request, content, response_model, prompt_tokens, completion_tokens, cost, "
           "cost_known, attempts, checks")


def _units(n: int) -> Units:
    ids = np.array([f"u{i}" for i in range(n)], dtype=object)
    names = np.array([f"Name{i}" for i in range(n)], dtype=object)
    countries = np.array(["US", "CA", "FR"] * n, dtype=object)[:n]
    return Units({"user_id": ids, "first_name": names, "country": countries},
                 {"user_id": "string", "first_name": "string", "country": "string"})


def _small(per: str, checks: str = "{}", model: str = "offline/test") -> tuple[Plan, Units]:
    text = spec_text(model=model, checks=checks)
    if per != "unit":
        text = text.replace("generate: {per: unit}", "generate: {per: segment, segment_by: [country]}"
                            if per == "segment" else "generate: {per: once}")
    template = {"unit": "{{ user.first_name }} from {{ user.country }}", "segment": "people from {{ user.country }}",
                "once": "everyone"}[per]
    text = text.replace("Write a greeting for {{ user.first_name }}.", f"Write a greeting for {template}.")
    return plan_of(text), _units(7)


def _example(name: str) -> tuple[Plan, Units]:
    from expc.runtime.synthetic import draw_units

    plan = plan_of((ROOT / "specs" / name).read_text(encoding="utf-8"), name)
    units, _ = draw_units(plan, 1, 7)
    keep = np.arange(len(units.columns[plan.experiment.unit])) < 40
    return plan, Units({k: v[keep] for k, v in units.columns.items()}, units.types)


CASES: dict[str, Any] = {
    "once": lambda: _small("once"),
    "segment": lambda: _small("segment"),
    "unit": lambda: _small("unit"),
    "chars-window": lambda: _small("unit", "{min_chars: 120, max_chars: 200}"),
    "json-schema": lambda: _small("segment", "{json_schema: {type: object, required: [title], properties: "
                                             "{title: {type: string, maxLength: 40}, n: {type: integer}}}}"),
    "fails-json-too-large": lambda: _small("once", "{json_schema: {type: array, minItems: 100000, items: {type: "
                                                   "string, minLength: 100}}, regenerate: 1, on_fail: skip}"),
    "fails-error": lambda: _small("unit", "{forbid: [offline], regenerate: 2, on_fail: error}"),
    "fails-skip": lambda: _small("segment", "{forbid: [offline], regenerate: 1, on_fail: skip}"),
    "fails-use-control": lambda: _small("once", "{forbid: [offline], regenerate: 3, on_fail: use_control}"),
    "offline-flag": lambda: _small("unit", "{max_chars: 70}", model="openai/gpt-4o-mini"),
    **{name: (lambda n=name: _example(n)) for name in
       ("welcome-email.yaml", "push-notification.yaml", "product-descriptions.yaml")},
}


def _rows(store: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store) as db:
        return db.execute(f"SELECT {COLUMNS} FROM calls ORDER BY key").fetchall()


def _empty_copy(store: Path, to: Path) -> None:
    """A store with ``store``'s secret (the key of a request with personal values depends on it) and no call."""
    shutil.copyfile(store, to)
    with sqlite3.connect(to) as db:
        db.execute("DELETE FROM calls")
    with Store(to) as emptied:
        assert emptied.count() == 0


def _direct(plan: Plan, units: Units, store: Path, opts: GenerateOptions,
            monkeypatch: pytest.MonkeyPatch) -> GenerationResult:
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "litellm", None)  # `import litellm` fails: this path must not need it
        return generate(plan, units, store, opts)


def _through_litellm(plan: Plan, units: Units, store: Path, opts: GenerateOptions,
                     monkeypatch: pytest.MonkeyPatch) -> tuple[GenerationResult, int]:
    import litellm

    seen = []
    real = litellm.acompletion

    async def counted(**kwargs: Any) -> Any:
        seen.append(kwargs["model"])
        return await real(**kwargs)

    with monkeypatch.context() as m:
        m.setattr(calls, "SERVE_OFFLINE_DIRECTLY", False)
        m.setattr(litellm, "acompletion", counted)
        result = generate(plan, units, store, opts)
    return result, len(seen)


@pytest.mark.parametrize("case", sorted(CASES))
def test_direct_and_litellm_paths_store_the_same_records(case: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    plan, units = CASES[case]()
    opts = GenerateOptions(offline=True, seed=5)
    direct = _direct(plan, units, tmp_path / "direct.sqlite", opts, monkeypatch)
    _empty_copy(tmp_path / "direct.sqlite", tmp_path / "litellm.sqlite")
    routed, through = _through_litellm(plan, units, tmp_path / "litellm.sqlite", opts, monkeypatch)
    assert direct.calls > 0 and through == routed.calls == direct.calls
    assert direct.jsonl() == routed.jsonl()
    assert direct.spent == routed.spent == 0.0
    assert direct.per_variant() == routed.per_variant()
    assert _rows(tmp_path / "direct.sqlite") == _rows(tmp_path / "litellm.sqlite")
    statuses = {item.status for item in direct.items}
    if case.startswith("fails-"):
        assert statuses & {"failed", "skipped", "use_control"}  # the checks did fail: on_fail was exercised


def test_a_direct_run_resumes_from_a_litellm_run_without_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan, units = _small("unit", "{max_chars: 70}")
    store = tmp_path / "s.sqlite"
    first, _ = _through_litellm(plan, units, store, GenerateOptions(), monkeypatch)
    again = _direct(plan, units, store, GenerateOptions(), monkeypatch)
    assert first.calls == 7 and again.calls == 0  # the same store keys
    assert again.jsonl() == first.jsonl()


def test_a_failing_offline_model_stops_at_once_with_one_line(tmp_path: Path) -> None:
    """A plan written by hand may hold a schema the offline model cannot fill: one clear error, no retries."""
    target = calls.Target("offline/x", None, {"extra_body": {"expc_json_schema": {"type": "array",
                                                                                   "minItems": "many"}}})
    task = calls.Task(target, [{"role": "user", "content": "hi"}], Checks(), 0)
    limits = calls.Limits(concurrency=1, timeout=5.0, backoff_base=10.0)
    with Store(tmp_path / "s.sqlite") as store:
        outcome = calls.run([task], store, limits)
        assert store.count() == 0
    assert outcome.calls == 0 and not task.done
    assert outcome.provider_error is not None and outcome.provider_error.startswith("offline/x: the offline model")
    assert "\n" not in outcome.provider_error
