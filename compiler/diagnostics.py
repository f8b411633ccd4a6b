"""Diagnostics: findings about a spec, as values with stable codes.

Every stage of the compiler (load, validate, check) returns a list of
:class:`Diagnostic` instead of raising, so that a person sees every problem of
a spec at once. Codes are stable: ``E0xx`` are errors, ``W0xx`` warnings.
``CODES`` is the registry; ``docs/diagnostics.md`` lists each code with an
example, and a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from .textsafe import json_safe, terminal_safe

Severity = Literal["error", "warning"]

#: Every diagnostic code and its one-line meaning.
CODES: dict[str, str] = {
    # loading: the file and its YAML
    "E001": "the file cannot be read",
    "E002": "the file is larger than the size limit",
    "E003": "the file is not UTF-8 text",
    "E004": "the file holds no YAML document",
    "E005": "YAML syntax error",
    "E006": "more than one YAML document in the file",
    "E007": "the top level is not a mapping",
    "E008": "duplicate key in a mapping",
    "E009": "too many nodes once aliases are expanded (alias bomb)",
    "E010": "nesting deeper than the limit",
    "E011": "unsupported YAML tag or non-scalar mapping key",
    "E012": "a number too large to read (an integer of more than 30 digits, a float beyond a double)",
    # structure: the spec's shape and types
    "E020": "unknown key",
    "E021": "required key is missing",
    "E022": "value has the wrong type",
    "E023": "value is not allowed here",
    "E024": "not a duration",
    "E025": "not a percentage or fraction",
    "E026": "unsupported spec version",
    # semantics: what a schema cannot express
    "E030": "duplicate id",
    "E031": "fewer than two variants",
    "E032": "more than one variant is marked as control",
    "E033": "a variant's weight is not positive",
    "E034": "reference to something that is not defined",
    "E035": "audience condition names an undeclared attribute",
    "E036": "condition operator does not fit the attribute's type",
    "E037": "malformed condition or unknown operator",
    "E038": "template syntax error",
    "E039": "template uses an undeclared variable or unknown filter",
    "E040": "template reaches for private or unsafe attributes",
    "E041": "there must be exactly one primary metric",
    "E042": "guardrail metric lacks a margin or direction",
    "E043": "probability out of range (alpha, power, coverage, ...)",
    "E044": "a secret is written inline in the spec",
    "E045": "a variant needs exactly one of `content` and `prompt`",
    "E046": "content generation settings do not fit the variant",
    "E047": "metric definition is incomplete for its kind",
    "E048": "invalid regular expression",
    "E049": "the unit attribute is not declared",
    "E050": "stopping rule cannot apply to this spec",
    "E051": "a data source needs exactly one of `table`, `path` and `query`",
    "E052": "a column mapping names an unknown standard column, or a column that is not a plain name",
    "E053": "a data path is not a relative path inside the spec's folder (absolute, `..`, `~`, a URL)",
    "E054": "the format of a data path cannot be told, or disagrees with its extension",
    "E055": "a data table is not a plain table name in the dialect",
    "E056": "a data query is not exactly one read-only SELECT in the dialect",
    "E057": "a data table or query reads files, URLs or the machine instead of tables",
    "E060": "the simulation's truth leaves a metric without a true value",
    "E061": "infinity or NaN in a value the plan carries as JSON (a prompt's params or JSON schema)",
    "E064": "a cap that does not fit its metric (a proportion, a ratio's denominator, two caps, not one bound)",
    "E070": "the spec asks for more than expc's resource limits (simulated units, looks, durations)",
    "E075": "a bandit's settings do not fit (min_weight above 1 / arms, a threshold not below 1, a ratio primary)",
    "E076": "a stopping rule does not fit the method (`best_arm` without a bandit, significance with one)",
    "E080": "the spec chooses where a key or a call goes (api_key_env, api_base, a URL, a routing parameter)",
    "E081": "a parameter in `params` that expc does not pass to models",
    "E082": "the model id names a provider litellm does not know",
    "E085": "a prompt lists two deployments with the same id",
    "E086": "`fallbacks` name a deployment the prompt does not list, or leave no deployment to serve first",
    "E090": "a template construct that can only exhaust the machine (huge range or power, deep loops, size)",
    "E095": "a template reads personal data (a `pii` attribute) its prompt does not list in `send_pii`",
    "E096": "a personal (`pii`) attribute identifies units or segments",
    "E097": "`candidates` or `top_k` do not fit the variant (a control, static or per-unit copy, top_k too large)",
    "E098": "a `judge` check without a rubric",
    "W001": "the required sample size cannot be reached within max_days",
    "W002": "the required sample size cannot be computed",
    "W003": "prompt is defined but no variant uses it",
    "W004": "audience is defined but not used by the allocation",
    "W005": "simulation gives no true value for a metric of a variant",
    "W006": "a fixed-horizon test is checked for significance at more than one look",
    "W010": "a group-sequential design reaches its planned units before max_days",
    "W011": "a Bayesian decision is taken at more than one look",
    "W015": "`send_pii` lists an attribute that is not personal or that the prompt does not read",
    "W021": "the design's analytic power at the primary metric's MDE is below the minimum",
    "W025": "candidates are asked at temperature 0, where a model may give every seed the same text",
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding: where it is, how bad it is, what it means and what to do."""

    file: str
    line: int
    col: int
    severity: Severity
    code: str
    message: str
    hint: str | None = None

    @property
    def is_error(self) -> bool:
        """True for an error, False for a warning."""
        return self.severity == "error"


def error(code: str, message: str, where: tuple[str, int, int], hint: str | None = None) -> Diagnostic:
    """Make an error diagnostic at ``where`` = (file, line, col)."""
    return Diagnostic(where[0], where[1], where[2], "error", code, message, hint)


def warning(code: str, message: str, where: tuple[str, int, int], hint: str | None = None) -> Diagnostic:
    """Make a warning diagnostic at ``where`` = (file, line, col)."""
    return Diagnostic(where[0], where[1], where[2], "warning", code, message, hint)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean `x`?" hint for a misspelt name, or None if nothing is close."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def sort_key(d: Diagnostic) -> tuple:
    """Order diagnostics by file, position, then code."""
    return (d.file, d.line, d.col, d.code, d.message)


def has_errors(diagnostics: Iterable[Diagnostic], strict: bool = False) -> bool:
    """True when any finding fails the check (warnings too when ``strict``)."""
    return any(d.is_error or strict for d in diagnostics)


# ----------------------------------------------------------------- formatting


def format_text(diagnostics: Sequence[Diagnostic]) -> str:
    """``path:line:col: error[E012] message`` with the hint on the next line.

    File, message and hint are escaped (:func:`~expc.compiler.textsafe.terminal_safe`):
    they quote spec values and file names, which must not control the terminal.
    """
    out = []
    for d in diagnostics:
        out.append(terminal_safe(f"{d.file}:{d.line}:{d.col}: {d.severity}[{d.code}] {d.message}"))
        if d.hint:
            out.append(terminal_safe(f"  hint: {d.hint}"))
    return "\n".join(out)


def format_json(diagnostics: Sequence[Diagnostic]) -> str:
    """A JSON list of objects with file, line, col, severity, code, message, hint.

    Control, bidi and invisible characters are ``\\uXXXX`` escapes (the strings are unchanged).
    """
    import json

    return json_safe(json.dumps([asdict(d) for d in diagnostics], indent=2, ensure_ascii=False))


def _escape_data(text: str) -> str:
    """GitHub's escaping of a workflow command's message, after the terminal's (a log shows it too)."""
    return terminal_safe(text, multiline=True).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """GitHub's escaping of a workflow command's property value (``file=...``): also ``:`` and ``,``."""
    return _escape_data(terminal_safe(text)).replace(":", "%3A").replace(",", "%2C")


def format_github(diagnostics: Sequence[Diagnostic]) -> str:
    """GitHub Actions workflow commands (``::error file=..,line=..::msg``), one per finding."""
    out = []
    for d in diagnostics:
        command = "error" if d.is_error else "warning"
        props = ",".join(
            f"{k}={_escape_property(str(v))}"
            for k, v in (("file", d.file), ("line", d.line), ("col", d.col), ("title", f"expc {d.code}"))
        )
        message = d.message + (f" (hint: {d.hint})" if d.hint else "")
        out.append(f"::{command} {props}::{_escape_data(message)}")
    return "\n".join(out)


FORMATTERS = {"text": format_text, "json": format_json, "github": format_github}
