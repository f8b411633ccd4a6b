"""Model-graded checks: the judge's calls through a loopback OpenAI-compatible server, and offline.

The fake server answers ``"fake reply to: " + the last user message``; the
judge's user message starts with the rubric, so a rubric holding
``{"score": 0.9}`` makes the fake judge answer that score, and a rubric
without one makes it answer something that holds no score (malformed).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
from conftest import GREETING_TAIL, headline_candidates_spec
from fakellm import FakeLLM
from gen_helpers import plan_of, units_of

from expc.runtime.generate import judge as judge_mod
from expc.runtime.generate.judge import SYSTEM, candidate_scores, parse_score, top_k
from expc.runtime.generate.runner import BudgetExhausted, GenerateOptions, NotInStore, generate
from expc.runtime.generate.store import Store

MODEL = "openai/gpt-4o-mini"  # a model with a known price; the server echoes any name
pytestmark = pytest.mark.usefixtures("no_openai_key")

SPEC = """\
version: 1
experiment:
  id: judge-demo
  unit: user_id
attributes:
  user_id: string
  first_name: string
prompts:
  hello:
    model: {model}
    template: Write a greeting for {{{{ user.first_name }}}}.
    checks:
      on_fail: {on_fail}
      judge: {{model: {model}, rubric: '{rubric}', threshold: {threshold}}}
"""


def spec(rubric: str = '{"score": 0.9} Warm, for {{ user.first_name }}.', threshold: float = 0.5,
         on_fail: str = "skip", model: str = MODEL) -> str:
    """The spec above (then GREETING_TAIL): a per-unit prompt whose judge has ``rubric`` (YAML single-quoted)."""
    return SPEC.format(model=model, rubric=rubric, threshold=threshold, on_fail=on_fail) + GREETING_TAIL


def _run(server: FakeLLM, tmp_path: Path, text: str, n: int = 3, **kw):
    server.always(None)
    opts = GenerateOptions(api_base=server.url, backoff_base=0.01, **kw)
    return generate(plan_of(text), units_of(n), tmp_path / "s.sqlite", opts)


def _treated(result) -> list:
    return [i for i in result.items if i.variant == "treatment"]


def test_scores_are_parsed_and_the_judge_sees_the_rubric_then_the_text(server: FakeLLM, tmp_path: Path) -> None:
    before = len(server.requests)
    result = _run(server, tmp_path, spec())
    items = _treated(result)
    assert [i.status for i in items] == ["ok"] * 3 and [i.score for i in items] == [0.9] * 3
    assert result.calls == 6  # three texts, three judgements
    judged = [r for r in server.requests[before:] if r["messages"][0]["content"] == SYSTEM]
    assert len(judged) == 3 and all(r.get("temperature") == 0 for r in judged)
    user = judged[0]["messages"][-1]["content"]
    assert user.startswith('Rubric:\n{"score": 0.9} Warm, for Name')
    assert "Text to grade:\n<<<\nfake reply to: Write a greeting for Name" in user
    assert '"score": 0.9' in result.jsonl()


def test_the_judge_costs_count_and_a_re_run_repeats_no_call(server: FakeLLM, tmp_path: Path) -> None:
    first = _run(server, tmp_path, spec())
    items = _treated(first)
    assert all(i.cost > 0 and i.cost_known for i in items)
    assert first.spent == pytest.approx(sum(i.cost for i in first.items))
    with Store(tmp_path / "s.sqlite") as store:
        assert store.count() == 6
        judge_cost = sum(r.cost for r in store.get_many(_all_keys(store)).values()
                         if r.request["messages"][0]["content"] == SYSTEM)
    assert judge_cost > 0
    row = next(r for r in first.per_variant() if r["variant"] == "treatment")
    assert row["calls"] == 6 and row["cost"] == pytest.approx(first.spent)
    calls = server.calls
    again = _run(server, tmp_path, spec())
    assert server.calls == calls and again.calls == 0 and again.spent == 0
    assert [i.score for i in _treated(again)] == [0.9] * 3 and all(i.from_store for i in _treated(again))
    assert again.spent_total == pytest.approx(first.spent)


def _all_keys(store: Store) -> list[str]:
    return [row[0] for row in store._db.execute("SELECT key FROM calls")]


@pytest.mark.parametrize(("on_fail", "status"), [("skip", "skipped"), ("use_control", "use_control"),
                                                  ("error", "failed")])
def test_a_score_below_the_threshold_fails_under_on_fail(server: FakeLLM, tmp_path: Path, on_fail: str,
                                                         status: str) -> None:
    result = _run(server, tmp_path, spec(rubric='{"score": 0.2} Warm.', on_fail=on_fail), n=2)
    items = _treated(result)
    assert [i.status for i in items] == [status] * 2 and [i.score for i in items] == [0.2] * 2
    assert "score 0.2, below the threshold 0.5" in (items[0].reason or "")
    if status == "use_control":
        assert items[0].content == "Hello!"
    if status == "skipped":
        assert items[0].content is None
    assert (result.rejection() is not None) == (on_fail == "error")


@pytest.mark.parametrize(("rubric", "problem"), [
    ("Warm and short.", "holds no JSON object"),
    ('{"score": 7} Warm.', "score 7 is outside 0 to 1"),
    ('{"score": "high"} Warm.', "no numeric `score`"),
])
def test_a_malformed_answer_fails_under_on_fail(server: FakeLLM, tmp_path: Path, rubric: str, problem: str) -> None:
    result = _run(server, tmp_path, spec(rubric=rubric, on_fail="use_control"), n=2)
    items = _treated(result)
    assert [i.status for i in items] == ["use_control"] * 2 and all(i.score is None for i in items)
    assert problem in (items[0].reason or "") and items[0].content == "Hello!"
    failed = _run(server, tmp_path, spec(rubric=rubric, on_fail="error"), n=2)
    assert failed.rejection() is not None and problem in failed.rejection()


def test_the_budget_counts_the_judge_and_a_resume_pays_only_for_it(server: FakeLLM, tmp_path: Path) -> None:
    probe = _run(server, tmp_path / "probe", spec(), n=2, concurrency=1)
    copy_cost = sum(i.cost for i in probe.items) - _judge_spend(tmp_path / "probe" / "s.sqlite")
    with pytest.raises(BudgetExhausted) as caught:
        _run(server, tmp_path, spec(), n=2, concurrency=1, max_cost=copy_cost * 0.999999)
    assert "2 request(s) not generated" in str(caught.value)  # the two judgements
    stopped = _treated(caught.value.result)
    assert all(i.status == "failed" and "not judged" in (i.reason or "") for i in stopped)
    calls = server.calls
    resumed = _run(server, tmp_path, spec(), n=2, concurrency=1)
    assert server.calls - calls == 2 and resumed.calls == 2  # the two judgements only
    assert [i.score for i in _treated(resumed)] == [0.9, 0.9]


def _judge_spend(path: Path) -> float:
    with Store(path) as store:
        return sum(r.cost for r in store.get_many(_all_keys(store)).values()
                   if r.request["messages"][0]["content"] == SYSTEM)


def test_store_only_refuses_a_judgement_that_was_never_made(server: FakeLLM, tmp_path: Path) -> None:
    without = spec().replace("      judge: {model: openai/gpt-4o-mini, rubric: '{\"score\": 0.9} Warm, for "
                             "{{ user.first_name }}.', threshold: 0.5}\n", "")
    assert "judge: " not in without
    _run(server, tmp_path, without, n=2)
    with pytest.raises(NotInStore, match="judgement"):
        _run(server, tmp_path, spec(), n=2, store_only=True)
    _run(server, tmp_path, spec(), n=2)
    assert [i.score for i in _treated(_run(server, tmp_path, spec(), n=2, store_only=True))] == [0.9, 0.9]


# ------------------------------------------------------------------ offline


CANDIDATES = headline_candidates_spec("cand-offline", threshold=0.7, countries="France, Germany, Spain",
                                      units_per_day=1000, days=7, on_fail="skip")


def test_offline_candidates_get_distinct_copy_and_deterministic_scores(tmp_path: Path) -> None:
    plan = plan_of(CANDIDATES)
    result = generate(plan, None, tmp_path / "s.sqlite", GenerateOptions())
    items = [i for i in result.items if i.variant.startswith("ai-")]
    assert len(items) == 12 and result.calls > 24  # texts below 0.7 were regenerated (and judged again)
    for country in ("France", "Germany", "Spain"):
        texts = [i.content for i in items if i.key == {"country": country} and i.status == "ok"]
        scored = [i for i in items if i.key == {"country": country}]
        assert len({i.variant for i in scored}) == 4
        assert len(set(texts)) == len(texts)  # no two candidates share a text
    assert all(i.score is not None and 0.4 <= i.score <= 1.0 for i in items)
    assert all((i.status == "ok") == (i.score >= 0.7) for i in items if i.score is not None)
    again = generate(plan, None, tmp_path / "s.sqlite", GenerateOptions())
    assert again.calls == 0 and [i.score for i in again.items] == [i.score for i in result.items]
    assert [(i.status, i.content) for i in again.items] == [(i.status, i.content) for i in result.items]
    scores = candidate_scores(plan, result.items)
    kept = top_k(plan, scores)["ai"]
    assert len(kept) == 2 and min(scores[a] for a in kept) >= max(s for a, s in scores.items() if a not in kept)


def test_offline_flag_sends_the_judge_offline_too(tmp_path: Path) -> None:
    text = CANDIDATES.replace("offline/writer", "openai/gpt-4o-mini").replace("offline/judge", "openai/gpt-4o")
    result = generate(plan_of(text), None, tmp_path / "s.sqlite", GenerateOptions(offline=True))
    assert all(i.score is not None for i in result.items if i.variant.startswith("ai-"))
    with Store(tmp_path / "s.sqlite") as store:
        models = {r.model for r in store.get_many(_all_keys(store)).values()}
    assert models == {"offline/gpt-4o-mini", "offline/gpt-4o"}


# ------------------------------------------------------------------ the answer, parsed


@pytest.mark.parametrize(("reply", "score"), [
    ('{"score": 0.75, "reason": "fine"}', 0.75),
    ('```json\n{"score": 1}\n```', 1.0),
    ('Here you go: {"reason": "ok", "score": 0}. Done.', 0.0),
    ('{"other": 1} then {"score": 0.5}', 0.5),
])
def test_parse_score_reads_a_json_object_with_a_score(reply: str, score: float) -> None:
    assert parse_score(reply) == (score, None)


@pytest.mark.parametrize("reply", ["", "  ", "0.9", '{"score": true}', '{"score": NaN}', '{"score": -0.1}',
                                   '{"score": 1.5}', '{"score": [1]}', "{" * 100_000, '{"score": 1e999}'])
def test_parse_score_refuses_anything_else(reply: str) -> None:
    score, problem = parse_score(reply)
    assert score is None and problem


def test_top_k_breaks_ties_by_candidate_number_and_ignores_variants_without_it() -> None:
    plan = plan_of(CANDIDATES)
    assert top_k(plan, {"ai-1": 0.5, "ai-2": 0.9, "ai-3": 0.9, "ai-4": 0.1}) == {"ai": ["ai-2", "ai-3"]}
    assert top_k(plan, {}) == {"ai": ["ai-1", "ai-2"]}
    no_top = plan_of(CANDIDATES.replace("    top_k: 2\n", ""))
    assert top_k(no_top, {"ai-1": 1.0}) == {}


def test_the_offline_judgement_is_deterministic_json() -> None:
    from expc.runtime.generate.offline import offline_reply

    sent = judge_mod.messages("Accurate.", "A headline.")
    a = offline_reply("offline/judge", sent, 0, {"expc_judge": True}).content
    assert a == offline_reply("offline/judge", sent, 0, {"expc_judge": True}).content
    score, problem = parse_score(a)
    assert problem is None and score is not None and 0.4 <= score <= 1.0 and not math.isnan(score)
    assert textwrap.dedent(a).startswith("{")


PERSONAL = """\
version: 1
experiment:
  id: judge-pii
  unit: user_id
attributes:
  user_id: string
  first_name: {type: string, pii: true}
prompts:
  hello:
    model: offline/writer
    send_pii: [first_name]
    template: Write a greeting for {{ user.first_name }}.
    checks:
      judge: {model: offline/judge, rubric: 'Warm towards {{ user.first_name }}.', threshold: 0.0}
""" + GREETING_TAIL


def test_a_judge_request_with_personal_values_is_keyed_and_recorded_without_them(tmp_path: Path) -> None:
    result = generate(plan_of(PERSONAL), units_of(2), tmp_path / "s.sqlite", GenerateOptions())
    assert [i.status for i in _treated(result)] == ["ok", "ok"]
    with Store(tmp_path / "s.sqlite") as store:
        records = list(store.get_many(_all_keys(store)).values())
    judged = [r for r in records if r.request["messages"][0]["content"] == SYSTEM]
    assert len(judged) == 2
    for record in judged:
        text = record.request["messages"][-1]["content"]
        assert "Name0" not in text and "Name1" not in text and "[first_name]" in text
    again = generate(plan_of(PERSONAL), units_of(2), tmp_path / "s.sqlite", GenerateOptions())
    assert again.calls == 0


def test_the_review_sheet_shows_each_candidate_score(tmp_path: Path) -> None:
    from expc.generate_report import review_markdown

    plan = plan_of(CANDIDATES)
    result = generate(plan, None, tmp_path / "s.sqlite", GenerateOptions())
    sheet = review_markdown(plan, result.items, "candidates.yaml")
    first = next(i for i in result.items if i.variant == "ai-1")
    assert first.score is not None and f"(judge {first.score:.2f})" in sheet
    assert all(f"ai-{j}" in sheet for j in range(1, 5))


def test_a_plan_whose_judge_model_holds_a_url_is_refused(tmp_path: Path) -> None:
    from conftest import edited

    from expc.runtime.generate.runner import GenerationInputError

    def point_elsewhere(data: dict) -> None:
        data["prompts"]["hello"]["checks"]["judge"]["model"] = "openai/https://evil.example/v1"

    plan = edited(plan_of(spec()), point_elsewhere)
    with pytest.raises(GenerationInputError, match="holds a URL"):
        generate(plan, units_of(1), tmp_path / "s.sqlite", GenerateOptions(api_base="http://127.0.0.1:9/v1"))


def test_a_text_the_judge_fails_is_regenerated_then_on_fail_applies(server: FakeLLM, tmp_path: Path) -> None:
    text = spec(rubric='{"score": 0.2} Warm.', on_fail="skip").replace("      on_fail: skip\n",
                                                                       "      on_fail: skip\n      regenerate: 2\n")
    result = _run(server, tmp_path, text, n=2)
    items = _treated(result)
    assert result.calls == 12  # per unit: three texts (seeds 0, 1, 2), each judged
    assert [i.status for i in items] == ["skipped"] * 2 and [i.score for i in items] == [0.2] * 2
    assert "after 3 attempt(s)" in (items[0].reason or "") and "score 0.2" in (items[0].reason or "")
    assert result.spent == pytest.approx(sum(i.cost for i in result.items))
    calls = server.calls
    again = _run(server, tmp_path, text, n=2)
    assert server.calls == calls and again.calls == 0 and [i.status for i in _treated(again)] == ["skipped"] * 2
    assert again.spent_total == pytest.approx(result.spent)
    with pytest.raises(NotInStore):  # a store-only run must find the whole chain
        _run(server, tmp_path / "other", text, n=2, store_only=True)


def test_regeneration_stops_at_the_first_text_the_judge_passes(tmp_path: Path) -> None:
    plan = plan_of(CANDIDATES.replace("threshold: 0.7", "threshold: 0.9"))
    result = generate(plan, None, tmp_path / "s.sqlite", GenerateOptions())
    with Store(tmp_path / "s.sqlite") as store:
        stored = store.count()
    assert stored == result.calls
    for item in (i for i in result.items if i.variant.startswith("ai-")):
        assert (item.status == "ok") == (item.score is not None and item.score >= 0.9)


def test_judgements_are_counted_once_when_other_texts_are_regenerated(server: FakeLLM, tmp_path: Path) -> None:
    rubric = '{"score": {{ 0.9 if user.first_name == "Name0" else 0.2 }}} Warm.'
    before = server.calls
    result = _run(server, tmp_path, spec(rubric=rubric.replace("'", "''")), n=2)
    first, second = _treated(result)
    assert (first.status, first.score) == ("ok", 0.9) and (second.status, second.score) == ("skipped", 0.2)
    assert result.calls == server.calls - before == 2 + 6  # unit 0: one text, one judgement; unit 1: three of each
    assert result.spent == pytest.approx(sum(i.cost for i in result.items))
    row = next(r for r in result.per_variant() if r["variant"] == "treatment")
    assert row["calls"] == 8 and row["cost"] == pytest.approx(result.spent)


def test_a_judge_without_its_key_stops_the_run_before_any_call(server: FakeLLM, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from expc.runtime.generate.runner import MissingCredentials

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    text = spec().replace("judge: {model: openai/gpt-4o-mini", "judge: {model: anthropic/claude-3-5-haiku-latest")
    calls = server.calls
    with pytest.raises(MissingCredentials, match="ANTHROPIC_API_KEY"):
        _run(server, tmp_path, text, n=2)
    assert server.calls == calls
