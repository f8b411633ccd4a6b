"""Helpers shared by the generation tests: a small spec, its plan, units."""

from __future__ import annotations

import numpy as np
from conftest import GREETING_TAIL
from conftest import plan_of_text as plan_of  # noqa: F401  (the generation tests import it from here)

from expc.runtime.units import Units

SPEC = """\
version: 1
experiment:
  id: gen-demo
  unit: user_id
attributes:
  user_id: string
  first_name: string
  country: string
prompts:
  hello:
    model: {model}
    {extra}
    template: |
      Write a greeting for {{{{ user.first_name }}}}.
    checks: {checks}
"""


def spec_text(model: str = "offline/test", checks: str = "{}", extra: str = "") -> str:
    """The spec above (then GREETING_TAIL) with a model, checks (YAML flow) and extra prompt lines."""
    return SPEC.format(model=model, checks=checks, extra=extra or "temperature: 0.5") + GREETING_TAIL


def units_of(n: int, start: int = 0) -> Units:
    """``n`` units u<start>..: distinct first names."""
    ids = np.array([f"u{i}" for i in range(start, start + n)], dtype=object)
    names = np.array([f"Name{i}" for i in range(start, start + n)], dtype=object)
    return Units({"user_id": ids, "first_name": names}, {"user_id": "string", "first_name": "string"})
