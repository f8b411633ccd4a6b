"""Prompt templates: parsed, never rendered, and checked for names and injection."""

from __future__ import annotations

import pytest
from conftest import BASE, check_text, codes, located

from expc.compiler.templates import analyse


def with_template(template: str, generate: str = "{per: unit}") -> str:
    block = "\n".join("      " + line for line in template.splitlines())
    text = BASE.replace(
        '      Hello {{ user.first_name }}, you like {{ user.interests | join(", ") }}.', block
    )
    return text.replace("generate: {per: unit}", f"generate: {generate}")


def test_uses_lists_names_fields_and_filters():
    uses = {(u.kind, u.name) for u in analyse("{{ user.a }}{% for x in user.b %}{{ x | upper }}{% endfor %}").uses}
    assert ("field", "user.a") in uses and ("field", "user.b") in uses and ("filter", "upper") in uses
    assert ("name", "x") not in uses  # loop variables are not context names


def test_syntax_error_in_a_block_template_points_into_the_yaml_file():
    # the template's first line is line 23 of the file
    [d] = check_text(with_template("line one\nline two\n{{ user. }}")).diagnostics
    assert (d.code, d.line, d.col) == ("E038", 25, 7)
    # an unclosed block is reported where it opens
    [d] = check_text(with_template("line one\n{% if user.first_name %}\nno end")).diagnostics
    assert (d.code, d.line) == ("E038", 24) and "endif" in d.message


def test_syntax_error_in_a_one_line_template():
    text = BASE.replace("template: |\n      Hello", "template: '{{ user.first_name'\n    system: |\n      Hello")
    result = check_text(text)
    assert located(result, "E038") == [(22, 15)]


@pytest.mark.parametrize(
    "template, code",
    [
        ("{{ user.first_nam }}", "E039"),
        ("{{ usr.first_name }}", "E039"),
        ("{{ user.first_name | shout }}", "E039"),
        ("{% if user.plan is premium %}x{% endif %}", "E039"),
        ("{{ variant.colour }}", "E039"),
        ("{{ ''.__class__.__mro__ }}", "E040"),
        ("{{ cycler.__init__.__globals__ }}", "E040"),
        ("{{ user | attr('__class__') }}", "E040"),
        ("{{ user._private }}", "E040"),
        ("{{ user['__class__'] }}", "E040"),
        ("{{ '{0.__class__}'.format(user) }}", "E040"),
        ("{{ _secret }}", "E040"),
    ],
)
def test_bad_templates_are_refused_before_any_sandbox(template, code):
    assert code in codes(check_text(with_template(template)))


def test_a_misspelt_attribute_gets_a_hint_and_the_right_column():
    result = check_text(with_template("Hi {{ user.first_nam }}!"))
    [d] = result.diagnostics
    assert d.hint == "did you mean `first_name`?"
    assert (d.line, d.col) == (23, 13)


@pytest.mark.parametrize(
    "template",
    [
        "{{ experiment.name }} for {{ variant.id }}",
        "{% for i in range(3) %}{{ loop.index }}{% endfor %}",
        "{% set n = user.first_name %}{{ n | title }}",
        "{{ user.interests | join(', ') | truncate(40) }}",
        "{% if user.beta is true %}beta{% endif %}",
    ],
)
def test_ordinary_templates_pass(template):
    result = check_text(with_template(template))
    assert result.ok(strict=True), result.diagnostics


def test_generation_granularity_limits_what_a_template_may_read():
    once = check_text(with_template("Hi {{ user.first_name }}", "{per: once}"))
    assert codes(once) == ["E046"]
    segment = check_text(with_template("Hi {{ user.first_name }} from {{ user.country }}",
                                       "{per: segment, segment_by: [country]}"))
    assert codes(segment) == ["E046"] and "first_name" in segment.diagnostics[0].message
    fine = check_text(with_template("Hi {{ segment.country }} {{ user.country }}",
                                    "{per: segment, segment_by: [country]}"))
    assert fine.ok(strict=True)


@pytest.mark.parametrize(
    "template",
    ["{{ user | dictsort }}", "{% for k in user %}{{ k }}{% endfor %}", "{% set u = user %}{{ u.first_name }}",
     "{{ user }}"],
)
def test_reading_the_whole_user_needs_per_unit_generation(template):
    assert codes(check_text(with_template(template, "{per: segment, segment_by: [country]}"))) == ["E046"]
    assert codes(check_text(with_template(template, "{per: once}"))) == ["E046"]
    assert check_text(with_template(template, "{per: unit}")).ok(strict=True)


def test_segment_is_only_known_when_generating_per_segment():
    assert codes(check_text(with_template("{{ segment.country }}", "{per: unit}"))) == ["E046"]
    assert check_text(with_template("{{ segment | dictsort }}", "{per: segment, segment_by: [country]}")).ok()
