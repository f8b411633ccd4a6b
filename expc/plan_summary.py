"""A readable dry-run summary of a compiled plan (``expc plan``)."""

from __future__ import annotations

import json
from typing import Any

from expc.compiler.quantities import format_duration


def _pct(x: float) -> str:
    return f"{x * 100:.4g}%"


def summarise(plan: dict[str, Any]) -> str:
    """What the experiment would do: who, which variants, which prompts, what it needs."""
    exp, asg = plan["experiment"], plan["assignment"]
    lines = [f"Experiment {exp['id']}" + (f" — {exp['name']}" if exp.get("name") else "")]
    if exp.get("hypothesis"):
        lines.append(f"  hypothesis: {exp['hypothesis']}")
    lines.append(f"  unit: {asg['unit']}    seed: {asg['seed']}    hash version: {asg['hash_version']}")

    lines += ["", "Audience"]
    if asg["audience"]:
        lines.append(f"  {asg['audience']}: {json.dumps(asg['condition'], ensure_ascii=False)}")
    else:
        lines.append("  everyone")
    lines.append(f"  coverage: {_pct(asg['coverage'])}")
    if asg["namespace"]:
        ns, start, end = asg["namespace"]
        lines.append(f"  layer: {ns} [{start:g}, {end:g})")

    lines += ["", "Variants"]
    width = max(len(v["id"]) for v in plan["variants"])
    for v in plan["variants"]:
        lo, hi = v["bucket_range"]
        source = f"static: {v['content']!r}" if v["content"] is not None else f"prompt {v['prompt']} ({v['generate']['per']})"
        tag = " (control)" if v["control"] else ""
        lines.append(f"  {v['id']:<{width}}  {_pct(v['weight']):>7}  buckets [{lo:.4f}, {hi:.4f})  {source}{tag}")

    if plan["prompts"]:
        lines += ["", "Prompts"]
        for name, p in plan["prompts"].items():
            params = ", ".join(f"{k}={p[k]}" for k in ("temperature", "max_tokens", "top_p") if p[k] is not None)
            lines.append(f"  {name}: {p['model']}" + (f" ({params})" if params else ""))

    lines += ["", "Metrics"]
    for m in plan["metrics"]:
        detail = m["event"] or f"{m['numerator']['event']} / {m['denominator']['event']}"
        extra = [f"window {m['window']}"] if m["window"] else []
        if m["mde"] is not None:
            extra.append(f"MDE {_pct(m['mde'])}")
        if m["margin"] is not None:
            extra.append(f"margin {_pct(m['margin'])}")
        lines.append(f"  {m['id']} [{m['role']}] {m['kind']} of {detail}, {m['direction']} is good"
                     + (f"; {', '.join(extra)}" if extra else ""))
    a = plan["analysis"]
    lines.append(f"  analysis: {a['method']}, alpha {a['alpha']:g}, power {a['power']:g}, correction {a['correction']}")
    seq = plan.get("sequential")
    if seq:
        if seq["type"] == "group":
            looks = f"{seq['looks']} looks" if seq["looks"] else "one look per stopping.looks"
            lines.append(f"  sequential design: group-sequential, {seq['spending'].replace('_', '-')} alpha spending "
                         f"over {looks} (Lan-DeMets; boundaries computed at each look)")
        else:
            lines.append("  sequential design: always-valid (mSPRT, mixing tuned to the planned size): "
                         "safe to look at any time")
    if any(m.get("cuped") for m in plan["metrics"]):
        lines.append(f"  CUPED: {', '.join(m['id'] for m in plan['metrics'] if m.get('cuped'))} "
                     f"(pre-period {format_duration(int(a['cuped_lookback']))} before first exposure)")

    lines += ["", "Design"]
    ss = plan["sample_size"]
    if "unavailable" in ss:
        lines.append(f"  sample size: cannot be planned ({ss['unavailable']})")
    else:
        lines.append(f"  required units ({ss['method']}): {ss['per_variant']:,} per variant, {ss['total']:,} in total "
                     f"(baseline {ss['baseline']:g}, MDE {_pct(ss['mde'])}, alpha {ss['alpha']:g}, power {ss['power']:g})")
        if ss.get("fixed_horizon_per_variant"):
            lines.append(f"    a fixed-horizon test would need {ss['fixed_horizon_per_variant']:,} per variant; looking at "
                         f"any time costs x{ss['per_variant'] / ss['fixed_horizon_per_variant']:.2f} for the same power")
        if ss["estimated_days"] is not None:
            lines.append(f"  estimated duration: {ss['estimated_days']} days at "
                         f"{plan['simulation']['units_per_day']:,} units/day")
    st = plan["stopping"]
    limits = [f"looks every {st['looks']}"]
    if st["max_days"]:
        limits.append(f"at most {st['max_days']} days")
    if st["max_units"]:
        limits.append(f"at most {st['max_units']:,} units")
    lines.append("  stopping: " + ", ".join(limits))
    for r in st["rules"]:
        lines.append(f"    when {r['when']}" + (f" ({r['metric']})" if r["metric"] else "") + f" -> {r['then']}")

    jobs = plan["generation"]["jobs"]
    lines += ["", "Content generation"]
    if not jobs:
        lines.append("  none: every variant is static")
    for j in jobs:
        how = {"once": "1 generation", "unit": "one generation per unit",
               "segment": f"one generation per segment of {', '.join(j['segment_by'])}"}[j["per"]]
        lines.append(f"  {j['variant']}: prompt {j['prompt']} on {j['model']}, {how}")
    budget = plan["generation"]["max_cost_usd"]
    lines.append(f"  budget: {'$%.2f' % budget if budget is not None else 'none set'}; nothing runs in a dry run")
    return "\n".join(lines)
