"""`expc plan`'s data-flow section: what each prompt sends to which provider and model, personal data marked."""

from __future__ import annotations

from conftest import BASE, plan_of_text

from expc.plan_summary import data_flow, summarise

PII = BASE.replace("  first_name: string\n", "  first_name: {type: string, pii: true}\n").replace(
    "    template: |\n", "    send_pii: [first_name]\n    template: |\n")


def test_each_prompt_lists_what_it_sends_and_where_with_personal_data_marked():
    lines = data_flow(plan_of_text(PII))
    assert lines[0] == "  subject -> provider offline, model offline/test: first_name (pii), interests"
    assert "  personal attributes: first_name sent by subject" in lines


def test_the_section_is_part_of_the_summary():
    text = summarise(plan_of_text(PII))
    assert "\nData flow (" in text
    assert "first_name (pii)" in text


def test_a_prompt_reading_nothing_and_a_personal_attribute_nobody_sends():
    spec = BASE.replace("  first_name: string\n", "  first_name: {type: string, pii: true}\n").replace(
        '      Hello {{ user.first_name }}, you like {{ user.interests | join(", ") }}.\n',
        "      Hello {{ experiment.id }}.\n").replace("generate: {per: unit}", "generate: {per: once}")
    lines = data_flow(plan_of_text(spec))
    assert lines[0] == "  subject -> provider offline, model offline/test: no unit attribute"
    assert "  personal attributes: first_name sent by no prompt" in lines


def test_the_whole_user_sends_every_attribute_the_prompt_may_send():
    spec = PII.replace('      Hello {{ user.first_name }}, you like {{ user.interests | join(", ") }}.\n',
                       "      {{ user | tojson }}\n")
    assert "first_name (pii), country, plan, interests" in data_flow(plan_of_text(spec))[0]


def test_static_variants_only_print_no_section():
    spec = BASE.replace("    prompt: subject\n    generate: {per: unit}\n", "    content: Hi!\n")
    spec = spec[:spec.index("prompts:")] + spec[spec.index("variants:"):]
    assert "Data flow" not in summarise(plan_of_text(spec))
