#!/usr/bin/env python
"""Benchmark: validating many specs with expc versus check-jsonschema.

Run from the repository root, in the project's virtualenv::

    .venv/bin/python benchmarks/validate.py [--n 1000] [--keep DIR] [--seed N] [--repeat R] [--profile]

What it does:

1. Generates N varied, realistic spec files (default 1,000) from the example
   specs in ``specs/`` (yaml.safe_load, mutate, dump), deterministically
   (fixed seed). 10% are made invalid the way people get specs wrong, in
   equal shares: an unknown key or a wrong type (structural: the JSON Schema
   sees them too), an undeclared attribute or a bad reference (semantic: only
   expc's checks see them).
2. Validates all N with expc in this process (``check_file`` in a loop:
   loading, structure and semantic checks), timed without import time; the
   import and the first call (which builds the deferred pydantic models) are
   timed separately.
3. Validates the same N files with check-jsonschema against the committed
   JSON Schema (structure only), one CLI process per batch of files; its
   start-up cost, measured on 1-file runs, is subtracted so that the
   comparison is per-spec throughput. An in-process estimate splits its time
   into YAML parsing and schema validation.
4. Measures the cold start of ``expc validate specs/welcome-email.yaml`` (15
   runs, as the environment runs it and with bytecode cached) and breaks down
   the import time of ``expc.cli`` (``python -X importtime``).
5. Prints a table, and how each tool's findings compare with what the
   generator intended. Exits 0: the figures are for reading, not a gate.

``--profile`` also profiles one more expc loop with cProfile and prints the top
functions by cumulative and by own time. Nothing outside the temporary folder
(or ``--keep DIR``) is written.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import importlib
import importlib.util
import io
import json
import os
import platform
import pstats
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SCHEMA = ROOT / "schemas" / "expc-spec.schema.json"
EXAMPLE = SPECS / "welcome-email.yaml"
INVALID_SHARE = 0.10
COLD_RUNS = 15
STARTUP_RUNS = 3
CJS_PYTHON = sys.executable  # the interpreter that runs check-jsonschema (--check-jsonschema-python)
SIMULATED_UNITS = 5_000_000  # expc's limit on the units of a simulated run (units_per_day x days, E070)
MAX_ARG_BYTES = 100_000  # per check-jsonschema batch; far below ARG_MAX, yet 1,000 specs fit in one batch

# ====================================================================== generation

TOPICS = [
    ("welcome", "Welcome email subject line", "activated",
     "Subject lines that name the reader's interests lift activation."),
    ("onboarding-push", "Onboarding push notification", "app_opened",
     "A push that names the next step brings people back."),
    ("cart-reminder", "Abandoned cart reminder", "purchase",
     "A reminder that mentions the items lifts recovered carts."),
    ("pricing-headline", "Pricing page headline", "upgraded", "A headline about saved time lifts upgrades."),
    ("winback", "Win-back email", "reactivated", "A personal win-back note reactivates lapsed users."),
    ("upgrade-banner", "In-app upgrade banner", "upgraded", "A banner that names a locked feature lifts upgrades."),
    ("newsletter-subject", "Weekly newsletter subject", "email_opened", "Specific subject lines lift opens."),
    ("trial-expiry", "Trial expiry email", "subscribed", "Naming what the trial user built lifts conversion."),
    ("referral-invite", "Referral invite copy", "referral_sent",
     "Copy that names a friend-facing benefit lifts referrals."),
    ("reco-blurb", "Product recommendation blurb", "product_clicked", "Blurbs written for the reader lift clicks."),
    ("checkout-nudge", "Checkout nudge", "checkout_completed", "A reassuring nudge lifts completed checkouts."),
    ("feature-tour", "Feature tour tooltip", "feature_used", "A tooltip in the user's words lifts feature adoption."),
]
OWNERS = ["growth@acme.example", "lifecycle@acme.example", "@maria", "@dev.kumar", "crm-team", "pricing@acme.example"]
ATTRIBUTE_POOL = [  # name, type, description, how a simulation draws it
    ("plan", "string", "Subscription plan", {"values": ["free", "pro", "team"], "weights": [0.7, 0.2, 0.1]}),
    ("age", "integer", "Age in years", {"min": 18, "max": 80}),
    ("ltv", "number", "Lifetime value in USD", {"mean": 120.0, "sd": 40.0}),
    ("is_paying", "boolean", "Has an active subscription", {"p": 0.3}),
    ("app_version", "version", "Installed app version", {"values": ["3.9.2", "4.0.0", "4.1.3"]}),
    ("signup_at", "datetime", "When the account was created", None),
    ("device", "string", "Device family", {"values": ["ios", "android", "web"]}),
    ("tags", "list[string]", "CRM tags", {"values": ["vip", "student", "b2b", "churn_risk"], "size": [0, 2]}),
    ("sessions_7d", "integer", "Sessions in the last 7 days", {"mean": 4.0, "sd": 2.5}),
    ("locale", "string", "Preferred locale", {"values": ["en-US", "en-GB", "fr-FR", "de-DE"]}),
    ("email_opt_in", "boolean", "Accepts marketing email", {"p": 0.8}),
    ("cart_value", "number", "Value of the open cart", {"min": 5, "max": 400}),
]
COUNTRIES = ["US", "CA", "GB", "DE", "FR", "ES", "IT", "NL", "SE", "AU", "BR", "MX", "JP", "IN"]
INTERESTS = ["running", "cooking", "travel", "gaming", "reading", "music", "photography", "gardening"]
MODELS = ["offline/copywriter", "offline/copywriter", "openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest",
          "ollama/llama3.1"]
SYSTEMS = [
    "You write short, friendly email subject lines. No emojis.",
    "You are a concise marketing copywriter. Plain English, no exclamation marks.",
    "Write in the brand voice: warm, direct, never pushy.",
    "You write push notifications of at most 90 characters.",
]
STATIC_CONTENT = [
    "Welcome to Acme!", "Your weekly update", "You left something in your cart", "Upgrade to Pro today",
    "We miss you", "Your trial ends soon", "Invite a friend, get a month free", "Picked for you",
    "Complete your order", "Try the new dashboard",
]
FORBID = ["free money", "guaranteed", "act now", "risk-free", "100% free", "winner", "urgent"]
REQUIRE = [r"\S", r"^[A-Z]", r"[.!?]$", r"(?i)acme", r"^.{10,}$"]
EVENTS_PROPORTION = ["email_clicked", "email_opened", "app_opened", "purchase", "upgraded", "session_started",
                     "support_contacted", "feature_used"]
EVENTS_MEAN = ["revenue", "order_value", "page_views", "minutes_active"]
GUARDRAILS = ["unsubscribed", "spam_reported", "refund_requested", "app_uninstalled", "support_contacted"]
WINDOWS = ["12h", "1d", "3d", "7d", "7d", "14d", "2w", "30d"]
LOOKS = ["daily", "daily", "weekly", "hourly", "12h", "6h"]
UNKNOWN_KEYS = {  # realistic typos and invented keys per section
    "experiment": ["owners", "hypotesis", "team", "tags"],
    "metric": ["windw", "baseline_rate", "goal", "mde_pct"],
    "analysis": ["methd", "confidence", "alpha_level"],
    "stopping": ["max_day", "look", "min_units"],
    "variant": ["wieght", "traffic", "prompt_id"],
    "prompt": ["temprature", "max_token", "provider"],
    "top": ["notes", "variant", "owner"],
}


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # libyaml's emitter: 10x faster, same output
    """SafeDumper that writes multi-line strings (templates) as `|` blocks, as people do."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value and not any(line != line.rstrip() for line in value.splitlines()) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


class _FlowMap(dict):
    """A small mapping written inline, `{per: unit}`, as people write leaves."""


class _FlowSeq(list):
    """A list of scalars written inline, `[US, CA]`."""


_Dumper.add_representer(str, _str)
_Dumper.add_representer(_FlowMap, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))
_Dumper.add_representer(_FlowSeq, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def _styled(node: Any, depth: int = 0) -> Any:
    """Sections and list items in block style; short leaf mappings and scalar lists inline."""
    if isinstance(node, dict):
        inner = {k: _styled(v, depth + 1) for k, v in node.items()}
        leafy = all(not isinstance(v, (dict, list)) or isinstance(v, _FlowSeq)
                    or isinstance(v, _FlowMap) and all(not isinstance(x, dict) for x in v.values())
                    for v in inner.values())
        short = len(str(inner)) < 64
        return _FlowMap(inner) if depth >= 2 and leafy and short and inner else inner
    if isinstance(node, list):
        items = [_styled(v, depth + 1) for v in node]
        if items and all(not isinstance(v, (dict, list)) for v in items):
            return _FlowSeq(items)
        return items
    return node


def dump(data: dict[str, Any], schema_ref: str) -> str:
    """The spec's YAML text, with the yaml-language-server modeline."""
    body = yaml.dump(_styled(data), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=100)
    return f"# yaml-language-server: $schema={schema_ref}\n#\n# Generated by benchmarks/validate.py\n{body}"


def _pct(r: random.Random, lo: float, hi: float) -> str | float:
    """A share written as '5%' or 0.05, as people do."""
    value = round(r.uniform(lo, hi), 1)
    return f"{value:g}%" if r.random() < 0.6 else round(value / 100, 4)


def _condition(r: random.Random, name: str, kind: str) -> Any:
    """A GrowthBook condition on one attribute, with an operator that fits its type."""
    if kind == "string":
        values = {"country": COUNTRIES, "plan": ["free", "pro", "team"], "device": ["ios", "android", "web"],
                  "platform": ["ios", "android"], "locale": ["en-US", "en-GB", "fr-FR", "de-DE"],
                  "category": ["tents", "backpacks", "footwear"], "favorite_category": ["shoes", "bags", "home"],
                  }.get(name, [f"{name}_{k}" for k in ("a", "b", "c")])
        op = r.choice(["$in", "$in", "$nin", "$eq", "$ne", "literal", "$regex"])
        if op in ("$in", "$nin"):
            return {op: r.sample(values, k=min(len(values), r.randint(1, 3)))}
        if op == "$regex":
            return {"$regex": "^" + re.escape(r.choice(values)[:2])}
        return r.choice(values) if op == "literal" else {op: r.choice(values)}
    if kind in ("integer", "number"):
        op = r.choice(["$lte", "$gte", "$lt", "$gt", "range"])
        bound = r.randint(1, 60) if kind == "integer" else round(r.uniform(1, 300), 2)
        return {"$gte": 0, "$lte": bound} if op == "range" else {op: bound}
    if kind == "boolean":
        return r.choice([True, False, {"$eq": True}, {"$ne": False}, {"$exists": True}])
    if kind == "version":
        return {r.choice(["$vgte", "$vgt", "$vlt"]): r.choice(["3.9.0", "4.0.0", "4.1.0"])}
    if kind == "datetime":
        return {r.choice(["$gt", "$gte", "$lt"]): f"2026-0{r.randint(1, 9)}-01T00:00:00Z"}
    # list[string]
    values = INTERESTS if name == "interests" else ["vip", "student", "b2b", "churn_risk"]
    op = r.choice(["$elemMatch", "$all", "$size", "$in"])
    if op == "$elemMatch":
        return {"$elemMatch": r.choice([{"$in": r.sample(values, k=2)}, {"$eq": r.choice(values)}])}
    if op == "$all":
        return {"$all": r.sample(values, k=r.randint(1, 2))}
    if op == "$size":
        return {"$size": {"$gt": 0}}
    return {"$in": r.sample(values, k=r.randint(1, 3))}


def _where(r: random.Random, attrs: dict[str, str], unit: str) -> dict[str, Any]:
    names = [a for a in attrs if a not in (unit, "user_id", "account_id", "first_name")]
    picked = r.sample(names, k=min(len(names), r.randint(1, 3)))
    clauses = {name: _condition(r, name, attrs[name]) for name in picked}
    shape = r.random()
    if shape < 0.55 or len(clauses) == 1:
        return clauses
    items = [{k: v} for k, v in clauses.items()]
    if shape < 0.75:
        return {"$and": items}
    if shape < 0.9:
        return {"$or": items}
    first, second, *_ = items
    return {"$and": [first, {"$not": second}]}


def _template(r: random.Random, attrs: dict[str, str]) -> tuple[str, set[str]]:
    """A Jinja template and the attributes (user.<name>) it reads."""
    strings = [a for a, t in attrs.items() if t == "string" and a not in ("user_id",)]
    lists = [a for a, t in attrs.items() if t == "list[string]"]
    numbers = [a for a, t in attrs.items() if t in ("integer", "number")]
    lines: list[str] = []
    used: set[str] = set()
    opener = r.choice([
        "Write one subject line for a new Acme customer",
        "Write a push notification of at most 90 characters for an Acme user",
        "Write a two-sentence product blurb for a reader",
        "Write a friendly reminder for a shopper",
        "Write a short in-app message for a customer",
    ])
    if strings and r.random() < 0.7:
        a = r.choice(strings)
        used.add(a)
        lines.append(f"{opener} whose {a.replace('_', ' ')} is {{{{ user.{a} }}}}.")
    else:
        lines.append(f"{opener}.")
    if lists and r.random() < 0.7:
        a = r.choice(lists)
        used.add(a)
        if r.random() < 0.5:
            lines.append(f'They like {{{{ user.{a} | join(", ") }}}}.')
        else:
            lines += [f"{{% for item in user.{a} %}}", "- mention {{ item | title }}{% if not loop.last %},{% endif %}",
                      "{% endfor %}"]
    if numbers and r.random() < 0.4:
        a = r.choice(numbers)
        used.add(a)
        lines += [f"{{% if user.{a} > 10 %}}", "Thank them for being a regular.", "{% else %}",
                  "Welcome them warmly.", "{% endif %}"]
    if r.random() < 0.5:
        field = r.choice(["name", "id"])
        lines.append(f"The variant is {{{{ variant.id }}}} of {{{{ experiment.{field} | default('the test') }}}}.")
    lines.append(r.choice(["No emojis.", "Keep it under 70 characters.", "Do not promise discounts.",
                           "Use sentence case.", "Return only the text."]))
    return "\n".join(lines) + "\n", used


def _attr_type(value: Any) -> str:
    return value if isinstance(value, str) else value["type"]


_READS = re.compile(r"\b(?:user|segment)\.([A-Za-z_][A-Za-z0-9_]*)")


def _reads(prompt: dict[str, Any]) -> set[str]:
    """Attributes a (base) prompt's templates read; "segment." marks one read through `segment`."""
    text = "\n".join(prompt.get(field) or "" for field in ("template", "system"))
    return set(_READS.findall(text)) | ({"segment."} if re.search(r"\bsegment\.", text) else set())


def _generation_for(r: random.Random, used: set[str]) -> dict[str, Any] | None:
    """A `generate` setting that fits what the template reads (`segment.x` needs per segment)."""
    if used:
        if "segment." in used:
            return {"per": "segment", "segment_by": sorted(used - {"segment."})}
        if r.random() < 0.5:
            return {"per": "unit"}
        return {"per": "segment", "segment_by": sorted(used)}
    return r.choice([None, None, {"per": "once"}, {"per": "unit"}])


def generate_spec(r: random.Random, bases: list[dict[str, Any]], index: int) -> dict[str, Any]:
    """One valid, varied spec derived from a base spec: some sections kept and varied, others regenerated."""
    base = r.choice(bases)
    spec = copy.deepcopy(base)
    slug, name, primary_event, hypothesis = r.choice(TOPICS)
    quarter = f"{r.randint(2025, 2027)}q{r.randint(1, 4)}"
    pool = {a[0]: a for a in ATTRIBUTE_POOL}

    # ---- experiment: a new id always; the rest new or the base's
    exp = spec["experiment"]
    exp["id"] = f"{slug}-{quarter}-{index:04d}"
    if r.random() < 0.6:
        exp["name"] = f"{name} ({quarter.upper()})"
        exp["owner"] = r.choice(OWNERS)
        exp["hypothesis"] = hypothesis
    if r.random() < 0.3:
        exp["description"] = f"Round {r.randint(1, 5)} of the {name.lower()} programme; see the experiment log."
    base_unit = exp.get("unit", "user_id")
    unit = base_unit if r.random() < 0.75 else r.choice(["user_id", "account_id"])
    exp["unit"] = unit
    if r.random() < 0.15:
        exp["seed"] = f"{slug}-salt-{r.randint(1, 99)}"

    # ---- attributes: every one of the base's (its audiences and templates use them), plus a few from the pool
    attributes: dict[str, Any] = dict(spec.get("attributes", {}))
    if unit not in attributes:
        attributes = {unit: "string" if unit != "account_id" else "integer", **attributes}
    for extra in r.sample(list(pool), k=r.randint(0, 7)):
        if extra not in attributes:
            attributes[extra] = {"type": pool[extra][1], "description": pool[extra][2]} if r.random() < 0.3 \
                else pool[extra][1]
    spec["attributes"] = attributes
    attrs = {k: _attr_type(v) for k, v in attributes.items()}

    # ---- audiences: the base's (or not), plus generated ones
    audiences = dict(spec.get("audiences", {})) if r.random() < 0.5 else {}
    for j in range(r.choice([0, 0, 0, 1, 1, 2])):
        aud_name = r.choice(["new_users", "north_america", "paying", "mobile", "engaged", "eu_customers", "at_risk",
                             "beta_testers"]) + f"_{j}"
        aud: dict[str, Any] = {"where": _where(r, attrs, unit)}
        if r.random() < 0.5:
            aud = {"description": f"Units in the {aud_name.replace('_', ' ')} segment", **aud}
        audiences[aud_name] = aud
    if audiences:
        spec["audiences"] = audiences
    else:
        spec.pop("audiences", None)

    # ---- prompts: the base's (lightly varied), plus generated ones
    keep_base_prompts = bool(spec.get("prompts")) and r.random() < 0.6
    prompts: dict[str, dict[str, Any]] = dict(spec.get("prompts", {})) if keep_base_prompts else {}
    reads: dict[str, set[str]] = {}
    for pname, p in prompts.items():
        if r.random() < 0.5:
            p["template"] = p["template"].rstrip("\n") + "\n" + r.choice(
                ["Return only the text.", "Use sentence case.", "Do not mention prices.", "Avoid jargon."]) + "\n"
        if "temperature" in p and r.random() < 0.5:
            p["temperature"] = round(r.uniform(0, 1.2), 2)
        if r.random() < 0.3:
            p["model"] = r.choice(MODELS)
        reads[pname] = _reads(p)
    for j in range(r.choice([0, 1, 1, 1, 2, 2, 3]) if not prompts else r.choice([0, 0, 1])):
        pname = r.choice(["subject_line", "push_copy", "blurb", "reminder", "headline"]) + f"_{j}"
        if pname in prompts:
            continue
        template, used = _template(r, attrs)
        p = {"model": r.choice(MODELS)}
        if r.random() < 0.8:
            p["temperature"] = round(r.uniform(0, 1.2), 2)
        if r.random() < 0.6:
            p["max_tokens"] = r.choice([30, 40, 60, 120, 200])
        if r.random() < 0.2:
            p["top_p"] = r.choice([0.9, 0.95, 1])
        if r.random() < 0.7:
            p["system"] = r.choice(SYSTEMS)
        p["template"] = template  # no api_key_env: a spec may not choose which secret is sent (E080)
        checks: dict[str, Any] = {}
        if r.random() < 0.7:
            checks["max_chars"] = r.choice([70, 90, 140, 280])
            if r.random() < 0.3:
                checks["min_chars"] = r.choice([5, 10, 20])
        if r.random() < 0.6:
            checks["forbid"] = r.sample(FORBID, k=r.randint(1, 3))
        if r.random() < 0.3:
            checks["require"] = r.sample(REQUIRE, k=r.randint(1, 2))
        if r.random() < 0.3:
            checks["regenerate"] = r.randint(0, 4)
        if r.random() < 0.5:
            checks["on_fail"] = r.choice(["error", "skip", "use_control"])
        if checks:
            p["checks"] = checks
        prompts[pname] = p
        reads[pname] = used
    if prompts:
        spec["prompts"] = prompts
    else:
        spec.pop("prompts", None)

    # ---- variants: 2-5; the base's (when its prompts are kept) topped up or cut, or new ones
    n_variants = r.choice([2, 2, 2, 3, 3, 4, 5])
    names = ["control", "personalized", "short", "playful", "benefit_led", "urgent", "question", "social_proof"]
    if keep_base_prompts and r.random() < 0.6:
        variants = [v for v in spec.get("variants", []) if v.get("prompt") is None or v["prompt"] in prompts]
        variants = variants[:n_variants]
    else:
        variants = []
    weights_style = r.choice(["keep", "equal", "int", "float"])
    while len(variants) < n_variants:
        taken = {v["id"] for v in variants}
        v = {"id": "control" if not variants and "control" not in taken
             else r.choice([x for x in names[1:] if x not in taken])}
        if not variants and r.random() < 0.6:
            v["control"] = True
        if r.random() < 0.3:
            v["description"] = r.choice(["Current copy", "Generated per reader", "Shorter copy", "Benefit first"])
        if variants and prompts and r.random() < 0.7:
            unused = [p for p in prompts if all(v.get("prompt") != p for v in variants)]
            pname = r.choice(unused or list(prompts))
            v["prompt"] = pname
            gen = _generation_for(r, reads[pname])
            if gen:
                v["generate"] = gen
        else:
            v["content"] = r.choice(STATIC_CONTENT)
        variants.append(v)
    for v in variants:
        if weights_style == "int":
            v["weight"] = r.randint(1, 4)
        elif weights_style == "float":
            v["weight"] = round(r.uniform(0.2, 2.0), 2)
        elif weights_style == "equal" and r.random() < 0.5:
            v["weight"] = 1
    spec["variants"] = variants
    used_prompts = {v.get("prompt") for v in variants}
    for pname in [p for p in prompts if p not in used_prompts]:
        if r.random() < 0.85:  # most people remove what they no longer use; some leave it (a warning)
            del prompts[pname]
    if not prompts:
        spec.pop("prompts", None)
    control_id = next((v["id"] for v in variants if v.get("control")), variants[0]["id"])

    # ---- allocation
    alloc: dict[str, Any] = {}
    if audiences and r.random() < 0.85:
        alloc["audience"] = r.choice(list(audiences))
    for aud_name in [a for a in audiences if a != alloc.get("audience")]:
        if r.random() < 0.85:  # an audience nothing uses is a warning; keep a few
            del audiences[aud_name]
    if not audiences:
        spec.pop("audiences", None)
    alloc["coverage"] = r.choice(["100%", "90%", "50%", "25%", 1.0, 0.5, 0.2, "10%"])
    layer = r.random()
    if layer < 0.4:
        alloc["layer"] = f"{slug}-layer"
    elif layer < 0.6:
        start = r.choice([0.0, 0.25, 0.5])
        alloc["layer"] = {"id": f"{slug}-layer", "range": [start, start + r.choice([0.25, 0.5])]}
    if r.random() < 0.2:
        alloc["hash_version"] = r.choice([1, 2])
    spec["allocation"] = alloc

    # ---- metrics: exactly one primary; the base's (varied) or new ones, plus secondaries
    if spec.get("metrics") and r.random() < 0.5:
        metrics = spec["metrics"]
        for m in metrics:
            if "window" in m and r.random() < 0.5:
                m["window"] = r.choice(WINDOWS)
            if m.get("role") == "primary":
                m["mde"] = _pct(r, 1, 15)
            if m.get("role") == "guardrail" and r.random() < 0.5:
                m["margin"] = _pct(r, 0.5, 20)
    else:
        kind = r.choices(["proportion", "mean", "ratio"], weights=[6, 2.5, 1.5])[0]
        metrics = [_metric(r, kind, "primary", primary_event if kind == "proportion" else None)]
        for g in r.sample(GUARDRAILS, k=r.choice([0, 1, 1, 2])):
            metrics.append({"id": g, "kind": "proportion", "event": g, "window": r.choice(WINDOWS),
                            "role": "guardrail", "direction": "decrease", "margin": _pct(r, 0.5, 5)})
    taken = {m["id"] for m in metrics}
    for _ in range(r.choice([0, 0, 1, 2, 3])):
        m = _metric(r, r.choices(["proportion", "mean", "ratio"], weights=[5, 3, 2])[0], "secondary")
        if m["id"] not in taken:
            taken.add(m["id"])
            metrics.append(m)
    r.shuffle(metrics)
    spec["metrics"] = metrics
    primary = next(m for m in metrics if m.get("role") == "primary")

    # ---- analysis
    method = r.choice(["fixed", "fixed", "sequential", "bayesian"])
    analysis: dict[str, Any] = {"method": method}
    analysis["alpha"] = r.choice([0.05, 0.05, 0.01, 0.1, "5%", "10%"])
    analysis["power"] = r.choice([0.8, 0.8, 0.9, "80%", "90%"])
    if r.random() < 0.7:
        analysis["correction"] = r.choice(["holm", "bonferroni", "bh", "none"])
    if r.random() < 0.3:
        analysis["family"] = r.choice(["per_metric", "primary"])
    if r.random() < 0.5:
        analysis["srm_threshold"] = r.choice([0.001, 0.0005, "0.1%"])
    spec["analysis"] = analysis

    # ---- stopping: rules consistent with what is set
    stopping: dict[str, Any] = {"looks": r.choice(LOOKS)}
    if r.random() < 0.6:
        stopping["min_units_per_variant"] = r.choice([100, 500, 1000, 5000])
    if r.random() < 0.85:
        stopping["max_days"] = r.choice([7, 14, 21, 28, 42, 60])
    if r.random() < 0.3:
        stopping["max_units"] = r.choice([50_000, 200_000, 1_000_000])
    rules = [{"when": "srm", "then": "stop_inconclusive"}]
    guardrails = [m["id"] for m in metrics if m.get("role") == "guardrail"]
    if guardrails:
        rule: dict[str, Any] = {"when": "guardrail_harm", "then": "stop_rollback"}
        if r.random() < 0.3:
            rule["metric"] = r.choice(guardrails)
        rules.append(rule)
    rules.append({"when": "primary_significant", "then": "stop_ship_winner"})
    if method != "fixed" and r.random() < 0.4:
        rules.append({"when": "futility", "then": "stop_futility", "metric": primary["id"]})
    for limit in ("max_days", "max_units"):
        if limit in stopping:
            rules.append({"when": limit, "then": "stop_inconclusive"})
    stopping["rules"] = rules if r.random() < 0.9 else []
    spec["stopping"] = stopping

    # ---- simulation: the base's distributions for its attributes, pool ones for the rest; new truths
    if r.random() < 0.85:
        sim: dict[str, Any] = {"units_per_day": r.choice([500, 2000, 6000, 10000, 25000, 100000])}
        if r.random() < 0.3:
            sim["days"] = r.choice([7, 14, 28])
        sim["seed"] = r.randint(0, 10_000)
        dists: dict[str, Any] = dict((base.get("simulation") or {}).get("attributes", {}))
        for a in attrs:
            if a == "country" and r.random() < 0.5:
                k = r.randint(2, 4)
                dists[a] = {"values": COUNTRIES[:k], "weights": [round(r.uniform(0.1, 1), 2) for _ in range(k)]}
            elif a in pool and a not in dists and pool[a][3] is not None and r.random() < 0.7:
                dists[a] = copy.deepcopy(pool[a][3])
        if dists:
            sim["attributes"] = dists
        truth: dict[str, Any] = {}
        for v in variants:
            per_metric: dict[str, Any] = {}
            for m in metrics:
                control = v["id"] == control_id
                # a treatment's value is rarely left out (it takes the control's: a warning, not an error); the
                # control's is always given, since a metric without a baseline would have no true value (E060)
                if r.random() < 0.01 and not control:
                    continue
                lift = 1 if control else 1 + r.uniform(-0.03, 0.12)
                if m["kind"] == "proportion":
                    base_rate = m.get("baseline", 0.01 if m.get("role") == "guardrail" else 0.1)
                    per_metric[m["id"]] = round(min(0.99, base_rate * lift), 4)
                elif m["kind"] == "mean" and r.random() < 0.5:
                    per_metric[m["id"]] = {"mean": round(m.get("baseline", 20.0) * lift, 3), "sd": m.get("sd", 15.0)}
                elif control and "sd" not in m:  # a bare number keeps the control's sd: the control needs one (E060)
                    sd = 15.0 if m["kind"] == "mean" else 1.0
                    per_metric[m["id"]] = {"mean": round(m.get("baseline", 2.0) * lift, 3), "sd": sd}
                else:
                    per_metric[m["id"]] = round(m.get("baseline", 2.0) * lift, 3)
            truth[v["id"]] = per_metric
        sim["truth"] = truth
        days = sim.get("days") or stopping.get("max_days") or 28
        if sim["units_per_day"] * days > SIMULATED_UNITS:  # expc's limit on a simulated run (E070)
            sim["units_per_day"] = SIMULATED_UNITS // days
        spec["simulation"] = sim
    else:
        spec.pop("simulation", None)

    # ---- generation limits (only matter with prompts)
    if spec.get("prompts") and r.random() < 0.6:
        gen_limits: dict[str, Any] = {}
        if r.random() < 0.7:
            gen_limits["max_cost_usd"] = r.choice([1, 5, 20, 50.0])
        if r.random() < 0.5:
            gen_limits["concurrency"] = r.choice([2, 4, 8, 16])
        if r.random() < 0.5:
            gen_limits["timeout"] = r.choice(["20s", "30s", "60s", "2m"])
        if gen_limits:
            spec["generation"] = gen_limits
        else:
            spec.pop("generation", None)
    else:
        spec.pop("generation", None)
    return spec


def _metric(r: random.Random, kind: str, role: str, event: str | None = None) -> dict[str, Any]:
    if kind == "proportion":
        event = event or r.choice(EVENTS_PROPORTION)
        m: dict[str, Any] = {"id": event, "kind": "proportion", "event": event}
        if r.random() < 0.6:
            m["baseline"] = round(r.uniform(0.02, 0.5), 3)
    elif kind == "mean":
        event = r.choice(EVENTS_MEAN)
        m = {"id": f"{event}_per_user", "kind": "mean", "event": event}
        if r.random() < 0.6:
            m["baseline"] = round(r.uniform(5, 80), 2)
            m["sd"] = round(m["baseline"] * r.uniform(0.5, 2), 2)
    else:
        num, den = r.choice([("revenue", "order_placed"), ("items_added", "session_started"),
                             ("clicks", "impressions"), ("minutes_active", "session_started")])
        m = {"id": f"{num}_per_{den}", "kind": "ratio"}
        m["numerator"] = num if r.random() < 0.5 else {"event": num, "measure": "value"}
        m["denominator"] = {"event": den, "measure": "count"}
        if r.random() < 0.5:
            m["baseline"] = round(r.uniform(0.5, 5), 2)
            m["sd"] = round(r.uniform(0.5, 3), 2)
    if r.random() < 0.4:
        m["name"] = m["id"].replace("_", " ").capitalize()
    if r.random() < 0.8:
        m["window"] = r.choice(WINDOWS)
    m["role"] = role
    m["direction"] = "increase"
    if role == "primary" or r.random() < 0.3:
        m["mde"] = _pct(r, 1, 10)
    return m


# ---------------------------------------------------------------- invalid specs
# Each mutation makes a valid spec invalid in one realistic way, or returns False
# when the spec lacks what it needs. STRUCTURAL ones break the schema (both tools
# should report them); SEMANTIC ones are only visible to expc's checks.


def _unknown_key(r: random.Random, s: dict[str, Any]) -> bool:
    where = r.choice(list(UNKNOWN_KEYS))
    key = r.choice(UNKNOWN_KEYS[where])
    value: Any = r.choice(["7d", 3, "growth", True])
    target = {"experiment": s["experiment"], "analysis": s["analysis"], "stopping": s["stopping"], "top": s,
              "metric": r.choice(s["metrics"]), "variant": r.choice(s["variants"]),
              "prompt": r.choice(list(s["prompts"].values())) if s.get("prompts") else None}[where]
    if target is None or key in target:
        return False
    target[key] = value
    return True


def _wrong_type(r: random.Random, s: dict[str, Any]) -> bool:
    choice = r.randrange(7)
    if choice == 0 and s.get("simulation"):
        s["simulation"]["units_per_day"] = str(s["simulation"]["units_per_day"])  # "6000"
    elif choice == 1:
        r.choice(s["variants"])["weight"] = r.choice(["2", "half", [1, 2]])
    elif choice == 2 and "max_days" in s["stopping"]:
        s["stopping"]["max_days"] = f"{s['stopping']['max_days']} days"
    elif choice == 3 and s.get("prompts"):
        p = r.choice(list(s["prompts"].values()))
        if "checks" in p and "forbid" in p["checks"]:
            p["checks"]["forbid"] = ", ".join(p["checks"]["forbid"])  # a string, not a list
        else:
            p["temperature"] = "warm"
    elif choice == 4:
        s["variants"][0]["control"] = "yes"
    elif choice == 5:
        s["analysis"]["method"] = r.choice(["frequentist", "bayes", "Sequential"])  # not one of the enum
    elif choice == 6:
        r.choice(s["metrics"])["kind"] = r.choice(["propotion", "average", "count"])
    else:
        return False
    return True


def _undeclared_attribute(r: random.Random, s: dict[str, Any]) -> bool:
    choice = r.randrange(4)
    attrs = s["attributes"]
    typo = r.choice(["contry", "favorite_color", "signupDays", "membership_tier", "first_nme", "interest"])
    if typo in attrs:
        return False
    if choice == 0 and s.get("audiences"):
        aud = r.choice(list(s["audiences"].values()))
        aud["where"][typo] = {"$in": ["x", "y"]}
    elif choice == 1 and s.get("prompts"):
        p = r.choice(list(s["prompts"].values()))
        p["template"] = p["template"].rstrip("\n") + f"\nMention their {{{{ user.{typo} }}}}.\n"
    elif choice == 2 and any("generate" in v and v["generate"].get("per") == "segment" for v in s["variants"]):
        v = next(v for v in s["variants"] if "generate" in v and v["generate"].get("per") == "segment")
        v["generate"]["segment_by"].append(typo)
    elif choice == 3 and s.get("simulation"):
        s["simulation"].setdefault("attributes", {})[typo] = {"values": ["a", "b"]}
    else:
        return False
    return True


def _bad_reference(r: random.Random, s: dict[str, Any]) -> bool:
    choice = r.randrange(4)
    if choice == 0:
        name = s["allocation"].get("audience", "everyone")
        s["allocation"]["audience"] = name + "s" if s.get("audiences") else "new_north_america"
    elif choice == 1 and any("prompt" in v for v in s["variants"]):
        v = next(v for v in s["variants"] if "prompt" in v)
        v["prompt"] = v["prompt"].replace("_", "-") if "_" in v["prompt"] else v["prompt"] + "_v2"
    elif choice == 2 and s.get("simulation", {}).get("truth"):
        truth = s["simulation"]["truth"]
        vid = r.choice(list(truth))
        truth[vid.capitalize() if vid.capitalize() not in truth else vid + "_x"] = truth.pop(vid)
    elif choice == 3 and s["stopping"].get("rules"):
        s["stopping"]["rules"].append({"when": "primary_significant", "then": "stop_ship_winner",
                                       "metric": "conversion_rate"})
    else:
        return False
    return True


MUTATIONS: dict[str, tuple[str, Callable[[random.Random, dict[str, Any]], bool]]] = {
    "unknown key": ("structural", _unknown_key),
    "wrong type": ("structural", _wrong_type),
    "undeclared attribute": ("semantic", _undeclared_attribute),
    "bad reference": ("semantic", _bad_reference),
}


def usable_bases() -> list[tuple[Path, dict[str, Any]]]:
    """The example specs in specs/ that load and that expc finds valid (others are skipped, with a note).

    Checked with the `expc` command, so that this process has not imported expc before it is timed.
    """
    candidates = sorted(list(SPECS.glob("*.yaml")) + list(SPECS.glob("*.yml")))
    loaded: list[tuple[Path, dict[str, Any]]] = []
    for path in candidates:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            print(f"  note: skipping {path.relative_to(ROOT)}: it does not load ({str(exc).splitlines()[0]})")
            continue
        if isinstance(data, dict) and isinstance(data.get("experiment"), dict) and data.get("variants"):
            loaded.append((path, data))
    if not loaded:
        sys.exit(f"no usable example spec in {SPECS}")
    exe = Path(sys.executable).parent / "expc"
    proc = subprocess.run([str(exe), "validate", "--format", "json", *(str(p) for p, _ in loaded)],
                          capture_output=True, text=True, cwd=ROOT)
    bad = {d["file"] for d in json.loads(proc.stdout or "[]") if d["severity"] == "error"}
    usable = [(p, d) for p, d in loaded if str(p) not in bad]
    for p in sorted(bad):
        print(f"  note: skipping {Path(p).relative_to(ROOT)}: expc reports errors in it")
    if not usable:
        sys.exit(f"no example spec in {SPECS} is valid")
    return usable


def generate(n: int, out: Path, seed: int) -> list[tuple[Path, str | None]]:
    """Write n specs to ``out``; returns (path, mutation name or None when valid) for each."""
    r = random.Random(seed)
    bases = [base for _, base in usable_bases()]
    schema_ref = os.path.relpath(SCHEMA, out)
    n_invalid = round(n * INVALID_SHARE)
    invalid_at = sorted(r.sample(range(n), k=n_invalid))
    kinds = list(MUTATIONS)
    kind_of = {i: kinds[j % len(kinds)] for j, i in enumerate(invalid_at)}  # the four kinds in equal shares
    files: list[tuple[Path, str | None]] = []
    for i in range(n):
        spec = generate_spec(r, bases, i)
        label = None
        if i in kind_of:
            for attempt in range(60):  # the intended kind first (its sub-cases need different sections)
                kind = kind_of[i] if attempt < 40 else kinds[attempt % len(kinds)]
                trial = copy.deepcopy(spec)
                if MUTATIONS[kind][1](r, trial):
                    spec, label = trial, kind
                    break
            else:  # pragma: no cover - every spec has variants and analysis
                raise RuntimeError(f"could not make spec {i} invalid")
        path = out / f"spec-{i:04d}.yaml"
        path.write_text(dump(spec, schema_ref), encoding="utf-8")
        files.append((path, label))
    return files


# ====================================================================== tools


def run_expc(paths: list[Path], repeat: int = 1, profile: bool = False) -> dict[str, Any]:
    """Validate every path with expc in this process; time import, first call and the loop (best of ``repeat``)."""
    t0 = time.perf_counter()
    pipeline = importlib.import_module("expc.compiler.pipeline")
    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = pipeline.check_file(EXAMPLE)  # builds the deferred pydantic models and the Jinja environment
    first_s = time.perf_counter() - t0
    if not first.ok():
        raise SystemExit(f"the example spec is invalid for expc: {first.diagnostics}")
    check_file = pipeline.check_file
    loop_s = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        results = [check_file(p) for p in paths]
        loop_s = min(loop_s, time.perf_counter() - t0)
    out = {"import_s": import_s, "first_s": first_s, "loop_s": loop_s,
           "invalid": {str(p) for p, res in zip(paths, results) if not res.ok()},
           "codes": Counter(d.code for res in results for d in res.diagnostics)}
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        for p in paths:
            check_file(p)
        prof.disable()
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf)
        stats.sort_stats("cumulative").print_stats(30)
        out["profile"] = buf.getvalue()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
        out["profile_tottime"] = buf.getvalue()
    return out


def _cjs_command(files: list[str]) -> list[str]:
    return [CJS_PYTHON, "-m", "check_jsonschema", "--schemafile", str(SCHEMA), "--output-format", "json", *files]


def _cjs_batches(files: list[str]) -> list[list[str]]:
    batches: list[list[str]] = [[]]
    size = 0
    for f in files:
        if batches[-1] and size + len(f) + 1 > MAX_ARG_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(f)
        size += len(f) + 1
    return batches


def _cjs_run(files: list[str]) -> tuple[float, set[str], int]:
    """Run check-jsonschema once; (seconds, files it reported, exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.run(_cjs_command(files), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"check-jsonschema failed (exit {proc.returncode}):\n{proc.stderr or proc.stdout}")
    report = json.loads(proc.stdout)
    bad = {e["filename"] for e in report.get("errors", [])} | {e["filename"] for e in report.get("parse_errors", [])}
    if proc.returncode == 1 and not bad:
        raise SystemExit(f"check-jsonschema exited 1 but reported no file:\n{proc.stdout}")
    return seconds, bad, proc.returncode


def run_check_jsonschema(paths: list[Path], repeat: int = 1) -> dict[str, Any]:
    """Validate every path with check-jsonschema, a process per batch, minus start-up (best of ``repeat``)."""
    startup = [_cjs_run([str(EXAMPLE)])[0] for _ in range(STARTUP_RUNS)]
    startup_s = statistics.median(startup)
    batches = _cjs_batches([str(p) for p in paths])
    total_s, invalid = float("inf"), set()
    for _ in range(repeat):
        run_s = 0.0
        for batch in batches:
            seconds, bad, _ = _cjs_run(batch)
            run_s += seconds
            invalid |= bad
        total_s = min(total_s, run_s)
    return {"startup_s": startup_s, "startup_runs": startup, "batches": len(batches), "total_s": total_s,
            "loop_s": max(total_s - len(batches) * startup_s, 1e-9), "invalid": invalid}


def check_jsonschema_breakdown(paths: list[Path], sample: int = 200) -> dict[str, Any]:
    """In-process estimate of where check-jsonschema's time goes: YAML parsing (ruamel.yaml, as it configures
    it) versus JSON Schema validation (jsonschema, every error collected, as it reports them)."""
    import jsonschema
    import ruamel.yaml

    try:
        from check_jsonschema.parsers.yaml import construct_yaml_implementation
        impl = construct_yaml_implementation()
    except ImportError:  # internal API; fall back to what it does
        impl = ruamel.yaml.YAML(typ="safe")
    try:
        import _ruamel_yaml  # noqa: F401
        clib = True
    except ImportError:
        clib = False
    raw = [p.read_bytes() for p in paths[:sample]]
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    parse_s = validate_s = libyaml_s = 0.0
    invalid = 0
    for b in raw:  # one document at a time, as check-jsonschema does
        t0 = time.perf_counter()
        doc = impl.load(b)
        t1 = time.perf_counter()
        invalid += bool(list(validator.iter_errors(doc)))
        t2 = time.perf_counter()
        yaml.load(b, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        t3 = time.perf_counter()
        parse_s, validate_s, libyaml_s = parse_s + t1 - t0, validate_s + t2 - t1, libyaml_s + t3 - t2
    return {"parse_s": parse_s, "validate_s": validate_s, "invalid": invalid, "clib": clib, "n": len(raw),
            "ruamel": ruamel.yaml.__version__, "validator": cls.__name__, "libyaml_s": libyaml_s}


def cold_start(runs: int, command: list[str] | None = None, env: dict[str, str] | None = None) -> list[float]:
    """Wall time of `expc validate specs/welcome-email.yaml` (or ``command``), run ``runs`` times."""
    if command is None:
        exe = Path(sys.executable).parent / "expc"
        if not exe.exists():
            raise SystemExit(f"no expc console script next to {sys.executable}")
        command = [str(exe), "validate", str(EXAMPLE.relative_to(ROOT))]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, env=env)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed (exit {proc.returncode}):\n{proc.stderr.decode()}")
    return times


def import_times(runs: int = 5, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`python -X importtime -c "import expc.cli"`, ``runs`` times; the best of the runs per figure.

    cumulative/self: µs per module. packages: µs of self time summed over every module of a top-level
    package, wherever it was first imported from (pydantic imports most of itself lazily, under
    expc.compiler.model, so its cumulative time alone understates it).
    """
    cumulative: dict[str, int] = {}
    self_us: dict[str, int] = {}
    packages: dict[str, int] = {}
    order: list[str] = []
    line_re = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import expc.cli"], cwd=ROOT,
                              capture_output=True, text=True, env=env)
        run_packages: Counter[str] = Counter()
        for line in proc.stderr.splitlines():
            m = line_re.match(line)
            if not m:
                continue
            own, cum, name = int(m.group(1)), int(m.group(2)), m.group(4)
            if name not in cumulative:
                order.append(name)
            cumulative[name] = min(cumulative.get(name, cum), cum)
            self_us[name] = min(self_us.get(name, own), own)
            package = name.split(".")[0].lstrip("_") or name
            run_packages[package if package != "editable___expc_0_1_0_finder" else "(editable-install finder)"] += own
        for package, us in run_packages.items():
            packages[package] = min(packages.get(package, us), us)
    return {"cumulative": cumulative, "self": self_us, "packages": packages, "order": order}


def cached_bytecode_env(prefix: Path) -> dict[str, str]:
    """An environment in which Python caches bytecode under ``prefix`` (never in the source tree)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(prefix)
    return env


def stale_bytecode() -> tuple[int, int]:
    """(expc modules without up-to-date bytecode in __pycache__, expc modules): the first compile on every import
    when Python may not write bytecode (PYTHONDONTWRITEBYTECODE)."""
    sources = [p for d in ("expc", "compiler", "runtime") for p in (ROOT / d).glob("*.py")]
    stale = 0
    for src in sources:
        pyc = Path(importlib.util.cache_from_source(str(src)))
        try:
            header = pyc.read_bytes()[:16]
        except OSError:
            stale += 1
            continue
        st = src.stat()
        flags = int.from_bytes(header[4:8], "little")
        fresh = (header[:4] == importlib.util.MAGIC_NUMBER and flags == 0
                 and int.from_bytes(header[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
                 and int.from_bytes(header[12:16], "little") == st.st_size & 0xFFFFFFFF)
        stale += not fresh
    return stale, len(sources)


def machine() -> str:
    """CPU model, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def source_state() -> str:
    """The commit measured, and whether the working tree differs from it (read-only git calls)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # `git status` must not even refresh the index
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              env=env).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                 capture_output=True, text=True, env=env).stdout.splitlines()
    except OSError:
        return "unknown (no git)"
    return f"{head or 'unknown'}" + (f" with {len(changed)} uncommitted file changes" if changed else ", clean")


# ====================================================================== report


def _print_breakdown(cjb: dict[str, Any]) -> None:
    m = cjb["n"]
    print(f"where check-jsonschema's time goes (in-process estimate over the first {m} specs):")
    print(f"  YAML parsing, ruamel.yaml {cjb['ruamel']} "
          f"({'C extension' if cjb['clib'] else 'pure Python: ruamel.yaml.clib is not installed'}): "
          f"{1000 * cjb['parse_s'] / m:.2f} ms/spec")
    print(f"  schema validation, jsonschema {cjb['validator']} (all errors): "
          f"{1000 * cjb['validate_s'] / m:.2f} ms/spec ({cjb['invalid']} of {m} invalid)")
    print("  for scale, PyYAML's libyaml CSafeLoader loads the same specs at "
          f"{1000 * cjb['libyaml_s'] / m:.2f} ms/spec")


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="number of specs to generate (default 1000)")
    ap.add_argument("--keep", metavar="DIR", help="write the specs to DIR and keep them (default: a temporary folder)")
    ap.add_argument("--seed", type=int, default=20261128, help="random seed of the generator")
    ap.add_argument("--repeat", type=int, default=1, help="time each tool's run this many times, keep the best")
    ap.add_argument("--profile", action="store_true", help="also profile one expc loop with cProfile")
    ap.add_argument("--check-jsonschema-python", metavar="PYTHON", default=sys.executable,
                    help="run check-jsonschema with this interpreter (another venv), default: this one")
    args = ap.parse_args()
    global CJS_PYTHON
    CJS_PYTHON = args.check_jsonschema_python

    if args.keep:
        out = Path(args.keep).resolve()
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("spec-*.yaml"):
            old.unlink()
    else:
        out = Path(tempfile.mkdtemp(prefix="expc-bench-"))
    try:
        return _bench(args, out)
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)


def _bench(args: argparse.Namespace, out: Path) -> int:
    from importlib.metadata import version

    print("expc validation benchmark")
    print(f"  python {platform.python_version()} on {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs, {machine()}")
    print(f"  source: commit {source_state()}")
    print(f"  expc {version('expc')}, pydantic {version('pydantic')}, PyYAML {version('PyYAML')} "
          f"(libyaml: {getattr(yaml, '__with_libyaml__', False)}), jinja2 {version('jinja2')}, "
          f"check-jsonschema {version('check-jsonschema')}, jsonschema {version('jsonschema')}")

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    files = generate(args.n, out, args.seed)
    paths = [p for p, _ in files]
    intended = {str(p): label for p, label in files if label}
    kinds = Counter(intended.values())
    sizes = [p.stat().st_size for p in paths]
    lines = [p.read_text(encoding="utf-8").count("\n") for p in paths]
    print(f"\nGenerated {len(paths)} specs in {out} ({time.perf_counter() - t0:.1f}s, seed {args.seed}): "
          f"{statistics.median(lines):.0f} lines / {statistics.median(sizes) / 1024:.1f} KiB median "
          f"(range {min(lines)}-{max(lines)} lines)")
    print(f"  made invalid on purpose: {len(intended)} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")

    print("\nValidating with expc (in process) ...", flush=True)
    ex = run_expc(paths, args.repeat, args.profile)
    print("Validating with check-jsonschema (subprocess) ...", flush=True)
    cj = run_check_jsonschema(paths, args.repeat)
    cjb = check_jsonschema_breakdown(paths) if CJS_PYTHON == sys.executable else None
    print(f"Cold start: `expc validate {EXAMPLE.relative_to(ROOT)}` x{COLD_RUNS} ...", flush=True)
    stale, modules = stale_bytecode()
    cache_env = cached_bytecode_env(out / ".pycache")
    cold_start(1, env=cache_env)  # fills the bytecode cache
    cold, cold_cached = [], []
    for _ in range(COLD_RUNS):  # interleaved, so both see the same background load
        cold += cold_start(1)
        cold_cached += cold_start(1, env=cache_env)
    bare = cold_start(COLD_RUNS, [sys.executable, "-c", "pass"])
    imports_asis = import_times()
    imports = import_times(env=cache_env)
    cumulative_asis = imports_asis["cumulative"]
    cumulative, self_us = imports["cumulative"], imports["self"]
    shutil.rmtree(out / ".pycache", ignore_errors=True)

    n = len(paths)
    ex_rate, cj_rate = _rate(n, ex["loop_s"]), _rate(n, cj["loop_s"])
    cj_raw_rate = _rate(n, cj["total_s"])
    rows = [
        ("expc check_file (structure + semantics)", n, ex["loop_s"], ex_rate, len(ex["invalid"])),
        ("check-jsonschema, start-up subtracted", n, cj["loop_s"], cj_rate, len(cj["invalid"])),
        ("check-jsonschema, whole process", n, cj["total_s"], cj_raw_rate, len(cj["invalid"])),
    ]
    print("\n" + "=" * 88)
    print(f"{'tool':<42}{'specs':>7}{'seconds':>10}{'specs/s':>10}{'invalid found':>16}")
    print("-" * 88)
    for name, count, secs, rate, bad in rows:
        print(f"{name:<42}{count:>7}{secs:>10.3f}{rate:>10.0f}{bad:>16}")
    print("-" * 88)
    print(f"ratio expc / check-jsonschema in specs/s: {ex_rate / cj_rate:.2f}x (start-up subtracted), "
          f"{ex_rate / cj_raw_rate:.2f}x (whole process)")
    print(f"per spec: expc {1000 * ex['loop_s'] / n:.2f} ms, check-jsonschema "
          f"{1000 * cj['loop_s'] / n:.2f} ms (start-up subtracted)")
    print(f"expc: import of expc.compiler.pipeline {1000 * ex['import_s']:.0f} ms "
          "(yaml already imported by the generator), "
          f"first check_file {1000 * ex['first_s']:.0f} ms (builds the pydantic models)")
    print(f"check-jsonschema: start-up {1000 * cj['startup_s']:.0f} ms (median of {STARTUP_RUNS} 1-file runs: "
          f"{', '.join(f'{1000 * s:.0f}' for s in cj['startup_runs'])} ms), {cj['batches']} batch(es) of files")

    if cjb is None:
        print(f"check-jsonschema ran with {CJS_PYTHON}: no in-process breakdown")
    else:
        _print_breakdown(cjb)

    # agreement with what the generator intended
    all_paths = {str(p) for p in paths}
    structural = {p for p, k in intended.items() if MUTATIONS[k][0] == "structural"}
    semantic = set(intended) - structural
    print(f"\nfindings vs intent ({len(structural)} structural + {len(semantic)} semantic invalid, "
          f"{n - len(intended)} valid):")
    for tool, found in (("expc", ex["invalid"]), ("check-jsonschema", cj["invalid"])):
        print(f"  {tool:<17} structural {len(found & structural):>3}/{len(structural)}, "
              f"semantic {len(found & semantic):>3}/{len(semantic)}, "
              f"false alarms on valid specs {len(found & (all_paths - set(intended)))}")
    expc_codes = ", ".join(f"{c} {k}" for c, k in sorted(ex["codes"].items()))
    print(f"  expc diagnostics by code: {expc_codes}")

    dont_write = os.environ.get("PYTHONDONTWRITEBYTECODE")
    print(f"\ncold start, `expc validate {EXAMPLE.relative_to(ROOT)}` ({COLD_RUNS} runs each, interleaved):")
    print(f"  as this environment runs it:    min {1000 * min(cold):.0f} ms, "
          f"median {1000 * statistics.median(cold):.0f} ms, "
          f"max {1000 * max(cold):.0f} ms  ({stale}/{modules} expc modules have no up-to-date bytecode"
          f"{', PYTHONDONTWRITEBYTECODE=' + dont_write if dont_write else ''})")
    print(f"  with bytecode cached (a normal install): min {1000 * min(cold_cached):.0f} ms, "
          f"median {1000 * statistics.median(cold_cached):.0f} ms, max {1000 * max(cold_cached):.0f} ms "
          f"(PYTHONPYCACHEPREFIX in the temp folder)")
    print(f"  for scale, a bare `python -c pass`: min {1000 * min(bare):.0f} ms, "
          f"median {1000 * statistics.median(bare):.0f} ms")
    total = cumulative.get("expc.cli", 0)
    print(f"import time of expc.cli (python -X importtime, best of 5): {total / 1000:.0f} ms cumulative with bytecode "
          f"cached, {cumulative_asis.get('expc.cli', 0) / 1000:.0f} ms as this environment runs it")
    packages = imports["packages"]
    biggest = sorted(packages, key=lambda m: -packages[m])[:12]
    print("  packages by import time, bytecode cached (self time of all their modules, wherever imported):")
    for m in biggest:
        print(f"    {m:<32}{packages[m] / 1000:>8.1f} ms")
    named = ["yaml", "click", "jinja2", "jinja2.sandbox", "pydantic", "pydantic_core", "annotated_types",
             "expc.compiler.pipeline", "expc.compiler.checks", "expc.compiler.model", "expc.compiler.validate",
             "expc.compiler.loader", "expc.compiler.templates", "expc.compiler.conditions",
             "expc.compiler.planning", "expc.compiler.diagnostics", "statistics", "difflib"]
    print(f"  {'selected modules (first import)':<30}{'cumulative':>11}{'self':>9}{'cumulative, as is':>20}")
    for m in named:
        if m in cumulative:
            asis = cumulative_asis.get(m)
            print(f"    {m:<28}{cumulative[m] / 1000:>8.1f} ms{self_us[m] / 1000:>6.1f} ms"
                  f"{(f'{asis / 1000:.1f} ms' if asis is not None else '-'):>20}")
        else:
            print(f"    {m:<28}{'not imported':>17}")
    load_after = os.getloadavg()
    print(f"load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} CPUs"
          " (other work on the machine skews every figure above)")
    print("=" * 88)

    if args.profile:
        print("\ncProfile of one expc loop over all specs, by cumulative time:")
        print(ex["profile"])
        print("by own (tottime) time:")
        print(ex["profile_tottime"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
