"""Exposures against expc's own assignment: units shown a variant expc did not assign them.

When a run or an analysis has the units file, expc knows each unit's variant
(:func:`expc.runtime.assign.assign`, the hash GrowthBook's SDK computes). The
exposures say which variant each unit was shown. They differ when the SDK was
configured with another seed, weights, coverage or hash version than the spec,
when a cache served an old variation, or when units outside the experiment's
audience were logged. Such units still count in the analysis (it reads what was
shown), but the comparison is no longer the randomised one the spec describes.

:func:`check_assignment` compares the two for every unit the reduction counts
(exposed to exactly one variant), vectorised: ``misassigned`` units were shown
a variant other than theirs, or were shown one although expc leaves them out
of the experiment; ``not_in_units`` units are absent from the units file (not
counted as misassigned: the file may be a sample). Above
:data:`MISASSIGNED_THRESHOLD` of the checked units, the decision's reasons say
so (:meth:`AssignmentCheck.reason`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MISASSIGNED_THRESHOLD = 0.01
"""The share of checked units shown another variant above which the decision says so."""


@dataclass(frozen=True)
class AssignmentCheck:
    """How the exposed units' variants compare with expc's assignment."""

    checked: int
    """Exposed units (one variant each) that are in the units file."""
    misassigned: int
    """Of those, units shown a variant expc did not assign them (or none)."""
    not_in_units: int
    """Exposed units the units file does not have."""
    threshold: float = MISASSIGNED_THRESHOLD

    @property
    def share(self) -> float:
        """``misassigned / checked`` (0 when nothing was checked)."""
        return self.misassigned / self.checked if self.checked else 0.0

    @property
    def flagged(self) -> bool:
        """More than ``threshold`` of the checked units were shown another variant."""
        return self.share > self.threshold

    def reason(self) -> str | None:
        """The decision's reason when flagged, else None."""
        if not self.flagged:
            return None
        return (f"{self.misassigned:,} of {self.checked:,} exposed units ({self.share:.1%}) were shown a variant expc "
                f"did not assign them (more than {self.threshold:.0%}): the logging SDK's seed, weights, coverage or "
                "audience differ from the spec's, so the comparison is not the randomised one")

    def to_dict(self) -> dict[str, Any]:
        """JSON: the counts, the share, the threshold and whether it is flagged."""
        return {"checked": self.checked, "misassigned": self.misassigned, "not_in_units": self.not_in_units,
                "share": self.share, "threshold": self.threshold, "flagged": self.flagged}


def check_assignment(exposed_ids: np.ndarray, exposed_arms: np.ndarray, unit_ids: np.ndarray,
                     assigned_arms: np.ndarray, threshold: float = MISASSIGNED_THRESHOLD) -> AssignmentCheck:
    """Compare each exposed unit's arm with its assigned arm (arms index the plan's variants; -1: not assigned).

    ``exposed_ids``/``exposed_arms``: the units the reduction counts and the
    arm they were shown; ``unit_ids``/``assigned_arms``: the units file and
    expc's assignment. Ids are compared as text; a unit listed twice in the
    units file has the assignment of its first row.
    """
    ids = _as_text(unit_ids)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    first = np.ones(ids.size, dtype=bool)
    first[1:] = ids[1:] != ids[:-1]  # after a stable sort, a repeated id's first row comes first
    ids, order = ids[first], order[first]
    wanted = _as_text(exposed_ids)
    at = np.minimum(np.searchsorted(ids, wanted), max(ids.size - 1, 0))
    found = (ids[at] == wanted) if ids.size else np.zeros(wanted.size, dtype=bool)
    assigned = np.asarray(assigned_arms, dtype=np.int64)[order[at[found]]]
    shown = np.asarray(exposed_arms, dtype=np.int64)[found]
    return AssignmentCheck(checked=int(found.sum()), misassigned=int(np.count_nonzero(assigned != shown)),
                           not_in_units=int((~found).sum()), threshold=threshold)


def _as_text(ids: np.ndarray) -> np.ndarray:
    """Ids as the reduction compares them: text, whole numbers without a decimal point (a units file's integer
    ids are floats in memory)."""
    ids = np.asarray(ids)
    if ids.dtype.kind == "f":
        whole = np.isfinite(ids) & (ids == np.round(ids))
        return np.where(whole, np.round(np.where(whole, ids, 0)).astype(np.int64).astype(str), ids.astype(str))
    return ids.astype(object).astype(str)
