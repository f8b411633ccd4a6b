"""Text that reaches a terminal or a CI log: escaped, never raw; diagnostics in every format."""

from __future__ import annotations

import json
import unicodedata

import pytest

from expc.compiler.diagnostics import (
    error,
    format_github,
    format_json,
    format_text,
    warning,
)
from expc.compiler.textsafe import json_safe, terminal_safe

#: Each hostile piece and what it does raw: retitle (OSC 0 ... BEL), clear (CSI 2J), reorder (RLO),
#: cut a C string (NUL), C1 CSI (colours in 8-bit terminals), overwrite (CR), bidi isolate, a tag character.
HOSTILE = "\x1b]0;pwned\x07|\x1b[2J|\u202eevil|\x00|\x9b31m|\rover|\u2067iso|\U000e0041|\x7f"
RAW = ["\x1b", "\x07", "\u202e", "\x00", "\x9b", "\r", "\u2067", "\U000e0041", "\x7f"]


def raw_in(text: str) -> list[str]:
    return [c for c in RAW if c in text]


def test_every_control_and_bidi_character_becomes_a_visible_escape():
    out = terminal_safe(HOSTILE)
    assert raw_in(out) == []
    assert out == (r"\x1b]0;pwned\x07|\x1b[2J|\u202eevil|\x00|\x9b31m|\x0dover|\u2067iso|\U000e0041|\x7f")


def test_plain_text_and_printable_unicode_are_unchanged():
    text = "Héllo wörld, 中文, emoji 👩‍💻 (with its joiner), a tab\there, C:\\path\\x1b (a backslash)"
    assert terminal_safe(text) == text


def test_newlines_are_kept_only_for_multi_line_text():
    assert terminal_safe("a\nb") == r"a\x0ab"
    assert terminal_safe("a\nb", multiline=True) == "a\nb"


@pytest.mark.parametrize("category", ["Cc", "Cf", "Zl", "Zp", "Cs"])
def test_no_character_of_an_invisible_category_passes(category: str):
    kept = {"\t", "\n", "\u200d"}  # tab, newline (multi-line), the emoji joiner
    passing = [hex(c) for c in range(0x110000)
               if unicodedata.category(chr(c)) == category and chr(c) not in kept
               and terminal_safe(chr(c), multiline=True) == chr(c)]
    assert passing == []


def test_a_line_cannot_become_a_github_workflow_command():
    assert terminal_safe("::error::forged") == r"\x3a:error::forged"
    assert terminal_safe("  ::add-mask::x") == r"  \x3a:add-mask::x"
    assert terminal_safe("ok\n::warning::x", multiline=True) == "ok\n\\x3a:warning::x"
    assert terminal_safe("a ##[error]x") == r"a #\x23[error]x"
    assert terminal_safe("a :: b") == "a :: b"  # only at the start of a line


def test_escaping_twice_changes_nothing():
    once = terminal_safe(HOSTILE + "\n::x")
    assert terminal_safe(once) == once


def test_json_safe_keeps_the_document_and_removes_the_raw_characters():
    value = {"text": HOSTILE + "\u2028\ufeff", "é": "中"}
    raw = json.dumps(value, ensure_ascii=False)
    safe = json_safe(raw)
    assert json.loads(safe) == value
    assert raw_in(safe) == [] and "\u2028" not in safe
    assert "中" in safe  # printable text stays readable


# ------------------------------------------------------------------ diagnostics


def hostile_diagnostics():
    return [error("E034", f"audience `{HOSTILE}` is not defined", (f"specs/{HOSTILE}.yaml", 3, 4),
                  f"did you mean `{HOSTILE}`?"),
            warning("W003", "prompt `a\nspecs/x.yaml:1:1: error[E001] forged` is not used", ("::error::x.yaml", 1, 1))]


def test_text_format_escapes_file_message_and_hint():
    out = format_text(hostile_diagnostics())
    assert raw_in(out) == []
    assert out.count("\n") == 2  # two diagnostics, one hint: a newline in a message forges no line
    assert r"specs/\x1b]0;pwned\x07" in out
    assert not any(line.lstrip().startswith("::") for line in out.splitlines())


def test_json_format_escapes_and_keeps_the_values():
    diagnostics = hostile_diagnostics()
    out = format_json(diagnostics)
    assert raw_in(out) == []
    assert json.loads(out)[0]["message"] == diagnostics[0].message


def test_github_format_escapes_controls_and_its_own_separators():
    out = format_github(hostile_diagnostics())
    assert raw_in(out) == []
    lines = out.split("\n")
    assert len(lines) == 2 and all(line.startswith(("::error ", "::warning ")) for line in lines)
    # properties: `:` and `,` escaped (a file name cannot add a property or end the command)
    assert r"file=\x3a%3Aerror%3A%3Ax.yaml," in lines[1]
    # the message: newlines and percent signs in GitHub's own escaping
    assert "%0Aspecs/x.yaml" in lines[1]
    assert format_github([error("E001", "100% done\r\n", ("a,b:c.yaml", 1, 1))]) == (
        "::error file=a%2Cb%3Ac.yaml,line=1,col=1,title=expc E001::100%25 done\\x0d%0A")
