"""Structural validation: the models' errors, each located and explained."""

from __future__ import annotations

from conftest import BASE, check_text, codes, located

from expc.compiler.quantities import format_duration


def test_the_base_spec_is_valid():
    result = check_text(BASE)
    assert result.ok(strict=True), result.diagnostics
    assert result.spec.control.id == "control"


def test_unknown_key_points_at_the_key_and_suggests_the_nearest():
    result = check_text(BASE.replace("  - id: treatment\n", "  - id: treatment\n    wieght: 2\n"))
    [d] = result.diagnostics
    assert d.code == "E020" and "wieght" in d.message
    assert (d.line, d.col) == (28, 5)
    assert d.hint == "did you mean `weight`?"


def test_all_structural_errors_are_reported_at_once():
    text = BASE.replace("id: demo", "id: demo\n  colour: red").replace("mde: 5%", "mde: lots").replace(
        "event: activated", "event: [a, b]")
    result = check_text(text)
    assert sorted(codes(result)) == ["E020", "E022", "E025"]


def test_missing_required_key_points_at_its_parent():
    result = check_text(BASE.replace("    model: offline/test\n", ""))
    [d] = result.diagnostics
    assert d.code == "E021" and "`model`" in d.message and "prompts.subject" in d.message
    assert (d.line, d.col) == (21, 5)


def test_wrong_type_names_both_types():
    result = check_text(BASE.replace("mde: 5%", "mde: 5%\n    sd: [1]"))
    [d] = result.diagnostics
    assert d.code == "E022" and "a number" in d.message and "a list" in d.message


def test_strings_are_not_silently_coerced_to_numbers():
    result = check_text(BASE.replace("    baseline: 0.1", "    baseline: '0.1'"))
    assert codes(result) == ["E022"]


def test_bad_enum_value_suggests_the_closest_option():
    result = check_text(BASE.replace("kind: proportion", "kind: propotion"))
    [d] = result.diagnostics
    assert d.code == "E023" and d.hint == "did you mean `proportion`?"


def test_unsupported_version():
    result = check_text(BASE.replace("version: 1", "version: 2"))
    assert codes(result) == ["E026"] and located(result, "E026") == [(1, 10)]


def test_durations_are_written_with_units():
    ok = check_text(BASE.replace("    baseline: 0.1", "    baseline: 0.1\n    window: 36h"))
    assert ok.ok() and ok.spec.metrics[0].window == 36 * 3600
    assert format_duration(36 * 3600) == "36h" and format_duration(7 * 86400) == "7d"
    for bad in ("7", "7 days", "-1d", "0s"):
        result = check_text(BASE.replace("    baseline: 0.1", f"    baseline: 0.1\n    window: {bad}"))
        assert codes(result) == ["E024"], bad


def test_percentages_and_fractions_mean_the_same():
    a = check_text(BASE.replace("mde: 5%", "mde: 0.05")).spec.metrics[0].mde
    b = check_text(BASE).spec.metrics[0].mde
    assert a == b == 0.05
    [d] = check_text(BASE.replace("mde: 5%", "mde: 5")).diagnostics
    assert d.code == "E025" and "did you mean 5%" in d.message


def test_attribute_shorthand_and_full_form_are_equivalent():
    full = check_text(BASE.replace("  score: number", "  score: {type: number, description: Lead score}"))
    assert full.ok() and full.spec.attributes["score"].type == "number"
    [d] = check_text(BASE.replace("  score: number", "  score: float")).diagnostics
    assert d.code == "E023" and "`float`" in d.message and "number" in d.message


def test_invalid_names_are_reported_on_the_key():
    spaced = BASE.replace("  everyone_us:", "  'every one':").replace("audience: everyone_us", "audience: x")
    result = check_text(spaced)
    assert "E023" in codes(result)
    assert located(result, "E023") == [(16, 3)]


def test_layer_shorthand_takes_the_whole_layer():
    spec = check_text(BASE.replace("  audience: everyone_us", "  audience: everyone_us\n  layer: emails")).spec
    assert spec.allocation.layer.id == "emails" and spec.allocation.layer.range == [0.0, 1.0]
