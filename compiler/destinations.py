"""Where a spec's model calls and keys may go: the user decides, never the spec alone.

A spec may come from an untrusted pull request and be run by CI with the
team's secrets in its environment. So a spec may not choose which
environment variable supplies a key, nor which host a call (and the key sent
with it) goes to, except where the user allows it from outside the spec:

- ``EXPC_ALLOWED_API_BASES``: comma-separated base URLs
  (``https://llm-proxy.internal/v1``) or host names (``localhost``,
  ``llm-proxy.internal:8443``) that a prompt's ``api_base`` may name;
- ``EXPC_ALLOWED_KEY_ENVS``: comma-separated names of environment variables
  that a prompt's ``api_key_env`` may name.

Both are read from the environment only: a settings file in the repository is
as untrusted as the spec. ``params`` may hold only the parameters of
:data:`SAFE_PARAMS`, which shape the reply and cannot send it anywhere else;
every other litellm parameter (``base_url``, ``api_key``, ``extra_headers``,
``aws_*``, ``vertex_credentials``, ``custom_llm_provider``, ...) is refused.

The compiler's checks and the runtime (again, before any call, for a plan
written by hand) both apply these rules; nothing here imports litellm.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

ALLOWED_API_BASES = "EXPC_ALLOWED_API_BASES"
ALLOWED_KEY_ENVS = "EXPC_ALLOWED_KEY_ENVS"

#: The litellm parameters a spec's ``params`` may set: sampling and the shape of the reply, nothing that
#: names a host, a key, a header, a provider, a region or an account, and nothing expc sets itself
#: (``stream``, ``timeout``, retries, ``n``).
SAFE_PARAMS: frozenset[str] = frozenset({
    "temperature", "top_p", "top_k", "min_p", "max_tokens", "max_completion_tokens", "stop",
    "presence_penalty", "frequency_penalty", "repetition_penalty", "logit_bias", "seed",
    "response_format", "reasoning_effort", "verbosity", "thinking", "logprobs", "top_logprobs", "user",
})

# Names that say a parameter routes the call or carries a credential (for the message; anything not in
# SAFE_PARAMS is refused either way).
_REDIRECTING = re.compile(
    r"base|url|uri|endpoint|host|server|proxy|route|redirect|key|token|secret|passw|credential|auth|header|"
    r"cookie|aws|azure|vertex|google|gcp|watsonx|region|location|project|account|organi[sz]ation|tenant|client|"
    r"provider|litellm|deployment|api_version|profile|role|session|cert|ssl|tls|verify|extra_body|metadata",
    re.IGNORECASE)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]+\])"
_BASE_URL = re.compile(rf"^(?P<scheme>[Hh][Tt][Tt][Pp][Ss]?)://(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}))?"
                       r"(?P<path>(?:/[A-Za-z0-9._~-]*)*)$")
_HOST_ENTRY = re.compile(rf"^(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}))?$")
_URL_INSIDE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/|//")
_DEFAULT_PORT = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Base:
    """A plain http(s) base URL, split and normalised (lower-case host, explicit port, no trailing ``/``)."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def origin(self) -> str:
        """``scheme://host:port``."""
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_base(url: str) -> Base | None:
    """``url`` split into a :class:`Base`, or None when it is not a plain ``http(s)://host[:port][/path]``.

    No user name or password, query, fragment, backslash, space, percent
    escape or ``.``/``..`` segment: forms that parsers disagree on (or that
    clients resolve) are refused rather than guessed.
    """
    m = _BASE_URL.match(url)
    if m is None or any(part in (".", "..") for part in m["path"].split("/")):
        return None  # HTTP clients resolve dot segments: `/v1/team/../admin` would leave an allowed path
    scheme = m["scheme"].lower()
    port = int(m["port"]) if m["port"] else _DEFAULT_PORT[scheme]
    if not 0 < port < 65536:
        return None
    return Base(scheme, m["host"].lower().rstrip("."), port, m["path"].rstrip("/"))


def has_url(model: str) -> bool:
    """True when a model id holds a URL (some providers send the call, and the key, to a URL in the model id)."""
    return bool(_URL_INSIDE.search(model))


def param_problem(name: str) -> str | None:
    """Why a spec may not set the litellm parameter ``name``: ``"redirects"``, ``"unknown"``, or None (allowed)."""
    if name in SAFE_PARAMS:
        return None
    return "redirects" if _REDIRECTING.search(name) else "unknown"


@dataclass(frozen=True)
class Allowances:
    """What the user (not the spec) allows a spec to choose: API bases and key variables."""

    api_bases: tuple[str, ...] = ()
    key_envs: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Allowances:
        """The allow-lists in ``EXPC_ALLOWED_API_BASES`` and ``EXPC_ALLOWED_KEY_ENVS`` (default: os.environ)."""
        env = os.environ if environ is None else environ

        def entries(name: str) -> tuple[str, ...]:
            return tuple(e.strip() for e in (env.get(name) or "").split(",") if e.strip())

        return cls(entries(ALLOWED_API_BASES), entries(ALLOWED_KEY_ENVS))

    def key_env_allowed(self, name: str) -> bool:
        """True when the user allows a spec to name the environment variable ``name`` for a key."""
        return name in self.key_envs

    def base_allowed(self, url: str) -> bool:
        """True when the user allows a spec to send calls to ``url``.

        An entry that is a base URL allows that scheme, host and port, and the
        paths at or below its path; an entry that is a host name (with or
        without a port) allows any URL on that host (and port).
        """
        base = parse_base(url)
        if base is None:
            return False
        for entry in self.api_bases:
            allowed = parse_base(entry)
            if allowed is not None:
                if allowed.origin == base.origin and (base.path == allowed.path
                                                      or base.path.startswith(allowed.path + "/")):
                    return True
                continue
            m = _HOST_ENTRY.match(entry)
            if m is not None and m["host"].lower().rstrip(".") == base.host \
                    and (m["port"] is None or int(m["port"]) == base.port):
                return True
        return False
