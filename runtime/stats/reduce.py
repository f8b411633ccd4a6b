"""From raw exposures and events to per-arm :class:`~expc.runtime.stats.moments.Moments`, on any engine.

:func:`reduce` runs the reduction's one query
(:func:`~expc.runtime.stats.reduction_sql.reduction_sql`, written once and
emitted in each engine's dialect by sqlglot) on an engine
(:mod:`expc.runtime.engines`: the embedded DuckDB by default, or Spark, or a
warehouse) over the exposures and events wherever they are (files, tables or
queries: a :class:`~expc.compiler.model.DataSource`), and turns the one row
per arm that comes back into moments. Only those sums and counts leave the
engine. The query run is returned in :attr:`Reduction.sql`.

Inputs
======

* exposures: the unit id (the plan's ``assignment.unit`` column, or
  ``unit_id``), ``variant`` and ``timestamp``;
* events: the unit id, ``event``, ``timestamp`` and, when a metric sums
  values (a mean, or a ratio whose numerator or denominator has
  ``measure: value``), ``value``.

Timestamps are ISO 8601 text (a date, or a date and time, optionally with
``Z`` or an offset, which are converted to UTC; without one they are taken as
UTC) or native Parquet/JSON dates and timestamps. ``as_of`` is written the
same way.

Semantics
=========

1. An exposure counts when it has an id, a variant and a timestamp, and is at
   or before ``as_of``. Exposures naming a variant the plan does not have are
   excluded (``unknown_variant_exposures``); the unit's other exposures still
   count. A unit whose counted exposures name two or more variants is excluded
   (``units_in_several_variants``, counted once per unit), with its events.
   Otherwise the unit's first exposure time starts its windows.
2. Only events named by some metric are read; others are ignored (not counted).
   An event counts for a metric from the unit's first exposure (inclusive) to
   first exposure + the metric's window (inclusive); a metric without a window
   runs to ``as_of`` (or the end of the data).
3. Per metric and arm: ``n`` = exposed units (see 5); proportion: x = 1 when the unit
   has at least one event in the window; mean: x = the sum of the values of
   its events in the window (0 for none); ratio: x and y are the numerator and
   denominator, each the sum of values or the count of events (``measure``).
4. CUPED (a metric whose plan entry has ``cuped: true``, or ``analysis.cuped``
   when the entry lacks the key): the covariate z is the same per-unit value
   computed from the unit's events in [first exposure - ``analysis.cuped_lookback``
   (seconds, default 14 days), first exposure), w likewise for a ratio's
   denominator; the moments get ``Σz``, ``Σz²``, ``Σxz`` (ratios also ``Σw``,
   ``Σw²``, ``Σzw``, ``Σxw``, ``Σyz``, ``Σyw``), see :mod:`.cuped`. These events
   stay excluded from the outcome (``events_before_exposure``).
5. Windows in progress (``analysis.in_progress: exclude``, the default): a
   metric with a window counts only the units whose window has ended by the
   cut-off, ``first exposure + window <= cut-off``, so a 7-day rate is never
   diluted by units that have had a day; the others are left out of that
   metric's ``n`` and sums (counted per metric in :attr:`Reduction.in_progress`)
   until it ends. The cut-off is ``as_of``; without one it is the data's end,
   the latest timestamp read (an exposure, or an event of the metrics' events,
   whatever else is wrong with the row). Metrics without a window, and every
   metric with ``in_progress: include``, count every exposed unit with the
   events so far. So per-metric ``n`` may differ between metrics and from
   :attr:`Reduction.units` (the exposed units, which the SRM check uses).
6. Caps (a metric's ``cap``, see :mod:`.reduction_sql`): a mean's x, or a
   ratio's numerator x, becomes ``min(x, cap)`` for every unit the metric
   counts (units without events are 0 and are capped too when the cap is
   negative); with CUPED the covariate z gets the same cap. ``cap: {value}`` is
   that value; ``cap: {quantile: q}`` is the ``q`` quantile of the per-unit x of
   the units the metric counts at this cut-off, all arms pooled (so the cap is
   the same for every arm and does not depend on the treatment's effect more
   than through the pooled distribution), by linear interpolation between order
   statistics (numpy's default). The cap used is in :attr:`Reduction.caps`.

Exclusions, each counted in :attr:`Reduction.excluded` (one count per row,
in this order of precedence, except the unit count):

* ``bad_rows``: exposure rows with a null/empty id, variant or timestamp, or a
  timestamp that does not parse; event rows (of metric events, or with a null
  event name) with a null/empty id or a bad timestamp, and rows of events
  whose value is summed by some metric but is missing, not a number, NaN or
  infinite (such a row is excluded from every metric, including proportions
  of the same event). Negative values are kept (refunds are real data).
* ``unknown_variant_exposures``: exposure rows whose variant the plan lacks.
* ``units_in_several_variants``: units (not rows), see 1.
* ``events_of_unexposed_units``: event rows whose unit has no counted exposure.
* ``events_before_exposure``: event rows before the unit's first exposure.
* ``events_outside_window``: event rows after the end of the window of every
  metric that uses the event.

Rows beyond ``as_of`` are not errors but the future: they are counted in
:attr:`Reduction.ignored` (``exposures_after_as_of``, ``events_after_as_of``),
with ``events_of_units_in_several_variants`` (the events of excluded units).

Errors (:class:`~expc.runtime.tables.DataError`, naming the file): an
unsupported extension, a missing, unreadable, zero-byte or corrupt file; an
exposures file with no rows (an events file may have none: no events yet);
missing columns (the message lists what is expected and what the file has);
a file none of whose timestamps parse (for events: none of the rows of the
metrics' events). Some unparseable timestamps are counted in ``bad_rows``.

Speed: on the embedded engine each file is read once, through a view (for
events, one that keeps only the metrics' events; for Parquet the filter is on
the raw column, so the reader skips other events' rows without decoding them),
and the query groups rows per unit and class before the per-arm sums; no
row-level table is materialised and nothing is sorted. 1,000,000 exposures and
10,000,000 events from Parquet take about 0.6 s on two cores
(``benchmarks/analyze.py``). Several cut-offs of a run (:func:`reducer` with
``repeated``) read the files once: the engine keeps the typed rows (DuckDB in
temporary tables, Spark in its cache).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from expc.compiler.model import OPTIONAL_COLUMNS, DataSource

from ..assignment_check import AssignmentCheck, check_assignment
from ..tables import DataError
from .moments import Moments
from .reduction_sql import (
    COUNT_COLUMNS,
    cap_columns,
    exposed_units_sql,
    in_progress_excluded,
    moment_columns,
    normalise_as_of,
    reduction_sql,
)
from .segments import OTHER, UNKNOWN, SegmentMoments, group_segments

if TYPE_CHECKING:
    from expc.compiler.plan import Plan, PlanMetric

    from ..engines.base import Engine

EXCLUDED_KEYS = (
    "events_before_exposure",
    "events_outside_window",
    "events_of_unexposed_units",
    "units_in_several_variants",
    "unknown_variant_exposures",
    "bad_rows",
    "exposures_of_other_experiments",
)
IGNORED_KEYS = ("exposures_after_as_of", "events_after_as_of", "events_of_units_in_several_variants")

MAX_SEGMENT_VALUES = 10_000
"""The most distinct values a segment attribute may have (they are pooled in Python, then compared)."""

Input = str | os.PathLike[str] | DataSource
"""Where a relation is: a path (a file or a folder of files), or a data source of the spec."""


@dataclass(frozen=True)
class Reduction:
    """The moments of every metric (arms in the plan's variant order), with what was excluded."""

    metrics: dict[str, Moments]
    units: np.ndarray  # exposed (counted) units per arm, int64
    excluded: dict[str, int]  # keys EXCLUDED_KEYS, always all present
    sql: str  # the query run, in the engine's dialect
    ignored: dict[str, int] = field(default_factory=dict)  # keys IGNORED_KEYS
    as_of: str | None = None  # the cut-off used, as an ISO timestamp (UTC), or None
    first_exposure: str | None = None  # the earliest counted first exposure (ISO, UTC), None without units
    last_exposure: str | None = None  # the latest counted first exposure (ISO, UTC)
    caps: dict[str, float | None] = field(default_factory=dict)
    """Per capped metric, the cap its per-unit values were limited to (None when it counted no unit)."""
    in_progress: dict[str, int] = field(default_factory=dict)
    """Per metric whose in-progress units are excluded (``analysis.in_progress: exclude`` and a window),
    the exposed units left out of it, all arms together: their window had not ended by the cut-off."""
    segments: tuple[SegmentMoments, ...] = ()
    """Per attribute of ``analysis.segments``, the same moments per segment (small segments pooled)."""
    assignment: AssignmentCheck | None = None
    """With the units file: the counted units' variants against expc's assignment (all the data)."""

    def elapsed_seconds(self) -> float | None:
        """Seconds from the first exposure to ``as_of`` (or to the latest first exposure); the plan's schedule
        numbers the look from it (``plan.schedule.look_at``)."""
        end = self.as_of or self.last_exposure
        if self.first_exposure is None or end is None:
            return None
        elapsed = datetime.fromisoformat(end) - datetime.fromisoformat(self.first_exposure)
        return max(0.0, elapsed.total_seconds())


def reduce(plan: Plan, exposures: Input, events: Input, as_of: str | None = None, *,
           engine: str | Engine = "duckdb", units: Input | None = None,
           assigned: tuple[np.ndarray, np.ndarray] | None = None) -> Reduction:
    """Reduce raw exposures and events to per-arm moments of each of the plan's metrics.

    See the module documentation for the inputs, the semantics and the exclusions;
    ``units``, a units file that segment attributes are read from, and ``assigned``, expc's assignment of
    its units to check the exposures against (see :func:`reducer`).
    Raises :class:`DataError` for bad data, ``ValueError`` for an ``as_of``
    that is not a timestamp and :class:`~expc.runtime.engines.EngineError`
    for an engine that cannot be used here.
    """
    with reducer(plan, exposures, events, engine=engine, units=units, assigned=assigned) as reduce_at:
        return reduce_at(as_of)


def as_source(where: Input) -> DataSource:
    """A path as a data source (a data source as it is)."""
    return where if isinstance(where, DataSource) else DataSource(path=str(Path(where)))


@contextmanager
def reducer(plan: Plan, exposures: Input, events: Input, *, engine: str | Engine = "duckdb",
            repeated: bool = False, units: Input | None = None,
            assigned: tuple[np.ndarray, np.ndarray] | None = None) -> Iterator[Callable[[str | None], Reduction]]:
    """``reduce_at(as_of)``: :func:`reduce` at one cut-off after another, on one engine.

    With ``repeated`` (a run's looks), the engine keeps the typed rows after
    the first cut-off, so the data is read once however many cut-offs follow.
    An engine given by name is opened here and closed at the end. With
    ``units`` (a units file: the unit id and attributes), the segment
    attributes of ``analysis.segments`` are read from it, joined by unit id
    (a unit it lacks is in the ``(unknown)`` segment), instead of from the
    exposures' columns. With ``assigned`` (the units file's ids and expc's
    arm for each, -1 for none), every reduction carries the
    :class:`~expc.runtime.assignment_check.AssignmentCheck` of the counted
    units (computed once, on all the data).
    """
    from ..engines import open_engine

    eng = open_engine(engine) if isinstance(engine, str) else engine
    sources = {"exposures": as_source(exposures), "events": as_source(events)}
    names = list(dict.fromkeys(e for m in plan.metrics for e, _ in m.uses()))
    value = any(measure == "value" for m in plan.metrics for _, measure in m.uses())
    relations: dict[str, tuple[Any, Any]] = {}
    checked: list[AssignmentCheck] = []
    by = list(plan.analysis.segments.by) if plan.analysis.segments is not None else []
    if units is not None and by:
        sources["units"] = as_source(units)

    def reduce_at(as_of: str | None = None) -> Reduction:
        cutoff = normalise_as_of(as_of)
        # Files first: an engine may lock itself down (no other file readable) before a spec's query is read.
        for what, source in sorted(sources.items(), key=lambda item: item[1].path is None):
            if what not in relations:
                relations[what] = eng.relation(what, source, unit=plan.assignment.unit, value=value, events=names,
                                               repeated=repeated, read=plan.data.dialect if plan.data else None,
                                               extra=by if what == _segment_source(sources) else ())
        standard = {what: relations[what][0] for what in ("exposures", "events")}
        sql = reduction_sql(plan, eng.dialect, as_of, comments=False, inputs=standard)
        columns, rows = eng.query(sql)
        row = dict(zip(columns, rows[0])) if rows else {}
        for what in ("exposures", "events"):
            _check_rows(eng, what, sources[what], relations[what][1], row)
        _check_values(plan, sources["events"], row)
        whole = _reduction(plan, columns, rows, sql, cutoff)
        if assigned is not None:
            if not checked:
                _, exposed = eng.query(exposed_units_sql(plan, eng.dialect, standard))
                pairs = np.asarray(exposed, dtype=object).reshape(-1, 2)
                checked.append(check_assignment(pairs[:, 0], pairs[:, 1].astype(np.int64), *assigned))
            whole = replace(whole, assignment=checked[0])
        if not by:
            return whole
        tables = []
        for attribute in by:
            inputs = {"exposures": _with_segment(relations["exposures"][0], attribute,
                                                 relations["units"][0] if "units" in relations else None),
                      "events": relations["events"][0]}
            columns, rows = eng.query(reduction_sql(plan, eng.dialect, as_of, comments=False, inputs=inputs,
                                                    segment=attribute))
            tables.append(_segments(plan, attribute, columns, rows))
        return replace(whole, segments=tuple(tables))

    try:
        yield reduce_at
    finally:
        if isinstance(engine, str):
            eng.close()


def _check_rows(engine: Engine, what: str, source: DataSource, handle: Any, row: dict[str, Any]) -> None:
    """Exposures without rows, and a relation none of whose timestamps can be read, are errors."""
    from ..engines.base import describe

    prefix = "exposure" if what == "exposures" else "event"
    rows, timed = int(row.get(f"{prefix}_rows") or 0), int(row.get(f"{prefix}_rows_timed") or 0)
    if rows == 0:
        if what == "exposures":
            kind = "file" if source.path is not None else ("table" if source.table is not None else "query")
            raise DataError(f"{describe(source, what)}: the {what} {kind} has no rows", source.path)
        return  # no events yet
    if timed == 0:
        raise DataError(engine.timestamp_problem(what, source, handle, rows), source.path)


def _check_values(plan: Plan, source: DataSource, row: dict[str, Any]) -> None:
    """Events whose values a metric sums, none of whose rows has a usable value, are an error naming the metrics."""
    from ..engines.base import describe

    rows, valueless = int(row.get("value_event_rows") or 0), int(row.get("value_event_rows_without_value") or 0)
    if rows == 0 or valueless < rows:
        return
    uses = [(m.id, event) for m in plan.metrics for event, measure in m.uses() if measure == "value"]
    events = ", ".join(f"`{e}`" for e in dict.fromkeys(e for _, e in uses))
    metrics = ", ".join(f"`{m}`" for m in dict.fromkeys(m for m, _ in uses))
    raise DataError(f"{describe(source, 'events')}: none of the {rows:,} rows of {events} has a usable `value` "
                    f"(a finite number), which {metrics} sum{'s' if len(set(m for m, _ in uses)) == 1 else ''} "
                    "(measure: value); log the values, or count the events with `measure: count`", source.path)


def _reduction(plan: Plan, columns: list[str], rows: list[tuple[Any, ...]], sql: str,
               cutoff: str | None) -> Reduction:
    """The query's one row per arm (in plan order) as moments and counts."""
    arms = len(plan.variants)
    at = {c: i for i, c in enumerate(columns)}
    table = np.array([[0.0 if v is None else float(v) for v in r] for r in
                      [[row[at[c]] for c in ["units"] + [c for c, _, _ in moment_columns(plan)]] for row in rows]],
                     dtype=np.float64).reshape(arms, -1)
    units = table[:, 0].astype(np.int64)
    by_metric = _sums_by_metric(plan, table)
    out = {m.id: _moments_of(m, by_metric[m.id]) for m in plan.metrics}
    in_progress = {m.id: int(units.sum() - by_metric[m.id]["n"].sum())
                   for m in plan.metrics if in_progress_excluded(plan, m)}
    first = rows[0]
    counts = {c: int(first[at[c]] or 0) for c in COUNT_COLUMNS}
    excluded = {k: counts[k] for k in EXCLUDED_KEYS}
    ignored = {k: counts[k] for k in IGNORED_KEYS}
    caps = {metric: None if first[at[c]] is None else float(first[at[c]]) for c, metric in cap_columns(plan)}
    return Reduction(out, units, excluded, sql, ignored, None if cutoff is None else cutoff.replace(" ", "T"),
                     _iso(first[at["first_exposure"]]), _iso(first[at["last_exposure"]]), caps, in_progress)


def _segment_source(sources: dict[str, DataSource]) -> str:
    """The relation the segment attributes are read from: the units file when there is one, else the exposures."""
    return "units" if "units" in sources else "exposures"


def _with_segment(exposures: Any, attribute: str, units: Any = None) -> Any:
    """The exposures' ``SELECT`` with the attribute as ``segment``: their column, or the units file's by unit id.

    A unit listed more than once in the units file takes its least value, so
    that a join never multiplies exposures.
    """
    from sqlglot import exp

    inner = exp.Subquery(this=exposures.copy(), alias=exp.TableAlias(this=exp.to_identifier("e")))
    standard = [exp.column(c, "e", quoted=True)
                for c in ("unit_id", "variant", "timestamp", *OPTIONAL_COLUMNS["exposures"])]
    if units is None:
        return exp.select(*standard, exp.alias_(exp.column(attribute, "e", quoted=True), "segment",
                                                quoted=True)).from_(inner)
    per_unit = (exp.select(exp.column("unit_id", quoted=True),
                           exp.alias_(exp.Min(this=exp.column(attribute, quoted=True)), "segment", quoted=True))
                .from_(exp.Subquery(this=units.copy(), alias=exp.TableAlias(this=exp.to_identifier("s"))))
                .group_by(exp.column("unit_id", quoted=True)))
    joined = exp.Subquery(this=per_unit, alias=exp.TableAlias(this=exp.to_identifier("u")))
    return (exp.select(*standard, exp.column("segment", "u", quoted=True)).from_(inner)
            .join(joined, on=exp.column("unit_id", "u", quoted=True).eq(exp.column("unit_id", "e", quoted=True)),
                  join_type="left"))


def _segments(plan: Plan, attribute: str, columns: list[str], rows: list[tuple[Any, ...]]) -> SegmentMoments:
    """One row per (segment, arm) with units as one table per segment group (small ones pooled, see
    :func:`.segments.group_segments`), arms in plan order; a pooled group's sums are the sums of its values'."""
    settings = plan.analysis.segments
    assert settings is not None
    if len(rows) > MAX_SEGMENT_VALUES * len(plan.variants):
        raise DataError(f"segment attribute `{attribute}` has more than {MAX_SEGMENT_VALUES:,} values in the "
                        "exposures; segment by an attribute with few values (a country, a plan), not an id")
    at = {c: i for i, c in enumerate(columns)}
    wanted = ["units"] + [c for c, _, _ in moment_columns(plan)]
    raw: dict[str, np.ndarray] = {}
    for row in rows:
        table = raw.setdefault(str(row[at["segment"]]), np.zeros((len(plan.variants), len(wanted))))
        table[int(row[at["arm"]])] = [0.0 if row[at[c]] is None else float(row[at[c]]) for c in wanted]
    values = sorted(raw)
    sizes = np.asarray([raw[v][:, 0].sum() for v in values])
    group_of = group_segments(np.asarray(values, dtype=object), sizes, min_units=settings.min_units,
                              top=settings.top)
    groups = sorted(set(group_of.values()), key=lambda g: (g in (OTHER, UNKNOWN), g))
    stacked = np.zeros((len(groups), len(plan.variants), len(wanted)))
    for value in values:
        stacked[groups.index(group_of[value])] += raw[value]
    by_metric = _sums_by_metric(plan, stacked)
    return SegmentMoments(attribute, groups, stacked[:, :, 0], {m.id: _moments_of(m, by_metric[m.id])
                                                                for m in plan.metrics})


def _sums_by_metric(plan: Plan, table: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """The columns of ``table`` (``units`` then :func:`moment_columns`, along the last axis) by metric and statistic."""
    by_metric: dict[str, dict[str, np.ndarray]] = {}
    for j, (_, metric, stat) in enumerate(moment_columns(plan), start=1):
        by_metric.setdefault(metric, {})[stat] = table[..., j]
    return by_metric


def _moments_of(metric: PlanMetric, sums: dict[str, np.ndarray]) -> Moments:
    """A metric's moments from its sums (and its CUPED covariate's, when there are any)."""
    moments = Moments.of(sums["n"], sums["sum"], sums["sum_sq"], *(
        [sums["den_sum"], sums["den_sum_sq"], sums["cross"]] if metric.kind == "ratio" else []))
    covariate = {k: v for k, v in sums.items() if k.startswith("pre_")}
    return moments.with_covariate(**covariate) if covariate else moments


def _iso(value: Any) -> str | None:
    """A timestamp from the engine (a datetime, or text) as ISO 8601 without a time zone (UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat()
    return datetime.fromisoformat(str(value)).replace(tzinfo=None).isoformat()
