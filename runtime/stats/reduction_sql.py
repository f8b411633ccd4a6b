"""The reduction of :mod:`.reduce` as one SQL query, emitted for each warehouse dialect with sqlglot.

:func:`reduction_sql` writes the statistics of the reduction (exposure
classification, first exposure, windows, CUPED pre-period covariates, ratio
parts, exclusion counts, the ``as_of`` cut-off) once, as one ``SELECT`` over
two relations with the standard columns:

* ``exposures``: ``unit_id``, ``variant``, ``timestamp``;
* ``events``: ``unit_id``, ``event``, ``timestamp`` and ``value`` (read only
  when some metric sums values),

and transpiles it with sqlglot to :data:`DIALECTS`. The query returns one row
per arm of the plan (in the plan's order) with the arm's exposed units, every
metric's units and sums (columns named by :func:`moment_columns`: a metric's
units leave out those whose window is still in progress, see
:func:`in_progress_excluded`), the cap of each capped metric
(:func:`cap_columns`) and, repeated on each row, the exclusion and ignored-row
counts of :mod:`.reduce` and the first and last first-exposure times. Only
those aggregates leave the warehouse.

A cap at a quantile needs every counted unit's value (zeros included), so a
capped plan joins the exposed units to their sums and ranks the values with
``ROW_NUMBER() OVER (ORDER BY x)`` and ``COUNT(*) OVER ()``: one sort of the
units per capped metric, in one partition on engines that distribute (Spark).
No exact percentile aggregate exists in every dialect (Trino and BigQuery only
approximate it as an aggregate), hence the window functions.

What stays outside: reading files into typed columns (trimming CSV text,
parsing text timestamps), which :mod:`.reduce` does with DuckDB's own
functions; here ids, variants and event names are cast to text with empty
text as NULL, timestamps are cast to the engine's timestamp without time zone
(taken as UTC) and ``value`` to a double, NULL unless finite.

This module imports neither numpy nor duckdb (``expc sql`` only reads a spec).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from expc.compiler.model import DIALECTS, OPTIONAL_COLUMNS, STANDARD_COLUMNS

if TYPE_CHECKING:
    from expc.compiler.model import DataSource
    from expc.compiler.plan import Plan, PlanMetric


# Codes of what a row is (as in reduce.py, without its three kinds of bad rows: here a row is bad or not).
_COUNTED, _BAD = 0, 1
_EXPOSURE_AFTER, _UNKNOWN_VARIANT, _OTHER_EXPERIMENT = 4, 5, 9
_EVENT_AFTER, _UNEXPOSED, _SEVERAL, _BEFORE, _OUTSIDE = 4, 5, 6, 7, 8

COUNT_COLUMNS = (
    "bad_rows",
    "unknown_variant_exposures",
    "units_in_several_variants",
    "events_of_unexposed_units",
    "events_before_exposure",
    "events_outside_window",
    "exposures_after_as_of",
    "events_after_as_of",
    "events_of_units_in_several_variants",
    "exposures_of_other_experiments",
)
ROW_COLUMNS = ("exposure_rows", "exposure_rows_timed", "event_rows", "event_rows_timed", "value_event_rows",
               "value_event_rows_without_value")
"""Rows read of each relation (events: of the metrics' events, or without a name) and those with a timestamp."""


def normalise_as_of(as_of: str | None) -> str | None:
    """``as_of`` (ISO 8601, with or without an offset) as ``YYYY-MM-DD HH:MM:SS[.ffffff]`` in UTC, or None.

    Raises ``ValueError`` for text that is not a timestamp.
    """
    if as_of is None:
        return None
    try:
        t = datetime.fromisoformat(str(as_of).strip())
    except ValueError:
        raise ValueError(f"as_of {as_of!r} is not a timestamp; write it as ISO 8601, "
                         "such as 2026-11-28T00:00:00Z") from None
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t.isoformat(sep=" ")


def moment_columns(plan: Plan) -> list[tuple[str, str, str]]:
    """``(column, metric id, statistic)`` of every metric's units and sums in the result, in order.

    Statistics are named after :class:`~expc.runtime.stats.moments.Moments`:
    ``n`` (the units the metric counts: the exposed units, less those whose
    window is still in progress, see :func:`in_progress_excluded`), ``sum``,
    ``sum_sq`` (and for ratios ``den_sum``, ``den_sum_sq``, ``cross``); with
    CUPED ``pre_sum``, ``pre_sum_sq``, ``pre_cross`` (ratios also
    ``pre_den_sum``, ``pre_den_sum_sq``, ``pre_num_den``, ``pre_cross_den``,
    ``pre_den_cross``, ``pre_den_cross_den``).
    """
    return [
        (column, m.id, stat) for i, m in enumerate(plan.metrics)
        for column, stat in [(f"m{i}_n", "n"), *((c, st) for c, st, _ in _moments(i, m))]]


def cap_columns(plan: Plan) -> list[tuple[str, str]]:
    """``(column, metric id)`` of the cap each capped metric used (NULL when it counts no unit)."""
    return [(f"m{i}_cap", m.id) for i, m in enumerate(plan.metrics) if m.cap is not None]


def in_progress_excluded(plan: Plan, metric: PlanMetric) -> bool:
    """True when units whose window of ``metric`` has not ended by the cut-off are left out of it."""
    return plan.analysis.in_progress == "exclude" and bool(metric.window_seconds)


def _moments(i: int, m: PlanMetric) -> list[tuple[str, str, str]]:
    """(column, statistic, SQL expression of the per-unit values, summed over units) of metric ``i``."""
    x, y, z, w = (f"{v}{i}" for v in "xyzw")
    out = [("sum", x), ("sum_sq", f"{x} * {x}")]
    ratio = m.kind == "ratio"
    if ratio:
        out += [("den_sum", y), ("den_sum_sq", f"{y} * {y}"), ("cross", f"{x} * {y}")]
    if m.cuped:
        out += [("pre_sum", z), ("pre_sum_sq", f"{z} * {z}"), ("pre_cross", f"{x} * {z}")]
        if ratio:
            out += [("pre_den_sum", w), ("pre_den_sum_sq", f"{w} * {w}"),
                    ("pre_num_den", f"{z} * {w}"), ("pre_cross_den", f"{x} * {w}"),
                    ("pre_den_cross", f"{y} * {z}"), ("pre_den_cross_den", f"{y} * {w}")]
    return [(f"m{i}_{stat}", stat, expr) for stat, expr in out]


def _double(value: float) -> str:
    """A finite number as a DOUBLE literal (``repr`` round-trips, so every engine reads the same double)."""
    return f"CAST({float(value)!r} AS DOUBLE)"


def _lit(text: str) -> str:
    """A string literal in the source (DuckDB) dialect; sqlglot re-escapes it for each target."""
    return exp.Literal.string(text).sql(dialect="duckdb")


def _in_list(values: list[str]) -> str:
    return "(" + ", ".join(_lit(v) for v in values) + ")" if values else "(NULL)"


def _interval(seconds: int) -> str:
    return f"INTERVAL {int(seconds)} SECOND"


def _source(plan: Plan, cutoff: str | None, segment: bool = False) -> str:
    """The reduction in DuckDB's dialect (the source that sqlglot transpiles); per segment and arm with ``segment``."""
    variants = [v.id for v in plan.variants]
    metrics = plan.metrics
    names: list[str] = []
    value_events: list[str] = []
    widest: dict[str, int | None] = {}
    for m in metrics:
        for event, measure in m.uses():
            if event not in names:
                names.append(event)
            if measure == "value" and event not in value_events:
                value_events.append(event)
            wsec = m.window_seconds
            if event in widest and (widest[event] is None or wsec is None):
                widest[event] = None
            else:
                prev = widest.get(event)
                widest[event] = wsec if event not in widest else max(prev or 0, wsec or 0)
    after = (lambda t: f"{t}.ts > CAST({_lit(cutoff)} AS TIMESTAMP)") if cutoff else (lambda t: "1 = 0")
    needs_value = (f"(ev.event IN {_in_list(value_events)} AND ev.value IS NULL)" if value_events else "1 = 0")

    def within(window: int | None, start: str) -> str:
        return "1 = 1" if not window else f"ev.ts <= {start} + {_interval(window)}"

    outside = " ".join(f"WHEN ev.event = {_lit(e)} THEN CASE WHEN {within(w, 'x.first_ts')} THEN 0 ELSE 1 END"
                       for e, w in widest.items())
    outside_case = f"CASE {outside} ELSE 0 END" if widest else "0"
    with_cuped = any(m.cuped for m in metrics)
    counted = f"ev.what = {_COUNTED} AND " if with_cuped else ""
    pre = f"ev.what = {_BEFORE} AND ev.ts >= ev.first_ts - {_interval(plan.analysis.cuped_lookback)}"

    def narrower(m: PlanMetric, event: str) -> str:
        wsec = m.window_seconds
        wide = widest[event]
        return f" AND {within(wsec, 'ev.first_ts')}" if wsec is not None and (wide is None or wsec < wide) else ""

    per_unit: list[str] = []
    for i, m in enumerate(metrics):
        if m.kind in ("proportion", "mean"):
            event = m.single_event()
            e = _lit(event)
            if m.kind == "proportion":
                per_unit.append(f"MAX(CASE WHEN {counted}ev.event = {e}{narrower(m, event)} THEN 1 ELSE 0 END) AS x{i}")
                if m.cuped:
                    per_unit.append(f"MAX(CASE WHEN ev.event = {e} AND {pre} THEN 1 ELSE 0 END) AS z{i}")
            else:
                per_unit.append(f"SUM(CASE WHEN {counted}ev.event = {e}{narrower(m, event)} "
                                f"THEN ev.value ELSE 0 END) AS x{i}")
                if m.cuped:
                    per_unit.append(f"SUM(CASE WHEN ev.event = {e} AND {pre} THEN ev.value ELSE 0 END) AS z{i}")
        else:
            for d, name, pre_name in zip(m.ratio_measures(), ("x", "y"), ("z", "w")):
                e = _lit(d.event)
                what = "ev.value" if d.measure == "value" else "1"
                per_unit.append(f"SUM(CASE WHEN {counted}ev.event = {e}{narrower(m, d.event)} "
                                f"THEN {what} ELSE 0 END) AS {name}{i}")
                if m.cuped:
                    per_unit.append(f"SUM(CASE WHEN ev.event = {e} AND {pre} THEN {what} ELSE 0 END) AS {pre_name}{i}")
    group = f"CASE WHEN ev.what = {_BEFORE} THEN {_COUNTED} ELSE ev.what END" if with_cuped else "ev.what"
    before_rows = (f"SUM(CASE WHEN ev.what = {_BEFORE} THEN 1 ELSE 0 END)" if with_cuped else "0")
    columns = "".join(f", {c}" for c in per_unit)
    # rows (with a time) of the events some metric sums the values of, and those without a usable value
    of_values = f"ev.event IN {_in_list(value_events)} AND ev.ts IS NOT NULL"
    value_rows = f"SUM(CASE WHEN {of_values} THEN 1 ELSE 0 END)" if value_events else "0"
    valueless_rows = (f"SUM(CASE WHEN {of_values} AND ev.value IS NULL THEN 1 ELSE 0 END)" if value_events
                      else "0")
    unit_columns = [c.rsplit(" AS ", 1)[1] for c in per_unit]
    extra, moment_cte, moment_select, final_joins = _moment_ctes(plan, cutoff, unit_columns, segment)
    seg = ", segment" if segment else ""
    seg_min, seg_e, seg_ev, seg_x = ((", MIN(segment) AS segment", ", e.segment AS segment", ", ev.segment",
                                      ", x.segment AS segment") if segment else ("", "", "", ""))
    seg_u, seg_order = ("u.segment AS segment, ", "u.segment, ") if segment else ("", "")
    # a unit's segment: the value of its exposures (the least, should they differ); none is `(unknown)`
    seg_row = (",\n         COALESCE(NULLIF(CAST(segment AS VARCHAR), ''), '(unknown)') AS segment"
               if segment else "")
    # x - x = 0 only for a finite x (NaN and infinities give NaN, which equals nothing, 0 included, everywhere)
    value = ("CASE WHEN CAST(value AS DOUBLE) - CAST(value AS DOUBLE) = 0 THEN CAST(value AS DOUBLE) END"
             if value_events else "CAST(NULL AS DOUBLE)")
    arms = " UNION ALL ".join(f"SELECT {_lit(v)} AS variant, {i} AS arm" for i, v in enumerate(variants))
    # GrowthBook logs the variation's index (0 for the first variant); any other text is taken as a variant id
    variation = "NULLIF(CAST(variation_id AS VARCHAR), '')"
    by_index = " ".join(f"WHEN {_lit(str(i))} THEN {_lit(v)}" for i, v in enumerate(variants))

    def count(code: int, rows: str = "row_count") -> str:
        return f"COALESCE(SUM(CASE WHEN what = {code} THEN {rows} ELSE 0 END), 0)"

    return f"""
WITH variants AS ({arms}),
exposure_rows AS (
  SELECT NULLIF(CAST(unit_id AS VARCHAR), '') AS unit_id,
         COALESCE(NULLIF(CAST(variant AS VARCHAR), ''), CASE {variation} {by_index} ELSE {variation} END) AS variant,
         NULLIF(CAST(experiment_id AS VARCHAR), '') AS experiment,
         CAST("timestamp" AS TIMESTAMP) AS ts{seg_row}
  FROM expc_exposures
),
exposure_groups AS (
  SELECT unit_id, what, COUNT(*) AS row_count, COUNT(ts) AS timed_rows, MIN(arm) AS arm, MIN(ts) AS first_ts,
         MAX(ts) AS last_ts, CASE WHEN MIN(arm) < MAX(arm) THEN 1 ELSE 0 END AS several{seg_min}
  FROM (
    SELECT CASE
             WHEN e.experiment IS NOT NULL AND e.experiment <> {_lit(plan.experiment.id)} THEN {_OTHER_EXPERIMENT}
             WHEN e.ts IS NULL OR e.unit_id IS NULL OR e.variant IS NULL THEN {_BAD}
             WHEN {after('e')} THEN {_EXPOSURE_AFTER}
             WHEN v.arm IS NULL THEN {_UNKNOWN_VARIANT}
             ELSE {_COUNTED}
           END AS what, e.unit_id AS unit_id, v.arm AS arm, e.ts AS ts{seg_e}
    FROM exposure_rows e LEFT JOIN variants v ON v.variant = e.variant
  ) classified
  GROUP BY unit_id, what
),
exposed AS (SELECT unit_id, arm, first_ts, several{seg} FROM exposure_groups WHERE what = {_COUNTED}),
event_rows AS (
  SELECT NULLIF(CAST(unit_id AS VARCHAR), '') AS unit_id, NULLIF(CAST(event AS VARCHAR), '') AS event,
         {value} AS value, CAST("timestamp" AS TIMESTAMP) AS ts
  FROM expc_events
  WHERE event IN {_in_list(names)} OR event IS NULL OR CAST(event AS VARCHAR) = ''
),
unit_sums AS (
  SELECT ev.unit_id, ev.arm{seg_ev}, {group} AS what, COUNT(*) AS row_count, COUNT(ev.ts) AS timed_rows,
         MIN(ev.first_ts) AS first_ts, MAX(ev.ts) AS last_ts, {before_rows} AS before_rows,
         {value_rows} AS value_rows, {valueless_rows} AS valueless_rows{columns}
  FROM (
    SELECT CASE
             WHEN ev.ts IS NULL OR ev.unit_id IS NULL OR ev.event IS NULL OR {needs_value} THEN {_BAD}
             WHEN {after('ev')} THEN {_EVENT_AFTER}
             WHEN x.unit_id IS NULL THEN {_UNEXPOSED}
             WHEN x.several = 1 THEN {_SEVERAL}
             WHEN ev.ts < x.first_ts THEN {_BEFORE}
             WHEN {outside_case} = 1 THEN {_OUTSIDE}
             ELSE {_COUNTED}
           END AS what, x.unit_id AS unit_id, x.arm AS arm, x.first_ts AS first_ts, ev.event AS event,
           ev.value AS value, ev.ts AS ts{seg_x}
    FROM event_rows ev LEFT JOIN exposed x ON x.unit_id = ev.unit_id
  ) ev
  GROUP BY ev.unit_id, ev.arm{seg_ev}, {group}
){extra}{moment_cte},
exposure_counts AS (
  SELECT {count(_BAD)} AS bad_exposure_rows,
         {count(_UNKNOWN_VARIANT)} AS unknown_variant_exposures,
         {count(_EXPOSURE_AFTER)} AS exposures_after_as_of,
         {count(_OTHER_EXPERIMENT)} AS exposures_of_other_experiments,
         COALESCE(SUM(row_count), 0) AS exposure_rows, COALESCE(SUM(timed_rows), 0) AS exposure_rows_timed
  FROM exposure_groups
),
event_counts AS (
  SELECT {count(_BAD)} AS bad_event_rows,
         {count(_UNEXPOSED)} AS events_of_unexposed_units,
         {count(_SEVERAL)} AS events_of_units_in_several_variants,
         COALESCE(SUM(before_rows), 0) + {count(_BEFORE)} AS events_before_exposure,
         {count(_OUTSIDE)} AS events_outside_window,
         {count(_EVENT_AFTER)} AS events_after_as_of,
         COALESCE(SUM(row_count), 0) AS event_rows, COALESCE(SUM(timed_rows), 0) AS event_rows_timed,
         COALESCE(SUM(value_rows), 0) AS value_event_rows,
         COALESCE(SUM(valueless_rows), 0) AS value_event_rows_without_value
  FROM unit_sums
),
exposed_summary AS (
  SELECT COALESCE(SUM(several), 0) AS units_in_several_variants, MIN(first_ts) AS first_exposure,
         MAX(first_ts) AS last_exposure
  FROM exposed
)
SELECT {seg_u}v.arm AS arm, v.variant AS variant, COALESCE(u.units, 0) AS units{moment_select},
       c.bad_exposure_rows + d.bad_event_rows AS bad_rows,
       c.unknown_variant_exposures AS unknown_variant_exposures,
       s.units_in_several_variants AS units_in_several_variants,
       d.events_of_unexposed_units AS events_of_unexposed_units,
       d.events_before_exposure AS events_before_exposure,
       d.events_outside_window AS events_outside_window,
       c.exposures_after_as_of AS exposures_after_as_of,
       d.events_after_as_of AS events_after_as_of,
       d.events_of_units_in_several_variants AS events_of_units_in_several_variants,
       c.exposures_of_other_experiments AS exposures_of_other_experiments,
       c.exposure_rows AS exposure_rows, c.exposure_rows_timed AS exposure_rows_timed,
       d.event_rows AS event_rows, d.event_rows_timed AS event_rows_timed,
       d.value_event_rows AS value_event_rows,
       d.value_event_rows_without_value AS value_event_rows_without_value,
       s.first_exposure AS first_exposure, s.last_exposure AS last_exposure
FROM {_final_from(segment)}{final_joins}
CROSS JOIN exposure_counts c CROSS JOIN event_counts d CROSS JOIN exposed_summary s
ORDER BY {seg_order}v.arm"""


def _final_from(segment: bool) -> str:
    """Overall: every variant (an arm without units gets zeros); per segment: the (segment, arm) pairs with units."""
    if segment:
        return ("units u JOIN variants v ON v.arm = u.arm "
                "LEFT JOIN moments m ON m.arm = u.arm AND m.segment = u.segment")
    return "variants v LEFT JOIN units u ON u.arm = v.arm LEFT JOIN moments m ON m.arm = v.arm"


def _moment_ctes(plan: Plan, cutoff: str | None, unit_columns: list[str],
                 segment: bool = False) -> tuple[str, str, str, str]:
    """The CTEs from the per-unit values (``unit_sums``) to the per-arm ``units`` and ``moments``.

    Returns the CTEs that come first (the data's end, the capped per-unit
    values), the ``units`` and ``moments`` CTEs, the final ``SELECT``'s columns
    and its extra joins. A metric whose window is in progress at the cut-off
    (:func:`in_progress_excluded`) counts only the units with ``first exposure
    + window <= cut-off``: ``as_of``, or without it the data's end (the latest
    timestamp read). A capped metric's per-unit value (and its CUPED covariate)
    is ``min(x, cap)`` over every unit it counts, zeros included: the cap is a
    value, or the quantile of those units' values (all arms pooled), by linear
    interpolation between order statistics (numpy's default and
    ``PERCENTILE_CONT``), written with ``ROW_NUMBER`` and ``COUNT`` windows
    because not every dialect has an exact percentile aggregate.
    """
    metrics = plan.metrics
    seg, seg_x = (", segment", ", x.segment AS segment") if segment else ("", "")
    excluding = {i for i, m in enumerate(metrics) if in_progress_excluded(plan, m)}
    end = f"CAST({_lit(cutoff)} AS TIMESTAMP)" if cutoff else "de.end_ts"
    with_end = " CROSS JOIN data_end de" if excluding and not cutoff else ""

    def complete(i: int) -> str | None:
        wsec = metrics[i].window_seconds
        return f"first_ts + {_interval(wsec or 0)} <= {end}" if i in excluding else None

    extra = []
    if with_end:
        extra.append("data_end AS (SELECT MAX(t) AS end_ts FROM (SELECT MAX(last_ts) AS t FROM exposure_groups "
                     "UNION ALL SELECT MAX(last_ts) AS t FROM unit_sums) ends)")
    capped = [i for i, m in enumerate(metrics) if m.cap is not None]
    cap_of: dict[int, str] = {}
    source = f"unit_sums{with_end} WHERE unit_id IS NOT NULL AND what = {_COUNTED}"
    joins = ""
    if capped:
        values = ", ".join(f"COALESCE(s.{c}, 0) AS {c}" for c in unit_columns)
        extra.append(f"unit_values AS (SELECT x.arm AS arm{seg_x}, x.first_ts AS first_ts, {values} FROM exposed x "
                     f"LEFT JOIN (SELECT * FROM unit_sums WHERE what = {_COUNTED}) s ON s.unit_id = x.unit_id "
                     "WHERE x.several = 0)")
        quantiles = []
        for i in capped:
            cap = metrics[i].cap
            assert cap is not None
            if cap.quantile is None:
                cap_of[i] = _double(cap.value or 0.0)
                continue
            cond = complete(i)
            where = f"unit_values{with_end} WHERE {cond}" if cond else "unit_values"
            extra.append(
                f"cap{i}_ranked AS (SELECT x{i} AS v, ROW_NUMBER() OVER (ORDER BY x{i}) AS rn, "
                f"CAST(COUNT(*) OVER () - 1 AS DOUBLE) * {_double(cap.quantile)} AS h FROM {where})")
            extra.append(
                f"cap{i} AS (SELECT CASE WHEN MAX(hi) IS NULL THEN MAX(lo) ELSE MAX(lo) + MAX(frac) * "
                f"(MAX(hi) - MAX(lo)) END AS cap FROM (SELECT CASE WHEN rn = FLOOR(h) + 1 THEN v END AS lo, "
                f"CASE WHEN rn = FLOOR(h) + 2 THEN v END AS hi, h - FLOOR(h) AS frac FROM cap{i}_ranked) r)")
            quantiles.append(i)
            cap_of[i] = f"k.cap{i}"
        if quantiles:
            extra.append("caps AS (SELECT " + ", ".join(f"c{i}.cap AS cap{i}" for i in quantiles) + " FROM "
                         + " CROSS JOIN ".join(f"cap{i} c{i}" for i in quantiles) + ")")
            joins = " CROSS JOIN caps k"

        def value(c: str) -> str:
            i = int(c[1:])
            if i in cap_of and c[0] in "xz":  # a mean's value or a ratio's numerator, and its covariate
                return f"CASE WHEN {c} > {cap_of[i]} THEN {cap_of[i]} ELSE {c} END AS {c}"
            return c
        extra.append(f"capped AS (SELECT arm{seg}, first_ts, {', '.join(value(c) for c in unit_columns)} "
                     f"FROM unit_values{joins})")
        source = f"capped{with_end}"
    sums = []
    for i, m in enumerate(metrics):
        cond = complete(i)
        for col, _, expr in _moments(i, m):
            sums.append(f"SUM(CASE WHEN {cond} THEN {expr} ELSE 0 END) AS {col}" if cond else f"SUM({expr}) AS {col}")
    counts = "".join(f", SUM(CASE WHEN {complete(i)} THEN 1 ELSE 0 END) AS n{i}" for i in sorted(excluding))
    units = (f"units AS (SELECT arm{seg}, COUNT(*) AS units{counts} FROM exposed{with_end} WHERE several = 0 "
             f"GROUP BY arm{seg})")
    moments = f"moments AS (SELECT arm{seg}, {', '.join(sums)} FROM {source} GROUP BY arm{seg})"
    select = []
    for i, m in enumerate(metrics):
        select.append(f"COALESCE(u.n{i}, 0) AS m{i}_n" if i in excluding else f"COALESCE(u.units, 0) AS m{i}_n")
        select += [f"COALESCE(m.{col}, 0) AS {col}" for col, _, _ in _moments(i, m)]
        if i in cap_of:
            select.append(f"{cap_of[i]} AS m{i}_cap")
    return ("".join(f",\n{c}" for c in extra), f",\n{units},\n{moments}", "".join(f", {c}" for c in select),
            joins)


def _comment_safe(text: str) -> str:
    """Text for a ``--`` comment line: printable ASCII only, so no newline or terminal escape gets through."""
    return "".join(ch if " " <= ch <= "~" else f"\\u{ord(ch):04x}" for ch in text)


def _header(plan: Plan, dialect: str, cutoff: str | None) -> str:
    lines = [
        f"expc reduction of experiment {plan.experiment.id!r} for {dialect} (generated by `expc sql`; do not edit)",
        "",
        *_reads(plan),
        "Timestamps are read as timestamps without time zone, in UTC. If `timestamp` has a time zone,",
        "convert it to UTC in the view: some engines' casts keep the local wall-clock time instead.",
        f"Cut-off (as_of): {cutoff + ' UTC' if cutoff else 'none (all the data)'}.",
        "",
        "Computes, per arm: the exposed units (first exposure, units seen in several arms excluded),",
        "and per metric the sums over units of x, x^2 (ratios: y, y^2, x*y; CUPED: the pre-period",
        "covariates z, w and their products), each unit's events counted from its first exposure to",
        "the end of the metric's window; and the exclusion counts (bad rows, unknown variants, units",
        "in several arms, events of unexposed units, before exposure, outside windows, after as_of).",
        *_semantics(plan),
        "",
        "What leaves the warehouse: one row per arm of these sums and counts. No unit-level row.",
        "",
        "`what` is a row's class: 0 counted, 1 bad row (no id, variant or event name, no timestamp, or no",
        "value where a metric sums it), 4 after as_of, 5 unknown variant (an exposure) or unit never exposed",
        "(an event), 6 unit in several arms, 7 before exposure, 8 outside every window of its event.",
        "",
        "Arms (arm = index): " + ", ".join(f"{i} = {v.id!r}" for i, v in enumerate(plan.variants)),
        "Metrics (column prefix): " + ", ".join(f"m{i} = {m.id!r} ({m.kind})" for i, m in enumerate(plan.metrics)),
    ]
    return "\n".join(("-- " + _comment_safe(line)).rstrip() for line in lines)


def _semantics(plan: Plan) -> list[str]:
    """What the header says about windows in progress and caps, when the plan has either."""
    lines = []
    waiting = [m.id for m in plan.metrics if in_progress_excluded(plan, m)]
    if waiting:
        lines += ["Windows in progress (analysis.in_progress: exclude): a metric with a window counts only the",
                  "units whose first exposure + window <= the cut-off (as_of, else the latest timestamp read);",
                  "m<i>_n is their number. Such metrics: " + ", ".join(repr(m) for m in waiting) + "."]
    for m in plan.metrics:
        if m.cap is not None:
            bound = (f"the {m.cap.quantile:g} quantile of the counted units' values (all arms pooled)"
                     if m.cap.quantile is not None else f"{m.cap.value:g}")
            side = "numerator" if m.kind == "ratio" else "value"
            lines.append(f"Cap of {m.id!r} (in m<i>_cap): each unit's {side} and its CUPED covariate at {bound}.")
    return [""] + lines if lines else []


def _reads(plan: Plan) -> list[str]:
    """What the header says the query reads: the spec's tables and queries, or views to be made."""
    data = plan.data
    declared = {what: getattr(data, what) for what in STANDARD_COLUMNS} if data is not None else {}
    lines = []
    for what, source in declared.items():
        if source is not None and source.table is not None:
            lines.append(f"{what}: the table {source.table} (from the spec's data section)")
        elif source is not None and source.query is not None:
            lines.append(f"{what}: the query of the spec's data.{what} (in the expc_{what} step below)")
    if len(lines) == len(STANDARD_COLUMNS):
        return ["Reads:", *("  " + line for line in lines)]
    return ["Reads two relations with the standard columns (create views with these names over your tables,",
            "or say where they are in the spec's data section):",
            "  exposures(unit_id, variant, timestamp)    events(unit_id, event, timestamp, value)", *lines]


def exposed_units_sql(plan: Plan, dialect: str, inputs: Mapping[str, exp.Query]) -> str:
    """Each unit the reduction counts (exposed to one variant of this experiment) and its arm: ``unit_id, arm``.

    The reduction's own classification of exposures, so the units are exactly
    those it counts (no cut-off: all the data).
    """
    tree = sqlglot.parse_one(_source(plan, None), read="duckdb")
    query = exp.select("unit_id", "arm").from_("exposed").where("several = 0")
    query.set("with_", tree.args["with_"])
    return _emit(plan, query, dialect, inputs)


def _emit(plan: Plan, tree: exp.Expr, dialect: str, inputs: Mapping[str, exp.Query] | None) -> str:
    """The query in ``dialect``, its input relations first (by default where the plan's ``data`` says)."""
    if dialect == "clickhouse":  # DateTime has whole seconds only: keep microseconds, as the other engines do
        tree = tree.transform(_clickhouse_timestamp)
    if inputs is None:
        value = any(measure == "value" for m in plan.metrics for _, measure in m.uses())
        data = plan.data
        inputs = {what: input_query(what, getattr(data, what) if data else None, dialect, value=value,
                                    read=data.dialect if data else None) for what in STANDARD_COLUMNS}
    ctes = tree.args["with_"].expressions
    for i, what in enumerate(STANDARD_COLUMNS):
        ctes.insert(i, exp.CTE(this=inputs[what], alias=exp.TableAlias(this=exp.to_identifier(f"expc_{what}"))))
    sql = tree.sql(dialect=dialect, pretty=True)
    if dialect == "clickhouse":  # as elsewhere: a LEFT JOIN's missing side is NULL (not the type's default), and a
        # column is not shadowed by a SELECT alias of the same name (`MIN(arm) AS arm` next to `MAX(arm)`)
        sql += "\nSETTINGS join_use_nulls = 1, prefer_column_name_to_alias = 1"
    return sql


def _clickhouse_timestamp(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.TIMESTAMPNTZ:
        return exp.DataType.build("Nullable(DateTime64(6))", dialect="clickhouse")
    return node


def input_query(what: str, source: DataSource | None, dialect: str, *, value: bool = True,
                read: str | None = None, extra: Sequence[str] = (),
                absent: Collection[str] | None = None) -> exp.Query:
    """The ``SELECT`` (in ``dialect``) that gives relation ``what`` (``exposures`` or ``events``) its standard columns.

    Without a source: the table named ``what`` (a view the data team makes).
    A ``table`` or ``query`` source is read with its column mapping (each
    standard column is the source's column of the same name unless
    ``columns`` maps it). A ``path`` source is read by the engine, which
    names the typed rows ``what``. ``value`` says whether the events'
    ``value`` is read (only when some metric sums values). Table names and
    queries are read in dialect ``read`` (the spec's ``data.dialect``; default
    ``dialect``), so that sqlglot translates them for the engine. ``extra``
    columns (segment attributes) are read too, mapped like the others.
    The optional columns (:data:`~expc.compiler.model.OPTIONAL_COLUMNS`) and
    ``variant`` named in ``absent`` are NULL; by default, the optional
    columns the source does not map (an engine that sees the source's
    columns says which it lacks).
    """
    read = read or dialect
    optional = OPTIONAL_COLUMNS[what]
    if absent is None:
        absent = [c for c in optional if source is None or c not in source.columns]
    wanted = [c for c in STANDARD_COLUMNS[what] if value or c != "value"] + list(optional) + list(extra)
    nothing = [exp.alias_(exp.cast(exp.null(), "VARCHAR"), c, quoted=True) for c in wanted if c in absent]
    if source is None or source.path is not None:
        return exp.select(*(c for c in wanted if c not in absent), *nothing).from_(exp.to_table(what))
    if source.table is not None:
        origin: exp.Expression = exp.to_table(source.table, dialect=read)
        for part in origin.find_all(exp.Identifier):  # `my-project` must stay quoted; plain names keep their case
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part.name):
                part.set("quoted", True)
    else:
        query = sqlglot.parse_one(source.query or "", read=read)
        origin = exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier("src")))
    mapped = [exp.alias_(exp.column(source.columns.get(c, c), quoted=True), c, quoted=True)
              for c in wanted if c not in absent]
    return exp.select(*mapped, *nothing).from_(origin)


def reduction_sql(plan: Plan, dialect: str = "duckdb", as_of: str | None = None, *, comments: bool = True,
                  inputs: Mapping[str, exp.Query] | None = None, segment: str | None = None) -> str:
    """The reduction of ``plan`` over ``exposures`` and ``events`` as one readable query in ``dialect``.

    ``dialect`` is one of :data:`DIALECTS`; ``as_of`` an ISO 8601 cut-off
    (see :func:`normalise_as_of`). ``inputs`` gives the ``SELECT`` of each
    relation (see :func:`input_query`); by default the plan's ``data``
    section says where they are. The result has the columns ``arm``,
    ``variant``, ``units``, :func:`moment_columns`, :data:`COUNT_COLUMNS`,
    :data:`ROW_COLUMNS`, ``first_exposure`` and ``last_exposure``, one row per arm.
    Raises ``ValueError`` for an unknown dialect or a bad ``as_of``.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; use one of {', '.join(DIALECTS)}")
    cutoff = normalise_as_of(as_of)
    tree = sqlglot.parse_one(_source(plan, cutoff, segment is not None), read="duckdb")
    sql = _emit(plan, tree, dialect, inputs)
    return (_header(plan, dialect, cutoff) + "\n" + sql + ";\n") if comments else sql
