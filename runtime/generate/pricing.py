"""A model's price, looked up once per run: what a call costs from its token counts alone.

litellm prices every call after it returns (``completion_cost``), and for a
model it does not know it searches its whole price table each time. expc
looks each model up once (:func:`lookup`) in the same table litellm uses
(``litellm.model_cost`` when litellm is already imported, else the table
litellm ships, ``model_prices_and_context_window_backup.json``, read without
importing litellm), and then prices a call with a multiplication
(:meth:`Price.cost`).

The rates applied are the table's per-token rates: input, output, cached
input (``cache_read_input_token_cost``) and the long-prompt tiers
(``input_cost_per_token_above_<N>k_tokens`` and its output twin, taken when
the prompt has more than N thousand tokens). A model that is not in the table,
or has no per-token rate, has an unknown price: its calls cost 0 and are
marked ``cost_known = False``, as before.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TIER = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")
TABLE_FILE = "model_prices_and_context_window_backup.json"


@dataclass(frozen=True)
class Price:
    """Per-token rates of one model (USD); ``known`` False when the table has no rate for it."""

    model: str
    known: bool
    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None
    tiers: tuple[tuple[int, float, float], ...] = ()  # (prompt tokens above, input rate, output rate), ascending

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float | None:
        """What a call with these token counts costs; None when the price is unknown."""
        if not self.known:
            return None
        rate_in, rate_out = self.input, self.output
        for above, tier_in, tier_out in self.tiers:
            if prompt_tokens > above:
                rate_in, rate_out = tier_in, tier_out
        cached = min(max(cached_tokens, 0), prompt_tokens) if self.cached_input is not None else 0
        return ((prompt_tokens - cached) * rate_in + cached * (self.cached_input or 0.0)
                + completion_tokens * rate_out)


@functools.lru_cache(maxsize=1)
def _packaged_table() -> dict[str, Any]:
    """litellm's packaged price table, read as JSON (litellm is not imported); {} when it cannot be found."""
    spec = importlib.util.find_spec("litellm")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / TABLE_FILE
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return table if isinstance(table, dict) else {}
    return {}


def table() -> dict[str, Any]:
    """The price table litellm uses: its live ``model_cost`` when litellm is imported, else its packaged copy."""
    litellm = sys.modules.get("litellm")
    live = getattr(litellm, "model_cost", None) if litellm is not None else None
    return live if isinstance(live, dict) and live else _packaged_table()


def lookup(model: str) -> Price:
    """The price of ``model`` (``provider/name`` or a bare name): the table's entry for it, once per run.

    The full id is tried first, then the name without its provider prefix,
    which must then be an entry of that provider (``openai/gpt-4o-mini`` is
    ``gpt-4o-mini`` of provider ``openai``; ``openai/bench`` is unknown).
    """
    prices = table()
    entry = prices.get(model)
    if not isinstance(entry, dict) and "/" in model:
        provider, name = model.split("/", 1)
        candidate = prices.get(name)
        providers = (provider, f"text-completion-{provider}")
        if isinstance(candidate, dict) and candidate.get("litellm_provider") in providers:
            entry = candidate
    if not isinstance(entry, dict):
        return Price(model, known=False)
    rate_in, rate_out = _rate(entry.get("input_cost_per_token")), _rate(entry.get("output_cost_per_token"))
    if rate_in is None and rate_out is None:
        return Price(model, known=False)
    tiers = []
    for key, value in entry.items():
        match = _TIER.match(key)
        tier_in = _rate(value) if match else None
        if match and tier_in is not None:
            above = int(match.group(1)) * 1000
            tier_out = _rate(entry.get(f"output_cost_per_token_above_{match.group(1)}k_tokens"))
            tiers.append((above, tier_in, tier_out if tier_out is not None else rate_out or 0.0))
    return Price(model, True, rate_in or 0.0, rate_out or 0.0, _rate(entry.get("cache_read_input_token_cost")),
                 tuple(sorted(tiers)))


def _rate(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None
