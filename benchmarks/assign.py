#!/usr/bin/env python
"""Benchmark: assigning units with expc's vectorised ``assign`` versus GrowthBook's SDK (and PlanOut).

Run from the repository root, in the project's virtualenv::

    .venv/bin/python benchmarks/assign.py [--n 1000000] [--sample 50000] [--e2e-n 1000000] [--seed S]
                                          [--repeat 5] [--no-planout] [--no-e2e]
                                          [--memory-n 10000000] [--before REV] [--no-memory] [--no-spark]

What it does:

1. Writes a spec to a temporary folder (a three-clause audience: ``country
   $in [...]``, ``signup_days $lte 14``, ``plan $ne "enterprise"``; three
   variants weighted 5:3:2; coverage 90%; layer ``onboarding`` with range
   [0, 0.6]), compiles it with ``expc.compile_file`` and generates N units
   (default 1,000,000) deterministically: ids ``user-`` + 12 random digits
   (85%) or UUID-style (15%), all distinct, shuffled; a few nulls in every
   attribute. The ids are kept as a numpy unicode (``U``) array, the fast
   in-memory form of :mod:`expc.runtime.units`.
2. Times ``expc.runtime.assign.assign(plan, units)``, and three variants of
   it: one hashing thread, ids as an object array (the form ``read_units``
   returns), and no audience (every unit hashed). These and the bare
   GrowthBook functions below run in interleaved rounds (default 5), and each
   keeps its best round, so that other work on the machine hits them alike.
3. Side by side on the same units: GrowthBook's Python SDK per user
   (``GrowthBook(attributes=..., features=...).eval_feature(key)`` then
   ``destroy()``, one instance per user as its docs advise for web requests,
   and one reused instance with ``set_attributes``) on a sample; its bare
   functions (``inNamespace`` + ``gbhash`` + ``chooseVariation`` with the
   ``getBucketRanges`` ranges computed once, with and without
   ``evalCondition``) on a sample; and PlanOut, installed with pip into a
   throwaway venv in the temporary folder (never into the project's venv).
   PlanOut 0.6 does not import on Python 3.10+ (``from collections import
   MutableMapping``) and lacks its ``six`` dependency: the script says so and,
   if ``six`` installs, also times it with a one-line compatibility shim.
4. Checks that expc and the SDK agree on every unit of the SDK sample
   (variant and bucket), and that expc and the bare functions agree on all N
   units (or on as many as fit in about 60 s).
5. Prints a table (method, units, seconds, units/s, ratio to the bare
   hash-and-bucket functions) and the goals, PASS/FAIL: at least 5,000,000
   units/s in memory, and at least 20x the bare hash-and-bucket rate.
6. Times ``expc assign`` end to end on the ``--e2e-n`` units (default
   1,000,000) written by DuckDB as Parquet (``-o assignments.parquet``) and as
   JSON Lines (``-o assignments.csv``), as a subprocess with the venv's
   ``expc`` (best of 3, with its peak RSS), and splits the time by calling the
   same library functions in this process (compile, ``open_units``, the chunks
   fetched, assigned and turned into output columns, ``write_assignment_chunks``)
   in rounds that alternate with the CLI runs; the CLI's output is checked
   against the in-memory assignment. Goal, PASS/FAIL: the whole process on
   JSON Lines at least 2x the SDK's bare hash-and-bucket rate (issue 12).
7. Profiles ``assign`` on the N units with timers around its steps
   (``hash_values``, ``evaluate_columns`` per clause, ``gbhash_arrays`` and
   inside it, ``choose_variations``), times the rest piece by piece, and
   measures two what-ifs that give the same results: hashing ids grouped by
   length, and the ``$in`` clause on a ``U`` array or dictionary codes.
8. Peak memory at scale: ``--memory-n`` units (default 10,000,000) generated
   by DuckDB in SQL as Parquet and JSON Lines, each assigned once by ``expc
   assign ... -o out.parquet`` (peak RSS from ``wait4``, wall time, rows
   written); with ``--before REV``, also by expc as it was at that commit (a
   ``git worktree`` in the temporary folder with its own venv, removed after).
9. Spark (issue 12, item 7), unless ``--no-spark``: the ``--e2e-n`` units'
   Parquet and JSON Lines files assigned by ``assign_spark`` (``expc assign
   --engine spark``) in Spark's local mode (``local[*]``, one session, started
   once and timed), writing a Parquet file (the rows collected, then the
   embedded writer) and a Parquet folder (Spark's tasks), against
   ``assign_file`` (the embedded path) on the same files; a first Spark run
   warms the Python workers and is not counted; best of 2. The outputs are
   checked against the embedded path's, row by row. Then one run of ``expc
   assign --engine spark`` as a subprocess on the JSON Lines file (the whole
   process: the JVM's start included). Skipped with a line when Spark cannot
   run here (no PySpark or no Java).

Exits 0: the figures are for reading, not a gate. Nothing outside the
temporary folder is written.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from expc.compiler.plan import Assignment, Plan

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
GOAL_RATE = 5_000_000  # units/s, expc in memory
GOAL_RATIO = 20.0  # x the SDK's bare hash-and-bucket rate
GOAL_E2E_RATIO = 2.0  # x that rate, for `expc assign` end to end on JSON Lines (the whole process)
FULL_CHECK_BUDGET = 60.0  # seconds for the bare-function check over all units

SPEC = """\
# yaml-language-server: $schema={schema}
version: 1

experiment:
  id: checkout-banner-2026q4
  name: Checkout banner copy
  owner: growth@acme.example
  hypothesis: A banner that names the next step lifts checkout starts among new self-serve users.
  unit: user_id

attributes:
  user_id: string
  country: string
  signup_days: integer
  plan: {{type: string, description: "free, pro, team or enterprise"}}

audiences:
  new_self_serve:
    description: Self-serve sign-ups from six markets, in their first two weeks
    where:
      country: {{$in: [US, CA, GB, DE, FR, NL]}}
      signup_days: {{$lte: 14}}
      plan: {{$ne: enterprise}}

variants:
  - id: control
    control: true
    weight: 5
    content: Finish setting up your account
  - id: next-step
    weight: 3
    content: One step left - add your first project
  - id: time-saved
    weight: 2
    content: Two minutes now saves you an hour this week

allocation:
  audience: new_self_serve
  coverage: 90%
  layer: {{id: onboarding, range: [0, 0.6]}}

metrics:
  - id: checkout_started
    kind: proportion
    event: checkout_started
    window: 7d
    role: primary
    direction: increase
    mde: 5%
    baseline: 0.2
"""

COUNTRIES = ["US", "CA", "GB", "DE", "FR", "NL", "IN", "BR", "JP", "AU", "MX", "ES", "IT", None]
COUNTRY_P = [0.35, 0.06, 0.08, 0.07, 0.06, 0.02, 0.10, 0.08, 0.05, 0.04, 0.03, 0.03, 0.02, 0.01]
PLANS = ["free", "pro", "team", "enterprise", None]
PLAN_P = [0.55, 0.30, 0.10, 0.04, 0.01]


# ====================================================================== helpers


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """The shortest of ``repeat`` timed calls, and the last call's result."""
    best, result = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def rate(units: int, seconds: float) -> float:
    return units / seconds if seconds > 0 else math.inf


def fmt_rate(r: float) -> str:
    return f"{r:,.0f}"


def ms(seconds: float) -> str:
    return f"{1000 * seconds:,.1f} ms"


# ====================================================================== units


def make_ids(rng: np.random.Generator, n: int, uuid_share: float = 0.15) -> np.ndarray:
    """``user-`` + 12 random digits, or a UUID (version 4 style); all distinct, shuffled; a 'U' array."""
    n_uuid = int(round(n * uuid_share))
    n_num = n - n_uuid
    numbers = np.unique(rng.integers(0, 10**12, size=n_num + n_num // 100 + 16))
    while len(numbers) < n_num:  # practically never: top up after collisions
        numbers = np.unique(np.concatenate([numbers, rng.integers(0, 10**12, size=n_num)]))
    numbers = rng.permutation(numbers)[:n_num]
    numeric = np.strings.add("user-", np.strings.zfill(numbers.astype("U12"), 12))
    raw = rng.bytes(16 * n_uuid)
    uuids = np.array([str(uuid.UUID(bytes=raw[16 * i:16 * i + 16], version=4)) for i in range(n_uuid)], dtype="U36")
    ids = rng.permutation(np.concatenate([numeric.astype("U36"), uuids]))
    if len(np.unique(ids)) != n:
        raise RuntimeError("generated ids are not distinct")
    return ids


def make_units(plan: Plan, n: int, seed: int):
    from expc.runtime.units import Units

    rng = np.random.default_rng(seed)
    ids = make_ids(rng, n)
    country = np.array(COUNTRIES, dtype=object)[rng.choice(len(COUNTRIES), size=n, p=COUNTRY_P)]
    # days since sign-up: many recent sign-ups, a long tail; 1% unknown (NaN is null)
    days = np.floor(rng.exponential(40.0, size=n)).clip(0, 3650)
    days[rng.random(n) < 0.01] = np.nan
    plan_col = np.array(PLANS, dtype=object)[rng.choice(len(PLANS), size=n, p=PLAN_P)]
    columns = {"user_id": ids, "country": country, "signup_days": days, "plan": plan_col}
    return Units(columns, dict(plan.attributes))


def attribute_dicts(units, rows: np.ndarray) -> list[dict[str, Any]]:
    """The rows as the plain attribute dictionaries an SDK receives (null as None, integers as int)."""
    cols = units.columns
    ids = cols["user_id"][rows].tolist()
    country = cols["country"][rows].tolist()
    plan = cols["plan"][rows].tolist()
    days = [None if math.isnan(d) else int(d) for d in cols["signup_days"][rows].tolist()]
    return [{"user_id": i, "country": c, "signup_days": d, "plan": p} for i, c, d, p in zip(ids, country, days, plan)]


# ====================================================================== GrowthBook


def sdk_new_instance(features: dict, key: str, attrs: list[dict], destroy: bool = True) -> list[Any]:
    """One GrowthBook instance per user, as the docs advise for web requests (then destroy())."""
    from growthbook import GrowthBook

    out = []
    for a in attrs:
        gb = GrowthBook(attributes=a, features=features)
        r = gb.eval_feature(key)
        out.append(r)
        if destroy:
            gb.destroy()
    return out


def sdk_reused(features: dict, key: str, attrs: list[dict]) -> list[Any]:
    """One GrowthBook instance for all users, set_attributes per user."""
    from growthbook import GrowthBook

    gb = GrowthBook(features=features)
    out = []
    for a in attrs:
        gb.set_attributes(a)
        out.append(gb.eval_feature(key))
    gb.destroy()
    return out


def sdk_outcome(results: list[Any], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Variant index (-1 when out) and bucket (NaN when not in the experiment) from FeatureResults."""
    variant = np.array([-1 if r.value is None else index[r.value] for r in results], dtype=np.int64)
    bucket = np.array([r.experimentResult.bucket if r.experimentResult is not None and r.experimentResult.inExperiment
                       else np.nan for r in results])
    return variant, bucket


def bare(ids: list[str], attrs: list[dict] | None, asg: Assignment, ranges: list) -> tuple[list, list]:
    """GrowthBook's own functions per unit, in run_experiment's order: id, namespace, condition, hash, variation.

    ``attrs=None`` skips the condition (hash and bucket only). Returns each
    unit's variant index (-1 when out) and hash (NaN when not hashed).
    """
    from growthbook.core import chooseVariation, evalCondition, gbhash, inNamespace

    seed, version, layer = asg.seed, asg.hash_version, asg.namespace
    ns = (layer.id, layer.start, layer.end) if layer is not None else None
    cond = asg.condition if attrs is not None else None
    variant = [-1] * len(ids)
    bucket = [math.nan] * len(ids)
    for i, uid in enumerate(ids):
        if not uid:
            continue
        if ns is not None and not inNamespace(uid, ns):
            continue
        if cond and not evalCondition(attrs[i], cond):
            continue
        h = gbhash(seed, uid, version)
        bucket[i] = h
        variant[i] = chooseVariation(h, ranges)
    return variant, bucket


def same_bucket(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


# ====================================================================== PlanOut

PLANOUT_TIMER = r"""
import collections, collections.abc, json, sys, time
SHIM = sys.argv[1] == "shim"
if SHIM:  # PlanOut 0.6 imports MutableMapping from collections, gone since Python 3.10
    collections.MutableMapping = collections.abc.MutableMapping
from planout.experiment import Experiment
from planout.ops.random import WeightedChoice

class Banner(Experiment):
    def configure_logger(self): pass        # exposure logging off, as for GrowthBook (no tracking callback)
    def log(self, data): pass
    def previously_logged(self): return False
    def setup(self): self.name = "checkout-banner-2026q4"
    def assign(self, params, user_id):
        params.variant = WeightedChoice(choices=["control", "next-step", "time-saved"],
                                        weights=[0.5, 0.3, 0.2], unit=user_id)

ids = [line.rstrip("\n") for line in open(sys.argv[2], encoding="utf-8")]
best = float("inf")
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    out = [Banner(user_id=u).get("variant") for u in ids]
    best = min(best, time.perf_counter() - t)
print(json.dumps({"seconds": best, "units": len(ids), "counts": {v: out.count(v) for v in set(out)}}))
"""


def planout(tmp: Path, ids: list[str], repeat: int) -> dict[str, Any]:
    """Install PlanOut into a throwaway venv under ``tmp`` and time it, or say why it could not run."""
    report: dict[str, Any] = {"notes": []}
    venv = tmp / "planout-venv"
    py = venv / "bin" / "python"

    def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp)

    def last_line(p: subprocess.CompletedProcess) -> str:
        lines = [line for line in (p.stderr or p.stdout).strip().splitlines() if "is ignored" not in line]
        return lines[-1].strip() if lines else f"exit {p.returncode}"

    try:
        p = run([sys.executable, "-m", "venv", str(venv)])
        if p.returncode:
            report["error"] = f"could not create a venv: {last_line(p)}"
            return report
        p = run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", "planout"])
        if p.returncode:
            report["error"] = f"`pip install planout` failed: {last_line(p)}"
            return report
        version = run([str(py), "-c", "import importlib.metadata as m; print(m.version('planout'))"]).stdout.strip()
        report["version"] = version
        p = run([str(py), "-c", "import planout.experiment"])
        if p.returncode == 0:
            report["imports"] = True
        else:
            report["imports"] = False
            report["notes"].append(f"`import planout.experiment` fails: {last_line(p)}")
            if "six" in last_line(p):
                p = run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", "six"])
                if p.returncode:
                    report["error"] = f"`pip install six` failed: {last_line(p)}"
                    return report
                p = run([str(py), "-c", "import planout.experiment"])
                if p.returncode:
                    report["notes"].append(f"with six installed, it still fails: {last_line(p)}")
        id_file = tmp / "planout-ids.txt"
        id_file.write_text("\n".join(ids) + "\n", encoding="utf-8")
        script = tmp / "planout_timer.py"
        script.write_text(PLANOUT_TIMER, encoding="utf-8")
        mode = "plain" if report["imports"] else "shim"
        p = run([str(py), str(script), mode, str(id_file), str(repeat)], timeout=900)
        if p.returncode:
            report["error"] = f"could not run{' even with the shim' if mode == 'shim' else ''}: {last_line(p)}"
            return report
        import json

        report.update(json.loads(p.stdout.strip().splitlines()[-1]))
        report["shim"] = mode == "shim"
    except (OSError, subprocess.TimeoutExpired) as exc:
        report["error"] = f"could not run: {type(exc).__name__}: {exc}"
    return report


# ====================================================================== profiling


class Timers:
    """Wraps module functions so that each call's wall time is added to a named total."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._saved: list[tuple[Any, str, Any]] = []

    def wrap(self, module: Any, name: str, label: str | None = None) -> None:
        original = getattr(module, name)
        label = label or name

        @functools.wraps(original)
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.totals[label] = self.totals.get(label, 0.0) + time.perf_counter() - t
                self.calls[label] = self.calls.get(label, 0) + 1

        self._saved.append((module, name, original))
        setattr(module, name, timed)

    def reset(self) -> None:
        self.totals.clear()
        self.calls.clear()

    def restore(self) -> None:
        for module, name, original in reversed(self._saved):
            setattr(module, name, original)
        self._saved.clear()


def profile_assign(plan: Plan, units, repeat: int) -> list[str]:
    """Where ``assign``'s time goes, with timers around its steps (and inside the hashing)."""
    import expc.runtime.assign as A
    import expc.runtime.hashing as H
    from expc.runtime.conditions import evaluate_columns

    lines: list[str] = []
    n = len(units)
    timers = Timers()
    for name in ("unhashable", "hash_values", "evaluate_columns", "gbhash_arrays", "choose_variations"):
        timers.wrap(A, name)
    best, stages = math.inf, {}
    try:
        for _ in range(repeat):
            timers.reset()
            t = time.perf_counter()
            A.assign(plan, units)
            total = time.perf_counter() - t
            if total < best:
                best, stages = total, dict(timers.totals)
    finally:
        timers.restore()
    rest = best - sum(stages.values())
    lines.append(f"assign on {n:,} units, best of {repeat} with timers: {ms(best)} "
                 f"({fmt_rate(rate(n, best))} units/s)")
    labels = {
        "unhashable": "unhashable (the missing-id test, over all ids)",
        "hash_values": "hash_values (the hashed ids as text: free for a 'U' array)",
        "evaluate_columns": "evaluate_columns (the 3-clause audience, column-wise)",
        "gbhash_arrays": "gbhash_arrays (experiment + layer hash of the audience's ids)",
        "choose_variations": "choose_variations (bucket ranges -> variant)",
    }
    for name, label in labels.items():
        s = stages.get(name, 0.0)
        lines.append(f"  {label:<66}{ms(s):>11}{100 * s / best:>6.0f}%")
    lines.append(f"  {'the rest (masks, flatnonzero, fancy indexing, output arrays)':<66}{ms(rest):>11}"
                 f"{100 * rest / best:>6.0f}%")

    # the audience, clause by clause
    condition = plan.assignment.condition
    lines.append("evaluate_columns clause by clause (best of 3 each; the whole condition evaluates each once):")
    for key, value in condition.items():
        s, mask = best_of(3, lambda key=key, value=value: evaluate_columns({key: value}, units))
        lines.append(f"  {key}: {value}".ljust(68) + f"{ms(s):>11}  holds for {mask.mean():.1%}")
    s, mask = best_of(3, lambda: evaluate_columns(condition, units))
    lines.append(f"  {'all three':<66}{ms(s):>11}  holds for {mask.mean():.1%}")

    # inside the hashing: the audience's ids, as assign hashes them
    asg = plan.assignment
    ids = A.hash_values(units, asg.unit)
    rows = np.flatnonzero((ids != "") & evaluate_columns(condition, units))
    audience_ids = ids[rows]
    hashes = [(asg.seed, asg.hash_version), ("__" + asg.namespace.id, 1)]
    threads_default = min(os.cpu_count() or 1, max(1, len(audience_ids) // H.CHUNK))
    s_default, _ = best_of(repeat, lambda: H.gbhash_arrays(audience_ids, hashes))
    s_one, _ = best_of(repeat, lambda: H.gbhash_arrays(audience_ids, hashes, threads=1))
    lines.append(f"gbhash_arrays on the {len(audience_ids):,} audience ids ({audience_ids.dtype}, two hashes each): "
                 f"{ms(s_default)} with {threads_default} thread(s) (the default), {ms(s_one)} with 1 "
                 f"({fmt_rate(rate(len(audience_ids), s_one))} ids/s per core)")
    timers = Timers()
    for name in ("_fnv_rows", "_code_units", "_fnv_decimal", "_fnv_text"):
        timers.wrap(H, name)
    try:
        best_h, inner = math.inf, {}
        for _ in range(repeat):
            timers.reset()
            t = time.perf_counter()
            H.gbhash_arrays(audience_ids, hashes, threads=1)
            total = time.perf_counter() - t
            if total < best_h:
                best_h, inner = total, dict(timers.totals)
    finally:
        timers.restore()
    width = audience_ids.dtype.itemsize // 4
    fnv_rows = inner.get("_fnv_rows", 0.0) - inner.get("_code_units", 0.0)
    parts = [
        (f"_fnv_rows: FNV-1a over the id characters, {width} positions x 2 hashes", fnv_rows),
        ("_code_units: the surrogate test (no astral characters here)", inner.get("_code_units", 0.0)),
        ("_fnv_decimal: v2's second round over the first hash's digits", inner.get("_fnv_decimal", 0.0)),
        ("_fnv_text: v1's seed suffix (the layer hash)", inner.get("_fnv_text", 0.0)),
    ]
    lines.append(f"inside gbhash_arrays, 1 thread, with timers: {ms(best_h)}")
    for label, s in parts:
        lines.append(f"  {label:<66}{ms(s):>11}{100 * s / best_h:>6.0f}%")
    rest = best_h - sum(s for _, s in parts)
    lines.append(f"  {'the rest (str_len, view, % and / to float, chunk set-up)':<66}{ms(rest):>11}"
                 f"{100 * rest / best_h:>6.0f}%")
    lengths = np.strings.str_len(audience_ids)
    lines.append(f"  id lengths: {lengths.min()}-{lengths.max()} characters, mean {lengths.mean():.1f}; "
                 f"the array is {width} wide, so rows shorter than that are masked (np.copyto where=) "
                 f"from position {lengths.min()} on")

    # the rest of assign, piece by piece (timed alone, outside assign)
    column = units.columns[asg.unit]
    pieces = [
        ("ids == '' (the missing-id test, over all ids)", lambda: column == ""),
        (f"ids[rows] (gather the audience's ids, {column.dtype})", lambda: column[rows]),
        ("np.equal(column, None) (null mask of one object column)",
         lambda: np.equal(units.columns["country"], None)),
    ]
    lines.append("pieces of assign timed alone (best of 3):")
    for label, fn in pieces:
        s, _ = best_of(3, fn)
        lines.append(f"  {label:<66}{ms(s):>11}")

    # what-ifs: measured here, not what expc does today
    lines.append("what-ifs (not what expc does; the same results, timed alone, best of 3):")

    def by_length() -> list[np.ndarray]:
        outs = [np.empty(len(audience_ids)) for _ in hashes]
        for length in np.unique(lengths):
            where = np.flatnonzero(lengths == length)
            part = audience_ids[where].astype(f"U{max(int(length), 1)}")
            for out, h in zip(outs, H.gbhash_arrays(part, hashes, threads=1)):
                out[where] = h
        return outs

    s_len, grouped = best_of(repeat, by_length)
    plain = H.gbhash_arrays(audience_ids, hashes, threads=1)
    same = all(np.array_equal(a, b) for a, b in zip(grouped, plain))
    lines.append(f"  {'gbhash_arrays per id length (no masked positions), 1 thread':<66}{ms(s_len):>11}"
                 f"  vs {ms(s_one)}; same hashes: {same}")
    country = units.columns["country"]
    wanted = condition["country"]["$in"]
    as_text = np.where(np.equal(country, None), "", country).astype(np.str_)
    s_u, _ = best_of(3, lambda: np.isin(as_text, np.array(wanted)))
    categories, codes = np.unique(as_text, return_inverse=True)
    s_cat, in_cat = best_of(3, lambda: np.isin(categories, wanted)[codes])
    s_obj, in_obj = best_of(3, lambda: evaluate_columns({"country": condition["country"]}, units))
    lines.append(f"  {'country $in on a U array (np.isin)':<66}{ms(s_u):>11}  vs {ms(s_obj)} on the object array")
    lines.append(f"  {'country $in on dictionary codes (categories: np.isin, then [codes])':<66}{ms(s_cat):>11}"
                 f"  ({len(categories)} categories; same mask: {bool(np.array_equal(in_cat, in_obj))})")
    return lines


# ====================================================================== end to end


LAUNCHER = r"""
import json, os, subprocess, sys, time
with open(sys.argv[1], "wb") as err:
    t = time.perf_counter()
    child = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=err)
    _, status, usage = os.wait4(child.pid, 0)
print(json.dumps([time.perf_counter() - t, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status)]))
"""


def run_measured(cmd: list[str], cwd: Path) -> tuple[float, int, int, str]:
    """Run ``cmd``: (wall seconds, peak resident memory in bytes, exit code, stderr). stdout is discarded.

    The command is started by a small Python process, not by this one: a child's peak RSS (``ru_maxrss``)
    counts the memory of the process it was forked from until it runs the command, and this benchmark
    holds a million units.
    """
    errors = cwd / "stderr.txt"
    launched = subprocess.run([sys.executable, "-c", LAUNCHER, str(errors), *cmd], capture_output=True, text=True,
                              cwd=cwd, check=True)
    seconds, peak, code = json.loads(launched.stdout)
    return seconds, peak, code, errors.read_text(encoding="utf-8", errors="replace")


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def write_units(tmp: Path, units, name: str) -> tuple[Path, Path, str]:
    """The units as a Parquet file and a JSON Lines file (both written by DuckDB), and the Parquet schema."""
    import duckdb

    cols = units.columns
    parquet, jsonl = tmp / f"{name}.parquet", tmp / f"{name}.jsonl"
    con = duckdb.connect()
    try:
        con.register("units", {"user_id": cols["user_id"].astype(object), "country": cols["country"],
                               "signup_days": cols["signup_days"], "plan": cols["plan"]})
        select = """SELECT user_id, country,
                           CASE WHEN isnan(signup_days) THEN NULL ELSE CAST(signup_days AS INTEGER) END AS signup_days,
                           plan
                    FROM units"""
        con.execute(f"COPY ({select}) TO '{parquet}' (FORMAT parquet)")
        con.execute(f"COPY (SELECT * FROM read_parquet('{parquet}')) TO '{jsonl}' (FORMAT json)")
        schema = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{parquet}')").fetchall()
    finally:
        con.close()
    return parquet, jsonl, ", ".join(f"{r[0]} {r[1]}" for r in schema)


def read_output(path: Path) -> dict[str, np.ndarray]:
    import duckdb

    reader = f"read_parquet('{path}')" if path.suffix == ".parquet" else f"read_csv('{path}', all_varchar=true)"
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT user_id, variant, CAST(bucket AS DOUBLE) AS bucket FROM {reader}").fetchnumpy()
    finally:
        con.close()


def end_to_end(tmp: Path, spec_path: Path, plan: Plan, units, repeat: int,
               ref_rate: float) -> tuple[list[str], float]:
    """`expc assign` as a subprocess on the units as Parquet and as JSON Lines, its steps in-process, its output
    checked; returns the lines to print and the JSON Lines units/s."""
    from expc import compile_file
    from expc.runtime.assign import assign, output_columns
    from expc.runtime.tables import open_units, write_assignment_chunks

    lines: list[str] = []
    n = len(units)
    t = time.perf_counter()
    parquet, jsonl, schema = write_units(tmp, units, "units")
    lines.append(f"wrote {n:,} units with DuckDB in {time.perf_counter() - t:.2f} s: units.parquet "
                 f"({mib(parquet.stat().st_size)}; {schema}) and units.jsonl ({mib(jsonl.stat().st_size)})")
    names = np.array([v.id for v in plan.variants] + [""], dtype=object)
    want = assign(plan, units)
    want_names = names[want.variant]
    expc_bin = VENV_BIN / "expc"
    rates: dict[str, float] = {}
    steps: dict[str, float] = {}

    def step(label: str, fn: Callable[..., Any], *args: Any) -> Any:
        t = time.perf_counter()
        value = fn(*args)
        steps[label] = steps.get(label, 0.0) + time.perf_counter() - t
        return value

    for source, out_name in ((parquet, "assignments.parquet"), (jsonl, "assignments.csv")):
        out = tmp / out_name
        cmd = [str(expc_bin), "assign", str(spec_path), "--units", str(source), "-o", str(out)]
        # The CLI as a subprocess and the same steps in this process, in alternating rounds (so that both see
        # the machine alike); the best CLI run and the shortest time of each in-process step are kept.
        runs, peaks, summary = [], [], ""
        best_steps: dict[str, float] = {}
        for _ in range(repeat):
            seconds, peak, code, summary = run_measured(cmd, tmp)
            if code:
                lines.append(f"`expc assign` failed (exit {code}): {summary.strip()}")
                return lines, 0.0
            runs.append(seconds)
            peaks.append(peak)
            steps.clear()
            plan2 = step("compile the spec (expc.compile_file)", compile_file, spec_path)
            unit = plan2.assignment.unit
            scan = open_units(source, plan2.attributes, unit)
            chunks = step("open_units: read, type and check the whole file (DuckDB SQL)", scan.__enter__)
            tables = []
            try:
                pieces = iter(chunks)
                while True:
                    chunk = step("fetch the chunks (numpy columns, by row range)", next, pieces, None)
                    if chunk is None:
                        break
                    result = step("assign the chunks", assign, plan2, chunk)
                    tables.append(step("output columns", output_columns, plan2, chunk, result))
            finally:
                scan.__exit__(None, None, None)
            step(f"write_assignment_chunks ({out.suffix[1:]}, atomic)",
                 write_assignment_chunks, tmp / f"inprocess{out.suffix}", iter(tables))
            tables.clear()
            for label, s in steps.items():
                best_steps[label] = min(best_steps.get(label, math.inf), s)
        cli = min(runs)
        rates[source.suffix] = rate(n, cli)
        lines.append(f"`expc assign SPEC --units {source.name} -o {out_name}` (subprocess, the venv's expc), best of "
                     f"{repeat}: {cli:.2f} s ({fmt_rate(rate(n, cli))} units/s end to end, "
                     f"{rate(n, cli) / ref_rate:.1f}x the SDK's bare hash-and-bucket rate); peak RSS "
                     f"{mib(max(peaks))}; runs: " + ", ".join(f"{r:.2f} s" for r in runs))
        for line in summary.strip().splitlines():
            lines.append(f"    | {line}")
        inproc = sum(best_steps.values())
        lines.append(f"  the same steps in this process (best of {repeat} each, alternating with the CLI runs): "
                     f"{inproc:.2f} s, shares of the CLI's {cli:.2f} s:")
        for label, s in best_steps.items():
            lines.append(f"    {label:<72}{s:>7.2f} s{100 * s / cli:>6.0f}%")
        noise = "  (below zero: the machine's load changed between runs)" if cli < inproc else ""
        rest = "start-up, imports and the rest (CLI best minus the steps above)"
        lines.append(f"    {rest:<72}{cli - inproc:>7.2f} s{100 * (cli - inproc) / cli:>6.0f}%{noise}")
        got = read_output(out)
        got_variant = np.ma.getdata(got["variant"]).astype(object)
        got_variant[np.ma.getmaskarray(got["variant"]) | np.equal(got_variant, None).astype(bool)] = ""
        got_bucket = np.ma.getdata(got["bucket"]).astype(float)
        got_bucket[np.ma.getmaskarray(got["bucket"])] = np.nan
        same_ids = np.array_equal(np.ma.getdata(got["user_id"]).astype(str), units.columns["user_id"])
        diff = int(np.sum(got_variant != want_names)) + int(np.sum(~same_bucket(got_bucket, want.bucket)))
        lines.append(f"  the CLI's output against the in-memory assignment: ids in the same order: {same_ids}; "
                     f"rows whose variant or bucket differ: {diff}")
    startup, imports = [0.0] * 3, [0.0] * 3
    for i in range(3):
        t = time.perf_counter()
        subprocess.run([str(expc_bin), "--help"], capture_output=True, cwd=tmp)
        startup[i] = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import numpy, duckdb"], capture_output=True, cwd=tmp)
        imports[i] = time.perf_counter() - t
    lines.append(f"(for scale, best of 3: `expc --help` takes {min(startup):.2f} s; "
                 f"`python -c 'import numpy, duckdb'` {min(imports):.2f} s)")
    return lines, rates.get(".jsonl", 0.0)


# ====================================================================== Spark


def spark_rows(tmp: Path, spec_path: Path, plan: Plan, units, repeat: int = 2) -> list[str]:
    """``assign_spark`` in local mode against ``assign_file`` on the units as Parquet and JSON Lines (seconds,
    outputs compared), then ``expc assign --engine spark`` once as a subprocess; the lines to print."""
    from expc.runtime.assign import assign_file
    from expc.runtime.engines import EngineError
    from expc.runtime.tables import write_assignment_chunks

    lines: list[str] = []
    n = len(units)
    parquet, jsonl = tmp / "units.parquet", tmp / "units.jsonl"
    if not (parquet.exists() and jsonl.exists()):
        parquet, jsonl, _ = write_units(tmp, units, "units")
    try:
        t = time.perf_counter()
        from expc.runtime.engines.spark import session

        spark = session()
        started = time.perf_counter() - t
    except EngineError as exc:
        return [f"skipped: {exc}"]
    from expc.runtime.assign_spark import assign_spark

    master = spark.sparkContext.master
    lines.append(f"Spark {spark.version} in {master} on {os.cpu_count()} CPUs: the session started in {started:.1f} s "
                 "(once per process)")
    rows: list[tuple[str, float]] = []
    for source in (parquet, jsonl):
        out = tmp / "spark-out.parquet"
        folder = tmp / "spark-out-folder.parquet"

        def embedded(source: Path = source) -> Any:
            return assign_file(plan, source, lambda tables: write_assignment_chunks(tmp / "embedded.parquet", tables))

        def on_spark(source: Path = source, out: Path = out) -> Any:
            return assign_spark(plan, source, lambda tables: write_assignment_chunks(out, tables), spark=spark)

        def to_folder(source: Path = source, folder: Path = folder) -> Any:
            shutil.rmtree(folder, ignore_errors=True)
            return assign_spark(plan, source, folder=f"{folder}/", spark=spark)

        t = time.perf_counter()
        on_spark()  # the first run starts the Python workers
        warm = time.perf_counter() - t
        t_embedded, want = best_of(repeat, embedded)
        t_spark, got = best_of(repeat, on_spark)
        t_folder, _ = best_of(repeat, to_folder)
        same_counts = got == want
        a, b = read_output(out), read_output(tmp / "embedded.parquet")
        diff = sum(int(np.sum(np.ma.getdata(a[c]).astype(str) != np.ma.getdata(b[c]).astype(str)))
                   for c in ("user_id", "variant")) + int(np.sum(~same_bucket(np.ma.filled(a["bucket"], np.nan),
                                                                              np.ma.filled(b["bucket"], np.nan))))
        import duckdb

        written = duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/*.parquet')").fetchall()[0][0]
        rows += [(f"embedded (assign_file), {source.name} -> .parquet", t_embedded),
                 (f"Spark local, {source.name} -> .parquet (collected)", t_spark),
                 (f"Spark local, {source.name} -> folder (part files)", t_folder)]
        lines.append(f"{source.name}: Spark's first run (Python workers starting) {warm:.2f} s; counts equal to the "
                     f"embedded path: {same_counts}; rows whose id, variant or bucket differ: {diff}; folder rows "
                     f"written: {written:,}")
    lines.append(f"{'':2}{'in process, best of ' + str(repeat):<56}{'units':>11}{'seconds':>10}{'units/s':>14}")
    for label, seconds in rows:
        lines.append(f"{'':2}{label:<56}{n:>11,}{seconds:>10.2f}{fmt_rate(rate(n, seconds)):>14}")
    out = tmp / "cli-spark.csv"
    seconds, peak, code, summary = run_measured(
        [str(VENV_BIN / "expc"), "assign", str(spec_path), "--units", str(jsonl), "-o", str(out), "--engine",
         "spark"], tmp)
    lines.append(f"`expc assign SPEC --units {jsonl.name} -o cli-spark.csv --engine spark` (subprocess, one run, the "
                 f"JVM's start included): {seconds:.2f} s ({fmt_rate(rate(n, seconds))} units/s), exit {code}, "
                 f"peak RSS of the Python process {mib(peak)} (the JVM's not counted)")
    return lines


# ====================================================================== memory at scale

UNITS_SQL = """
SELECT CASE WHEN hash(i, 1) % 100 < 15
            THEN regexp_replace(md5(CAST(i AS VARCHAR)), '^(.{{8}})(.{{4}})(.{{4}})(.{{4}})(.{{12}})$',
                                '\\1-\\2-\\3-\\4-\\5')
            ELSE 'user-' || lpad(CAST((i * 7919 + 13) % 1000000000000 AS VARCHAR), 12, '0') END AS user_id,
       (['US', 'CA', 'GB', 'DE', 'FR', 'NL', 'IN', 'BR', 'JP', 'AU', 'MX', 'ES', 'IT', NULL])
           [1 + CAST(hash(i, 2) % 14 AS BIGINT)] AS country,
       CASE WHEN hash(i, 3) % 100 = 0 THEN NULL
            ELSE CAST(floor(-40 * ln(1 - CAST(hash(i, 4) % 1000000 AS DOUBLE) / 1000000)) AS INTEGER) END
           AS signup_days,
       (['free', 'free', 'pro', 'team', 'enterprise'])[1 + CAST(hash(i, 5) % 5 AS BIGINT)] AS plan
FROM range({n}) t(i)
"""


def big_units(tmp: Path, n: int) -> tuple[Path, Path]:
    """n units as Parquet and as JSON Lines, generated by DuckDB in SQL (bounded memory, deterministic): ids
    ``user-`` + 12 digits (a bijection of the row number, so distinct) or, for about 15%, the row number's MD5
    as a UUID; countries, days since sign-up and plans as in the in-memory units."""
    import duckdb

    parquet, jsonl = tmp / f"units-{n}.parquet", tmp / f"units-{n}.jsonl"
    con = duckdb.connect(config={"memory_limit": "2GB", "temp_directory": str(tmp / "duckdb-spill")})
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"COPY ({UNITS_SQL.format(n=n)}) TO '{parquet}' (FORMAT parquet)")
        con.execute(f"COPY (SELECT * FROM read_parquet('{parquet}')) TO '{jsonl}' (FORMAT json)")
    finally:
        con.close()
    return parquet, jsonl


def expc_before(tmp: Path, rev: str) -> tuple[list[str], Callable[[], None]]:
    """The command line of expc as it was at ``rev``: a ``git worktree`` of that commit with its own venv
    (no pip: the dependencies come from this venv through a .pth file, the worktree's packages first);
    and a function that removes the worktree."""
    import sysconfig

    worktree = tmp / "before"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), rev], check=True,
                   capture_output=True, text=True)

    def remove() -> None:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], capture_output=True)

    try:
        # pyproject.toml maps expc.compiler to compiler/ and expc.runtime to runtime/: the same, as links
        for package in ("compiler", "runtime"):
            (worktree / "expc" / package).symlink_to(Path("..") / package)
        venv = tmp / "before-venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
        python = venv / "bin" / "python"
        purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        Path(purelib, "00-expc-before.pth").write_text(f"{worktree}\n", encoding="utf-8")
        Path(purelib, "01-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
        found = subprocess.run([str(python), "-c", "import expc.runtime.tables as t; print(t.__file__)"],
                               capture_output=True, text=True, cwd=tmp)  # not from here: ./expc is this checkout
        where = found.stdout.strip() or found.stderr.strip()
        if not where.startswith(str(worktree)):
            raise RuntimeError(f"the 'before' venv imports expc from {where}, not from {worktree}")
    except BaseException:
        remove()
        raise
    return [str(python), "-m", "expc"], remove


def mem_available() -> int:
    """MemAvailable from /proc/meminfo, in bytes (0 when unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_at_scale(tmp: Path, spec_path: Path, n: int, before: str | None) -> list[str]:
    """Peak RSS and wall time of `expc assign` on n units (Parquet and JSON Lines in, Parquet out), once each,
    for this checkout and, with ``before``, for that commit."""
    import duckdb

    lines: list[str] = []
    t = time.perf_counter()
    parquet, jsonl = big_units(tmp, n)
    lines.append(f"generated {n:,} units with DuckDB in {time.perf_counter() - t:.1f} s: {parquet.name} "
                 f"({mib(parquet.stat().st_size)}), {jsonl.name} ({mib(jsonl.stat().st_size)}); "
                 f"memory available: {mib(mem_available())}")
    versions: list[tuple[str, list[str]]] = []
    remove = None
    if before:
        if mem_available() < 16 * 2**30:
            lines.append(f"  skipped the run of {before}: less than 16 GiB available (it held the whole table)")
        else:
            command, remove = expc_before(tmp, before)
            rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", before], capture_output=True,
                                 text=True).stdout.strip()
            versions.append((f"before ({rev})", command))
    versions.append(("after (this checkout)", [str(VENV_BIN / "expc")]))
    rows = []
    try:
        for source in (parquet, jsonl):
            for label, command in versions:
                out = tmp / "big-assignments.parquet"
                cmd = [*command, "assign", str(spec_path), "--units", str(source), "-o", str(out)]
                seconds, peak, code, err = run_measured(cmd, tmp)
                if code:
                    rows.append((source.suffix[1:], label, seconds, peak, f"exit {code}: {err.strip()[-200:]}"))
                    continue
                con = duckdb.connect()
                try:
                    written = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
                finally:
                    con.close()
                out.unlink()
                rows.append((source.suffix[1:], label, seconds, peak,
                             f"{written:,} rows written; {peak / source.stat().st_size:.1f}x the input's size"))
    finally:
        if remove is not None:
            remove()
    lines.append(f"  {'input':<8}{'code':<24}{'seconds':>9}{'peak RSS':>12}  notes")
    for kind, label, seconds, peak, note in rows:
        lines.append(f"  {kind:<8}{label:<24}{seconds:>9.1f}{mib(peak):>12}  {note}")
    return lines


# ====================================================================== main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="units to assign in memory (default 1,000,000)")
    parser.add_argument("--sample", type=int, default=50_000,
                        help="units for the GrowthBook SDK and bare-function timings (default 50,000)")
    parser.add_argument("--e2e-n", type=int, default=1_000_000,
                        help="rows of the Parquet file for `expc assign` end to end (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=20261128, help="seed of the generator (default 20261128)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="rounds of the expc and bare-function timings, best kept (default 5)")
    parser.add_argument("--no-planout", action="store_true", help="skip PlanOut (no pip install)")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end CLI runs")
    parser.add_argument("--memory-n", type=int, default=10_000_000,
                        help="units for the peak-memory runs of `expc assign` (default 10,000,000)")
    parser.add_argument("--before", metavar="REV",
                        help="also run the peak-memory runs with expc as it was at this git commit (a worktree)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--no-spark", action="store_true", help="skip `expc assign --engine spark` (Spark local)")
    args = parser.parse_args()

    import growthbook
    from growthbook.core import getBucketRanges

    import expc
    from expc.compiler.plan import Plan
    from expc.runtime import assign as assign_module
    from expc.runtime.assign import REASONS, assign
    from expc.runtime.export import growthbook_payload
    from expc.runtime.hashing import gbhash_arrays
    from expc.runtime.units import Units

    load_before = os.getloadavg()
    n, sample = args.n, min(args.sample, args.n)
    print("=" * 100)
    print(f"expc assign benchmark: {platform.python_implementation()} {platform.python_version()}, "
          f"numpy {np.__version__}, growthbook {getattr(growthbook, '__version__', '?')}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}")
    print(f"load average before: {' / '.join(f'{x:.2f}' for x in load_before)} (1 / 5 / 15 min)")

    with tempfile.TemporaryDirectory(prefix="expc-bench-assign-") as tmp_name:
        tmp = Path(tmp_name)
        spec_path = tmp / "checkout-banner.yaml"
        spec_path.write_text(SPEC.format(schema=ROOT / "schemas" / "expc-spec.schema.json"), encoding="utf-8")
        plan = expc.compile_file(spec_path)
        asg = plan.assignment
        variant_ids = [v.id for v in plan.variants]
        ranges_expc = [tuple(v.bucket_range) for v in plan.variants]
        weights = [v.weight for v in plan.variants]
        ranges_gb = getBucketRanges(len(weights), asg.coverage, weights)
        layer = asg.namespace
        print(f"spec: audience {asg.condition}; variants {dict(zip(variant_ids, weights))}; "
              f"coverage {asg.coverage}; layer {[layer.id, layer.start, layer.end] if layer else None}; "
              f"hash version {asg.hash_version}")
        print(f"  bucket ranges: expc {[tuple(round(x, 4) for x in r) for r in ranges_expc]}, "
              f"GrowthBook getBucketRanges {[tuple(round(x, 4) for x in r) for r in ranges_gb]}")

        t = time.perf_counter()
        units = make_units(plan, n, args.seed)
        ids = units.columns["user_id"]
        lengths = np.strings.str_len(ids)
        print(f"generated {n:,} units in {time.perf_counter() - t:.1f} s (seed {args.seed}); ids: "
              f"{np.mean(lengths == 17):.0%} 'user-' + 12 digits, {np.mean(lengths == 36):.0%} UUIDs, all distinct, "
              f"e.g. {str(ids[0])!r}, {str(ids[np.argmax(lengths)])!r}")
        print(f"  in-memory table: ids as a numpy {ids.dtype} array (the fast in-memory form of expc.runtime.units), "
              f"{ids.nbytes / 2**20:.0f} MiB; country and plan as object arrays (str or None), signup_days float64 "
              f"(NaN = null)")

        rows: list[tuple[str, int, float, str]] = []  # method, units, seconds, note

        rng = np.random.default_rng(args.seed + 1)
        pick = np.sort(rng.choice(n, size=sample, replace=False))
        attrs = attribute_dicts(units, pick)
        sample_ids = [a["user_id"] for a in attrs]

        # ---------------------------------------------------------------- expc and the bare functions
        # Timed in interleaved rounds (each method once per round, best round kept), so that a burst of
        # other work on the machine hits every method alike rather than one of them.
        one_thread = functools.partial(gbhash_arrays, threads=1)

        def assign_one_thread():
            saved = assign_module.gbhash_arrays
            assign_module.gbhash_arrays = one_thread
            try:
                return assign(plan, units)
            finally:
                assign_module.gbhash_arrays = saved

        held = {"object ids": Units(dict(units.columns, user_id=ids.astype(object)), units.types)}
        everyone = plan.to_dict()  # the same experiment without its audience
        everyone["assignment"].update(condition={}, audience=None)
        plan_all = Plan.from_dict(everyone)
        methods: list[tuple[str, int, Callable[[], Any]]] = [
            ("expc assign, in memory (ids 'U')", n, lambda: assign(plan, units)),
            ("expc assign, one hashing thread", n, assign_one_thread),
            ("expc assign, ids as object array", n, lambda: assign(plan, held["object ids"])),
            ("expc assign, no audience (all hashed)", n, lambda: assign(plan_all, units)),
            ("GrowthBook bare: + evalCondition", sample, lambda: bare(sample_ids, attrs, asg, ranges_gb)),
            ("GrowthBook bare: hash and bucket", sample, lambda: bare(sample_ids, None, asg, ranges_gb)),
        ]
        best = {name: math.inf for name, _, _ in methods}
        outputs: dict[str, Any] = {}
        gc.collect()
        for _ in range(args.repeat):
            for name, _, fn in methods:
                t = time.perf_counter()
                outputs[name] = fn()
                best[name] = min(best[name], time.perf_counter() - t)
        held.clear()
        t_expc, t_one, t_obj, t_all, t_bare_cond, t_bare = (best[name] for name, _, _ in methods)
        result, r_one, r_obj, r_all = (outputs[name] for name, _, _ in methods[:4])
        (bv_cond, bb_cond), (bv_all, bb_all) = outputs[methods[4][0]], outputs[methods[5][0]]
        counts = result.counts(variant_ids)
        print(f"expc assign: {counts['assigned']} assigned; excluded {counts['excluded']}")
        same_variants = all(np.array_equal(r.variant, result.variant) for r in (r_one, r_obj))
        print(f"  the one-thread and object-id runs give the same variants: {same_variants}")
        print(f"  timed in {args.repeat} interleaved rounds, best round per method: "
              + "; ".join(f"{name} {best[name]:.3f} s" for name, _, _ in methods))
        rows += [(name, units_n, best[name], "" if units_n == n else "sample") for name, units_n, _ in methods[:4]]

        # ---------------------------------------------------------------- GrowthBook SDK
        payload = growthbook_payload(plan)
        features, key = payload["features"], plan.experiment.id
        index = {v: i for i, v in enumerate(variant_ids)}

        # destroy() clears the attribute dict it was given (in place): each SDK run gets its own copies
        gc.collect()
        own = [dict(a) for a in attrs]
        t = time.perf_counter()
        sdk_results = sdk_new_instance(features, key, own)
        t_sdk_new = time.perf_counter() - t
        rows.append(("GrowthBook SDK: new instance per user", sample, t_sdk_new, "sample"))
        sub = [dict(a) for a in attrs[: min(len(attrs), 10_000)]]
        t = time.perf_counter()
        sdk_new_instance(features, key, sub, destroy=False)
        t_sdk_nodestroy = time.perf_counter() - t
        own = [dict(a) for a in attrs]
        t = time.perf_counter()
        sdk_reused_results = sdk_reused(features, key, own)
        t_sdk_reuse = time.perf_counter() - t
        rows.append(("GrowthBook SDK: one instance, set_attributes", sample, t_sdk_reuse, "sample"))
        rows += [(name, units_n, best[name], "sample") for name, units_n, _ in methods[4:]]

        from growthbook.core import getBucketRanges as gbr
        t_ranges, _ = best_of(3, lambda: [gbr(3, asg.coverage, weights) for _ in range(sample)])

        # ---------------------------------------------------------------- PlanOut
        po = None
        if not args.no_planout:
            po_n = min(sample, 20_000)
            po = planout(tmp, sample_ids[:po_n], min(args.repeat, 2))
            if "seconds" in po:
                label = "PlanOut, with a shim" if po.get("shim") else "PlanOut"
                rows.append((label, po["units"], po["seconds"], "sample"))

        # ---------------------------------------------------------------- agreement
        print()
        print("agreement:")
        ev, eb = result.variant[pick], result.bucket[pick]
        inside = ev >= 0
        sdk_runs = (("new instance per user", sdk_results), ("one instance, set_attributes", sdk_reused_results))
        for label, res in sdk_runs:
            sv, sb = sdk_outcome(res, index)
            dv = int(np.sum(sv != ev))
            db = int(np.sum(~same_bucket(np.where(inside, eb, np.nan), sb)))
            print(f"  expc vs GrowthBook SDK ({label}) on the {sample:,}-unit sample: "
                  f"{dv} variant disagreements, {db} bucket disagreements "
                  f"({int(np.sum(sv >= 0)):,} in the experiment per the SDK)")
        dv = int(np.sum(np.array(bv_cond) != ev)) + int(np.sum(~same_bucket(np.array(bb_cond), eb)))
        dv_all = (int(np.sum(np.array(bv_all) != r_all.variant[pick]))
                  + int(np.sum(~same_bucket(np.array(bb_all), r_all.bucket[pick]))))
        print(f"  expc vs bare functions on the sample: {dv} disagreements with the audience, "
              f"{dv_all} without (expc with no audience)")

        per_unit = t_bare_cond / sample
        full = n if per_unit * n <= FULL_CHECK_BUDGET else max(sample, int(FULL_CHECK_BUDGET / per_unit))
        check_rows = np.arange(n) if full == n else np.sort(rng.choice(n, size=full, replace=False))
        mismatches, checked, spent = 0, 0, 0.0
        step = 100_000
        for lo in range(0, full, step):
            chunk = check_rows[lo:lo + step]
            chunk_attrs = attribute_dicts(units, chunk)
            chunk_ids = [a["user_id"] for a in chunk_attrs]
            t = time.perf_counter()
            v, b = bare(chunk_ids, chunk_attrs, asg, ranges_gb)
            spent += time.perf_counter() - t
            mismatches += int(np.sum(np.array(v) != result.variant[chunk]))
            mismatches += int(np.sum(~same_bucket(np.array(b), result.bucket[chunk])))
            checked += len(chunk)
        scope = "all" if full == n else f"a random sample of {full:,} of the"
        print(f"  expc vs bare functions (with evalCondition) on {scope} {n:,} units: {mismatches} disagreements "
              f"(variant or bucket); the bare loop took {spent:.1f} s ({fmt_rate(rate(checked, spent))} units/s)")

        # ---------------------------------------------------------------- table
        ref = rate(sample, t_bare)
        print()
        print(f"{'method':<46}{'units':>11}{'seconds':>10}{'units/s':>14}{'ratio':>10}")
        print("-" * 91)
        for method, units_n, seconds, note in rows:
            r = rate(units_n, seconds)
            star = " *" if note == "sample" else ""
            print(f"{method + star:<46}{units_n:>11,}{seconds:>10.3f}{fmt_rate(r):>14}{r / ref:>9.1f}x")
        if po is not None and "seconds" not in po:
            print(f"{'PlanOut':<46}{'could not run':>45}")
        print("-" * 91)
        print("* on a sample, rate extrapolated. ratio = units/s / that of GrowthBook's bare hash-and-bucket functions "
              "(inNamespace + gbhash + chooseVariation, ranges from getBucketRanges computed once, one core).")
        print(f"  expc hashes only the audience ({np.mean(result.reason != REASONS.index('not in the audience')):.1%} "
              f"of units: the ids that pass the condition) and uses {os.cpu_count()} threads for the hashing; "
              "the Python loops use one core.")
        print(f"  GrowthBook SDK per user: {1e6 * t_sdk_new / sample:.1f} us with a new instance and destroy() "
              f"({1e6 * t_sdk_nodestroy / len(sub):.1f} us without destroy(), on {len(sub):,} users), "
              f"{1e6 * t_sdk_reuse / sample:.1f} us reusing one instance. Bare: {1e6 * t_bare / sample:.2f} us "
              f"hash and bucket, {1e6 * t_bare_cond / sample:.2f} us with evalCondition; getBucketRanges per unit "
              f"would add {1e6 * t_ranges / sample:.2f} us.")
        if po is not None:
            if po.get("notes"):
                print(f"  PlanOut {po.get('version', '')} as pip installs it could not run: " + "; ".join(po["notes"]))
            if "error" in po:
                print(f"  PlanOut could not run: {po['error']}")
            elif po.get("shim"):
                print(f"  PlanOut timed with `collections.MutableMapping = collections.abc.MutableMapping` before "
                      f"import (and six installed): WeightedChoice over the 3 variants (SHA-1 per unit), no audience, "
                      f"no layer, exposure logging off; its assignments differ from GrowthBook's by design. "
                      f"Counts: {po.get('counts')}")

        r_expc = rate(n, t_expc)
        ratio = r_expc / ref
        print()
        print("goals:")
        print(f"  expc in memory >= {GOAL_RATE:,} units/s: {fmt_rate(r_expc)} units/s -> "
              f"{'PASS' if r_expc >= GOAL_RATE else 'FAIL'}")
        print(f"  expc >= {GOAL_RATIO:.0f}x the SDK's bare hash-and-bucket rate: {ratio:.1f}x -> "
              f"{'PASS' if ratio >= GOAL_RATIO else 'FAIL'}")
        print(f"  like for like (not goals): expc with no audience (every unit hashed) / bare hash and bucket: "
              f"{rate(n, t_all) / ref:.1f}x; expc / bare with evalCondition: "
              f"{r_expc / rate(sample, t_bare_cond):.1f}x; "
              f"expc one hashing thread / bare hash and bucket: {rate(n, t_one) / ref:.1f}x")

        # ---------------------------------------------------------------- end to end
        if not args.no_e2e:
            print()
            print("end to end, `expc assign` on a Parquet and a JSON Lines file:")
            e2e_units = units if args.e2e_n == n else make_units(plan, args.e2e_n, args.seed + 2)
            e2e_lines, jsonl_rate = end_to_end(tmp, spec_path, plan, e2e_units, 3, ref)
            for line in e2e_lines:
                print("  " + line)
            print(f"  goal: the whole process on {len(e2e_units):,} JSON Lines units >= {GOAL_E2E_RATIO:.0f}x the "
                  f"SDK's in-process hash-and-bucket rate: {fmt_rate(jsonl_rate)} units/s = "
                  f"{jsonl_rate / ref:.1f}x -> {'PASS' if jsonl_rate >= GOAL_E2E_RATIO * ref else 'FAIL'}")
            del e2e_units

        if not args.no_spark:
            print()
            print(f"Spark: `expc assign --engine spark` on the same {args.e2e_n:,} units, local mode against the "
                  "embedded path:")
            spark_units = units if args.e2e_n == n else make_units(plan, args.e2e_n, args.seed + 2)
            for line in spark_rows(tmp, spec_path, plan, spark_units):
                print("  " + line)
            del spark_units

        if not args.no_memory:
            print()
            print(f"peak memory, `expc assign` on {args.memory_n:,} units (Parquet out), one run each:")
            for line in memory_at_scale(tmp, spec_path, args.memory_n, args.before):
                print("  " + line)

        # ---------------------------------------------------------------- profile
        print()
        print("where expc's assign spends its time:")
        for line in profile_assign(plan, units, args.repeat):
            print("  " + line)

    load_after = os.getloadavg()
    print()
    print(f"load average after: {' / '.join(f'{x:.2f}' for x in load_after)} (1 / 5 / 15 min) on "
          f"{os.cpu_count()} CPUs (other work on the machine skews every figure above)")
    print("=" * 100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
