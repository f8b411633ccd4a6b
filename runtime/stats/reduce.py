"""From raw exposures and events to per-arm :class:`~expc.runtime.stats.moments.Moments`.

:func:`reduce` reads an exposures file and an events file (CSV, JSON Lines or
Parquet, by extension) into an in-memory DuckDB, then runs a few queries in
plain SQL (CTEs, ``CASE``, ``VALUES``, interval literals; nothing DuckDB-only)
so that the same reduction can later run on a warehouse. Only the loading step
(reading files, parsing text into typed columns) uses DuckDB's own functions.
The portable queries are returned in :attr:`Reduction.sql`.

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
3. Per metric and arm: ``n`` = exposed units; proportion: x = 1 when the unit
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

Speed: each file is read once, through a view (for events, one that keeps only
the metrics' events; for Parquet the filter is on the raw column, so the reader
skips other events' rows without decoding them). One query classifies every
exposure row (an integer code) and groups them per unit and class; one query
matches each event to its unit (one hash join), classifies it and groups per
unit and class, with every metric's value and covariate as conditional
aggregates. The class counts, the checks of the files and the per-arm sums then
come from those much smaller grouped tables. No row-level table is
materialised and nothing is sorted. 1,000,000 exposures and 10,000,000 events
from Parquet take about 0.8 s on two cores (``benchmarks/analyze.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np

from ..tables import DataError, _check_readable, _explain, _format_of, _ident, _literal, _names
from .moments import Moments

if TYPE_CHECKING:
    from expc.compiler.plan import Plan, PlanMetric

EXCLUDED_KEYS = (
    "events_before_exposure",
    "events_outside_window",
    "events_of_unexposed_units",
    "units_in_several_variants",
    "unknown_variant_exposures",
    "bad_rows",
)
IGNORED_KEYS = ("exposures_after_as_of", "events_after_as_of", "events_of_units_in_several_variants")

_TEMPORAL_PREFIXES = ("TIMESTAMP", "DATE")
_TEXT_TYPES = ("VARCHAR", "JSON")


@dataclass(frozen=True)
class Reduction:
    """The moments of every metric (arms in the plan's variant order), with what was excluded."""

    metrics: dict[str, Moments]
    units: np.ndarray  # exposed (counted) units per arm, int64
    excluded: dict[str, int]  # keys EXCLUDED_KEYS, always all present
    sql: str  # the portable queries run, in order
    ignored: dict[str, int] = field(default_factory=dict)  # keys IGNORED_KEYS
    as_of: str | None = None  # the cut-off used, as an ISO timestamp (UTC), or None
    first_exposure: str | None = None  # the earliest counted first exposure (ISO, UTC), None without units
    last_exposure: str | None = None  # the latest counted first exposure (ISO, UTC)

    def elapsed_seconds(self) -> float | None:
        """Seconds from the first exposure to ``as_of`` (or to the latest first exposure); the plan's schedule
        numbers the look from it (``plan.schedule.look_at``)."""
        from datetime import datetime

        end = self.as_of or self.last_exposure
        if self.first_exposure is None or end is None:
            return None
        elapsed = datetime.fromisoformat(end) - datetime.fromisoformat(self.first_exposure)
        return max(0.0, elapsed.total_seconds())


def reduce(plan: Plan, exposures_path: str | os.PathLike[str], events_path: str | os.PathLike[str],
           as_of: str | None = None) -> Reduction:
    """Reduce raw exposures and events to per-arm moments of each of the plan's metrics.

    See the module documentation for the inputs, the semantics and the exclusions.
    Raises :class:`DataError` for a bad file and ``ValueError`` for an ``as_of``
    that is not a timestamp.
    """
    with reducer(plan, exposures_path, events_path) as reduce_at:
        return reduce_at(as_of)


@contextmanager
def reducer(plan: Plan, exposures_path: str | os.PathLike[str], events_path: str | os.PathLike[str],
            *, repeated: bool = False) -> Iterator[Callable[[str | None], Reduction]]:
    """``reduce_at(as_of)``: :func:`reduce` of these files at one cut-off after another, on one connection.

    With ``repeated`` (a run's looks), the first call loads the typed rows
    (for events, those of the metrics' events) into tables, so the files are
    read once however many cut-offs follow; without it they are read through
    views, which is cheaper for a single reduction.
    """
    variants = [v.id for v in plan.variants]
    metrics = plan.metrics
    unit = plan.assignment.unit
    names, value_events = _event_names(metrics)
    cuped = [m.cuped for m in metrics]
    lookback = plan.analysis.cuped_lookback
    con = duckdb.connect()
    loaders: list[_Loader] = []

    def reduce_at(as_of: str | None = None) -> Reduction:
        cutoff = _parse_as_of(con, as_of)
        if not loaders:
            exposures = _Loader(con, Path(exposures_path), "exposures", unit, repeated)
            exposures.load_exposures()
            loaders.extend([exposures, _Loader(con, Path(events_path), "events", unit, repeated)])
        try:
            return _reduce(variants, metrics, names, value_events, cutoff, loaders[0], loaders[1], cuped, lookback)
        finally:  # the working tables of this cut-off
            con.execute("DROP VIEW IF EXISTS exposed; DROP TABLE IF EXISTS exposure_groups; "
                        "DROP TABLE IF EXISTS unit_sums")

    try:
        con.execute("SET TimeZone = 'UTC'")
        yield reduce_at
    finally:
        con.close()


# ================================================================== loading (DuckDB)


def _parse_as_of(con: Any, as_of: str | None) -> str | None:
    if as_of is None:
        return None
    ts = con.execute("SELECT CAST(TRY_CAST(trim(?) AS TIMESTAMPTZ) AS TIMESTAMP)", [str(as_of)]).fetchone()[0]
    if ts is None:
        raise ValueError(f"as_of {as_of!r} is not a timestamp; write it as ISO 8601, such as 2026-11-28T00:00:00Z")
    return ts.isoformat(sep=" ")


class _Loader:
    """One input file as a typed view (``exposures_raw`` or ``events_raw``), and the queries that read it.

    The views are read once each, by the reducing queries; :meth:`query` runs
    those and names this file in any error reading it.
    """

    def __init__(self, con: Any, path: Path, what: str, unit: str, materialise: bool = False) -> None:
        self.con, self.path, self.what, self.unit = con, path, what, unit
        self.relation = "TABLE" if materialise else "VIEW"  # what the typed rows become
        self.loaded = False
        self.kind = _format_of(path, f"read {what} from")
        self.trim = self.kind != "parquet"  # text in CSV and JSON may carry stray spaces
        _check_file(path, what)

    def _describe(self) -> dict[str, str]:
        lit = _literal(str(self.path))
        if self.kind == "csv":
            self.source = (f"read_csv({lit}, header=true, all_varchar=true, delim=',', quote='\"', "
                           "escape='\"', comment='', skip=0)")
        elif self.kind == "parquet":
            self.source = f"read_parquet({lit})"
        else:
            self.source = f"read_json({lit}, format='newline_delimited', sample_size=-1)"
        try:
            rows = self.con.execute(f"DESCRIBE SELECT * FROM {self.source}").fetchall()
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException, duckdb.InternalException):
            raise
        except duckdb.Error as exc:
            raise _explain(exc, self.path, self.kind) from None
        return {r[0]: r[1] for r in rows}

    def _columns(self, required: list[str]) -> tuple[dict[str, str], str]:
        types = self._describe()
        id_col = self.unit if self.unit in types else ("unit_id" if "unit_id" in types else None)
        missing = ([] if id_col else [self.unit]) + [c for c in required if c not in types]
        if missing:
            ids = f"`{self.unit}`" + (" (or `unit_id`)" if self.unit != "unit_id" else "")
            expected = ", ".join([ids] + [f"`{c}`" for c in required])
            has = _names(list(types)) if types and list(types) != ["column0"] else "none"
            lack = ", ".join(f"`{c}`" for c in missing)
            raise DataError(f"{self.path}: the {self.what} file lacks the column{'s' * (len(missing) > 1)} {lack}; "
                            f"it needs {expected}; it has {has}", self.path)
        assert id_col is not None  # else the unit's column is missing
        return types, id_col

    def query(self, sql: str) -> list[tuple]:
        """Run ``sql`` (which reads this file) and fetch its rows; a read error becomes a DataError naming the file."""
        try:
            return self.con.execute(sql).fetchall()
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException, duckdb.InternalException):
            raise
        except duckdb.Error as exc:
            raise _explain(exc, self.path, self.kind) from None

    def load_exposures(self) -> None:
        types, id_col = self._columns(["variant", "timestamp"])
        self.query(f"CREATE TEMP {self.relation} exposures_raw AS SELECT "
                   f"{_text(id_col, types[id_col], self.trim)} AS unit_id, "
                   f"{_text('variant', types['variant'], self.trim)} AS variant, "
                   f"{_timestamp('timestamp', types['timestamp'])} AS ts, "
                   f"{_ident('timestamp')} IS NOT NULL AS has_ts FROM {self.source}")

    def load_events(self, names: list[str], need_value: bool) -> None:
        if self.loaded:  # an earlier cut-off of the same files
            return
        types, id_col = self._columns(["event", "timestamp"] + (["value"] if need_value else []))
        value = _number("value", types["value"]) if "value" in types else "CAST(NULL AS DOUBLE)"
        event = _text("event", types["event"], self.trim)
        self.query(f"CREATE TEMP {self.relation} events_raw AS SELECT "
                  f"{_text(id_col, types[id_col], self.trim)} AS unit_id, {event} AS event, "
                  f"{value} AS value, {_timestamp('timestamp', types['timestamp'])} AS ts, "
                  f"{_ident('timestamp')} IS NOT NULL AS has_ts FROM {self.source} "
                  f"WHERE {_event_filter(event, types['event'], self.trim, names)}")
        self.loaded = True

    def check_rows(self, rows: int, written: int, parsed: int) -> None:
        """Raise when the file has no rows (exposures only), or no row's timestamp parses.

        ``rows`` read, ``written`` with a timestamp, ``parsed`` whose timestamp parses: counts from the
        reducing queries, which tell these rows apart (see ``_EVENT_CODES``).
        """
        if rows == 0:
            if self.what == "events":  # no events yet
                return
            raise DataError(f"{self.path}: the {self.what} file has no rows", self.path)
        if parsed == 0:
            if written == 0:
                raise DataError(f"{self.path}: no row has a `timestamp`; every {self.what[:-1]} needs one", self.path)
            example = self.con.execute(
                f"SELECT CAST({_ident('timestamp')} AS VARCHAR) FROM {self.source} "
                f"WHERE {_ident('timestamp')} IS NOT NULL LIMIT 1").fetchone()[0]
            raise DataError(f"{self.path}: none of the {written:,} timestamps can be read (the first is "
                            f"{example!r}); write ISO 8601 timestamps, such as 2026-11-28T14:05:00Z", self.path)


def _event_filter(event: str, typ: str, trim: bool, names: list[str]) -> str:
    """Rows of the metrics' events, or without an event name (bad rows, counted).

    For untrimmed text (Parquet) the test is on the raw column, a plain filter that
    the Parquet reader applies before decoding the other columns, so other events'
    rows cost only their event name.
    """
    if typ == "VARCHAR" and not trim:
        c = _ident("event")
        return f"{c} IN {_in_list(names)} OR {c} IS NULL OR {c} = ''"
    return f"{event} IN {_in_list(names)} OR {event} IS NULL"


def _check_file(path: Path, what: str) -> None:
    _check_readable(path, f"the {what} file is empty")


def _text(col: str, typ: str, trim: bool = True) -> str:
    """Text, trimmed; empty -> NULL. Whole floats (ids from a float column) lose their `.0`."""
    c = _ident(col)
    if typ in ("FLOAT", "DOUBLE") or typ.startswith("DECIMAL"):
        return (f"CASE WHEN isfinite(CAST({c} AS DOUBLE)) AND {c} = round({c}) "
                f"THEN CAST(CAST({c} AS BIGINT) AS VARCHAR) ELSE CAST({c} AS VARCHAR) END")
    if typ == "VARCHAR" and not trim:
        return f"NULLIF({c}, '')"
    return f"NULLIF(trim(CAST({c} AS VARCHAR)), '')"


def _timestamp(col: str, typ: str) -> str:
    """A UTC TIMESTAMP, NULL when the value does not parse (text) or cannot be a time (numbers)."""
    c = _ident(col)
    if typ.startswith(_TEMPORAL_PREFIXES):
        return f"CAST({c} AS TIMESTAMP)"  # with time zone: in the session's UTC
    if typ in _TEXT_TYPES:
        t = f"json_extract_string({c}, '$')" if typ == "JSON" else c  # a JSON string keeps its quotes
        return f"CAST(TRY_CAST(trim({t}) AS TIMESTAMPTZ) AS TIMESTAMP)"
    return "CAST(NULL AS TIMESTAMP)"


def _number(col: str, typ: str) -> str:
    """A finite DOUBLE, NULL when missing, not a number, NaN or infinite."""
    c = _ident(col)
    if typ in _TEXT_TYPES:
        t = f"json_extract_string({c}, '$')" if typ == "JSON" else c
        d = f"TRY_CAST(trim({t}) AS DOUBLE)"
    elif typ == "BOOLEAN" or typ.startswith(_TEMPORAL_PREFIXES) or "[" in typ or typ.startswith("STRUCT"):
        return "CAST(NULL AS DOUBLE)"
    else:
        d = f"TRY_CAST({c} AS DOUBLE)"
    return f"CASE WHEN isfinite({d}) THEN {d} END"


# ================================================================== reducing (portable SQL)


def _event_names(metrics: list[PlanMetric]) -> tuple[list[str], list[str]]:
    """Every event a metric names, and those whose values some metric sums (in first-seen order)."""
    names: list[str] = []
    values: list[str] = []
    for m in metrics:
        for event, measure in m.uses():
            if event not in names:
                names.append(event)
            if measure == "value" and event not in values:
                values.append(event)
    return names, values


def _in_list(values: list[str]) -> str:
    return "(" + ", ".join(_literal(v) for v in values) + ")" if values else "(NULL)"


def _within(window: Any, start: str = "ev.first_ts") -> str:
    """SQL condition: event ``ev.ts`` is no later than the end of the unit's window."""
    if not window:
        return "1 = 1"
    seconds = float(window)
    literal = str(int(seconds)) if seconds.is_integer() else repr(seconds)
    return f"ev.ts <= {start} + INTERVAL '{literal}' SECOND"


# Integer codes of what an event row is (the portable query returns codes; Python names them). Bad rows
# have three codes, so that the counts the timestamp check needs come with the others: rows without a
# timestamp, rows whose timestamp does not parse, and the rest.
_EVENT_CODES = ("counted", "bad_rows", "bad_rows", "bad_rows", "events_after_as_of", "events_of_unexposed_units",
                "events_of_units_in_several_variants", "events_before_exposure", "events_outside_window")
_COUNTED, _BAD, _NO_TIMESTAMP, _UNPARSED_TIMESTAMP = 0, 1, 2, 3
_BEFORE = _EVENT_CODES.index("events_before_exposure")
_EXPOSURE_CODES = ("counted", "bad_rows", "bad_rows", "bad_rows", "exposures_after_as_of", "unknown_variant_exposures")


def _reduce(variants: list[str], metrics: list[PlanMetric], names: list[str], value_events: list[str],
            cutoff: str | None, exposures: _Loader, events: _Loader,
            cuped: list[bool] | None = None, lookback: Any = None) -> Reduction:
    arms = len(variants)
    cuped = cuped or [False] * len(metrics)

    def after(t: str) -> str:
        return f"{t}.ts > TIMESTAMP '{cutoff}'" if cutoff else "1 = 0"

    def needs_value(t: str) -> str:  # a row whose value some metric sums, without a usable value
        return f"({t}.event IN {_in_list(value_events)} AND {t}.value IS NULL)" if value_events else "1 = 0"
    variant_rows = ", ".join(f"({_literal(v)}, {i})" for i, v in enumerate(variants))
    statements: list[str] = []

    def run(sql: str, reading: _Loader = events) -> list[tuple]:
        statements.append(sql.strip() + ";")
        return reading.query(sql)

    def check(loader: _Loader, by_code: list[int]) -> None:
        rows = sum(by_code)
        loader.check_rows(rows, rows - by_code[_NO_TIMESTAMP],
                          rows - by_code[_NO_TIMESTAMP] - by_code[_UNPARSED_TIMESTAMP])

    # 1. Exposures, in one pass over the file: each row's class (a code, see _EXPOSURE_CODES), then one
    #    row per unit and class; a counted unit's row has its arm, first exposure and whether it was
    #    exposed to several arms. `exposed` keeps the counted units.
    run(f"""
CREATE TEMP TABLE exposure_groups AS
WITH variants (variant, arm) AS (VALUES {variant_rows}),
classified AS (
  SELECT CASE
           WHEN e.ts IS NULL THEN CASE WHEN e.has_ts THEN {_UNPARSED_TIMESTAMP} ELSE {_NO_TIMESTAMP} END
           WHEN e.unit_id IS NULL OR e.variant IS NULL THEN {_BAD}
           WHEN {after('e')} THEN {_EXPOSURE_CODES.index('exposures_after_as_of')}
           WHEN v.arm IS NULL THEN {_EXPOSURE_CODES.index('unknown_variant_exposures')}
           ELSE {_COUNTED}
         END AS what,
         e.unit_id, v.arm, e.ts
  FROM exposures_raw e LEFT JOIN variants v ON v.variant = e.variant
)
SELECT unit_id, what, COUNT(*) AS row_count, MIN(arm) AS arm, MIN(ts) AS first_ts,
       CASE WHEN MIN(arm) < MAX(arm) THEN 1 ELSE 0 END AS several
FROM classified GROUP BY unit_id, what""", exposures)
    exposure_codes = [0] * len(_EXPOSURE_CODES)
    for what, count in run("SELECT what, SUM(row_count) FROM exposure_groups GROUP BY what"):
        exposure_codes[int(what)] = int(count)
    check(exposures, exposure_codes)
    run("CREATE TEMP VIEW exposed AS SELECT unit_id, arm, first_ts, several FROM exposure_groups "
        f"WHERE what = {_COUNTED}")
    units_rows = run("""
SELECT arm, several, COUNT(*), MIN(first_ts), MAX(first_ts) FROM exposed GROUP BY arm, several""")
    events.load_events(names, bool(value_events))

    # 2. Events, in one pass over the file: each row's class (a code, see _EVENT_CODES), then one row per
    #    unit and class with the class's row count and every metric's value (and CUPED covariate), which
    #    count only in the unit's row of counted events. Unmatched rows group under a NULL unit. With
    #    CUPED, a unit's events before exposure join its counted row (the covariates multiply the outcome)
    #    and are counted apart.
    widest: dict[str, Any] = {}
    for m in metrics:
        for event, _ in m.uses():
            w = m.window_seconds
            if event in widest and (widest[event] is None or w is None):
                widest[event] = None
            else:
                widest[event] = w if event not in widest else max(widest[event], w)
    outside = " ".join(f"WHEN ev.event = {_literal(e)} THEN CASE WHEN {_within(w, 'x.first_ts')} THEN 0 ELSE 1 END"
                       for e, w in widest.items())
    outside_case = f"CASE {outside} ELSE 0 END" if widest else "0"
    code = {what: i for i, what in enumerate(_EVENT_CODES)}
    with_cuped = any(cuped)
    counted = f"ev.what = {_COUNTED} AND " if with_cuped else ""  # otherwise the group says so
    pre = f"ev.what = {_BEFORE} AND ev.ts >= ev.first_ts - {_interval(lookback)}"

    def within(m: PlanMetric, event: str) -> str:
        """The metric's window, where it is narrower than the widest window of its event (which `what` applies)."""
        w = m.window_seconds
        return f" AND {_within(w)}" if w is not None and (widest[event] is None or w < widest[event]) else ""

    per_unit, per_arm = [], []
    for i, m in enumerate(metrics):
        cov = cuped[i]
        if m.kind == "proportion":
            event = m.single_event()
            e = _literal(event)
            per_unit.append(f"MAX(CASE WHEN {counted}ev.event = {e}{within(m, event)} THEN 1 ELSE 0 END) AS x{i}")
            if cov:
                per_unit.append(f"MAX(CASE WHEN ev.event = {e} AND {pre} THEN 1 ELSE 0 END) AS z{i}")
        elif m.kind == "mean":
            event = m.single_event()
            e = _literal(event)
            per_unit.append(f"SUM(CASE WHEN {counted}ev.event = {e}{within(m, event)} "
                            f"THEN ev.value ELSE 0 END) AS x{i}")
            if cov:
                per_unit.append(f"SUM(CASE WHEN ev.event = {e} AND {pre} THEN ev.value ELSE 0 END) AS z{i}")
        else:
            for d, name, pre_name in zip(m.ratio_measures(), ("x", "y"), ("z", "w")):
                e = _literal(d.event)
                what = "ev.value" if d.measure == "value" else "1"
                per_unit.append(f"SUM(CASE WHEN {counted}ev.event = {e}{within(m, d.event)} "
                                f"THEN {what} ELSE 0 END) AS {name}{i}")
                if cov:
                    per_unit.append(f"SUM(CASE WHEN ev.event = {e} AND {pre} THEN {what} ELSE 0 END) AS {pre_name}{i}")
        per_arm += [f"SUM(x{i})", f"SUM(x{i} * x{i})"]
        if m.kind == "ratio":
            per_arm += [f"SUM(y{i})", f"SUM(y{i} * y{i})", f"SUM(x{i} * y{i})"]
        if cov:
            per_arm += [f"SUM(z{i})", f"SUM(z{i} * z{i})", f"SUM(x{i} * z{i})"]
            if m.kind == "ratio":
                per_arm += [f"SUM(w{i})", f"SUM(w{i} * w{i})", f"SUM(z{i} * w{i})",
                            f"SUM(x{i} * w{i})", f"SUM(y{i} * z{i})", f"SUM(y{i} * w{i})"]
    group = f"CASE WHEN ev.what = {_BEFORE} THEN {_COUNTED} ELSE ev.what END" if with_cuped else "ev.what"
    before_rows = f",\n         COUNT(CASE WHEN ev.what = {_BEFORE} THEN 1 END) AS before_rows" if with_cuped else ""
    columns = "".join(f",\n         {c}" for c in per_unit)
    run(f"""
CREATE TEMP TABLE unit_sums AS
WITH classified AS (
  SELECT CASE
           WHEN ev.ts IS NULL THEN CASE WHEN ev.has_ts THEN {_UNPARSED_TIMESTAMP} ELSE {_NO_TIMESTAMP} END
           WHEN ev.unit_id IS NULL OR ev.event IS NULL OR {needs_value('ev')} THEN {_BAD}
           WHEN {after('ev')} THEN {code['events_after_as_of']}
           WHEN x.unit_id IS NULL THEN {code['events_of_unexposed_units']}
           WHEN x.several = 1 THEN {code['events_of_units_in_several_variants']}
           WHEN ev.ts < x.first_ts THEN {_BEFORE}
           WHEN {outside_case} = 1 THEN {code['events_outside_window']}
           ELSE {_COUNTED}
         END AS what,
         x.unit_id, x.arm, x.first_ts, ev.event, ev.value, ev.ts
  FROM events_raw ev LEFT JOIN exposed x ON x.unit_id = ev.unit_id
)
SELECT ev.unit_id, ev.arm, {group} AS what, COUNT(*) AS row_count{before_rows}{columns}
FROM classified ev
GROUP BY ev.unit_id, ev.arm, {group}""")
    class_rows = run(f"""
SELECT what, SUM(row_count){', SUM(before_rows)' if with_cuped else ''} FROM unit_sums GROUP BY what""")
    by_code = [0] * len(_EVENT_CODES)
    for row in class_rows:
        by_code[int(row[0])] += int(row[1])
        if with_cuped:  # the events before exposure that joined the counted rows
            by_code[int(row[0])] -= int(row[2])
            by_code[_BEFORE] += int(row[2])
    check(events, by_code)

    # 3. Per arm: the moments of every metric. Units without counted events add 0 to every sum, so
    #    they only count in n (from `exposed`).
    rows = run(f"""
SELECT arm, {', '.join(per_arm)}
FROM unit_sums WHERE unit_id IS NOT NULL AND what = {_COUNTED} GROUP BY arm""") if metrics else []

    # 4. Into numpy, arms in plan order (arms without units: zeros).
    table = np.zeros((arms, 1 + len(per_arm)), dtype=np.float64)
    for row in rows:
        table[int(row[0]), 1:] = [0.0 if v is None else float(v) for v in row[1:]]
    units = np.zeros(arms, dtype=np.int64)
    several = 0
    firsts, lasts = [], []
    for arm, is_several, count, first_ts, last_ts in units_rows:
        firsts.append(first_ts)
        lasts.append(last_ts)
        if is_several:
            several += int(count)
        else:
            units[int(arm)] = int(count)
    n = units.astype(np.float64)
    out: dict[str, Moments] = {}
    col = 1

    def take(k: int) -> list[np.ndarray]:
        nonlocal col
        cols = [table[:, col + j] for j in range(k)]
        col += k
        return cols

    for i, m in enumerate(metrics):
        ratio = m.kind == "ratio"
        moments = Moments.of(n, *take(5 if ratio else 2))
        if cuped[i]:
            keys = ["pre_sum", "pre_sum_sq", "pre_cross"]
            if ratio:
                keys += ["pre_den_sum", "pre_den_sum_sq", "pre_num_den", "pre_cross_den", "pre_den_cross",
                         "pre_den_cross_den"]
            moments = moments.with_covariate(**dict(zip(keys, take(len(keys)))))
        out[m.id] = moments

    counts: dict[str, int] = {}
    for what, c in [*zip(_EXPOSURE_CODES, exposure_codes), *zip(_EVENT_CODES, by_code)]:
        counts[what] = counts.get(what, 0) + c
    counts["units_in_several_variants"] = several
    excluded = {k: counts.get(k, 0) for k in EXCLUDED_KEYS}
    ignored = {k: counts.get(k, 0) for k in IGNORED_KEYS}
    first = min(firsts).isoformat() if firsts else None
    last = max(lasts).isoformat() if lasts else None
    return Reduction(out, units, excluded, "\n\n".join(statements), ignored,
                     None if cutoff is None else cutoff.replace(" ", "T"), first, last)


def _interval(seconds: Any) -> str:
    """A portable interval literal of a number of seconds."""
    s = float(seconds or 0)
    return f"INTERVAL '{str(int(s)) if s.is_integer() else repr(s)}' SECOND"
