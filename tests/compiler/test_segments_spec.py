"""analysis.segments: a list of attributes, or the full form; each must be a declared, one-valued attribute."""

from __future__ import annotations

from conftest import check_text, codes, located, plan_of_text

SPEC = """\
version: 1
experiment: {{id: segs}}
attributes: {{user_id: string, country: string, tags: "list[string]"}}
variants: [{{id: control, content: A}}, {{id: b, content: B}}]
metrics:
  - {{id: bought, kind: proportion, event: buy, role: primary, mde: 10%, baseline: 0.1}}
analysis:
  segments: {segments}
"""


def test_the_list_form_and_the_full_form_compile_with_the_defaults():
    short = plan_of_text(SPEC.format(segments="[country]")).analysis.segments
    full = plan_of_text(SPEC.format(segments="{by: [country], min_units: 50, top: 3, correction: holm}"))
    assert short is not None
    assert (short.by, short.min_units, short.top, short.correction) == (["country"], 100, 10, "bh")
    seg = full.analysis.segments
    assert seg is not None and (seg.by, seg.min_units, seg.top, seg.correction) == (["country"], 50, 3, "holm")


def test_an_undeclared_attribute_is_located_with_a_suggestion():
    result = check_text(SPEC.format(segments="[countyr]"))
    assert codes(result) == ["E034"] and located(result, "E034") == [(8, 14)]
    assert "country" in (result.diagnostics[0].hint or "")


def test_the_unit_id_a_list_and_a_repeat_cannot_be_segments():
    result = check_text(SPEC.format(segments="{by: [user_id, tags, country, country]}"))
    assert codes(result) == ["E023", "E023", "E023"]
    assert [d.message for d in result.diagnostics] == [
        "attribute `user_id` is the unit id, so it cannot split units into segments",
        "attribute `tags` is a list, so it cannot split units into segments",
        "attribute `country` is listed twice"]

