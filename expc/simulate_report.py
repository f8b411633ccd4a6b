"""Render the result of ``expc simulate`` (the dict of ``SimulationResult.to_dict``) as text for a terminal.

A pure function, no I/O: :func:`render_text` starts with the design (method,
looks, alpha, rules), then the headline rate (false-positive rate or power)
with its Monte Carlo standard error, the decisions, the stopping day and the
units used. Tables are drawn with rich into plain text (no colour codes), so
the output reads the same in a terminal, a CI log or a file.
"""

from __future__ import annotations

import io
import math
import os
from typing import Any

__all__ = ["MARK", "highlight", "render_text"]

MARK = "! "

_METHOD = {
    "fixed": "fixed horizon",
    "sequential": "sequential (always-valid)",
    "bayesian": "Bayesian",
    "bandit": "bandit (Thompson sampling)",
}
_BAR = 30


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def _se(p: float | None, n: int) -> str:
    if p is None or n <= 0:
        return ""
    return f"± {math.sqrt(p * (1 - p) / n) * 100:.1f}%"


def _num(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}"


def _design_lines(d: dict[str, Any]) -> list[str]:
    design = d["design"]
    variants = list(design["variants"])
    looks = design["looks"]
    every = design["look_every"]
    cadence = {"1d": "daily", "7d": "weekly", "1h": "hourly"}.get(every, f"every {every}")
    planned = design.get("planned_per_variant")
    correction = ("no correction (Bayesian)" if design["method"] == "bayesian"
                  else f"{design['correction']} correction")
    head = (f"Design: {_METHOD.get(design['method'], design['method'])}, alpha {design['alpha']:g}, "
            f"{correction}; {looks} {cadence} look{'s' * (looks != 1)} over {design['horizon_days']} days")
    lines = [
        head,
        f"Traffic: {_num(design['units_per_day'])} units/day into {len(variants)} variants: "
        + ", ".join(f"{v} {w:.0%}" + (" (control)" if v == design["control"] else "")
                    for v, w in design["variants"].items())
        + (f"; planned {planned:,} per variant" if planned else "")
        + (f"; rules wait for {design['min_units_per_variant']:,} per variant"
           if design.get("min_units_per_variant") else ""),
        "Rules: " + ("; ".join(design["rules"]) if design["rules"] else "none (never stops)"),
    ]
    return lines


def _histogram(d: dict[str, Any]) -> list[tuple[str, float]]:
    """Stopping-day shares in at most 10 bins (one per day when few days)."""
    hist = d["stopping_day"]["histogram"]
    if not hist:
        return []
    first, last = min(h["day"] for h in hist), max(h["day"] for h in hist)
    width = max(1, math.ceil((last - first + 1) / 10))
    bins: dict[int, float] = {}
    for h in hist:
        b = (h["day"] - first) // width
        bins[b] = bins.get(b, 0.0) + h["share"]
    out = []
    for b in range((last - first) // width + 1):
        lo, hi = first + b * width, first + b * width + width - 1
        label = f"day {lo}" if width == 1 else f"days {lo}-{hi}"
        out.append((label, bins.get(b, 0.0)))
    return out


def render_text(d: dict[str, Any]) -> str:
    """The simulation summary as plain text (see the module docs)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    buf = io.StringIO()
    console = Console(file=buf, width=100, color_system=None, force_terminal=False, highlight=False,
                      emoji=False, markup=False, soft_wrap=True)
    n = d["replications"]
    truth = ("A/A: every variant has the control's truth" if d["truth"] == "aa"
             else "the spec's truth")
    console.print(f"SIMULATION of {d['experiment']}: {n:,} replications, {truth}, seed {d['seed']}")
    for line in _design_lines(d):
        console.print(line)
    console.print()

    alpha = d["design"]["alpha"]
    if "false_positive_rate" in d:
        fpr = d["false_positive_rate"]
        note = (f"nominal alpha {alpha:g}" if d["design"]["method"] != "bayesian"
                else f"decision level: chance to beat ≥ {1 - alpha / 2:g}")
        above = fpr is not None and fpr > alpha
        console.print(f"{MARK if above else ''}False-positive rate: {_pct(fpr)} {_se(fpr, n)} "
                      f"(Monte Carlo SE; {note}): the share of replications that ship a treatment that is no better"
                      + (f"; ABOVE alpha {alpha:g}" if above else ""))
    if "false_rollback_rate" in d:
        console.print(f"False-rollback rate: {_pct(d['false_rollback_rate'])} {_se(d['false_rollback_rate'], n)} "
                      "(Monte Carlo SE): the share of replications rolled back although no variant differs")
    if d["truth"] == "spec":
        power = d.get("power")
        best = ", ".join(d.get("best_variant") or [])
        if power is None:
            console.print("Power: n/a (no treatment is truly better than the control in the spec's truth)")
        else:
            console.print(f"Power: {_pct(power)} {_se(power, n)} (Monte Carlo SE): the share of replications "
                          f"that ship the truly best variant ({best})")
    console.print()
    if d.get("bandit"):
        for line in _bandit_lines(d["bandit"], n):
            console.print(line)
        console.print()

    table = Table(box=box.SIMPLE, title="Decisions", title_justify="left", pad_edge=False)
    table.add_column("decision")
    table.add_column("share", justify="right")
    table.add_column("± SE", justify="right")
    for action, share in sorted(d["decisions"].items(), key=lambda kv: -kv[1]):
        label = action if action != "continue" else "continue (not stopped by the horizon)"
        table.add_row(label, _pct(share), _se(share, n).lstrip("± "))
    for variant, share in d.get("shipped", {}).items():
        table.add_row(f"  shipped {variant}", _pct(share), _se(share, n).lstrip("± "))
    console.print(table)

    rules = Table(box=box.SIMPLE, title="Rule that decided", title_justify="left", pad_edge=False)
    rules.add_column("rule")
    rules.add_column("share", justify="right")
    for rule, share in d.get("rules_fired", {}).items():
        rules.add_row(rule.split(":", 1)[1] + f" (rule {int(rule.split(':', 1)[0]) + 1})", _pct(share))
    console.print(rules)

    sd = d["stopping_day"]
    q = sd["quantiles"]
    console.print(f"Stopping day ({_pct(sd['stopped'])} of replications stopped): "
                  f"p5 {_num(q['p5'])}, p25 {_num(q['p25'])}, median {_num(q['p50'])}, "
                  f"p75 {_num(q['p75'])}, p95 {_num(q['p95'])}; mean {_num(sd['mean'], 1)}")
    hist = _histogram(d)
    top = max((s for _, s in hist), default=0.0)
    for label, share in hist:
        bar = "#" * (round(share / top * _BAR) if top > 0 else 0)
        console.print(f"  {label:>12} {_pct(share):>6} {bar}")
    u = d["units_used"]
    uq = u["quantiles"]
    console.print(f"Units used: p5 {_num(uq['p5'])}, p25 {_num(uq['p25'])}, median {_num(uq['p50'])}, "
                  f"p75 {_num(uq['p75'])}, p95 {_num(uq['p95'])}; mean {_num(u['mean'])}")
    if d.get("gates"):
        console.print()
        for line in _gate_lines(d["gates"]):
            console.print(line)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"


def _bandit_lines(b: dict[str, Any], n: int) -> list[str]:
    """A bandit's figures against a fixed equal split of the same traffic, and its mean weights over time."""
    eq = b["equal_split"]
    lines = [f"Bandit: {b['explore_days']} day{'s' * (b['explore_days'] != 1)} of equal weights, then Thompson "
             f"sampling with at least {b['min_weight']:.0%} per arm; stops when an arm is best with probability "
             f">= {b['threshold']:g}"]
    table = [("", "bandit", "equal split")]
    if "pick_rate" in b:
        table.append((f"picks the truly best arm ({', '.join(b['best'])})",
                      f"{_pct(b['pick_rate'])} {_se(b['pick_rate'], n)}", f"{_pct(eq['pick_rate'])} "
                      f"{_se(eq['pick_rate'], n)}"))
    table.append(("ships a treatment that is not better",
                  f"{_pct(b['false_ship_rate'])} {_se(b['false_ship_rate'], n)}",
                  f"{_pct(eq['false_ship_rate'])} {_se(eq['false_ship_rate'], n)}"))
    table.append(("regret (outcomes lost to worse arms)", f"{_num(b['regret'], 1)} ± {_num(b['regret_se'], 1)}",
                  f"{_num(eq['regret'], 1)} ± {_num(eq['regret_se'], 1)}"))
    width = max(len(row[0]) for row in table)
    lines += [f"  {row[0]:<{width}}  {row[1]:>16}  {row[2]:>16}" for row in table]
    weights = b.get("weights") or []
    if weights:
        arms = list(weights[0]["weights"])
        lines.append("Mean weights over time (until the look on that day): " + ", ".join(arms))
        step = max(1, math.ceil(len(weights) / 10))
        for row in weights[::step] + ([weights[-1]] if (len(weights) - 1) % step else []):
            lines.append(f"  day {row['until_day']:>4}: " + "  ".join(f"{row['weights'][a]:>4.0%}" for a in arms))
    return lines


_GATE = {
    "max_fpr": ("False-positive rate", "A/A simulation", "at most"),
    "min_power": ("Power", "the spec's truth", "at least"),
}


def _gate_lines(gates: dict[str, dict[str, Any]]) -> list[str]:
    """One line per gate (marked when it failed), a verdict, and a hint when an estimate is close to its gate."""
    bad = [name for name, g in gates.items() if not g["passed"]]
    lines = [f"Gates: {len(gates) - len(bad)} of {len(gates)} passed"
             + (" (exit 1)" if bad else "")]
    for name, g in gates.items():
        label, source, bound = _GATE.get(name, (name, g["truth"], "vs"))
        verdict = "pass" if g["passed"] else "FAIL"
        if g["figure"] is None:
            lines.append(f"{MARK}{label}: n/a, gate {bound} {_pct(g['threshold'])}: {verdict}: {g['reason']}")
            continue
        low, high = g["interval"]
        lines.append(f"{'' if g['passed'] else MARK}{label}: {_pct(g['figure'])} ± {g['se'] * 100:.1f}% "
                     f"(Monte Carlo SE; 95% interval {_pct(low)}-{_pct(high)}; {source}, "
                     f"{g['replications']:,} replications, seed {g['seed']}), gate {bound} "
                     f"{_pct(g['threshold'])}: {verdict}")
    if any(g["close"] for g in gates.values()):
        lines.append("  A gate lies inside the 95% Monte Carlo interval of its estimate: another seed may decide "
                     "the other way; raise --replications (the error shrinks as 1/sqrt(n)) to settle it.")
    return lines


def highlight(text: str) -> str:
    """``text`` with its marked lines (:data:`MARK`) in bold red; unchanged when ``NO_COLOR`` is set.

    Apply it after escaping the text for the terminal: the colour codes it adds
    are expc's own.
    """
    if os.environ.get("NO_COLOR"):
        return text
    import click

    return "\n".join(click.style(line, fg="red", bold=True) if line.startswith(MARK) else line
                     for line in text.split("\n"))
