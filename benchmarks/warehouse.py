#!/usr/bin/env python
"""Benchmark: the reduction on the embedded DuckDB against Apache Spark in local mode, on the same Parquet data.

Run from the repository root, in the project's virtualenv (PySpark and Java 17 for the Spark side)::

    .venv/bin/python benchmarks/warehouse.py                          # 1M, 10M and 50M events: 15-25 minutes
    .venv/bin/python benchmarks/warehouse.py --sizes 1000000          # one size, about a minute
    .venv/bin/python benchmarks/warehouse.py --sizes 1000000,10000000 --looks 3 --repeat 2

For each size (event rows; exposures are one unit per ten events, 5% of them
exposed twice):

1. Generates exposures and events as Parquet with DuckDB SQL
   (``benchmarks/analyze.py``'s ``generate()``: two arms, 5% of events from
   units never exposed, events from a day before to 15 days after exposure)
   and compiles analyze.py's spec (two proportions and a mean, 7- and 14-day
   windows).
2. Runs ``expc.runtime.stats.reduce.reduce(plan, exposures, events,
   engine=...)`` on each engine, each engine in a child process of its own so
   that its peak memory is its own: DuckDB in memory, then Spark (``local[*]``
   unless ``EXPC_SPARK_MASTER``, ``EXPC_SPARK_REMOTE`` or ``EXPC_SPARK_CONF``
   say otherwise; the children inherit the environment). Best of ``--repeat``
   runs. Spark's session start (JVM, PySpark import) is timed apart, before
   the runs. ``--looks K`` also times a run's K looks through
   ``reducer(..., repeated=True)`` (the first reads and caches the data).
3. Reports seconds, input rows (exposures + events) per second, CPU seconds
   during the runs (Spark: Python and JVM), peak memory (the child's
   ``ru_maxrss``; for Spark also the JVM's ``VmHWM`` from ``/proc``, the JVMs
   being the child's descendants), the ratio Spark / DuckDB, and the bytes
   that leave the engine: the JSON of the query's result (column names and
   one row per arm), all that the statistics need.
4. Checks that the engines agree: every count column equal, every sum equal
   to 1e-9 relative, the first and last exposure times equal.

Writes only to a temporary folder (deleted at the end unless --keep) and exits 0: the figures are for reading.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from analyze import BASE, SPEC, generate, load  # noqa: E402  (a sibling script: the same data and spec)

ENGINES = ("duckdb", "spark")
DEFAULT_SIZES = (1_000_000, 10_000_000, 50_000_000)
TOLERANCE = 1e-9


# ====================================================================== child: one engine, one size


def _descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (children, grandchildren, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _jvms() -> list[dict[str, Any]]:
    """The JVMs among this process's descendants: pid, peak and current RSS (bytes), CPU seconds."""
    out = []
    for pid in _descendants(os.getpid()):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Name", "").strip() != "java":
            continue
        kib = {k: int(fields[k].split()[0]) for k in ("VmHWM", "VmRSS") if k in fields}
        out.append({"pid": pid, "peak": kib.get("VmHWM", 0) * 1024, "rss": kib.get("VmRSS", 0) * 1024,
                    "cpu": (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")})
    return out


def _cpu() -> float:
    """CPU seconds of this process and its JVMs so far."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime + sum(j["cpu"] for j in _jvms())


def child(engine_name: str, spec: Path, exposures: Path, events: Path, repeat: int, looks: int) -> dict[str, Any]:
    """Time the reduction on one engine; everything the parent prints, as a dict."""
    import expc
    from expc.runtime.engines import open_engine
    from expc.runtime.stats.reduce import reduce, reducer

    plan = expc.compile_file(spec)
    t = time.perf_counter()
    first = open_engine(engine_name)  # Spark: the session (JVM start, PySpark import); DuckDB: a connection
    start = time.perf_counter() - t
    conf = {}
    if engine_name == "spark":
        spark = first.spark  # type: ignore[attr-defined]
        conf = {k: spark.sparkContext.getConf().get(k, default) for k, default in
                (("spark.master", "?"), ("spark.driver.memory", "1g (default)"),
                 ("spark.sql.shuffle.partitions", "?"))}
        conf["spark"] = spark.version
    first.close()

    result: dict[str, Any] = {}

    def opened() -> Any:
        """An engine whose query results are kept: the rows that leave it."""
        eng = open_engine(engine_name)
        run_query = eng.query

        def query(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
            columns, rows = run_query(sql)
            result["columns"], result["rows"] = columns, rows
            return columns, rows

        eng.query = query  # type: ignore[method-assign]
        return eng

    times, cpus = [], []
    for _ in range(repeat):
        eng = opened()
        try:
            cpu, t = _cpu(), time.perf_counter()
            red = reduce(plan, exposures, events, engine=eng)
            times.append(time.perf_counter() - t)
            cpus.append(_cpu() - cpu)
        finally:
            eng.close()
    rows = [[v if isinstance(v, (int, float)) or v is None else str(v) for v in r] for r in result["rows"]]
    shipped = json.dumps({"columns": result["columns"], "rows": rows})

    look_times = []
    if looks:
        base = datetime.fromisoformat(BASE.split("'")[1])  # the data's first exposure; events end by day 30
        cut_offs = [(base + timedelta(days=30 * (i + 1) / looks)).isoformat() + "Z" for i in range(looks)]
        eng = opened()
        try:
            with reducer(plan, exposures, events, engine=eng, repeated=True) as reduce_at:
                for as_of in cut_offs:
                    t = time.perf_counter()
                    reduce_at(as_of)
                    look_times.append(time.perf_counter() - t)
        finally:
            eng.close()

    jvms = _jvms()
    return {
        "engine": engine_name, "start": start, "times": times, "cpus": cpus, "looks": look_times, "conf": conf,
        "peak_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_jvm": sum(j["peak"] for j in jvms), "jvms": len(jvms),
        "columns": result["columns"], "rows": rows, "shipped_bytes": len(shipped.encode()),
        "units": [int(u) for u in red.units], "excluded": red.excluded,
    }


# ====================================================================== parent


def run_child(engine_name: str, spec: Path, exposures: Path, events: Path, args: argparse.Namespace
              ) -> dict[str, Any]:
    """One engine in a child process (its own session group, killed whole on timeout); its report or an error."""
    cmd = [sys.executable, __file__, "--child", engine_name, str(spec), str(exposures), str(events),
           "--repeat", str(args.repeat), "--looks", str(args.looks)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the child and its JVM, nothing else
        proc.communicate()
        return {"engine": engine_name, "error": f"timed out after {args.timeout:.0f} s"}
    wall = time.perf_counter() - t
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (err.strip().splitlines() or ["no output"])[-1]
        return {"engine": engine_name, "error": f"exit {proc.returncode}: {tail[:300]}"}
    report = json.loads(lines[-1])
    report["wall"], report["load"] = wall, load()
    return report


def compare(a: dict[str, Any], b: dict[str, Any]) -> tuple[bool, str]:
    """Whether two engines' result rows agree: counts exactly, sums to TOLERANCE relative, times equal."""
    if a["columns"] != b["columns"] or len(a["rows"]) != len(b["rows"]):
        return False, f"different shapes: {len(a['columns'])}x{len(a['rows'])} against {len(b['columns'])}x" \
                      f"{len(b['rows'])}"
    worst, bad = 0.0, []
    for ra, rb in zip(a["rows"], b["rows"]):
        for column, x, y in zip(a["columns"], ra, rb):
            if isinstance(x, (int, float)) and isinstance(y, (int, float)):
                if isinstance(x, int) and isinstance(y, int):
                    ok = x == y
                else:
                    rel = abs(x - y) / max(abs(x), abs(y), 1e-300)
                    worst = max(worst, rel)
                    ok = rel <= TOLERANCE
            else:
                ok = x == y
            if not ok:
                bad.append(f"{column}: {x!r} against {y!r}")
    cells = len(a["columns"]) * len(a["rows"])
    if bad:
        return False, f"{len(bad)} of {cells} values differ ({'; '.join(bad[:3])})"
    return True, (f"{cells} values ({len(a['rows'])} arms x {len(a['columns'])} columns): units "
                  f"{a['units']} equal, every count equal, sums within {worst:.1e} relative")


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                        help="event rows, comma-separated (default 1000000,10000000,50000000)")
    parser.add_argument("--events-per-unit", type=int, default=10,
                        help="event rows per exposed unit (default 10: 1M units for 10M events)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each reduction, best kept (default 2)")
    parser.add_argument("--looks", type=int, default=0,
                        help="also time a run's K looks on one engine with reducer(repeated=True) (default 0)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="engines to run (default duckdb,spark)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per engine and size (default 1800)")
    parser.add_argument("--keep", help="use this folder instead of a temporary one, and keep it (and its data)")
    parser.add_argument("--child", nargs=4, metavar=("ENGINE", "SPEC", "EXPOSURES", "EVENTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        engine_name, spec, exposures, events = args.child
        print(json.dumps(child(engine_name, Path(spec), Path(exposures), Path(events), args.repeat, args.looks)))
        return 0

    try:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes: not a comma-separated list of whole numbers: {args.sizes!r}")
    if not sizes or any(s < args.events_per_unit for s in sizes):
        parser.error("--sizes: give at least one size, each at least --events-per-unit")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]

    import duckdb

    try:
        import pyspark
        spark_version = pyspark.__version__
    except ImportError:
        spark_version = "not installed"
    java = subprocess.run(["java", "-version"], capture_output=True, text=True) if shutil.which("java") else None
    java_version = (java.stderr.splitlines() or ["?"])[0] if java else "no java"
    total_mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    print("=" * 112)
    print(f"expc warehouse benchmark: {platform.python_implementation()} {platform.python_version()}, duckdb "
          f"{duckdb.__version__}, pyspark {spark_version}, {java_version}; {os.cpu_count()} CPUs, "
          f"{total_mem / 2**30:.0f} GiB, {platform.machine()}")
    print(f"load average before: {load()} (1 / 5 / 15 min)")

    if args.keep:
        tmp = Path(args.keep)
        tmp.mkdir(parents=True, exist_ok=True)
        tmp_ctx = None
    else:
        tmp_ctx = tempfile.TemporaryDirectory(prefix="expc-bench-warehouse-")
        tmp = Path(tmp_ctx.name)
    results: list[dict[str, Any]] = []
    try:
        for size in sizes:
            units = size // args.events_per_unit
            folder = tmp / f"events-{size}"
            folder.mkdir(exist_ok=True)
            print()
            print(f"{size:,} events, {units:,} units")
            exposures, events = folder / "exposures.parquet", folder / "events.parquet"
            if exposures.exists() and events.exists():
                print(f"  data: reusing {folder}")
                con = duckdb.connect()
                rows = {"exposure_rows": con.execute(f"SELECT count(*) FROM '{exposures}'").fetchone()[0],
                        "event_rows": con.execute(f"SELECT count(*) FROM '{events}'").fetchone()[0]}
                con.close()
            else:
                _, _, rows = generate(folder, units, size)
                print(f"  data: generated with DuckDB in {rows['seconds'][0]:.1f} + {rows['seconds'][1]:.1f} s; "
                      f"exposures {rows['exposure_rows']:,} rows ({rows['mib'][0]:.0f} MiB), events "
                      f"{rows['event_rows']:,} rows ({rows['mib'][1]:.0f} MiB) of which "
                      f"{sum(c for e, c in rows['event_mix'] if e != 'page_view' and e != 'added_to_cart'):,} "
                      "of the metrics' events")
            spec = folder / "spec.yaml"
            spec.write_text(SPEC.format(schema=ROOT / "schemas" / "expc-spec.schema.json", method="fixed"),
                            encoding="utf-8")
            input_rows = rows["exposure_rows"] + rows["event_rows"]
            by_engine: dict[str, dict[str, Any]] = {}
            for name in engines:
                report = run_child(name, spec, exposures, events, args)
                by_engine[name] = report
                if "error" in report:
                    print(f"  {name}: FAILED, {report['error']}")
                    continue
                best = min(report["times"])
                jvm = f", JVM {mib(report['peak_jvm'])} MiB peak" if report["jvms"] else ""
                start = f"session start {report['start']:.1f} s (not counted); " if name == "spark" else ""
                print(f"  {name}: {start}runs {', '.join(f'{t:.2f}' for t in report['times'])} s (CPU "
                      f"{', '.join(f'{c:.1f}' for c in report['cpus'])} s), best {best:.2f} s = "
                      f"{input_rows / best:,.0f} rows/s; peak: process {mib(report['peak_self'])} MiB{jvm}; "
                      f"{report['shipped_bytes']:,} bytes out; load {report['load']}")
                if report["conf"]:
                    print("    " + ", ".join(f"{k} {v}" for k, v in report["conf"].items()))
                if report["looks"]:
                    later = report["looks"][1:]
                    print(f"    {len(report['looks'])} looks (reducer, repeated): "
                          f"{', '.join(f'{t:.2f}' for t in report['looks'])} s"
                          + (f"; later looks {sum(later) / len(later):.2f} s each on average" if later else ""))
            ok_engines = [by_engine[e] for e in engines if "error" not in by_engine[e]]
            agree, note = (compare(ok_engines[0], ok_engines[1]) if len(ok_engines) == 2
                           else (None, "not compared (fewer than two engines ran)"))
            if agree is not None:
                print(f"  agreement {engines[0]} vs {engines[1]}: {'AGREE' if agree else 'DISAGREE'}, {note}")
            else:
                print(f"  agreement: {note}")
            results.append({"size": size, "units": units, "rows": input_rows, "by": by_engine, "agree": agree})
            if not args.keep:
                exposures.unlink(missing_ok=True)
                events.unlink(missing_ok=True)
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()

    print()
    table(results, engines)
    print(f"load average after: {load()} (1 / 5 / 15 min) on {os.cpu_count()} CPUs")
    print("=" * 112)
    return 0


def table(results: list[dict[str, Any]], engines: list[str]) -> None:
    """The side-by-side table: seconds, rows/s, CPU, peak memory, bytes out; the second engine / the first."""
    def best(r: dict[str, Any], e: str) -> tuple[float, float, float] | None:
        """Seconds and CPU seconds of the fastest run, and the seconds of the first."""
        rep = r["by"].get(e, {})
        if not rep.get("times"):
            return None
        k = min(range(len(rep["times"])), key=rep["times"].__getitem__)
        return rep["times"][k], rep["cpus"][k], rep["times"][0]

    header = f"  {'events':>11}{'input rows':>12}"
    for e in engines:
        header += f"{e + ' s':>11}{'first s':>9}{'rows/s':>12}{'CPU s':>8}{'peak MiB':>10}{'bytes out':>10}"
    if len(engines) == 2:
        header += f"{'ratio s':>9}{'ratio CPU':>10}{'agree':>7}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for r in results:
        line = f"  {r['size']:>11,}{r['rows']:>12,}"
        for e in engines:
            rep, b = r["by"].get(e, {}), best(r, e)
            if b is None:
                line += f"{'failed':>11}{'':>49}"
                continue
            secs, cpu, first = b
            peak = rep["peak_self"] + rep["peak_jvm"]
            line += (f"{secs:>11.2f}{first:>9.2f}{r['rows'] / secs:>12,.0f}{cpu:>8.1f}{mib(peak):>10}"
                     f"{rep['shipped_bytes']:>10,}")
        if len(engines) == 2:
            a, b = best(r, engines[0]), best(r, engines[1])
            ratios = (f"{b[0] / a[0]:.0f}x", f"{b[1] / a[1]:.0f}x") if a and b and a[1] > 0 else ("-", "-")
            line += f"{ratios[0]:>9}{ratios[1]:>10}{({True: 'yes', False: 'NO', None: '-'})[r['agree']]:>7}"
        print(line)
    print("  s: the best run (session start excluded); first s: the first run in the process (a cold JVM for Spark); "
          "rows/s: (exposures + events) / s;")
    print("  CPU s: CPU seconds of the best run (Spark: Python and JVM); peak MiB: the child process's peak RSS, plus "
          "the JVM's (VmHWM) for Spark;")
    print("  bytes out: the JSON of the reduction's result (column names and one row per arm); ratio: "
          f"{engines[-1]} / {engines[0]}.")
    starts = [r["by"]["spark"]["start"] for r in results if "start" in r["by"].get("spark", {})]
    if starts:
        print(f"  Spark session start (JVM and PySpark), per child: {', '.join(f'{s:.1f}' for s in starts)} s")


if __name__ == "__main__":
    sys.exit(main())
