"""The built-in offline provider: deterministic copy with no key and no network.

Models ``offline/<anything>`` (:func:`is_offline`). :func:`offline_reply` is
the one source of every offline reply, served two ways that give the same
stored records: directly by :mod:`.calls` (a run whose calls all go offline
never imports litellm, which takes seconds), and through litellm as the custom
provider ``offline`` (:func:`register`), for whoever calls
``litellm.acompletion`` with an offline model. Each text is made from the
rendered prompt and the seed: the same request always gives the same text,
another seed or another prompt gives another one, and every text starts with
``[offline]`` so nobody mistakes it for real model output.

The request may carry ``extra_body={"expc_chars": [min, max]}`` (the prompt's
length checks), which the text is fitted into, and ``"expc_json_schema"`` (the
prompt's ``json_schema`` check), for which the reply is a JSON value of that
shape with the offline text in its strings, so that offline runs exercise the
checks without failing them all.

With ``"expc_judge": true`` (a model-graded check's call, see :mod:`.judge`)
the reply is a judge's answer, ``{"score": s, "reason": "..."}``, whose score
is a deterministic function of the request and the seed, between 0.40 and
1.00 in steps of 0.01: the same text always gets the same score, different
texts (candidates) usually different ones. It grades nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

PROVIDER = "offline"
MARK = "[offline]"
MAX_CHARS = 256 * 1024
"""Longest text the offline model makes (the longest reply :mod:`.calls` accepts): a spec's ``min_chars`` or
JSON Schema asking for more gets a shorter reply, which its checks then reject, instead of unbounded work."""


def is_offline(model: str) -> bool:
    """True when ``model`` is the built-in offline model (``offline/<name>``), which needs no key and no network."""
    return model.startswith(PROVIDER + "/")


@dataclass(frozen=True)
class OfflineReply:
    """What the offline model answers to one request (it is free: its cost is 0)."""

    model: str  # ``offline/<name>``, as a provider's reply names its model
    content: str
    prompt_tokens: int
    completion_tokens: int


def offline_reply(model: str, messages: list[dict[str, Any]], seed: int | None,
                  extra_body: dict[str, Any] | None = None) -> OfflineReply:
    """The offline model's reply to one request: the text, fitted to expc's hints in ``extra_body``, and its tokens.

    ``model`` is the whole id, ``offline/<name>``. ``extra_body`` may carry
    ``expc_chars`` ([min, max], 0 for no bound) and ``expc_json_schema``; see
    the module's documentation.
    """
    hints = extra_body or {}
    if hints.get("expc_judge"):
        text = offline_judgement(messages, seed)
        return OfflineReply(model, text, sum(_tokens(str(m.get("content") or "")) for m in messages), _tokens(text))
    window = hints.get("expc_chars")
    chars = (int(window[0]), int(window[1])) if window else None
    text = offline_text(messages, seed, chars)
    schema = hints.get("expc_json_schema")
    if schema is not None:
        try:
            text = json.dumps(offline_json(schema, text), ensure_ascii=False)
        except _TooLarge:  # the plain text, as a model that cannot comply answers: the checks reject it
            pass
    prompt_tokens = sum(_tokens(str(m.get("content") or "")) for m in messages)
    return OfflineReply(model, text, prompt_tokens, _tokens(text))


def offline_judgement(messages: list[dict[str, Any]], seed: int | None) -> str:
    """The offline judge's answer: a JSON object with a deterministic ``score`` in [0.40, 1.00] and a ``reason``."""
    prompt = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") != "system")
    digest = hashlib.sha256(f"judge\x00{seed}\x00{prompt}".encode()).digest()
    score = round(0.4 + (int.from_bytes(digest[:2], "big") % 61) / 100, 2)
    return json.dumps({"score": score, "reason": f"{MARK} a deterministic score, not a judgement"})


_OPENERS = ("Discover", "Meet", "Try", "Explore", "Say hello to", "Get more from", "Make room for", "Picture")
_LINKS = ("made for", "picked for", "built around", "inspired by", "with a nod to", "tuned to")
_CLOSERS = (
    "See what is new today.", "It takes one tap to start.", "Come and have a look.",
    "We saved you a seat.", "Your next favourite is waiting.", "Start where you left off.",
    "Small steps, big difference.", "Everything in one place.",
)
_FILLER = (
    "Each piece is chosen with care and described plainly.", "Details, sizes and materials are listed below.",
    "Nothing here is rushed; take your time to compare.", "Care instructions come with every item.",
    "The essentials are covered, with room for what you like most.",
)
_STOP = frozenset(
    [
        "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is", "it", "its", "of",
        "on", "or", "that", "the", "this", "to", "was", "were", "will", "with", "who", "write", "one", "short", "new",
        "your", "you", "our", "their", "them", "they", "about", "what", "which", "when", "where", "who", "whom",
        "whose", "each", "every", "sentence", "line", "subject", "words", "word", "block", "text", "copy", "customer",
        "customers", "user", "users", "people", "person", "reader", "likes", "like", "products", "product",
        "category", "categories", "lead", "made", "inviting", "back", "app", "see"
    ]
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")


def offline_text(messages: list[dict[str, Any]], seed: int | None, chars: tuple[int, int] | None = None) -> str:
    """The deterministic offline reply to ``messages`` with ``seed`` (fitted into ``chars`` when given)."""
    prompt = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") != "system")
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    words = [w for w in _WORD.findall(prompt) if w.lower() not in _STOP]
    topics = list(dict.fromkeys(w.lower() for w in words))
    pick = lambda seq, i: seq[digest[i] % len(seq)]
    if topics:
        first = topics[digest[3] % len(topics)]
        second = topics[digest[4] % len(topics)]
        topic = first if first == second else f"{first} and {second}"
    else:
        topic = "something new"
    kind = pick(("picks", "ideas", "finds", "favourites"), 1)
    headline = f"{MARK} {pick(_OPENERS, 0)} {kind} {pick(_LINKS, 2)} {topic}."
    text = f"{headline} {pick(_CLOSERS, 5)}"
    low, high = chars if chars else (0, 280)
    start = digest[6] % len(_FILLER)
    i = 0
    while len(text) < min(low, MAX_CHARS):
        text += " " + _FILLER[(start + i) % len(_FILLER)]
        i += 1
    if high and len(text) > high:
        text = headline if low <= len(headline) <= high else _cut(text, high, low)
    return text


class _TooLarge(Exception):
    """The value a JSON Schema asks for would be longer than :data:`MAX_CHARS`."""


def offline_json(schema: dict[str, Any], text: str) -> Any:
    """A small JSON value of ``schema``'s shape (objects, arrays, scalars, enums), strings filled with ``text``.

    Raises ``_TooLarge`` (before building it) when the value would pass
    :data:`MAX_CHARS` characters (``minItems``, ``minLength`` and nesting multiply).
    """
    return _shaped(schema, text, [MAX_CHARS])


def _shaped(schema: dict[str, Any], text: str, budget: list[int]) -> Any:
    """:func:`offline_json`, charging about each part's length to ``budget`` (one number, in a list)."""

    def charge(chars: int) -> None:
        budget[0] -= max(1, chars)
        if budget[0] < 0:
            raise _TooLarge

    if "const" in schema:
        charge(len(json.dumps(schema["const"], default=str)))
        return schema["const"]
    if schema.get("enum"):
        charge(len(json.dumps(schema["enum"][0], default=str)))
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            return _shaped(schema[combinator][0], text, budget)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        charge(2)
        out = {}
        for name, sub in props.items():
            charge(len(str(name)) + 4)
            out[name] = _shaped(sub, text, budget)
        return out
    if kind == "array":
        copies = max(1, int(schema.get("minItems", 1)))
        before = budget[0]
        item = _shaped(schema.get("items") or {}, text, budget)
        charge((before - budget[0] + 2) * (copies - 1))  # the other copies of the same item
        return [item] * copies
    charge(8)
    if kind in ("integer", "number"):
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    low, high = int(schema.get("minLength", 0)), int(schema.get("maxLength", 0) or 0)
    charge(min(max(low, len(text)), high or max(low, len(text))))
    return (text + " " + text * (low // max(1, len(text)) + 1))[:max(low, len(text))][:high or None]


def _cut(text: str, high: int, low: int) -> str:
    """Shorten at a word boundary to at most ``high`` characters (never below ``low`` if avoidable)."""
    cut = text[:high]
    space = cut.rfind(" ")
    if space > max(len(MARK), low):
        cut = cut[:space]
    return cut.rstrip(" ,;:")


def _tokens(text: str) -> int:
    return len(text.split())


_provider: Any = None


def register() -> None:
    """Register the offline provider with litellm (idempotent). Imports litellm: call it only to make calls."""
    global _provider
    import litellm

    if _provider is None:
        from litellm import CustomLLM, ModelResponse

        class OfflineLLM(CustomLLM):
            """litellm custom provider ``offline``: see the module's documentation."""

            async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
                optional = kwargs.get("optional_params") or {}
                # litellm hands a custom provider the id without its provider: offline/<name> -> <name>
                reply = offline_reply(f"{PROVIDER}/{model}", messages, optional.get("seed"), optional.get("extra_body"))
                response = ModelResponse(
                    model=reply.model,
                    choices=[{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": reply.content}}],
                    usage={"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                           "total_tokens": reply.prompt_tokens + reply.completion_tokens},
                )
                response._hidden_params["response_cost"] = 0.0  # offline is free; spares litellm's price lookup
                return response

            def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
                raise NotImplementedError("expc calls the offline provider asynchronously only")

        _provider = OfflineLLM()
    if not any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
        litellm.custom_provider_map = [*litellm.custom_provider_map,
                                       {"provider": PROVIDER, "custom_handler": _provider}]
