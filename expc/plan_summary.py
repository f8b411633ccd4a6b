"""A readable dry-run summary of a compiled plan (``expc plan``)."""

from __future__ import annotations

import json

from expc.compiler.pii import prompt_reads
from expc.compiler.plan import Plan
from expc.compiler.providers import provider_of
from expc.compiler.quantities import format_duration


def _pct(x: float) -> str:
    return f"{x * 100:.4g}%"


def _day(d: float) -> str:
    return f"{d:g}"


def summarise(plan: Plan) -> str:
    """What the experiment would do: who, which variants, which prompts, when it is looked at, what it needs."""
    exp, asg = plan.experiment, plan.assignment
    lines = [f"Experiment {exp.id}" + (f" — {exp.name}" if exp.name else "")]
    if exp.hypothesis:
        lines.append(f"  hypothesis: {exp.hypothesis}")
    lines.append(f"  unit: {asg.unit}    seed: {asg.seed}    hash version: {asg.hash_version}")

    lines += ["", "Audience"]
    if asg.audience:
        lines.append(f"  {asg.audience}: {json.dumps(asg.condition, ensure_ascii=False)}")
    else:
        lines.append("  everyone")
    lines.append(f"  coverage: {_pct(asg.coverage)}")
    if asg.namespace:
        lines.append(f"  layer: {asg.namespace.id} [{asg.namespace.start:g}, {asg.namespace.end:g})")

    lines += ["", "Variants"]
    width = max(len(v.id) for v in plan.variants)
    for v in plan.variants:
        lo, hi = v.bucket_range
        per = v.generate.per if v.generate else "once"
        source = f"static: {v.content!r}" if v.content is not None else f"prompt {v.prompt} ({per})"
        tag = " (control)" if v.control else ""
        if v.candidate is not None:
            tag += f" candidate {v.candidate} of {v.candidate_of}"
        lines.append(f"  {v.id:<{width}}  {_pct(v.weight):>7}  buckets [{lo:.4f}, {hi:.4f})  {source}{tag}")

    lines += candidates_summary(plan)

    if plan.prompts:
        lines += ["", "Prompts"]
        for name, p in plan.prompts.items():
            params = ", ".join(f"{k}={getattr(p, k)}" for k in ("temperature", "max_tokens", "top_p")
                               if getattr(p, k) is not None)
            lines.append(f"  {name}: {p.model}" + (f" ({params})" if params else ""))
            judge = p.checks.judge
            if judge is not None:
                lines.append(f"    judge: {judge.model}, passes at a score of {judge.threshold:g} or more (0 to 1); "
                             f"rubric: {(judge.rubric or '').strip()!r}")

    lines += ["", "Metrics"]
    for m in plan.metrics:
        numerator = m.numerator.event if m.numerator else "?"
        denominator = m.denominator.event if m.denominator else "?"
        detail = m.event or f"{numerator} / {denominator}"
        extra = [f"window {format_duration(m.window_seconds)}"] if m.window_seconds else []
        if m.mde is not None:
            extra.append(f"MDE {_pct(m.mde)}")
        if m.margin is not None:
            extra.append(f"margin {_pct(m.margin)}")
        lines.append(f"  {m.id} [{m.role}] {m.kind} of {detail}, {m.direction} is good"
                     + (f"; {', '.join(extra)}" if extra else ""))
    a = plan.analysis
    lines.append(f"  analysis: {a.method}, alpha {a.alpha:g}, power {a.power:g}, correction {a.correction}")
    if a.bandit is not None:
        b = a.bandit
        lines.append(f"  bandit: Thompson sampling on the primary metric; equal weights for {b.explore_days} "
                     f"day{'s' * (b.explore_days != 1)}, then at least {_pct(b.min_weight)} per arm; best_arm "
                     f"holds at P(best) >= {b.threshold:g}")
    seq = plan.sequential
    if seq:
        if seq.type == "group":
            lines.append(f"  sequential design: group-sequential, {(seq.spending or '').replace('_', '-')} alpha "
                         "spending at the looks below (Lan-DeMets); it ends at the first look with the planned "
                         "units, or at the last look, and that look spends what is left of alpha")
        else:
            lines.append("  sequential design: always-valid (mSPRT, mixing tuned to the planned size): "
                         "safe to look at any time")
    if any(m.cuped for m in plan.metrics):
        lines.append(f"  CUPED: {', '.join(m.id for m in plan.metrics if m.cuped)} "
                     f"(pre-period {format_duration(a.cuped_lookback)} before first exposure)")

    lines += ["", "Design"]
    ss = plan.sample_size
    if ss is None:
        lines.append(f"  sample size: cannot be planned ({plan.sample_size_unavailable})")
    else:
        lines.append(f"  required units ({ss.method}): {ss.per_variant:,} per variant, {ss.total:,} in total "
                     f"(baseline {ss.baseline:g}, MDE {_pct(ss.mde)}, alpha {ss.alpha:g}, power {ss.power:g})")
        if ss.fixed_horizon_per_variant:
            lines.append(f"    a fixed-horizon test would need {ss.fixed_horizon_per_variant:,} per variant; looking "
                         f"at any time costs x{ss.per_variant / ss.fixed_horizon_per_variant:.2f} for the same power")
        if ss.estimated_days is not None and plan.simulation is not None:
            lines.append(f"  estimated duration: {ss.estimated_days} days at "
                         f"{plan.simulation.units_per_day:,} units/day")
    st, sched = plan.stopping, plan.schedule
    limits = [f"looks every {sched.every}"]
    if st.max_days:
        limits.append(f"at most {st.max_days} days")
    if st.max_units:
        limits.append(f"at most {st.max_units:,} units")
    lines.append("  stopping: " + ", ".join(limits))
    for r in st.rules:
        lines.append(f"    when {r.when}" + (f" ({r.metric})" if r.metric else "") + f" -> {r.then}")
    lines.append(f"  look schedule: {_schedule_text(plan)}")

    lines += ["", "Content generation"]
    if not plan.generation.jobs:
        lines.append("  none: every variant is static")
    for j in plan.generation.jobs:
        how = {"once": "1 generation", "unit": "one generation per unit",
               "segment": f"one generation per segment of {', '.join(j.segment_by)}"}[j.per]
        lines.append(f"  {j.variant}: prompt {j.prompt} on {j.model}, {how}")
    budget = plan.generation.max_cost_usd
    lines.append(f"  budget: {f'${budget:.2f}' if budget is not None else 'none set'}; nothing runs in a dry run")
    if plan.prompts:
        lines += ["", "Data flow (unit attributes each prompt sends to its model; pii = personal data)"]
        lines += data_flow(plan)
    return "\n".join(lines)


def candidates_summary(plan: Plan) -> list[str]:
    """The candidates each variant expands into (their seeds and shares), and how many a judge keeps."""
    groups: dict[str, list] = {}
    for v in plan.variants:
        if v.candidate_of is not None:
            groups.setdefault(v.candidate_of, []).append(v)
    if not groups:
        return []
    offsets = {j.variant: j.seed_offset or 0 for j in plan.generation.jobs}
    lines = ["", "Candidates (each an arm with its own copy, generated with its own seed)"]
    for parent, arms in groups.items():
        share = sum(a.weight for a in arms)
        seeds = ", ".join(f"{a.id} +{offsets.get(a.id, 0)}" for a in arms)
        lines.append(f"  {parent}: {len(arms)} candidates sharing {_pct(share)} of traffic equally; seeds {seeds}")
        top_k = arms[0].top_k
        if top_k is not None:
            lines.append(f"    top_k {top_k}: after generation the judge's {top_k} best-scored candidates keep the "
                         f"{_pct(share)}, the others get no traffic")
    return lines


def data_flow(plan: Plan) -> list[str]:
    """One line per prompt: the attributes its templates read, so send, to which provider and model (indented)."""
    lines: list[str] = []
    pii = set(plan.pii)
    for name, prompt in plan.prompts.items():
        jobs = [j for j in plan.generation.jobs if j.prompt == name]
        provider = provider_of(prompt.model) or "inferred by litellm"
        where = f"provider {provider}, model {prompt.model}" + (f" at {prompt.api_base}" if prompt.api_base else "")
        judge = prompt.checks.judge
        segment_by = [a for j in jobs for a in j.segment_by]
        own = prompt.model_copy(update={"checks": prompt.checks.model_copy(update={"judge": None})})
        sent = prompt_reads(own, list(plan.attributes), pii, segment_by)
        shown = ", ".join(f"{a} (pii)" if a in pii else a for a in sent) or "no unit attribute"
        unused = "" if jobs else " (no variant uses it: nothing is sent)"
        lines.append(f"  {name} -> {where}: {shown}{unused}")
        if judge is not None and judge.rubric:
            rubric = own.model_copy(update={"template": judge.rubric, "system": None})
            read = prompt_reads(rubric, list(plan.attributes), pii, segment_by)
            graded = ", ".join(f"{a} (pii)" if a in pii else a for a in read)
            lines.append(f"  {name} judge -> provider {provider_of(judge.model) or 'inferred by litellm'}, model "
                         f"{judge.model}: each generated text" + (f", {graded}" if graded else "") + unused)
    personal = [a for a in plan.attributes if a in pii]
    if personal:
        senders = {a: [n for n, p in plan.prompts.items() if a in p.send_pii] for a in personal}
        lines.append("  personal attributes: " + "; ".join(
            f"{a} sent by {', '.join(senders[a])}" if senders[a] else f"{a} sent by no prompt" for a in personal))
    lines.append("  (--model, --api-base and --offline at run time change where every prompt goes)")
    return lines


def _schedule_text(plan: Plan) -> str:
    """The looks by day, shortened in the middle when there are many."""
    looks = plan.schedule.looks
    days = [_day(look.day) for look in looks]
    shown = ", ".join(days) if len(days) <= 12 else ", ".join(days[:5] + ["…"] + days[-3:])
    where = ("up to max_days" if plan.schedule.bounded
             else "up to the simulation's horizon; real data is looked at until it ends")
    return f"{len(looks)} looks on days {shown} ({where})"
