#!/usr/bin/env python
"""Benchmark: ``expc generate`` against the raw ``openai`` async client and bare litellm, on a loopback server.

Run from the repository root, in the project's virtualenv::

    .venv/bin/python benchmarks/generate.py [--n 1000] [--latency 0.1] [--concurrency 32] [--workers 1]
                                            [--keep DIR] [--raw-only] [--profile]

What it does:

1. Starts ``tests/fakellm.py``'s ``FakeLLM`` (an OpenAI-compatible chat-completions
   server on 127.0.0.1, in a thread of this process) with 100 ms of latency per
   reply, and writes to a temporary folder a spec whose one prompted variant is
   generated ``per: unit`` (its template names the unit's id, so every prompt is
   distinct) and a CSV of N units (default 1,000).
2. Runs ``expc generate SPEC --units units.csv --api-base URL --model openai/bench
   --concurrency 32 [--workers W] --store content.sqlite --out out.jsonl`` (store and output in
   the temporary folder) as a subprocess of the venv's ``expc`` and times it end
   to end (wall clock, interpreter start-up and imports included).
   The server counts the calls and stamps each one, so the script also reports
   the busy span (first request in to last reply out), which leaves out start-up
   and shutdown whether or not the command prints its own timing, and splits the
   rest into before the first request and after the last reply. Peak memory is
   the child's ``ru_maxrss`` (``os.wait4``), CPU its user + system time.
3. The floor: the same request bodies the server received from expc (same model,
   messages and parameters), sent by ``openai.AsyncOpenAI(base_url=URL,
   api_key="sk-bench")`` with an ``asyncio.Semaphore(32)``. It runs in a child
   process of this script too, so that neither client shares the server's GIL.
4. An immediate second ``expc generate`` with the same arguments: every item
   should come from the content store, so the server should see 0 calls, and
   the run should finish in under 2 s.
5. Prints the table (calls, seconds, calls/s, busy seconds, calls/s while busy,
   CPU seconds, calls per CPU-second, peak RSS), the ratios expc / raw client
   (end to end, busy, and per CPU-second), the
   theoretical ceiling (concurrency / latency) and the goals, PASS/FAIL: at
   least 0.7 of the raw client's calls/s, 0 calls and < 2 s on the second run.
6. With ``--profile``: one more first run (fresh store) under cProfile, and the
   functions with the most cumulative and own time.

Until ``expc generate`` exists (``expc generate --help`` fails), or with
``--raw-only``, only the raw client runs, on bodies rendered by this script.
Exits 0: the figures are for reading, not a gate. Nothing outside the temporary
folder (or ``--keep DIR``) is written. Needs no network and no API key: the
children get ``OPENAI_API_KEY=sk-bench``, a fake key the loopback server ignores.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
GOAL_RATIO = 0.7  # expc calls/s over the raw client's
GOAL_SECOND_RUN = 2.0  # seconds, all store hits
MODEL = "openai/bench"

SPEC = """\
version: 1
experiment:
  id: bench-generate
  owner: bench@acme.example
  hypothesis: A personal push brings more lapsed users back than the evergreen one.
  unit: user_id
attributes:
  user_id: string
  first_name: string
  favorite_category: string
prompts:
  note:
    model: offline/bench
    max_tokens: 60
    system: {system}
    template: |
      {template}
variants:
  - id: control
    control: true
    content: New arrivals are waiting for you. Tap to see what's new!
  - id: personal
    prompt: note
    generate: {{per: unit}}
metrics:
  - id: opened
    kind: proportion
    event: push_opened
    role: primary
    mde: 10%
    baseline: 0.06
"""
SYSTEM = "You write one-sentence push notifications for a shopping app."
TEMPLATE = ("Write a push notification inviting {{ user.first_name }} (member {{ user.user_id }}) "
            "back to the app to see what is new in {{ user.favorite_category }}.")
NAMES = ["Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hiro"]
CATEGORIES = ["shoes", "outerwear", "bags", "home", "beauty"]
#: keyword arguments of ``chat.completions.create``; the rest of a recorded body goes in ``extra_body``
CREATE_KEYS = {"model", "messages", "temperature", "max_tokens", "max_completion_tokens", "seed", "top_p",
               "n", "stop", "response_format", "user", "frequency_penalty", "presence_penalty", "timeout"}


@dataclass(frozen=True)
class Run:
    """One timed child process and what the server saw while it ran."""

    label: str
    returncode: int
    wall: float  # seconds, spawn to exit
    calls: int  # chat completions the server received during the run
    busy: float  # seconds, first request in to last reply out (0 without calls)
    before: float  # seconds, spawn to the first request (start-up, reading, rendering, store)
    after: float  # seconds, last reply to exit (writing, shutdown)
    cpu: float  # seconds of CPU (user + system) of the child
    maxrss_mib: float
    stdout: str
    stderr: str
    bodies: list[dict[str, Any]]


def rate(n: int, seconds: float) -> float:
    """Calls per second (0 when nothing was timed)."""
    return n / seconds if seconds > 0 and n else 0.0


def make_units(path: Path, n: int) -> list[dict[str, str]]:
    """Write N deterministic units to a CSV file and return them."""
    units = [{"user_id": f"user-{i:06d}", "first_name": NAMES[i % len(NAMES)],
              "favorite_category": CATEGORIES[(i * 7) % len(CATEGORIES)]} for i in range(n)]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(units[0]))
        writer.writeheader()
        writer.writerows(units)
    return units


def synthetic_bodies(units: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The requests a per-unit generation would plausibly send, for when expc cannot run."""
    import jinja2.sandbox

    template = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined).from_string(TEMPLATE)
    return [{"model": MODEL.split("/", 1)[1], "max_tokens": 60,
             "messages": [{"role": "system", "content": SYSTEM},
                          {"role": "user", "content": template.render(user=u)}]} for u in units]


def timed_child(label: str, cmd: list[str], server: Any, tmp: Path) -> Run:
    """Run a command as a child process; wall clock, peak RSS (wait4) and the server's view of it."""
    env = dict(os.environ, OPENAI_API_KEY="sk-bench", LITELLM_OFFLINE_MODE="true", PYTHONUNBUFFERED="1")
    env.pop("NO_COLOR", None)
    calls_before, stamps_before = server.calls, len(server.stamps)
    out_path, err_path = tmp / f"{label}.stdout", tmp / f"{label}.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    stamps = server.stamps[stamps_before:]
    first_in = min((s for s, _ in stamps), default=start)
    last_out = max((a for _, a in stamps), default=start)
    calls = server.calls - calls_before
    return Run(label, child.returncode, wall, calls, last_out - first_in, first_in - start, start + wall - last_out,
               usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
               out_path.read_text(encoding="utf-8", errors="replace"),
               err_path.read_text(encoding="utf-8", errors="replace"),
               server.requests[calls_before:calls_before + calls])


def expc_generate_available() -> tuple[bool, str]:
    """Whether the venv's expc has a ``generate`` command (H1's work may not be there yet)."""
    probe = subprocess.run([str(VENV_BIN / "expc"), "generate", "--help"], capture_output=True, text=True,
                           cwd=ROOT, check=False)
    last = (probe.stdout + probe.stderr).strip().splitlines()[-1:]
    return probe.returncode == 0, last[0] if last else ""


def read_output(path: Path) -> tuple[int, int, str]:
    """Rows of the JSONL output, how many carry the fake server's reply, and a sample row."""
    if not path.exists():
        return 0, 0, ""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    fake = sum(1 for r in rows if str(r.get("content", "")).startswith("fake reply to: "))
    return len(rows), fake, json.dumps(rows[-1], ensure_ascii=False)[:300] if rows else ""


def profile_expc(expc_cmd: list[str], server: Any, tmp: Path, top: int = 25) -> list[str]:
    """Run expc generate once more with a fresh store under cProfile; the top functions, as text lines."""
    import io
    import pstats

    prof = tmp / "expc.prof"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), *expc_cmd[:-1], str(tmp / "content-profile.sqlite"),
           "--out", str(tmp / "out-profile.jsonl")]
    run = timed_child("expc-profile", cmd, server, tmp)
    lines = [f"exit {run.returncode}, {run.calls:,} calls, {run.wall:.2f} s wall under the profiler "
             f"(main thread only)"]
    if not prof.exists():
        return lines + ["no profile written: " + run.stderr.strip()[-300:]]
    for key in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(str(prof), stream=text).sort_stats(key).print_stats(top)
        body = text.getvalue().splitlines()
        start = next((i for i, line in enumerate(body) if line.lstrip().startswith("ncalls")), 0)
        lines += ["", f"by {key}:"] + [line[:160] for line in body[start:] if line.strip()]
    return lines


# ====================================================================== the raw client (a child process)


async def raw_client(url: str, bodies: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """Send every body through ``openai.AsyncOpenAI`` with a semaphore; time the sending only."""
    start = time.perf_counter()
    import openai

    imported = time.perf_counter()
    client = openai.AsyncOpenAI(base_url=url, api_key="sk-bench", max_retries=0, timeout=60.0)
    gate = asyncio.Semaphore(concurrency)

    async def one(body: dict[str, Any]) -> str:
        kwargs = {k: v for k, v in body.items() if k in CREATE_KEYS}
        extra = {k: v for k, v in body.items() if k not in CREATE_KEYS}
        async with gate:
            reply = await client.chat.completions.create(**kwargs, extra_body=extra or None)
        return reply.choices[0].message.content or ""

    begun = time.perf_counter()
    results = await asyncio.gather(*(one(b) for b in bodies), return_exceptions=True)
    done = time.perf_counter()
    await client.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    return {"import_s": imported - start, "send_s": done - begun, "ok": len(results) - len(errors),
            "errors": len(errors), "first_error": repr(errors[0])[:200] if errors else ""}


async def bare_litellm(url: str, bodies: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """Send every body through ``litellm.acompletion`` alone (no expc code): the floor for any litellm caller."""
    import os

    start = time.perf_counter()
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    import litellm

    litellm.suppress_debug_info = True
    imported = time.perf_counter()
    gate = asyncio.Semaphore(concurrency)

    async def one(body: dict[str, Any]) -> str:
        kwargs = {k: v for k, v in body.items() if k != "model"}
        async with gate:
            reply = await litellm.acompletion(model="openai/" + body["model"].split("/")[-1], api_base=url,
                                              api_key="sk-bench", max_retries=0, **kwargs)
        return reply.choices[0].message.content or ""

    begun = time.perf_counter()
    results = await asyncio.gather(*(one(b) for b in bodies), return_exceptions=True)
    done = time.perf_counter()
    errors = [r for r in results if isinstance(r, BaseException)]
    return {"import_s": imported - start, "send_s": done - begun, "ok": len(results) - len(errors),
            "errors": len(errors), "first_error": repr(errors[0])[:200] if errors else ""}


def client_main(url: str, bodies_file: str, concurrency: int, kind: str = "openai") -> int:
    """Entry point of a client child (raw openai, or bare litellm): prints its figures as one JSON line."""
    bodies = json.loads(Path(bodies_file).read_text(encoding="utf-8"))
    send = raw_client if kind == "openai" else bare_litellm
    print(json.dumps(asyncio.run(send(url, bodies, concurrency))))
    return 0


# ====================================================================== main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="units, hence calls (default 1,000)")
    parser.add_argument("--latency", type=float, default=0.1, help="server latency per reply, seconds (default 0.1)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent calls of both clients (default 32)")
    parser.add_argument("--workers", type=int, default=1,
                        help="expc generate --workers W: processes making expc's calls (default 1)")
    parser.add_argument("--keep", type=Path, help="write the spec, units, outputs and logs to DIR and keep them")
    parser.add_argument("--raw-only", action="store_true", help="skip expc; time the raw client only")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one more first run of expc generate (fresh store) with cProfile")
    parser.add_argument("--client", nargs=3, metavar=("URL", "BODIES", "CONCURRENCY"), help=argparse.SUPPRESS)
    parser.add_argument("--client-kind", default="openai", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        return client_main(args.client[0], args.client[1], int(args.client[2]), args.client_kind)

    sys.path.insert(0, str(ROOT / "tests"))
    from importlib.metadata import version

    from fakellm import FakeLLM

    available, why = (False, "--raw-only") if args.raw_only else expc_generate_available()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT, check=False).stdout.strip()
    load_before = os.getloadavg()
    print("=" * 100)
    print(f"expc generate benchmark: {platform.python_implementation()} {platform.python_version()}, "
          f"litellm {version('litellm')}, openai {version('openai')}, httpx {version('httpx')}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}; commit {commit or '?'}")
    print(f"load average before: {' / '.join(f'{x:.2f}' for x in load_before)} (1 / 5 / 15 min)")

    keep = args.keep
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="expc-bench-generate-") as tmp_name, \
            FakeLLM(latency=args.latency) as server:
        tmp = keep if keep is not None else Path(tmp_name)
        spec = tmp / "spec.yaml"
        spec.write_text(SPEC.format(system=SYSTEM, template=TEMPLATE), encoding="utf-8")
        units = make_units(tmp / "units.csv", args.n)
        print(f"server: {server.url}, latency {args.latency * 1000:.0f} ms; {args.n:,} units; "
              f"concurrency {args.concurrency}; ceiling {args.concurrency / args.latency:,.0f} calls/s "
              f"(concurrency / latency)")
        expc_cmd = [str(VENV_BIN / "expc"), "generate", str(spec), "--units", str(tmp / "units.csv"),
                    "--api-base", server.url, "--model", MODEL, "--concurrency", str(args.concurrency),
                    *(["--workers", str(args.workers)] if args.workers > 1 else []),
                    "--store", str(tmp / "content.sqlite")]

        first = second = None
        if available:
            workers = f" --workers {args.workers}" if args.workers > 1 else ""
            print(f"command: expc generate SPEC --units units.csv --api-base {server.url} --model {MODEL} "
                  f"--concurrency {args.concurrency}{workers} --store content.sqlite --out out.jsonl "
                  "(run 2: --out out2.jsonl)")
            first = timed_child("expc-run1", expc_cmd + ["--out", str(tmp / "out.jsonl")], server, tmp)
            bodies = first.bodies
        else:
            print(f"expc generate is not available ({why}): the raw client only, on bodies rendered here")
            bodies = []
        source = "the bodies expc sent"
        if not bodies:
            bodies, source = synthetic_bodies(units), "bodies rendered by this script"
        bodies_file = tmp / "bodies.json"
        bodies_file.write_text(json.dumps(bodies), encoding="utf-8")

        raw = timed_child("raw-client", [sys.executable, str(Path(__file__).resolve()), "--client", server.url,
                                         str(bodies_file), str(args.concurrency)], server, tmp)
        raw_figures = json.loads(raw.stdout.strip().splitlines()[-1]) if raw.returncode == 0 else {}
        bare = timed_child("bare-litellm", [sys.executable, str(Path(__file__).resolve()), "--client", server.url,
                                            str(bodies_file), str(args.concurrency), "--client-kind", "litellm"],
                           server, tmp)

        if first is not None:
            second = timed_child("expc-run2", expc_cmd + ["--out", str(tmp / "out2.jsonl")], server, tmp)

        # ---------------------------------------------------------------- report
        for run in (first, second):
            if run is None:
                continue
            print()
            print(f"{run.label}: exit {run.returncode}, {run.calls:,} calls; its output (last lines):")
            for line in (run.stdout.strip().splitlines() or ["(no stdout)"])[-14:]:
                print("  | " + line)
            if run.returncode != 0 or run.stderr.strip():
                for line in run.stderr.strip().splitlines()[-8:]:
                    print("  ! " + line)
        if first is not None:
            rows1, fake1, sample = read_output(tmp / "out.jsonl")
            rows2, fake2, _ = read_output(tmp / "out2.jsonl")
            same = rows1 > 0 and sorted((tmp / "out.jsonl").read_text().splitlines()) == \
                sorted((tmp / "out2.jsonl").read_text().splitlines() if rows2 else [])
            print(f"outputs: run 1 {rows1:,} rows ({fake1:,} with the server's reply), run 2 {rows2:,} rows "
                  f"({fake2:,}); same rows: {same}")
            if sample:
                print(f"  last row of run 1: {sample}")
            distinct = len({json.dumps(b['messages'], sort_keys=True) for b in first.bodies})
            print(f"  expc sent {first.calls:,} calls ({distinct:,} distinct message lists); "
                  f"{'as planned' if first.calls == args.n else f'EXPECTED {args.n:,}'}")

        print()
        print(f"{'client':<44}{'calls':>7}{'wall s':>8}{'calls/s':>9}{'busy s':>8}{'calls/s':>9}"
              f"{'CPU s':>7}{'calls/':>8}{'peak RSS':>9}")
        print(f"{'':<44}{'':>7}{'':>8}{'(wall)':>9}{'':>8}{'(busy)':>9}{'':>7}{'CPU-s':>8}{'MiB':>9}")
        print("-" * 100)
        table = [("expc generate, run 1", first),
                 (f"raw openai.AsyncOpenAI + Semaphore({args.concurrency})", raw),
                 (f"bare litellm.acompletion + Semaphore({args.concurrency})", bare),
                 ("expc generate, run 2 (store hits)", second)]
        for label, run in table:
            if run is None:
                continue
            print(f"{label:<44}{run.calls:>7,}{run.wall:>8.2f}{rate(run.calls, run.wall):>9.0f}"
                  f"{run.busy:>8.2f}{rate(run.calls, run.busy):>9.0f}{run.cpu:>7.2f}{rate(run.calls, run.cpu):>8.0f}"
                  f"{run.maxrss_mib:>9.0f}")
        print("-" * 100)
        print("wall: spawn to exit (interpreter start-up, imports and writing included); busy: first request "
              "in to last reply out, as the server saw it; CPU: the child's user + system time.")
        if raw_figures:
            raw_rate = rate(raw_figures['ok'], raw_figures['send_s'])
            print(f"raw client ({source}): import of openai {raw_figures['import_s']:.2f} s, sending "
                  f"{raw_figures['send_s']:.2f} s by its own clock ({raw_rate:.0f}"
                  f" calls/s); {raw_figures['ok']:,} ok, {raw_figures['errors']} errors "
                  f"{raw_figures['first_error']}")
        elif raw.returncode != 0:
            print(f"raw client failed (exit {raw.returncode}): {raw.stderr.strip()[-400:]}")

        print()
        print("goals:")
        if first is not None and first.calls and raw.calls:
            e2e = rate(first.calls, first.wall) / rate(raw.calls, raw.wall)
            busy = rate(first.calls, first.busy) / rate(raw.calls, raw.busy)
            print(f"  expc >= {GOAL_RATIO} x the raw client's calls/s, end to end (wall): {e2e:.2f} -> "
                  f"{'PASS' if e2e >= GOAL_RATIO else 'FAIL'}")
            print(f"  (not a goal) the same while busy (start-up excluded): {busy:.2f}")
            print(f"  calls per CPU-second (the child's user + system time, start-up included): expc "
                  f"{rate(first.calls, first.cpu):.0f}, the raw client {rate(raw.calls, raw.cpu):.0f} "
                  f"({rate(first.calls, first.cpu) / max(rate(raw.calls, raw.cpu), 1e-9):.2f}x)")
            if bare is not None and bare.calls:
                floor = rate(bare.calls, bare.wall) / rate(raw.calls, raw.wall)
                print(f"  (not a goal) bare litellm.acompletion, no expc code, vs the raw client: {floor:.2f} end to "
                      f"end; expc vs bare litellm: {rate(first.calls, first.wall) / rate(bare.calls, bare.wall):.2f}")
            print(f"  outside the busy span: expc {first.before:.2f} s before its first request (start-up, units, "
                  f"rendering, store) and {first.after:.2f} s after its last reply (writing, exit); the raw "
                  f"client {raw.before:.2f} s and {raw.after:.2f} s")
        else:
            print("  throughput ratio: not measured (expc generate did not run or made no calls)")
        if second is not None:
            ok = second.returncode == 0 and second.calls == 0
            print(f"  second run makes 0 calls: {second.calls} -> {'PASS' if ok else 'FAIL'}")
            print(f"  second run < {GOAL_SECOND_RUN:.0f} s: {second.wall:.2f} s -> "
                  f"{'PASS' if second.wall < GOAL_SECOND_RUN else 'FAIL'}")
        if first is not None:
            print(f"  (not a goal) peak memory of expc generate: run 1 {first.maxrss_mib:.0f} MiB, "
                  f"run 2 {second.maxrss_mib if second else 0:.0f} MiB; the raw client {raw.maxrss_mib:.0f} MiB")

        if args.profile and first is not None:
            print()
            print("profile of one more first run (fresh store), cProfile:")
            for line in profile_expc(expc_cmd, server, tmp):
                print("  " + line)

    load_after = os.getloadavg()
    print()
    print(f"load average after: {' / '.join(f'{x:.2f}' for x in load_after)} (1 / 5 / 15 min) on "
          f"{os.cpu_count()} CPUs (other work on the machine skews every figure above)")
    print("=" * 100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
