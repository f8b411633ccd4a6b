"""Simulated runs: units, exposures and events drawn from a spec's ``simulation`` block.

``expc run --simulate`` and ``expc simulate`` need the data a real experiment
would log, drawn from the truth the spec declares, and its reduction at every
look. Four steps, each vectorised with numpy (no per-unit Python loops) and
seeded (a :class:`numpy.random.Generator` per attribute and per event, so adding
an attribute or a metric does not change the others' draws):

1. :func:`draw_units`: ``units_per_day`` units per day for ``days`` days, every
   declared attribute drawn from its distribution (see *Attributes*), and the
   day each unit arrives.
2. ``assign(plan, units)`` (:mod:`expc.runtime.assign`) decides who is in the
   experiment; units outside the audience, layer or coverage get -1.
3. :func:`draw_outcomes`: each assigned unit's first exposure (uniform within
   its arrival day) and the events of every metric (see *Outcomes*), as
   columnar arrays in a :class:`SyntheticRun`.
4. :func:`look_reduction` gives the :class:`~expc.runtime.stats.reduce.Reduction`
   at a look, in numpy, equal to what ``reduce()`` computes from the files
   :func:`write_files` writes with the same ``as_of`` (the same counts, the same
   sums up to floating-point summation order; ``sql`` is empty).

Times are whole microseconds since the Unix epoch (UTC), the resolution of
DuckDB's ``TIMESTAMP``, so the numpy reduction and the SQL one compare the same
instants.

How a look is reduced: once per run and plan, each metric's counted events get
their increments of the per-arm sums (see :func:`_running_sums`), accumulated
in time order; a look is then a binary search per arm, so all the looks of a
run cost little more than one. The reduction follows ``reduce()``'s rules for
any run, not only for freshly drawn ones (a run whose events were moved before
exposure, or a plan whose windows differ from the drawing plan's, gives the
same exclusions as the SQL), and with CUPED on for a metric it carries the
pre-exposure covariate sums (``Moments.pre_*``) over the plan's
``analysis.cuped_lookback``. Freshly drawn runs have no events before exposure,
so their covariates are 0 and CUPED does not adjust them. Windows in progress
and caps follow ``reduce()`` too: a metric whose in-progress units are left out
counts, at each look, the units whose window has ended (their values are then
complete, so a running sum over units in exposure order serves every look); a
capped metric is summed at each look from every counted unit's value so far,
capped at the value or at :func:`linear_quantile` of those values (the same
interpolation as the SQL), its CUPED covariate capped alike.

Attributes
==========

The unit attribute (``experiment.unit``) gets unique ids, ``u000001``,
``u000002``... in arrival order (the numbers 1, 2... for an ``integer`` id); a
distribution declared for it is ignored, since ids must be unique. Every other
attribute follows its distribution in ``simulation.attributes``:

* ``values`` (with optional relative ``weights``): one value per unit (for a
  ``list[...]`` attribute, the vocabulary the items are drawn from);
* ``min``/``max``: uniform (integers: every whole number in [min, max]);
* ``mean``/``sd``: normal (integers rounded; clipped to ``min``/``max`` if given);
* ``p``: a boolean, true with probability ``p``;
* ``size: [a, b]``: a list's length, uniform in [a, b]; items are drawn without
  replacement (weighted) and kept in the order of ``values``, so that equal
  sets are equal tuples (and one generated segment).

Without a distribution an attribute gets a sensible default. When the
allocation's audience constrains the attribute at its top level (``$eq``,
``$in``, a literal, ``$gte``/``$gt``/``$lte``/``$lt``, ``$veq``/``$vgte``/``$vgt``/
``$vlte``, ``$elemMatch`` with ``$in``), the default draws inside it, so that ``units_per_day`` really reach
the allocation. Otherwise: strings from ``<name>_a`` ... ``<name>_e``;
versions ``1.0.0``, ``1.2.0``, ``2.0.0``; datetimes uniform in 2025 (ISO text);
integers 0..100; numbers uniform in [0, 100); booleans ``p = 0.5``; lists 1-3
items of a 5-item vocabulary. No default is ever null.

Outcomes
========

Truth: ``simulation.truth[variant][metric]``; a variant or metric left out
takes the control's value (W005), then the metric's ``baseline``/``sd``, then
0.1 for a proportion and 1.0 for a mean or ratio. An ``sd`` left out is the
metric's ``sd``, else ``|mean|``. With ``truth="aa"`` every variant takes the
control's values (an A/A test: no true effect).

Events are drawn per event *name*, since metrics that name the same event share
its rows (``reduce`` counts an ``order_completed`` row for every metric that
names it). The first metric that names an event draws it (proportions and means
first, in plan order, then ratios), within that metric's window; the other
metrics see those rows through their own windows, so their truths hold only as
far as they agree with it.

* proportion, rate ``p``: each unit has the event once with probability ``p``
  (value 1.0).
* mean, ``{mean μ, sd σ}``, μ > 0: non-negative and exactly that mean and sd.
  When σ ≥ μ, a zero-inflated exponential: the event happens once with
  probability ``q = 2μ² / (σ² + μ²)``, with a value ~ Exponential of mean
  ``(σ² + μ²) / (2μ)`` (revenue per visitor of 2.40 ± 19.5 becomes ~3% of
  visitors ordering ~80 each); when σ < μ, every unit has the event once with a
  Gamma value of that mean and sd. μ ≤ 0: one event with a Normal(μ, σ) value
  (negative values are real data: refunds).
* ratio, ``{mean r, sd s}``: if the denominator's event is not drawn yet, it is
  a count per unit: ``1 + Poisson(μy - 1)`` for ``μy ≥ 1``, else ``Poisson(μy)``
  (values 1.0), where ``μy = μx / r`` when another metric already drew the
  numerator with mean ``μx`` (so the ratio is ``r``), else ``μy = 2``. Then, if
  the numerator is not drawn yet, it is drawn given each unit's denominator
  ``y``: with ``measure: count``, ``Poisson(r·y)`` events; with
  ``measure: value``, the zero-inflated draw above with mean ``r·y`` and
  variance ``s²·μy·y``, so that the delta-method per-unit sd of the ratio (what
  planning calls ``sd``) is about ``s``. A ratio of one event's value to its
  count (an average order value) draws ``1 + Poisson(1)`` occurrences per unit,
  each valued with mean ``r`` and sd ``s``. When both events are drawn already,
  the ratio is whatever they give.

Event times are uniform from the unit's first exposure to the end of the
drawing metric's window (inclusive), or, without a window, to the end of the
simulated horizon (``days`` after ``start``). Events may fall after the
horizon: a unit that arrives on the last day has most of its window ahead.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .stats.moments import Moments
from .stats.reduce import EXCLUDED_KEYS, IGNORED_KEYS, Reduction
from .stats.reduction_sql import in_progress_excluded
from .tables import _ident, _literal, copy_atomic
from .units import Units

if TYPE_CHECKING:
    from expc.compiler.model import Cap
    from expc.compiler.plan import Plan, PlanMetric, Simulation

DAY_US = 86_400_000_000
"""Microseconds in a day."""
DEFAULT_START = "2026-01-01T00:00:00Z"
"""When a simulated experiment starts unless told otherwise."""
_EPOCH = datetime(1970, 1, 1)
_VERSIONS = ("1.0.0", "1.2.0", "2.0.0")
_MAX_BITS = 62  # list vocabularies up to this size are encoded as bit masks


# ================================================================== units


def draw_units(plan: Plan, days: int, seed: int, truth: str = "spec") -> tuple[Units, np.ndarray]:
    """Draw ``units_per_day × days`` units with every declared attribute, and the day each arrives.

    Attributes follow ``simulation.attributes`` or a default per type (see the
    module documentation). ``truth`` is accepted for symmetry with
    :func:`draw_outcomes`; the population does not depend on it, so an A/A and a
    spec-truth run can share the same units. Raises ``ValueError`` when the plan
    has no simulation block or ``days`` < 1.
    """
    if truth not in ("spec", "aa"):
        raise ValueError(f"truth must be 'spec' or 'aa', not {truth!r}")
    sim = simulation_block(plan)
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    per_day = int(sim.units_per_day)
    n = per_day * int(days)
    entry_day = np.repeat(np.arange(days, dtype=np.int64), per_day)
    unit = plan.assignment.unit
    declared = sim.attributes
    hints = _audience_hints(plan.assignment.condition)
    columns: dict[str, np.ndarray] = {}
    types: dict[str, str] = dict(plan.attributes)
    for name, typ in types.items():
        if name == unit:
            columns[name] = _ids(n, typ)
            continue
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 1, _stream(name)])
        dist = declared[name].model_dump(exclude_none=True) if name in declared else {}
        if not dist:
            dist = _default_distribution(name, typ, hints.get(name, {}))
        columns[name] = _draw_attribute(rng, typ, dist, n)
    return Units(columns, types), entry_day


MAX_SIMULATED_SEGMENT_VALUES = 10_000
"""A simulated attribute with more distinct values than this cannot be broken into segments (as in the data)."""


def attribute_shares(plan: Plan, name: str) -> dict[str, float] | None:
    """The share of simulated units with each value of an attribute, as :func:`draw_units` draws them.

    Keys are the values as segment names (text, ``true``/``false`` for booleans).
    ``None`` when the attribute's values are not a short discrete list: a
    continuous number, a datetime, a list, the unit id, or more than
    :data:`MAX_SIMULATED_SEGMENT_VALUES` whole numbers.
    """
    sim = simulation_block(plan)
    typ = plan.attributes.get(name)
    if typ is None or name == plan.assignment.unit or typ.startswith("list[") or typ == "datetime":
        return None
    hint = _audience_hints(plan.assignment.condition).get(name, {})
    dist = sim.attributes[name].model_dump(exclude_none=True) if name in sim.attributes else {}
    if not dist:
        dist = _default_distribution(name, typ, hint)
    if "values" in dist:
        values = _typed_values(typ, dist["values"])
        allowed = {_segment_name(v) for v in _typed_values(typ, hint["values"]).tolist()} if "values" in hint else None
        shares: dict[str, float] = {}
        for value, share in zip(values.tolist(), _probabilities(dist.get("weights"), len(values)).tolist()):
            key = _segment_name(value)
            if allowed is None or key in allowed:  # units_per_day counts the audience only
                shares[key] = shares.get(key, 0.0) + share
        total = sum(shares.values())
        return {k: v / total for k, v in shares.items()} if total > 0 else None
    if typ == "boolean":
        p = float(dist.get("p", 0.5))
        return {"true": p, "false": 1.0 - p}
    if typ == "integer" and "mean" not in dist and "sd" not in dist:
        lo = math.ceil(float(dist.get("min", 0.0)))
        hi = math.floor(float(dist.get("max", lo + 100.0)))
        if hi < lo or hi - lo + 1 > MAX_SIMULATED_SEGMENT_VALUES:
            return None
        return {str(v): 1.0 / (hi - lo + 1) for v in range(lo, hi + 1)}
    return None


def _segment_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def simulation_block(plan: Plan) -> Simulation:
    """The plan's ``simulation`` block; ``ValueError`` with a person's message when there is none."""
    if plan.simulation is None:
        raise ValueError("the spec has no `simulation` block; add one with at least `units_per_day` "
                         "to simulate a run")
    return plan.simulation


def _stream(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def _ids(n: int, typ: str) -> np.ndarray:
    numbers = np.arange(1, n + 1, dtype=np.int64)
    if typ in ("integer", "number"):
        return numbers.astype(np.float64)
    width = max(6, len(str(n)))
    return np.strings.add("u", np.strings.zfill(numbers.astype(np.str_), width)).astype(object)


def _audience_hints(condition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Distributions that keep an attribute inside the audience's top-level constraints."""
    hints: dict[str, dict[str, Any]] = {}
    for key, value in condition.items():
        if key == "$and" and isinstance(value, list):
            for part in value:
                if isinstance(part, dict):
                    for k, v in _audience_hints(part).items():
                        hints.setdefault(k, {}).update(v)
            continue
        if key.startswith("$"):
            continue
        if not isinstance(value, dict) or not any(str(k).startswith("$") for k in value):
            if not isinstance(value, (list, dict)) and value is not None:
                hints[key] = {"values": [value]}
            continue
        hint: dict[str, Any] = {}
        for op, arg in value.items():
            if op == "$eq" and not isinstance(arg, (list, dict)) and arg is not None:
                hint["values"] = [arg]
            elif op == "$in" and isinstance(arg, list) and arg and all(not isinstance(a, (list, dict)) for a in arg):
                hint["values"] = list(arg)
            elif op in ("$gte", "$gt") and _is_number(arg):
                hint["min"] = float(arg) + (1 if op == "$gt" else 0)
            elif op in ("$lte", "$lt") and _is_number(arg):
                hint["max"] = float(arg) - (1 if op == "$lt" else 0)
            elif op in ("$veq", "$vgte", "$vlte", "$vgt") and isinstance(arg, str) and arg:
                hint["values"] = ([arg] if op in ("$veq", "$vlte") else [_bump(arg)] if op == "$vgt"
                                  else [arg, _bump(arg)])
            elif op == "$elemMatch" and isinstance(arg, dict):
                inner = arg.get("$in", [arg["$eq"]] if "$eq" in arg else None)
                if isinstance(inner, list) and inner and all(isinstance(a, str) for a in inner):
                    hint["items"] = list(inner)
        if hint:
            hints[key] = hint
    return hints


def _bump(version: str) -> str:
    """A version just above ``version`` (its last number plus one, or ``.1`` appended)."""
    head, _, last = version.rpartition(".")
    return f"{head}.{int(last) + 1}" if head and last.isdigit() else version + ".1"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _default_distribution(name: str, typ: str, hint: dict[str, Any]) -> dict[str, Any]:
    if typ.startswith("list["):
        vocab = hint.get("items") or ([f"{name}_{c}" for c in "abcde"] if typ == "list[string]" else [1, 2, 3, 4, 5])
        return {"values": vocab, "size": [1, min(3, len(vocab))]}
    if "values" in hint:
        return {"values": hint["values"]}
    if typ in ("integer", "number"):
        lo, hi = hint.get("min", 0.0), hint.get("max", 100.0)
        if "min" in hint and "max" not in hint:
            hi = lo + 100
        if "max" in hint and "min" not in hint:
            lo = min(0.0, hi)
        return {"min": lo, "max": hi}
    if typ == "boolean":
        return {"p": 0.5}
    if typ == "version":
        return {"values": list(_VERSIONS)}
    if typ == "datetime":
        return {"datetime_year": 2025}
    return {"values": [f"{name}_{c}" for c in "abcde"]}


def _draw_attribute(rng: np.random.Generator, typ: str, dist: dict[str, Any], n: int) -> np.ndarray:
    if typ.startswith("list["):
        return _draw_list(rng, typ, dist, n)
    if "values" in dist:
        return _choose(rng, _typed_values(typ, dist["values"]), dist.get("weights"), n)
    if typ == "boolean":
        p = float(dist.get("p", 0.5))
        return np.array([False, True], dtype=object)[(rng.random(n) < p).astype(np.int64)]
    if typ in ("integer", "number"):
        return _draw_number(rng, typ == "integer", dist, n)
    if typ == "datetime":
        start = np.datetime64(f"{dist.get('datetime_year', 2025)}-01-01T00:00:00", "s")
        seconds = rng.integers(0, 365 * 86400, n)
        return np.strings.add(np.datetime_as_string(start + seconds, unit="s"), "Z").astype(object)
    return _choose(rng, _typed_values(typ, [f"value_{c}" for c in "abcde"]), None, n)


def _typed_values(typ: str, values: list[Any]) -> np.ndarray:
    """The candidate values in the column representation of ``typ`` (see :mod:`expc.runtime.units`)."""
    if typ in ("integer", "number"):
        return np.array([np.nan if v is None or isinstance(v, bool) else float(v) for v in values], dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):  # a handful of candidate values, not units
        out[i] = v if (v is None or typ == "boolean" or isinstance(v, str)) else str(v)
    return out


def _probabilities(weights: list[float] | None, k: int) -> np.ndarray:
    if not weights:
        return np.full(k, 1.0 / k)
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != k or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights {list(weights)} do not fit {k} values")
    return w / w.sum()


def _choose(rng: np.random.Generator, values: np.ndarray, weights: list[float] | None, n: int) -> np.ndarray:
    if len(values) == 0:
        raise ValueError("a distribution's `values` is empty")
    return values[rng.choice(len(values), size=n, p=_probabilities(weights, len(values)))]


def _draw_number(rng: np.random.Generator, integer: bool, dist: dict[str, Any], n: int) -> np.ndarray:
    lo, hi = dist.get("min"), dist.get("max")
    if "mean" in dist or "sd" in dist:
        x = rng.normal(float(dist.get("mean", 0.0)), float(dist.get("sd", 1.0)), n)
        if integer:
            x = np.round(x)
        if lo is not None or hi is not None:
            low = -np.inf if lo is None else (math.ceil(lo) if integer else lo)
            high = np.inf if hi is None else (math.floor(hi) if integer else hi)
            x = np.clip(x, low, high)
        return x.astype(np.float64)
    lo = 0.0 if lo is None else float(lo)
    hi = lo + 100.0 if hi is None else float(hi)
    if integer:
        low, high = math.ceil(lo), math.floor(hi)
        if high < low:
            raise ValueError(f"no whole number lies in [{lo}, {hi}]")
        return rng.integers(low, high + 1, n).astype(np.float64)
    return rng.uniform(lo, hi, n)


def _draw_list(rng: np.random.Generator, typ: str, dist: dict[str, Any], n: int) -> np.ndarray:
    """Lists drawn without replacement (Gumbel top-k), items in vocabulary order; tuples shared per distinct set."""
    item_type = typ[5:-1] if typ.endswith("]") else "string"
    vocab = _typed_values(item_type, list(dist.get("values") or [f"item_{c}" for c in "abcde"]))
    k = len(vocab)
    if k == 0:
        raise ValueError("a list distribution's `values` is empty")
    size = dist.get("size") or [1, min(3, k)]
    a, b = max(0, int(size[0])), min(k, int(size[1]))
    if b < a:
        raise ValueError(f"size {list(size)} cannot be drawn from {k} values")
    lengths = rng.integers(a, b + 1, n)
    p = _probabilities(dist.get("weights"), k)
    with np.errstate(divide="ignore"):
        keys = np.log(p)[None, :] + rng.gumbel(size=(n, k))
    rank = np.empty((n, k), dtype=np.int64)
    np.put_along_axis(rank, np.argsort(-keys, axis=1), np.arange(k)[None, :], axis=1)
    chosen = rank < lengths[:, None]
    if k <= _MAX_BITS:
        codes = chosen.astype(np.int64) @ (np.int64(1) << np.arange(k, dtype=np.int64))
        distinct, inverse = np.unique(codes, return_inverse=True)
        masks = ((distinct[:, None] >> np.arange(k)) & 1).astype(bool)
    else:
        masks, inverse = np.unique(chosen, axis=0, return_inverse=True)
    table = np.empty(len(masks), dtype=object)
    for i, mask in enumerate(masks):  # one tuple per distinct set, not per unit
        table[i] = tuple(v.item() if isinstance(v, np.generic) else v for v in vocab[mask])
    return table[inverse.reshape(-1)]


# ================================================================== outcomes


@dataclass(frozen=True, eq=False)
class SyntheticRun:
    """A simulated run's exposures and events as columns, times in µs since the epoch (UTC).

    Exposures (one per assigned unit) are sorted by time: ``rows`` indexes the
    units table, ``ids`` are the units' ids, ``arm`` the variant index,
    ``exposure_ts`` the first exposure. Events are sorted by time:
    ``event_unit`` indexes the exposures, ``event_code`` indexes
    ``event_names``.
    """

    unit: str
    variants: tuple[str, ...]
    event_names: tuple[str, ...]
    start_us: int
    days: int
    seed: int
    truth: str
    ids: np.ndarray
    rows: np.ndarray
    arm: np.ndarray
    exposure_ts: np.ndarray
    event_unit: np.ndarray
    event_code: np.ndarray
    event_value: np.ndarray
    event_ts: np.ndarray
    true_values: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    """Per metric and variant, the (mean, sd) the outcomes were drawn from."""
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def start(self) -> str:
        """The start of the run, ISO 8601 UTC."""
        return _iso(self.start_us) + "Z"

    def as_of(self, day: float) -> str:
        """The end of look ``day`` (``start + day`` days) as ISO 8601 UTC, as ``reduce(as_of=...)`` takes it."""
        return _iso(self.start_us + int(round(day * DAY_US))) + "Z"

    @property
    def exposures(self) -> int:
        """Number of exposure rows (assigned units)."""
        return int(len(self.exposure_ts))

    @property
    def events(self) -> int:
        """Number of event rows."""
        return int(len(self.event_ts))


@dataclass(frozen=True, eq=False)
class _Draw:
    """One event name's rows: occurrences per unit, a value per occurrence, per-arm expected count and sum."""

    count: np.ndarray  # int64, per exposed unit
    values: np.ndarray  # float64, per occurrence in unit order (np.repeat(arange, count))
    window_us: int | None
    count_mean: np.ndarray  # per arm; NaN when not known in closed form
    value_mean: np.ndarray  # per arm

    def per_unit(self, measure: str) -> np.ndarray:
        """Each unit's count, or the sum of its values."""
        if measure == "count":
            return self.count.astype(np.float64)
        units = np.repeat(np.arange(len(self.count)), self.count)
        return np.bincount(units, weights=self.values, minlength=len(self.count))

    def mean(self, measure: str) -> np.ndarray:
        """Per-arm expected count or sum of values per unit."""
        return self.count_mean if measure == "count" else self.value_mean


def draw_outcomes(plan: Plan, units: Units, entry_day: np.ndarray, variant_index: Any, seed: int,
                  start: str = DEFAULT_START, *, truth: str = "spec", days: int | None = None) -> SyntheticRun:
    """Draw each assigned unit's first exposure and every metric's events from the truth.

    ``variant_index`` is ``assign(plan, units).variant`` (or the ``Assignment``
    itself); -1 marks a unit that is not in the experiment: it has no exposure
    and no event. ``truth`` is ``"spec"`` (the simulation's true values) or
    ``"aa"`` (every variant as the control). ``days`` (the horizon for metrics
    without a window) defaults to the last arrival day + 1. See the module
    documentation for the model.
    """
    if truth not in ("spec", "aa"):
        raise ValueError(f"truth must be 'spec' or 'aa', not {truth!r}")
    variant_index = np.asarray(getattr(variant_index, "variant", variant_index), dtype=np.int64)
    entry_day = np.asarray(entry_day, dtype=np.int64)
    if len(variant_index) != len(units) or len(entry_day) != len(units):
        raise ValueError("units, entry_day and variant_index must have the same length")
    variants = tuple(v.id for v in plan.variants)
    arms = len(variants)
    start_us = _parse_start(start)
    days = int(days if days is not None else (int(entry_day.max()) + 1 if len(entry_day) else 1))
    horizon_us = start_us + days * DAY_US
    seed32 = int(seed) & 0xFFFFFFFF

    arrival = _arrival_us(np.random.default_rng([seed32, 2]), entry_day)
    assigned = np.flatnonzero(variant_index >= 0)
    ts = start_us + entry_day[assigned] * DAY_US + arrival[assigned]
    order = np.argsort(ts, kind="stable")
    rows, exposure_ts = assigned[order], ts[order]
    arm = variant_index[rows]
    id_column = units.columns.get(plan.assignment.unit)
    ids = id_column[rows] if id_column is not None else np.asarray(rows + 1, dtype=np.float64)

    values = _truth_table(plan, truth)
    draws = _draw_events(plan, values, arm, arms, seed32)

    names = tuple(draws)
    parts_unit, parts_code, parts_value, parts_ts = [], [], [], []
    for code, name in enumerate(names):
        d = draws[name]
        occ = np.repeat(np.arange(len(arm)), d.count)
        first = exposure_ts[occ]
        erng = np.random.default_rng([seed32, 4, _stream(name)])
        if d.window_us is not None:
            offset = erng.integers(0, d.window_us + 1, len(occ))
        else:
            offset = erng.integers(0, np.maximum(horizon_us - first, 0) + 1)
        parts_unit.append(occ)
        parts_code.append(np.full(len(occ), code, dtype=np.int64))
        parts_value.append(d.values)
        parts_ts.append(first + offset)
    event_ts = np.concatenate(parts_ts) if names else np.zeros(0, dtype=np.int64)
    order = np.argsort(event_ts)

    def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:  # all events, in time order
        return np.concatenate(parts)[order] if parts else np.zeros(0, dtype=dtype)

    true_values = {mid: {variants[a]: (float(mean[a]), float(sd[a])) for a in range(arms)}
                   for mid, (mean, sd) in values.items()}
    return SyntheticRun(
        unit=plan.assignment.unit, variants=variants, event_names=names, start_us=start_us, days=days,
        seed=int(seed), truth=truth, ids=ids, rows=rows, arm=arm, exposure_ts=exposure_ts,
        event_unit=cat(parts_unit, np.int64), event_code=cat(parts_code, np.int64),
        event_value=cat(parts_value, np.float64), event_ts=event_ts[order], true_values=true_values)


def _arrival_us(rng: np.random.Generator, entry_day: np.ndarray) -> np.ndarray:
    """Each unit's arrival within its day, in µs: uniform, and in table order within a day.

    The order statistics of uniforms come from normalised sums of exponential
    spacings, so no sort is needed; the i-th unit of a day arrives i-th (ids
    ``u000001``, ... are in arrival order).
    """
    n = len(entry_day)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    spacing = rng.exponential(size=n)
    days = int(entry_day.max()) + 1
    gap_after = rng.exponential(size=days)  # the spacing between a day's last arrival and midnight
    if np.any(np.diff(entry_day) < 0):  # not grouped by day: uniform times
        return np.minimum((rng.random(n) * DAY_US).astype(np.int64), DAY_US - 1)
    running = np.cumsum(spacing)
    counts = np.bincount(entry_day, minlength=days)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    base = np.where(counts > 0, running[np.minimum(first, n - 1)] - spacing[np.minimum(first, n - 1)], 0.0)
    totals = np.bincount(entry_day, weights=spacing, minlength=days) + gap_after
    fraction = (running - base[entry_day]) / totals[entry_day]
    return np.minimum((fraction * DAY_US).astype(np.int64), DAY_US - 1)


def _parse_start(start: str) -> int:
    moment = datetime.fromisoformat(start.strip().replace("z", "Z"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _iso(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=int(us))).isoformat()


def _truth_table(plan: Plan, truth: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per metric, the true means and sds of the variants (plan order): the plan's table, or its control row (aa)."""
    table = simulation_block(plan).truth
    rows = [table[plan.control if truth == "aa" else v.id] for v in plan.variants]
    out = {}
    for m in plan.metrics:
        values = [row[m.id] for row in rows]
        out[m.id] = (np.array([t.mean for t in values]),
                     np.array([t.sd if t.sd is not None else np.nan for t in values]))
    return out


def _window_us(metric: PlanMetric) -> int | None:
    w = metric.window_seconds
    return None if not w else int(round(float(w) * 1_000_000))


def _draw_events(plan: Plan, values: dict[str, tuple[np.ndarray, np.ndarray]], arm: np.ndarray,
                 arms: int, seed32: int) -> dict[str, _Draw]:
    """Each event name's draw; the first metric naming an event draws it (proportions and means first)."""
    draws: dict[str, _Draw] = {}
    n = len(arm)

    def rng_for(event: str) -> np.random.Generator:
        return np.random.default_rng([seed32, 3, _stream(event)])

    for m in plan.metrics:
        if m.kind not in ("proportion", "mean") or m.single_event() in draws:
            continue
        event = m.single_event()
        mean, sd = values[m.id]
        rng = rng_for(event)
        if m.kind == "proportion":
            p = np.clip(mean, 0.0, 1.0)
            count = (rng.random(n) < p[arm]).astype(np.int64)
            draws[event] = _Draw(count, np.ones(int(count.sum())), _window_us(m), p, p)
        else:
            count, vals = _skewed(rng, mean[arm], sd[arm])
            q = np.where(mean > 0, np.where(sd >= mean, 2 * mean**2 / np.maximum(sd**2 + mean**2, 1e-300), 1.0),
                         np.where((mean == 0) & (sd == 0), 0.0, 1.0))
            draws[event] = _Draw(count, vals, _window_us(m), q, mean.astype(np.float64))

    for m in plan.metrics:
        if m.kind != "ratio":
            continue
        r, s = values[m.id]
        num, den = m.ratio_measures()
        window = _window_us(m)
        if num.event == den.event:
            if num.event not in draws:
                draws[num.event] = _same_event_ratio(rng_for(num.event), r, s, arm, window,
                                                        num.measure == "value" and den.measure == "count")
            continue
        if den.event not in draws:
            mu_y = np.full(arms, 2.0)
            if num.event in draws:
                mu_x = draws[num.event].mean(num.measure)
                with np.errstate(divide="ignore", invalid="ignore"):
                    fit = mu_x / r
                mu_y = np.where(np.isfinite(fit) & (fit > 0), fit, 2.0)
            draws[den.event] = _counts(rng_for(den.event), mu_y, arm, window)
        if num.event not in draws:
            y = np.maximum(draws[den.event].per_unit(den.measure), 0.0)
            mu_y = draws[den.event].mean(den.measure)
            rng = rng_for(num.event)
            if num.measure == "count":
                count = rng.poisson(np.maximum(r[arm], 0.0) * y).astype(np.int64)
                mean_x = np.maximum(r, 0.0) * mu_y
                draws[num.event] = _Draw(count, np.ones(int(count.sum())), window, mean_x, mean_x)
            else:
                scale = np.sqrt(np.maximum(np.nan_to_num(mu_y[arm]), 0.0) * y)
                count, vals = _skewed(rng, r[arm] * y, s[arm] * scale)
                draws[num.event] = _Draw(count, vals, window, np.full(arms, np.nan), r * mu_y)
    return draws


def _skewed(rng: np.random.Generator, mu: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per unit 0 or 1 occurrence with a value of mean ``mu`` and sd ``sd`` (see the module documentation)."""
    n = len(mu)
    positive = mu > 0
    wide = positive & (sd >= mu)
    second = sd**2 + mu**2
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(wide, 2 * mu**2 / second, 1.0)
        shape = np.where(wide, 1.0, mu**2 / sd**2)
        scale = np.where(wide, second / (2 * mu), sd**2 / mu)
    normal = ~positive & ((mu != 0) | (sd > 0))
    happens = np.where(positive, rng.random(n) < q, normal)
    count = happens.astype(np.int64)
    value = np.zeros(n)
    gamma = happens & positive
    exact = gamma & (sd == 0)  # a constant value
    value[exact] = mu[exact]
    g = gamma & ~exact
    value[g] = rng.gamma(shape[g], scale[g])
    value[normal] = rng.normal(mu[normal], sd[normal])
    return count, value[happens]


def _counts(rng: np.random.Generator, mu: np.ndarray, arm: np.ndarray, window: int | None) -> _Draw:
    """Counts per unit with per-arm mean ``mu``: ``1 + Poisson(mu - 1)`` (mu ≥ 1) or ``Poisson(mu)``; values 1.0."""
    m = mu[arm]
    base = m >= 1
    count = (base + rng.poisson(np.where(base, m - 1, m))).astype(np.int64)
    return _Draw(count, np.ones(int(count.sum())), window, mu.astype(np.float64), mu.astype(np.float64))


def _same_event_ratio(rng: np.random.Generator, r: np.ndarray, s: np.ndarray, arm: np.ndarray, window: int | None,
                      valued: bool) -> _Draw:
    count = (1 + rng.poisson(1.0, len(arm))).astype(np.int64)
    if not valued:
        return _Draw(count, np.ones(int(count.sum())), window, np.full(r.shape, 2.0), np.full(r.shape, 2.0))
    occ_arm = np.repeat(arm, count)
    return _Draw(count, _fill(rng, r[occ_arm], s[occ_arm]), window, np.full(r.shape, 2.0), 2.0 * r)


def _fill(rng: np.random.Generator, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """One value per occurrence with mean ``mu`` and sd ``sd`` (zero-inflated when sd ≥ mu > 0)."""
    count, vals = _skewed(rng, mu, sd)
    out = np.zeros(len(mu))
    out[count.astype(bool)] = vals
    return out


# ================================================================== looks


def look_reduction(plan: Plan, run: SyntheticRun, day: float) -> Reduction:
    """The reduction at the end of look ``day`` (``as_of = start + day`` days), computed in numpy.

    Equal to ``reduce(plan, *write_files(run, folder), as_of=run.as_of(day))``:
    the same units, exclusion and ignored counts, the same sums (to rounding) and
    the same ``as_of``/``first_exposure``/``last_exposure``; ``sql`` is empty.
    ``day`` may be fractional (hourly looks). The per-metric preparation is done
    once per run and plan, so calling it at every look is cheap.
    """
    return look_reductions(plan, run, [day])[0]


def look_reductions(plan: Plan, run: SyntheticRun, days: list[float]) -> list[Reduction]:
    """:func:`look_reduction` at each of ``days``."""
    prepared = _prepare(plan, run)
    return [_reduce_at(prepared, run, run.start_us + int(round(d * DAY_US))) for d in days]


@dataclass(frozen=True, eq=False)
class _MetricEvents:
    """A metric's counted events as running per-arm sums: ``cumulative[a][:, k]`` holds the arm's sums
    (Σx, Σx² and, for a ratio, Σy, Σy², Σxy) over its first ``k`` events in time order ``ts[a]``."""

    metric: PlanMetric
    ts: list[np.ndarray]
    cumulative: list[np.ndarray]  # then, with CUPED, Σxz (ratio: Σxz, Σxw, Σyz, Σyw)
    pre_ts: list[np.ndarray] | None = None  # CUPED: exposure times per arm ...
    pre_cumulative: list[np.ndarray] | None = None  # ... and running Σz, Σz² (ratio: Σw, Σw², Σzw) over them
    units: _UnitValues | None = None  # a cap, or units in progress left out: counted per unit instead


@dataclass(frozen=True, eq=False)
class _UnitValues:
    """A metric whose units are summed whole: it is capped, or its units in progress are left out.

    Units left out while in progress (``wait_us``: the window) count once ``first exposure + window <=
    cut-off``; by then every event of their window is in, so each unit's complete value counts, and
    ``complete[a][:, k]`` holds arm ``a``'s sums (the layout of :attr:`_MetricEvents.cumulative`, then the
    CUPED pre-period sums) over its first ``k`` units in exposure order. A capped metric is summed at each
    look from each unit's value so far (``sides``: per side, the counted events' times in time order, units
    and increments), the cap taken over the units it counts.
    """

    wait_us: int | None
    cap: Cap | None
    sides: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    covariates: list[np.ndarray] | None
    complete: list[np.ndarray] | None


@dataclass(frozen=True, eq=False)
class _Prepared:
    arms: int
    metrics: list[_MetricEvents]
    named_cum: np.ndarray  # cumulative count of events a metric names, in time order (with 0 first)
    early_ts: np.ndarray  # events before their unit's first exposure (time order) ...
    early_first: np.ndarray  # ... and that first exposure: after the cut-off, the unit is not yet exposed
    outside_cum: np.ndarray


def _prepare(plan: Plan, run: SyntheticRun) -> _Prepared:
    """What every look needs, once per run and plan: event classes and each metric's counted events."""
    variants = tuple(v.id for v in plan.variants)
    if variants != run.variants:
        raise ValueError(f"the run was drawn for variants {list(run.variants)}, the plan has {list(variants)}")
    key = json.dumps([[m.model_dump_json() for m in plan.metrics], variants, plan.analysis.in_progress,
                      plan.analysis.cuped_lookback])
    if key in run._cache:
        return run._cache[key]
    code_of = {name: i for i, name in enumerate(run.event_names)}
    first = run.exposure_ts[run.event_unit]
    ts = run.event_ts
    widest: dict[str, int | None] = {}  # as reduce(): the widest window of the metrics naming an event
    for m in plan.metrics:
        w = _window_us(m)
        for event, _ in m.uses():
            if event not in widest:
                widest[event] = w
            else:
                known = widest[event]
                widest[event] = None if known is None or w is None else max(known, w)
    named = np.zeros(len(ts), dtype=bool)
    outside = np.zeros(len(ts), dtype=bool)
    for event, w in widest.items():
        if event in code_of:
            this = run.event_code == code_of[event]
            named |= this
            if w is not None:
                outside |= this & (ts > first + w)
    before = named & (ts < first)
    outside &= ~before
    counted = named & ~before & ~outside

    metrics = []
    for m in plan.metrics:
        w = _window_us(m)
        selected = []
        for event, measure in m.uses():
            sel = counted & (run.event_code == code_of.get(event, -1))
            if w is not None:
                sel &= ts <= first + w
            selected.append((sel, measure))
        covariates = None
        if m.cuped:  # the pre-exposure value: events in [first - lookback, first)
            pre = before & (ts >= first - _lookback_us(plan))
            covariates = [_pre_values(run, pre & (run.event_code == code_of.get(event, -1)), measure,
                                      m.kind == "proportion") for event, measure in m.uses()]
        me = _running_sums(m, selected, run, len(variants), covariates)
        if m.cap is not None or in_progress_excluded(plan, m):
            me = replace(me, units=_unit_values(m, selected, run, len(variants), covariates,
                                                w if in_progress_excluded(plan, m) else None))
        metrics.append(me)

    def cum(mask: np.ndarray) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])

    prepared = _Prepared(len(variants), metrics, cum(named), ts[before], first[before], cum(outside))
    run._cache[key] = prepared
    return prepared


def _lookback_us(plan: Plan) -> int:
    return int(plan.analysis.cuped_lookback) * 1_000_000


def _pre_values(run: SyntheticRun, sel: np.ndarray, measure: str, any_event: bool) -> np.ndarray:
    """Per exposed unit, the pre-exposure value: whether it had the event, its count, or its sum."""
    if any_event:
        return (np.bincount(run.event_unit[sel], minlength=len(run.arm)) > 0).astype(np.float64)
    weights = run.event_value[sel] if measure == "value" else None
    return np.bincount(run.event_unit[sel], weights=weights, minlength=len(run.arm)).astype(np.float64)


def _running_sums(m: PlanMetric, selected: list[tuple[np.ndarray, str]], run: SyntheticRun,
                  arms: int, covariates: list[np.ndarray] | None = None) -> _MetricEvents:
    """Each counted event's increment of the per-arm sums, accumulated in time order.

    With the events of a unit in time order and ``X``, ``Y`` its running totals
    before an event adding ``dx``, ``dy``: Σx² grows by ``2·X·dx + dx²``, Σy² by
    ``2·Y·dy + dy²`` and Σxy by ``X·dy + Y·dx + dx·dy``; a proportion's x becomes
    1 at the unit's first event. So the sums at any cut-off are one lookup.
    ``selected`` holds, per side (x, then y for a ratio), the indexes of the
    counted events (a boolean mask over all events) and the measure.
    """
    sides = np.zeros(len(run.event_ts), dtype=np.int8)
    for j, (mask, _) in enumerate(selected):
        sides[mask] |= np.int8(1 << j)
    idx = np.flatnonzero(sides)  # time order; an event may count on both sides
    side = sides[idx]
    unit = run.event_unit[idx]
    if len(idx) and len(run.arm) * len(idx) < 2**62:  # by unit, then time: one integer key
        order = np.argsort(unit * len(idx) + np.arange(len(idx)))
    else:
        order = np.lexsort((np.arange(len(idx)), unit))
    u = unit[order]
    starts = np.ones(len(u), dtype=bool)
    starts[1:] = u[1:] != u[:-1]
    group = np.maximum.accumulate(np.where(starts, np.arange(len(u)), 0))

    def before(d: np.ndarray) -> np.ndarray:  # the unit's running total before each event, in time order
        ordered = d[order]
        ex = np.cumsum(ordered) - ordered
        out = np.empty(len(d))
        out[order] = ex - ex[group]
        return out

    def delta(j: int) -> np.ndarray:  # side j's increment of each event, in time order
        on = (side & (1 << j)) != 0
        if selected[j][1] == "count":
            return on.astype(np.float64)
        return np.where(on, run.event_value[idx], 0.0)

    kind = m.kind
    if kind == "proportion":
        first_event = np.empty(len(idx), dtype=bool)
        first_event[order] = starts
        columns = [first_event.astype(np.float64)]
    elif kind == "mean":
        dx = delta(0)
        columns = [dx, 2 * before(dx) * dx + dx * dx]
    else:
        dx, dy = delta(0), delta(1)
        x, y = before(dx), before(dy)
        columns = [dx, 2 * x * dx + dx * dx, dy, 2 * y * dy + dy * dy, x * dy + y * dx + dx * dy]
    pre_ts = pre_cumulative = None
    if covariates is not None:  # z (and w) are fixed before exposure: Σxz grows by dx·z, and so on
        z = covariates[0][unit]
        if kind == "ratio":
            w = covariates[1][unit]
            columns += [dx * z, dx * w, dy * z, dy * w]
        else:
            columns += [columns[0] * z]
        pre_columns = [covariates[0], covariates[0] ** 2]
        if kind == "ratio":
            pre_columns += [covariates[1], covariates[1] ** 2, covariates[0] * covariates[1]]
        pre_ts, pre_cumulative = [], []
        for a in range(arms):
            mine = np.flatnonzero(run.arm == a)  # exposures are in time order
            pre_ts.append(run.exposure_ts[mine])
            table = np.zeros((len(pre_columns), len(mine) + 1))
            for c, column in enumerate(pre_columns):
                np.cumsum(column[mine], out=table[c, 1:])
            pre_cumulative.append(table)
    arm = run.arm[unit]
    ts_per_arm, cumulative = [], []
    for a in range(arms):
        mine = np.flatnonzero(arm == a)  # increasing: a sequential pass
        ts_per_arm.append(run.event_ts[idx[mine]])
        table = np.zeros((len(columns), len(mine) + 1))
        for c, column in enumerate(columns):
            np.cumsum(column[mine], out=table[c, 1:])
        cumulative.append(table)
    return _MetricEvents(m, ts_per_arm, cumulative, pre_ts, pre_cumulative)


def _unit_columns(kind: str, x: np.ndarray, y: np.ndarray | None, cov: list[np.ndarray] | None) -> list[np.ndarray]:
    """Per-unit terms in the layout of :attr:`_MetricEvents.cumulative`, then the CUPED pre-period terms."""
    if kind == "proportion":
        out = [x]
    elif kind == "mean":
        out = [x, x * x]
    else:
        assert y is not None
        out = [x, x * x, y, y * y, x * y]
    if cov is not None:
        z = cov[0]
        if kind == "ratio":
            assert y is not None
            w = cov[1]
            out += [x * z, x * w, y * z, y * w, z, z * z, w, w * w, z * w]
        else:
            out += [x * z, z, z * z]
    return out


def _unit_values(m: PlanMetric, selected: list[tuple[np.ndarray, str]], run: SyntheticRun, arms: int,
                 covariates: list[np.ndarray] | None, wait_us: int | None) -> _UnitValues:
    """What a capped metric, or one whose units in progress are left out, needs at every look."""
    sides = []
    for mask, measure in selected:
        idx = np.flatnonzero(mask)  # time order
        sides.append((run.event_ts[idx], run.event_unit[idx],
                      run.event_value[idx] if measure == "value" else np.ones(len(idx))))
    complete = None
    if m.cap is None:  # every unit's value is complete once it counts: running sums over units
        totals = [np.bincount(unit, weights=inc, minlength=len(run.arm)) for _, unit, inc in sides]
        x = (totals[0] > 0).astype(np.float64) if m.kind == "proportion" else totals[0]
        columns = _unit_columns(m.kind, x, totals[1] if m.kind == "ratio" else None, covariates)
        complete = []
        for a in range(arms):
            mine = np.flatnonzero(run.arm == a)  # exposure order
            table = np.zeros((len(columns), len(mine) + 1))
            for c, column in enumerate(columns):
                np.cumsum(column[mine], out=table[c, 1:])
            complete.append(table)
    return _UnitValues(wait_us, m.cap, sides, covariates, complete)


def linear_quantile(values: np.ndarray, q: float) -> float | None:
    """The ``q`` quantile by linear interpolation between order statistics, as the reduction's SQL writes it
    (numpy's default method; None for no values)."""
    k = len(values)
    if k == 0:
        return None
    h = float(k - 1) * float(q)
    lo = math.floor(h)
    part = np.partition(np.asarray(values, dtype=np.float64), [lo, min(lo + 1, k - 1)])
    if lo + 1 >= k:
        return float(part[lo])
    return float(part[lo] + (h - lo) * (part[lo + 1] - part[lo]))


def _units_at(me: _MetricEvents, uv: _UnitValues, run: SyntheticRun, arms: int,
              cut: int) -> tuple[np.ndarray, np.ndarray, float | None]:
    """A capped or waiting metric's units per arm, its sums (the layout of :func:`_unit_columns`) and its cap."""
    bound = cut - uv.wait_us if uv.wait_us is not None else cut
    if uv.complete is not None:
        mine = [run.exposure_ts[run.arm == a] for a in range(arms)]
        idx = [int(np.searchsorted(t, bound, side="right")) for t in mine]
        return np.asarray(idx, dtype=np.float64), np.array([c[:, k] for c, k in zip(uv.complete, idx)]).T, None
    k = int(np.searchsorted(run.exposure_ts, bound, side="right"))  # the units counted: a prefix
    values = []
    for ts, unit, inc in uv.sides:
        j = int(np.searchsorted(ts, cut, side="right"))
        values.append(np.bincount(unit[:j], weights=inc[:j], minlength=len(run.arm))[:k])
    assert uv.cap is not None
    cap = uv.cap.value if uv.cap.quantile is None else linear_quantile(values[0], uv.cap.quantile)
    x = values[0] if cap is None else np.minimum(values[0], cap)
    cov = None
    if uv.covariates is not None:
        z = uv.covariates[0][:k]
        cov = [z if cap is None else np.minimum(z, cap)] + [c[:k] for c in uv.covariates[1:]]
    columns = _unit_columns(me.metric.kind, x, values[1] if len(values) > 1 else None, cov)
    arm = run.arm[:k]
    sums = np.array([np.bincount(arm, weights=c, minlength=arms) for c in columns])
    return np.bincount(arm, minlength=arms).astype(np.float64), sums, cap


def _reduce_at(p: _Prepared, run: SyntheticRun, cut: int) -> Reduction:
    k_exp = int(np.searchsorted(run.exposure_ts, cut, side="right"))
    units = np.bincount(run.arm[:k_exp], minlength=p.arms).astype(np.int64)
    k_ev = int(np.searchsorted(run.event_ts, cut, side="right"))
    out: dict[str, Moments] = {}
    caps: dict[str, float | None] = {}
    in_progress: dict[str, int] = {}
    for me in p.metrics:
        kind = me.metric.kind
        base = 1 if kind == "proportion" else 2 if kind == "mean" else 5
        n = units.astype(np.float64)
        pre = None
        if me.units is not None:
            n, sums, cap = _units_at(me, me.units, run, p.arms, cut)
            if me.units.cap is not None:
                caps[me.metric.id] = cap
            if me.units.wait_us is not None:
                in_progress[me.metric.id] = int(units.sum() - n.sum())
            if me.units.covariates is not None:
                terms = base + (4 if kind == "ratio" else 1)  # then the CUPED cross terms, then the pre-period's
                sums, pre = sums[:terms], sums[terms:]
        else:
            sums = np.array([c[:, int(np.searchsorted(t, cut, side="right"))]
                             for t, c in zip(me.ts, me.cumulative)]).T
            if me.pre_ts is not None and me.pre_cumulative is not None:
                pre = np.array([c[:, int(np.searchsorted(t, cut, side="right"))]
                                for t, c in zip(me.pre_ts, me.pre_cumulative)]).T
        moments = Moments.of(n, sums[0], sums[0]) if kind == "proportion" else Moments.of(n, *sums[:base])
        if pre is not None:
            cross = sums[base:]
            if kind == "ratio":
                moments = moments.with_covariate(
                    pre_sum=pre[0], pre_sum_sq=pre[1], pre_cross=cross[0], pre_den_sum=pre[2],
                    pre_den_sum_sq=pre[3], pre_num_den=pre[4], pre_cross_den=cross[1], pre_den_cross=cross[2],
                    pre_den_cross_den=cross[3])
            else:
                moments = moments.with_covariate(pre_sum=pre[0], pre_sum_sq=pre[1], pre_cross=cross[0])
        out[me.metric.id] = moments
    excluded = {k: 0 for k in EXCLUDED_KEYS}
    early = p.early_first[:int(np.searchsorted(p.early_ts, cut, side="right"))]
    excluded["events_of_unexposed_units"] = int(np.count_nonzero(early > cut))
    excluded["events_before_exposure"] = int(len(early) - excluded["events_of_unexposed_units"])
    excluded["events_outside_window"] = int(p.outside_cum[k_ev])
    ignored = {k: 0 for k in IGNORED_KEYS}
    ignored["exposures_after_as_of"] = int(len(run.exposure_ts) - k_exp)
    ignored["events_after_as_of"] = int(p.named_cum[-1] - p.named_cum[k_ev])
    first = _iso(run.exposure_ts[0]) if k_exp else None
    last = _iso(run.exposure_ts[k_exp - 1]) if k_exp else None
    return Reduction(out, units, excluded, "", ignored, _iso(cut), first, last, caps, in_progress)


# ================================================================== files


def write_files(run: SyntheticRun, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write the run's exposures and events as Parquet files that ``reduce()`` reads.

    ``exposures.parquet``: the unit id column (named as the plan's unit),
    ``variant``, ``timestamp`` (TIMESTAMP, UTC); ``events.parquet``: the unit id,
    ``event``, ``value`` (DOUBLE), ``timestamp``. Each file is written under a
    temporary name and then renamed, so a reader never sees half a file.
    Returns the two paths.
    """
    import duckdb

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    integer_ids = run.ids.dtype.kind == "f"
    ids = run.ids.astype(np.int64) if integer_ids else run.ids
    exposures = {"uid": ids, "arm": run.arm, "ts": run.exposure_ts.astype("datetime64[us]")}
    events = {"uid": ids[run.event_unit], "code": run.event_code, "value": run.event_value,
              "ts": run.event_ts.astype("datetime64[us]")}
    unit = _ident(run.unit)
    variant_list = _sql_list(run.variants)
    event_list = _sql_list(run.event_names)
    paths = (folder / "exposures.parquet", folder / "events.parquet")
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.register("exposures_np", exposures)
        con.register("events_np", events)
        queries = (
            f"SELECT uid AS {unit}, list_extract({variant_list}, arm + 1) AS variant, ts AS timestamp "
            "FROM exposures_np",
            f"SELECT uid AS {unit}, list_extract({event_list}, code + 1) AS event, value, ts AS timestamp "
            "FROM events_np",
        )
        for path, query in zip(paths, queries):
            copy_atomic(con, query, path, "FORMAT parquet")
    finally:
        con.close()
    return paths


def _sql_list(values: tuple[str, ...]) -> str:
    return "CAST([" + ", ".join(_literal(v) for v in values) + "] AS VARCHAR[])"
