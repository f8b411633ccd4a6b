"""Candidates: `candidates: N` expands a variant into N arms; `top_k` and `judge` are checked where they are written."""

from __future__ import annotations

import pytest
from conftest import CLICKED, check_text, codes, located, plan_of_text

from expc.compiler.candidates import SEED_STRIDE, candidate_ids, expanded, seed_offset, with_selection
from expc.compiler.plan import Plan
from expc.plan_summary import summarise

SPEC = """\
version: 1
experiment:
  id: cand-demo
  unit: user_id
attributes:
  user_id: string
  country: string
prompts:
  headline:
    model: offline/test
    temperature: 0.9
    template: Write a headline about {{{{ segment.country }}}} news.
    checks:
      max_chars: 120
      {judge}
variants:
  - id: control
    content: Today's news.
  - id: ai
    prompt: headline
    weight: 2
    generate: {{per: segment, segment_by: [country]}}
    {ai}
"""
SIMULATION = """\
simulation:
  units_per_day: 1000
  days: 7
  attributes:
    country: {{values: [fr, de]}}
  truth:
    control: {{clicked: 0.1}}
    ai: {{clicked: 0.11}}
    {truth}
"""

JUDGE = "judge: {model: offline/judge, rubric: 'Accurate, no clickbait, for {{ segment.country }}.', threshold: 0.3}"


def spec(ai: str = "candidates: 4", judge: str = JUDGE, truth: str = "") -> str:
    """The spec above (then CLICKED and SIMULATION) with lines for variant `ai`, the prompt's judge and the truth."""
    return SPEC.format(ai=ai, judge=judge) + CLICKED + SIMULATION.format(truth=truth)


def test_candidates_become_arms_with_stable_ids_and_equal_shares_of_the_weight() -> None:
    plan = plan_of_text(spec(ai="candidates: 4\n    top_k: 2"))
    assert [v.id for v in plan.variants] == ["control", "ai-1", "ai-2", "ai-3", "ai-4"]
    weights = {v.id: v.weight for v in plan.variants}
    assert weights["control"] == pytest.approx(1 / 3)
    assert all(weights[f"ai-{j}"] == pytest.approx(2 / 3 / 4) for j in range(1, 5))
    arms = [v for v in plan.variants if v.candidate_of == "ai"]
    assert [v.candidate for v in arms] == [1, 2, 3, 4]
    assert all(v.prompt == "headline" and v.top_k == 2 and v.generate and v.generate.per == "segment" for v in arms)
    assert plan.arm_ids[0] == "control" and len(plan.metrics[0].family) and plan.metrics[0].family_size == 4
    jobs = {j.variant: j for j in plan.generation.jobs}
    assert [jobs[f"ai-{j}"].seed_offset for j in range(1, 5)] == [0, SEED_STRIDE, 2 * SEED_STRIDE, 3 * SEED_STRIDE]
    assert all(jobs[f"ai-{j}"].candidate_of == "ai" for j in range(1, 5))


def test_the_plan_round_trips_and_a_plan_without_candidates_carries_no_candidate_keys() -> None:
    plan = plan_of_text(spec(ai="candidates: 3\n    top_k: 1"))
    assert Plan.from_json(plan.to_json()) == plan
    plain = plan_of_text(spec(ai=""))
    text = plain.to_json()
    assert "candidate" not in text and "top_k" not in text and "seed_offset" not in text
    assert [v.id for v in plain.variants] == ["control", "ai"]


def test_the_truth_of_the_variant_applies_to_its_candidates_unless_one_has_its_own() -> None:
    plan = plan_of_text(spec(ai="candidates: 3", truth="ai-2: {clicked: 0.12}"))
    assert plan.simulation is not None
    truth = {v: t["clicked"].mean for v, t in plan.simulation.truth.items()}
    assert truth == {"control": 0.1, "ai-1": 0.11, "ai-2": 0.12, "ai-3": 0.11}


def test_expanded_leaves_a_spec_without_candidates_as_it_is() -> None:
    result = check_text(spec(ai=""))
    assert result.spec is not None and expanded(result.spec) is result.spec
    assert candidate_ids(result.spec.variants[1]) == [] and seed_offset(None) == 0 and seed_offset(3) == 2000


def test_expc_plan_shows_the_expansion_and_the_judge() -> None:
    text = summarise(plan_of_text(spec(ai="candidates: 3\n    top_k: 2")))
    assert "ai-1" in text and "ai-3" in text and "candidate 2 of ai" in text
    assert "ai: 3 candidates sharing 66.67% of traffic equally; seeds ai-1 +0, ai-2 +1000, ai-3 +2000" in text
    assert "top_k 2: after generation the judge's 2 best-scored candidates" in text
    assert "judge: offline/judge, passes at a score of 0.3 or more" in text


# ------------------------------------------------------------------ errors, located


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_top_k_above_candidates_is_located_at_top_k() -> None:
    text = spec(ai="candidates: 3\n    top_k: 4")
    result = check_text(text)
    assert codes(result) == ["E097"]
    assert located(result, "E097") == [(_line_of(text, "top_k: 4"), 12)]


def test_top_k_without_candidates_or_without_a_judge_is_an_error() -> None:
    result = check_text(spec(ai="top_k: 2"))
    assert codes(result) == ["E097"] and "asks for none" in result.diagnostics[0].message
    text = spec(ai="candidates: 3\n    top_k: 2", judge="")
    result = check_text(text)
    assert codes(result) == ["E097"] and "has no judge" in result.diagnostics[0].message
    assert located(result, "E097") == [(_line_of(text, "top_k: 2"), 12)]


def test_candidates_on_the_control_are_an_error_marked_or_implicit() -> None:
    text = spec(ai="candidates: 2").replace("    content: Today's news.\n",
                                            "    content: Today's news.\n    control: true\n", 1)
    text = text.replace("    content: Today's news.\n    control: true\n",
                        "    control: true\n    prompt: headline\n    generate: {per: segment, segment_by: [country]}\n"
                        "    candidates: 2\n", 1)
    result = check_text(text)
    assert "E097" in codes(result)
    assert any("is the control" in d.message for d in result.diagnostics)
    implicit = spec(ai="").replace("  - id: control\n    content: Today's news.\n",
                                   "  - id: first\n    prompt: headline\n    generate: {per: segment, segment_by: "
                                   "[country]}\n    candidates: 2\n", 1).replace("    control: {clicked: 0.1}\n", "")
    result = check_text(implicit)
    assert codes(result).count("E097") == 1
    assert "the first variant" in next(d.message for d in result.diagnostics if d.code == "E097")


def test_candidates_on_static_content_or_per_unit_copy_are_errors() -> None:
    static = spec(ai="").replace("  - id: ai\n    prompt: headline\n    weight: 2\n    generate: {per: segment, "
                            "segment_by: [country]}\n",
                            "  - id: ai\n    content: Static copy.\n    weight: 2\n    candidates: 2\n", 1)
    result = check_text(static)
    assert codes(result).count("E097") == 1
    assert "has no prompt" in next(d.message for d in result.diagnostics if d.code == "E097")
    per_unit = spec(ai="candidates: 2").replace("{per: segment, segment_by: [country]}", "{per: unit}")
    per_unit = per_unit.replace("{{ segment.country }}", "{{ user.country }}")
    result = check_text(per_unit)
    assert "E097" in codes(result)
    assert any("generates per unit" in d.message for d in result.diagnostics)


def test_candidate_ids_that_clash_with_a_variant_are_duplicates() -> None:
    text = spec(ai="candidates: 2").replace("  - id: control\n", "  - id: ai-2\n    control: true\n", 1)
    text = text.replace("    control: {clicked: 0.1}\n", "")
    result = check_text(text)
    assert "E030" in codes(result)
    assert any("candidate `ai-2`" in d.message for d in result.diagnostics)


def test_too_many_candidates_is_a_schema_error_and_too_many_arms_a_limit() -> None:
    assert set(codes(check_text(spec(ai="candidates: 21")))) & {"E022", "E023"}
    many = spec(ai="candidates: 20")
    extra = "".join(f"  - id: t{k}\n    prompt: headline\n    generate: {{per: segment, segment_by: [country]}}\n"
                    f"    candidates: 20\n" for k in range(5))
    many = many.replace("metrics:\n", extra + "metrics:\n", 1)
    assert "E070" in codes(check_text(many))


def test_a_judge_without_a_rubric_is_located_at_the_judge() -> None:
    text = spec(ai="candidates: 2", judge="judge: {model: offline/judge, threshold: 0.5}")
    result = check_text(text)
    assert codes(result) == ["E098"]
    assert located(result, "E098") == [(_line_of(text, "judge:"), 14)]
    empty = spec(ai="candidates: 2", judge="judge: {model: offline/judge, rubric: '  '}")
    assert codes(check_text(empty)) == ["E098"]


def test_the_rubric_is_a_template_held_to_the_variant_granularity() -> None:
    once = spec(ai="candidates: 2").replace("{per: segment, segment_by: [country]}", "{per: once}")
    once = once.replace("Write a headline about {{ segment.country }} news.", "Write a headline.")
    result = check_text(once)
    assert codes(result) == ["E046"]  # the rubric reads segment.country, but the copy is written once
    assert "prompt `headline` reads `segment.country`" in result.diagnostics[0].message
    assert located(result, "E046")[0][0] == _line_of(once, "judge:")
    private = spec(ai="candidates: 2", judge="judge: {model: offline/judge, rubric: '{{ variant.__class__ }}'}")
    assert "E040" in codes(check_text(private))


def test_the_judge_model_is_checked_like_a_prompt_model() -> None:
    result = check_text(spec(judge="judge: {model: nosuchprovider/x, rubric: Fine.}"))
    assert codes(result) == ["E082"]
    result = check_text(spec(judge="judge: {model: 'openai/http://evil.example/x', rubric: Fine.}"))
    assert "E080" in codes(result)


# ------------------------------------------------------------------ top_k: the plan with the kept candidates


def test_with_selection_keeps_the_chosen_candidates_and_gives_them_the_variant_weight() -> None:
    plan = plan_of_text(spec(ai="candidates: 4\n    top_k: 2"))
    kept = with_selection(plan, {"ai": ["ai-2", "ai-4"]})
    assert [v.id for v in kept.variants] == ["control", "ai-2", "ai-4"]
    assert [v.index for v in kept.variants] == [0, 1, 2] and kept.arm_ids == ["control", "ai-2", "ai-4"]
    assert [round(v.weight, 9) for v in kept.variants] == [round(1 / 3, 9)] * 3  # ai keeps its 2/3
    assert kept.variants[-1].bucket_range[1] == pytest.approx(1.0)
    assert kept.metrics[0].family_size == 2 and [j.variant for j in kept.generation.jobs] == ["ai-2", "ai-4"]
    assert kept.simulation is not None and set(kept.simulation.truth) == {"control", "ai-2", "ai-4"}
    assert Plan.from_json(kept.to_json()) == kept
    assert with_selection(plan, {}) is plan


@pytest.mark.parametrize("kept", [{"ai": []}, {"ai": ["ai-9"]}, {"other": ["ai-1"]}, {"ai": ["ai-1", "ai-1"]}])
def test_with_selection_refuses_a_selection_that_does_not_fit(kept: dict) -> None:
    plan = plan_of_text(spec(ai="candidates: 4\n    top_k: 2"))
    with pytest.raises(ValueError, match="not some of its candidates"):
        with_selection(plan, kept)


def test_the_design_is_planned_for_every_candidate_arm() -> None:
    many = spec(ai="candidates: 10").replace("  units_per_day: 1000\n  days: 7\n",
                                             "  units_per_day: 20000\n  days: 14\n")
    many = many.replace("metrics:\n", "stopping:\n  max_days: 14\nmetrics:\n", 1)
    assert "W001" in codes(check_text(many))  # 11 arms: the smallest gets 1/15 of the traffic
    one = many.replace("    candidates: 10\n", "")
    assert "W001" not in codes(check_text(one))
    plan = plan_of_text(many)
    assert plan.sample_size is not None and plan.sample_size.estimated_days is not None
    assert plan.sample_size.estimated_days > 14


def test_a_rubric_may_read_personal_data_only_through_send_pii() -> None:
    text = spec(ai="candidates: 2", judge="judge: {model: offline/judge, rubric: 'Fits {{ segment.country }} and "
                "{{ user.email }}.'}").replace("  country: string\n", "  country: string\n  email: {type: string, "
                                                 "pii: true}\n", 1)
    result = check_text(text)
    assert "E095" in codes(result)
    assert any("judge rubric reads `user.email`" in d.message for d in result.diagnostics)


def test_candidates_at_temperature_zero_are_warned_about() -> None:
    text = spec(ai="candidates: 3").replace("temperature: 0.9", "temperature: 0")
    result = check_text(text)
    assert codes(result) == ["W025"] and located(result, "W025") == [(_line_of(text, "candidates: 3"), 17)]
    assert codes(check_text(spec(ai="candidates: 3"))) == []


def test_expc_plan_shows_what_the_judge_is_sent() -> None:
    text = summarise(plan_of_text(spec(ai="candidates: 2")))
    assert "  headline -> provider offline, model offline/test: country\n" in text
    assert "  headline judge -> provider offline, model offline/judge: each generated text, country\n" in text


def test_design_selection_keeps_the_first_k_candidates() -> None:
    from expc.compiler.candidates import design_selection

    plan = plan_of_text(spec(ai="candidates: 4\n    top_k: 2"))
    assert [v.id for v in design_selection(plan).variants] == ["control", "ai-1", "ai-2"]
    plain = plan_of_text(spec(ai="candidates: 3"))
    assert design_selection(plain) is plain


def test_the_sample_size_of_a_top_k_design_counts_the_k_arms_that_get_traffic() -> None:
    kept = plan_of_text(spec(ai="candidates: 6\n    top_k: 2"))
    two = plan_of_text(spec(ai="candidates: 2"))
    assert kept.sample_size is not None and two.sample_size is not None
    assert kept.sample_size.per_variant == two.sample_size.per_variant
    assert len(kept.variants) == 7  # the plan still lists every candidate
    six = plan_of_text(spec(ai="candidates: 6"))
    assert six.sample_size is not None and six.sample_size.per_variant > two.sample_size.per_variant
