"""Semantic checks: what a schema cannot say, each a coded, located finding."""

from __future__ import annotations

import pytest
from conftest import BASE, check_text, codes, located
from conftest import SIMULATED_ACTIVATION as SIM


def test_findings_come_all_at_once_and_sorted_by_position():
    text = BASE.replace("prompt: subject", "prompt: subjekt").replace("audience: everyone_us", "audience: nobody")
    result = check_text(text)
    assert sorted(codes(result)) == ["E034", "E034", "W003", "W004"]
    lines = [d.line for d in result.diagnostics]
    assert lines == sorted(lines)


def test_unresolved_prompt_suggests_the_defined_one():
    result = check_text(BASE.replace("prompt: subject", "prompt: subjekt"))
    [d] = [d for d in result.diagnostics if d.code == "E034"]
    assert (d.line, d.col) == (28, 13) and d.hint == "did you mean `subject`?"


@pytest.mark.parametrize(
    "old, new, code",
    [
        ("  - id: treatment\n", "  - id: control\n", "E030"),
        ("    content: Welcome!\n", "    content: Welcome!\n    control: true\n    weight: 0\n", "E033"),
        ("    content: Welcome!\n", "    content: Welcome!\n    prompt: subject\n", "E045"),
        ("    content: Welcome!\n", "", "E045"),
        ("generate: {per: unit}", "generate: {per: segment}", "E046"),
        ("generate: {per: unit}", "generate: {per: unit, segment_by: [country]}", "E046"),
        ("generate: {per: unit}", "generate: {per: segment, segment_by: [contry]}", "E034"),
        ("  unit: user_id", "  unit: customer_id", "E049"),
        ("  unit: user_id", "  unit: score", "E049"),
        ("  audience: everyone_us", "  audience: everyone_us\n  coverage: 0%", "E043"),
        ("  audience: everyone_us", "  audience: everyone_us\n  layer: {id: l, range: [0.5, 0.2]}", "E023"),
        ("    role: primary", "    role: secondary", "E041"),
        ("    baseline: 0.1", "    baseline: 1.5", "E043"),
        ("    event: activated", "    numerator: revenue", "E047"),
        ("kind: proportion", "kind: ratio", "E047"),
        ("    event: activated", "    event: activated\n    denominator: sessions", "E047"),
        ("  - id: activated",
         "  - id: unsub\n    kind: proportion\n    event: u\n    role: guardrail\n  - id: activated", "E042"),
    ],
)
def test_semantic_mistakes(old, new, code):
    assert old in BASE
    result = check_text(BASE.replace(old, new, 1))
    assert code in codes(result), result.diagnostics
    assert not result.ok()


def test_exactly_one_variant_needed_as_control():
    result = check_text(BASE.replace("    content: Welcome!\n", "    content: Welcome!\n    control: true\n").replace(
        "    prompt: subject\n", "    prompt: subject\n    control: true\n"))
    assert codes(result) == ["E032"]
    one = check_text(BASE.replace("  - id: treatment\n    prompt: subject\n    generate: {per: unit}\n", ""))
    assert "E031" in codes(one)


def test_the_first_variant_is_the_control_unless_one_is_marked():
    assert check_text(BASE).spec.control.id == "control"
    marked = check_text(BASE.replace("    prompt: subject\n", "    prompt: subject\n    control: true\n"))
    assert marked.spec.control.id == "treatment"


def test_two_primary_metrics():
    text = BASE + "  - {id: other, kind: proportion, event: x, role: primary}\n"
    assert codes(check_text(text)) == ["E041"]


def test_guardrail_needs_margin_and_direction():
    text = BASE + "  - {id: unsub, kind: proportion, event: u, role: guardrail, direction: decrease}\n"
    [d] = check_text(text).diagnostics
    assert d.code == "E042" and "`margin`" in d.message and "direction" not in d.message.split("needs")[1]


@pytest.mark.parametrize("field, value", [("alpha", "0"), ("alpha", "1"), ("power", "100%"), ("srm_threshold", "0")])
def test_probabilities_strictly_between_zero_and_one(field, value):
    result = check_text(BASE + f"analysis:\n  {field}: {value}\n")
    assert "E043" in codes(result)


def test_stopping_rules_must_be_able_to_fire():
    text = BASE + ("stopping:\n  rules:\n    - {when: guardrail_harm, then: stop_rollback}\n"
                   "    - {when: max_days, then: stop_inconclusive}\n"
                   "    - {when: primary_significant, then: stop_ship_winner, metric: activatd}\n")
    result = check_text(text)
    assert sorted(codes(result)) == ["E034", "E050", "E050", "W006"]


def test_simulation_references_resolve_and_fit():
    text = BASE + SIM.replace("treatment: {activated: 0.11}",
                              "treatmnt: {activated: 0.11}\n    control2: {activatd: 2}")
    result = check_text(text)
    assert codes(result).count("E034") >= 3
    attrs = check_text(BASE + SIM + "  attributes:\n    beta: {min: 0, max: 1}\n    colour: {values: [a]}\n"
                       "    country: {values: [US, CA], weights: [1]}\n")
    assert sorted(codes(attrs)) == ["E023", "E023", "E023", "E034"]


def test_missing_truth_is_a_warning():
    result = check_text(BASE + SIM.replace("    treatment: {activated: 0.11}\n", ""))
    assert codes(result) == ["W005"] and result.ok() and not result.ok(strict=True)


def test_unreachable_sample_size_is_a_warning_with_the_numbers():
    result = check_text(BASE + SIM + "stopping:\n  max_days: 14\n")
    [d] = result.diagnostics
    assert d.code == "W001" and "57,760" in d.message and "14" in d.message
    assert located(result, "W001") == [(45, 13)]


def test_sample_size_that_cannot_be_planned_is_a_warning():
    result = check_text(BASE.replace("    baseline: 0.1\n", ""))
    assert codes(result) == ["W002"] and "baseline" in result.diagnostics[0].message


def test_unused_prompts_and_audiences_are_warnings():
    text = BASE + "  # nothing\n"
    text = text.replace("audiences:\n", "audiences:\n  unused:\n    where: {beta: true}\n")
    text = text.replace("prompts:\n", "prompts:\n  spare:\n    model: offline/x\n    template: hi\n")
    assert sorted(codes(check_text(text))) == ["W003", "W004"]


@pytest.mark.parametrize(
    "snippet",
    [
        "    api_key: sk-proj-abcdefghijklmnopqrstuvwxyz\n",
        "    params: {api_key: hunter2}\n",
        "    system: use key sk-abcdefghijklmnopqrstuvwxyz123456\n",
        "    params: {token: abc}\n",
    ],
)
def test_inline_secrets_are_errors(snippet):
    text = BASE.replace("    model: offline/test\n", "    model: offline/test\n" + snippet)
    result = check_text(text)
    assert "E044" in codes(result) and "E020" not in codes(result)
    assert not result.ok()
    for d in result.diagnostics:  # the secret itself never appears in a message
        assert "hunter2" not in d.message and "abcdefghij" not in d.message


def test_naming_an_allowed_environment_variable_is_fine(monkeypatch):
    monkeypatch.setenv("EXPC_ALLOWED_KEY_ENVS", "OPENAI_API_KEY")  # the user's allow-list, outside the spec
    text = BASE.replace("    model: offline/test\n", "    model: offline/test\n    api_key_env: OPENAI_API_KEY\n")
    assert check_text(text).ok(strict=True)


def test_peeking_at_a_fixed_horizon_test_is_a_warning():
    text = BASE + "stopping:\n  rules:\n    - {when: primary_significant, then: stop_ship_winner}\n"
    [d] = check_text(text).diagnostics
    assert d.code == "W006" and "57,760" in d.message
    assert not check_text(text + "  min_units_per_variant: 57760\n").ok(strict=True)  # it still peeks after
    once = text + ("    - {when: max_units, then: stop_inconclusive}\n"
                   "  min_units_per_variant: 57760\n  max_units: 115520\n")
    assert check_text(once).ok(strict=True)
    assert check_text(text + "analysis:\n  method: sequential\n").ok(strict=True)


def test_the_layer_share_lengthens_the_estimated_duration():
    text = BASE + SIM + "stopping:\n  max_days: 200\n"
    full = check_text(text)
    assert full.ok(strict=True)
    quarter = check_text(text.replace("  audience: everyone_us",
                                      "  audience: everyone_us\n  layer: {id: l, range: [0, 0.25]}"))
    [d] = quarter.diagnostics
    assert d.code == "W001" and "~463 days" in d.message  # 57,760 / (1,000 x 0.25 x 0.5)


@pytest.mark.parametrize("value", [".inf", ".nan", "1e-320", "1e308"])
def test_extreme_numbers_are_findings_not_crashes(value):
    for old, new in [("    baseline: 0.1", f"    baseline: {value}"), ("mde: 5%", f"mde: {value}"),
                     ("generate: {per: unit}", f"generate: {{per: unit}}\n    weight: {value}")]:
        result = check_text(BASE.replace(old, new))
        assert result.diagnostics, (old, new)


def test_an_attribute_named_like_a_secret_is_not_a_secret():
    text = BASE.replace("  beta: boolean", "  token: string").replace("country: US", "token: abc")
    assert "E044" not in codes(check_text(text))
