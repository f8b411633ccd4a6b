"""Units as columns: the in-memory table every runtime step works on.

One numpy array per declared attribute, all of one length, in a fixed
representation per attribute type so that vectorised code can rely on it:

============  ==========================================================
type          array
============  ==========================================================
string        dtype object: ``str`` or ``None`` (null)
version       dtype object: ``str`` or ``None``
datetime      dtype object: ``str`` (as written, ISO 8601) or ``None``
integer       dtype float64: the value, ``NaN`` for null (JavaScript has
              only doubles; GrowthBook compares them as such)
number        dtype float64: the value, ``NaN`` for null
boolean       dtype object: ``True``, ``False`` or ``None``
list[string]  dtype object: ``tuple`` of ``str``, or ``None``
============  ==========================================================

Attributes that a file does not have are absent from ``columns`` (GrowthBook
sees them as missing, i.e. null).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Units:
    """A table of units: ``columns[name]`` per attribute, ``types[name]`` its declared type."""

    columns: dict[str, np.ndarray]
    types: dict[str, str]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0
