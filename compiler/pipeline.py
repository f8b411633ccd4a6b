"""The compiler's front half in one call: load -> validate -> check.

``check_file`` is what every command that reads specs goes through; it never
raises for a bad spec, it returns the findings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .checks import check_spec, find_secrets
from .diagnostics import Diagnostic, has_errors, sort_key
from .loader import Document, load_bytes, load_file
from .model import Spec
from .validate import validate_document


@dataclass
class CheckResult:
    """A spec's document, its typed form (None when invalid) and every finding."""

    path: str
    doc: Document | None
    spec: Spec | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def ok(self, strict: bool = False) -> bool:
        """True when nothing fails the check (warnings fail it too when ``strict``)."""
        return self.spec is not None and not has_errors(self.diagnostics, strict)


def check_document(doc: Document) -> CheckResult:
    """Validate and check a loaded document."""
    secrets = find_secrets(doc)
    secret_keys = {(d.line, d.col) for d in secrets}
    spec, found = validate_document(doc)
    # a key that holds a secret is reported as a secret, not also as an unknown key
    found = [d for d in found if not (d.code == "E020" and (d.line, d.col) in secret_keys)] + secrets
    if spec is not None:
        found += check_spec(doc, spec)
        if any(d.code == "E044" for d in found):
            spec = None
    return CheckResult(doc.path, doc, spec, sorted(found, key=sort_key))


def check_file(path: str | Path, display: str | None = None) -> CheckResult:
    """Load, validate and check a spec file."""
    name = display or str(path)
    doc, found = load_file(path, name)
    if doc is None:
        return CheckResult(name, None, None, found)
    return check_document(doc)


def check_bytes(raw: bytes, name: str = "<spec>") -> CheckResult:
    """Load, validate and check spec bytes (for tests and editors)."""
    doc, found = load_bytes(raw, name)
    if doc is None:
        return CheckResult(name, None, None, found)
    return check_document(doc)
