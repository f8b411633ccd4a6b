"""Semantic checks: the rules a schema cannot express.

Each check is a small function ``(Context) -> Iterator[Diagnostic]``; the list
``CHECKS`` runs them all, so every finding of a spec is reported at once.
Checks run on a structurally valid :class:`Spec`, and use the document only to
say where each finding is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .candidates import candidate_ids, expanded
from .conditions import check_condition
from .datasources import column_problem, format_problem, path_problem, query_problems, table_problems
from .destinations import SAFE_PARAMS, Allowances, has_url, param_problem, parse_base
from .diagnostics import Diagnostic, did_you_mean, error, sort_key, warning
from .loader import Document, PathT
from .model import (
    ID_PATTERN,
    MAX_BANDIT_LOOKS,
    MAX_DAYS,
    MAX_LIST_DRAWS,
    MAX_LOOKS,
    MAX_SIMULATED_EVENTS,
    MAX_SIMULATED_UNITS,
    MAX_TIMEOUT,
    MAX_VARIANTS,
    OPTIONAL_COLUMNS,
    STANDARD_COLUMNS,
    Cap,
    DataSource,
    Metric,
    Spec,
    Variant,
)
from .operating import MAX_LOOKS as MAX_INTEGRATED_LOOKS
from .operating import MIN_POWER, crossing_probability, power_at, reachable_per_variant, tested_looks
from .pii import prompt_reads, withheld
from .plan import DAY, DEFAULT_HORIZON_DAYS
from .planning import comparison_alpha, sample_size
from .providers import known_providers, provider_of
from .quantities import format_duration
from .templates import CONTEXT, CONTEXT_FIELDS, LIMITS_HINT, SAFE_GLOBALS, Analysis, analyse, environment


@dataclass(frozen=True)
class Context:
    """What a check sees: the typed spec and the document it came from."""

    doc: Document
    spec: Spec

    def at(self, path: PathT, key: bool = False) -> tuple[str, int, int]:
        """(file, line, col) of a path in the document."""
        return self.doc.where(path, key)

    def given(self, path: PathT) -> bool:
        """True when the spec writes the key at ``path`` explicitly (not a default)."""
        node: Any = self.doc.data
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return False
        return True


def _ref(ctx: Context, what: str, name: str, known: Iterable[str], path: PathT,
         key: bool = False) -> Iterator[Diagnostic]:
    known = list(known)
    if name not in known:
        hint = did_you_mean(name, known) or (f"defined: {', '.join(known)}" if known else f"no {what} is defined")
        yield error("E034", f"{what} `{name}` is not defined", ctx.at(path, key), hint)


# ------------------------------------------------------------------ identity


def unique_ids(ctx: Context) -> Iterator[Diagnostic]:
    """Variant and metric ids are unique."""
    sections: tuple[tuple[str, Sequence[Variant | Metric]], ...] = (
        ("variants", ctx.spec.variants), ("metrics", ctx.spec.metrics))
    for section, items in sections:
        first: dict[str, int] = {}
        for i, item in enumerate(items):
            if item.id in first:
                line = ctx.at((section, first[item.id], "id"))[1]
                yield error("E030", f"{section[:-1]} id `{item.id}` is used twice", ctx.at((section, i, "id")),
                            f"first used at line {line}")
            else:
                first[item.id] = i


def unit_declared(ctx: Context) -> Iterator[Diagnostic]:
    """The unit attribute is declared, as a string or an integer."""
    unit, attrs = ctx.spec.experiment.unit, ctx.spec.attributes
    path = ("experiment", "unit") if ctx.given(("experiment", "unit")) else ("experiment",)
    if unit not in attrs:
        yield error("E049", f"the unit attribute `{unit}` is not declared under `attributes`", ctx.at(path),
                    did_you_mean(unit, attrs) or f"add `{unit}: string` under `attributes`")
    elif attrs[unit].type not in ("string", "integer"):
        yield error("E049", f"the unit attribute `{unit}` is a {attrs[unit].type}; it must be a string or integer",
                    ctx.at(path))


# ------------------------------------------------------------------ variants


def variants(ctx: Context) -> Iterator[Diagnostic]:
    """At least two variants, at most one control, positive weights, content xor prompt."""
    spec = ctx.spec
    if len(spec.variants) < 2:
        where = ctx.at(("variants",)) if ctx.given(("variants",)) else ctx.at(())
        yield error("E031", f"an experiment needs at least two variants; this one has {len(spec.variants)}", where,
                    "add a control variant and at least one treatment")
    controls = [i for i, v in enumerate(spec.variants) if v.control]
    for i in controls[1:]:
        yield error("E032", f"`{spec.variants[i].id}` is a second control; "
                    f"`{spec.variants[controls[0]].id}` is already marked `control: true`",
                    ctx.at(("variants", i, "control")),
                    "mark exactly one variant as control (or none: the first is then the control)")
    for i, v in enumerate(spec.variants):
        if v.weight <= 0:
            yield error("E033", f"variant `{v.id}` has weight {v.weight}; weights must be positive",
                        ctx.at(("variants", i, "weight")), "remove the variant instead of giving it no traffic")
        if (v.content is None) == (v.prompt is None):
            both = v.content is not None
            gives = "both `content` and `prompt`" if both else "neither `content` nor `prompt`"
            yield error("E045", f"variant `{v.id}` gives {gives}",
                        ctx.at(("variants", i)), "give static `content`, or the name of a `prompt` that generates it")
        if v.prompt is not None:
            yield from _ref(ctx, "prompt", v.prompt, spec.prompts, ("variants", i, "prompt"))
        yield from _generation(ctx, i)
    yield from _candidates(ctx)


def _candidates(ctx: Context) -> Iterator[Diagnostic]:
    """`candidates` and `top_k` fit their variant; the arms they make have ids of their own (E097, E070)."""
    spec = ctx.spec
    ids = {v.id for v in spec.variants}
    arms = 0
    for i, v in enumerate(spec.variants):
        path = ("variants", i)
        arms += v.candidates or 1
        if v.top_k is not None and v.candidates is None:
            yield error("E097", f"variant `{v.id}` keeps its top {v.top_k} candidates but asks for none",
                        ctx.at(path + ("top_k",)), f"add `candidates: N` (N > {v.top_k}), or remove `top_k`")
        if v.candidates is None:
            continue
        where = ctx.at(path + ("candidates",))
        if v is spec.control:
            marked = "is the control" if v.control else "is the control (the first variant, none being marked)"
            yield error("E097", f"variant `{v.id}` {marked}; a control cannot have candidates", where,
                        "give candidates to a treatment; the control is the one baseline every arm is compared with")
        if v.prompt is None:
            yield error("E097", f"variant `{v.id}` has no prompt; only generated copy has candidates", where,
                        "give the variant a `prompt`, or remove `candidates`")
        elif v.generate is not None and v.generate.per == "unit":
            yield error("E097", f"variant `{v.id}` generates per unit; candidates are generated once or per segment",
                        where, "use `generate: {per: once}` or `{per: segment, segment_by: [...]}`")
        if v.top_k is not None and v.top_k > v.candidates:
            yield error("E097", f"variant `{v.id}` keeps its top {v.top_k} of {v.candidates} candidates",
                        ctx.at(path + ("top_k",)), f"set `top_k` to at most {v.candidates}")
        prompt = spec.prompts.get(v.prompt) if v.prompt is not None else None
        if prompt is not None and v.candidates > 1 and 0 in (prompt.temperature, prompt.params.get("temperature")):
            yield warning("W025", f"variant `{v.id}` asks for {v.candidates} candidates, but prompt `{v.prompt}` "
                          "samples at temperature 0: a model may give every seed the same text", where,
                          f"raise the `temperature` of prompt `{v.prompt}` (0.7 to 1 is usual for alternatives)")
        if v.top_k is not None and prompt is not None and prompt.checks.judge is None:
            yield error("E097", f"variant `{v.id}` keeps its top {v.top_k} candidates, but prompt `{v.prompt}` has no "
                        "judge to score them", ctx.at(path + ("top_k",)),
                        f"add `checks: {{judge: {{model: ..., rubric: ...}}}}` to prompt `{v.prompt}`")
        for arm in candidate_ids(v):
            if arm in ids:
                yield error("E030", f"candidate `{arm}` of variant `{v.id}` has the id of another variant", where,
                            f"rename variant `{arm}` or `{v.id}`")
            elif not re.fullmatch(ID_PATTERN, arm):
                yield error("E097", f"candidate id `{arm}` is longer than an id may be (128 characters)",
                            ctx.at(path + ("id",)), "shorten the variant's id")
    if arms > MAX_VARIANTS:
        yield error("E070", f"the variants and their candidates make {arms} arms; the limit is {MAX_VARIANTS}",
                    ctx.at(("variants",)), "ask for fewer candidates")


def _generation(ctx: Context, i: int) -> Iterator[Diagnostic]:
    v = ctx.spec.variants[i]
    gen = v.generate
    if gen is None:
        return
    path = ("variants", i, "generate")
    if v.prompt is None:
        yield error("E046", f"variant `{v.id}` has static content; `generate` only applies to prompted variants",
                    ctx.at(path, key=True))
        return
    if gen.per == "segment" and not gen.segment_by:
        yield error("E046", f"variant `{v.id}` generates per segment but names no `segment_by` attributes",
                    ctx.at(path), "add `segment_by: [attribute, ...]`, or use `per: once` or `per: unit`")
    if gen.per != "segment" and gen.segment_by:
        yield error("E046", f"`segment_by` only applies with `per: segment` (variant `{v.id}` has `per: {gen.per}`)",
                    ctx.at(path + ("segment_by",), key=True))
    for j, name in enumerate(gen.segment_by):
        if name not in ctx.spec.attributes:
            yield error("E034", f"attribute `{name}` is not declared", ctx.at(path + ("segment_by", j)),
                        did_you_mean(name, ctx.spec.attributes) or "declare it under `attributes`")


# ---------------------------------------------------------------- allocation


def allocation(ctx: Context) -> Iterator[Diagnostic]:
    """The audience exists, coverage lets someone in, the layer range is sane."""
    alloc = ctx.spec.allocation
    if alloc.audience is not None:
        yield from _ref(ctx, "audience", alloc.audience, ctx.spec.audiences, ("allocation", "audience"))
    if alloc.coverage <= 0:
        yield error("E043", "coverage is 0: nobody would enter the experiment", ctx.at(("allocation", "coverage")))
    if alloc.layer is not None:
        start, end = alloc.layer.range
        if not 0 <= start < end <= 1:
            yield error("E023", f"layer range [{start}, {end}] must satisfy 0 <= start < end <= 1",
                        ctx.at(("allocation", "layer", "range")))


def audiences(ctx: Context) -> Iterator[Diagnostic]:
    """Audience conditions name declared attributes with operators that fit their types."""
    types = {name: a.type for name, a in ctx.spec.attributes.items()}
    for name, audience in ctx.spec.audiences.items():
        for f in check_condition(audience.where, types, ("audiences", name, "where")):
            yield error(f.code, f"audience `{name}`: {f.message}", ctx.at(f.path, f.on_key), f.hint)


# ------------------------------------------------------------------ prompts


def finite_numbers(ctx: Context) -> Iterator[Diagnostic]:
    """Free-form values the plan carries as JSON (a prompt's params and JSON schema) hold no infinity or NaN."""
    for name, prompt in ctx.spec.prompts.items():
        for field, value in (("params", prompt.params), ("checks", {"json_schema": prompt.checks.json_schema})):
            stack: list[tuple[PathT, Any]] = [(("prompts", name, field), value)]
            while stack:
                path, node = stack.pop()
                if isinstance(node, dict):
                    stack.extend((path + (k,), v) for k, v in node.items())
                elif isinstance(node, list):
                    stack.extend((path + (i,), v) for i, v in enumerate(node))
                elif isinstance(node, float) and not math.isfinite(node):
                    yield error("E061", f"prompt `{name}`: {node} cannot be carried by the plan (JSON has no "
                                "infinity or NaN)", ctx.at(path), "write a finite number")


def prompts(ctx: Context) -> Iterator[Diagnostic]:
    """Templates parse, use only declared names, stay away from internals; checks are sound."""
    for name, prompt in ctx.spec.prompts.items():
        users = [v for v in ctx.spec.variants if v.prompt == name]
        for field in ("system", "template"):
            source = getattr(prompt, field)
            if source is not None:
                yield from _template(ctx, name, field, source, users)
        for j, pattern in enumerate(prompt.checks.require):
            try:
                re.compile(pattern)
            except re.error as exc:
                yield error("E048", f"prompt `{name}`: invalid regular expression in `require`: {exc}",
                            ctx.at(("prompts", name, "checks", "require", j)))
        checks = prompt.checks
        if checks.min_chars is not None and checks.max_chars is not None and checks.min_chars > checks.max_chars:
            yield error("E023", f"prompt `{name}`: min_chars ({checks.min_chars}) is above max_chars "
                        f"({checks.max_chars})",
                        ctx.at(("prompts", name, "checks", "min_chars")))
        if checks.judge is not None:
            yield from _judge(ctx, name, users)


def _judge(ctx: Context, name: str, users: list) -> Iterator[Diagnostic]:
    """A judge has a rubric, a sandboxed template held to the same rules as its prompt's (E098, E038-E046)."""
    judge = ctx.spec.prompts[name].checks.judge
    assert judge is not None
    path: PathT = ("prompts", name, "checks", "judge")
    if judge.rubric is None or not judge.rubric.strip():
        where = ctx.at(path + ("rubric",)) if judge.rubric is not None else ctx.at(path)
        yield error("E098", f"prompt `{name}`: the judge has no rubric to grade by", where,
                    "add `rubric: <what a good text is, in words>` (for example: accurate, no clickbait)")
        return
    yield from _template(ctx, name, "judge rubric", judge.rubric, users, path + ("rubric",))


def _template(ctx: Context, name: str, field: str, source: str, users: list,
              at: PathT | None = None) -> Iterator[Diagnostic]:
    path = at or ("prompts", name, field)
    result = analyse(source)
    lines = _source_lines(ctx, path)
    # Folding (`>`) and plain multi-line scalars join lines, so Jinja's line numbers do not match the file's:
    # the raw lines, parsed again, say where each finding is.
    located = analyse(lines) if lines is not None else result
    if bool(located.syntax_error) != bool(result.syntax_error):  # quoting changed how the text parses
        located = Analysis(error_line=1)
    if result.syntax_error:
        yield error("E038", f"prompt `{name}`: template syntax error: {result.syntax_error}",
                    _template_where(ctx, path, located.error_line))
        return
    first_line: dict[tuple[str, str], int] = {}
    for use in located.uses:
        first_line.setdefault((use.kind, use.name), use.line)
    env = environment()
    attrs = ctx.spec.attributes
    gens = [(v.id, v.generate.per if v.generate else "once", v.generate.segment_by if v.generate else [])
            for v in users]
    reported: set[tuple[str, str]] = set()
    for use in result.uses:
        if (use.kind, use.name) in reported:
            continue
        reported.add((use.kind, use.name))
        where = _template_where(ctx, path, first_line.get((use.kind, use.name), 1), use.name)
        if use.kind == "private":
            yield error("E040", f"prompt `{name}`: `{use.name}` is private or internal; templates may not reach it",
                        where, "templates may only read the unit's attributes and the documented context")
        elif use.kind == "unsafe":
            yield error("E040", f"prompt `{name}`: `{use.name}` is not allowed in templates", where,
                        "it can be used to reach internals; format text with Jinja filters instead")
        elif use.kind == "limit":
            yield error("E090", f"prompt `{name}`: {use.detail}", where, LIMITS_HINT)
        elif use.kind == "name" and use.name not in CONTEXT and use.name not in SAFE_GLOBALS:
            hint = did_you_mean(use.name, CONTEXT) or (
                f"templates know {', '.join(CONTEXT)}, the globals {', '.join(SAFE_GLOBALS)}, and the names they "
                "set on every path before a use (a `{% set %}` inside an `if` without an `else`, or inside a loop, "
                "does not count after it)")
            yield error("E039", f"prompt `{name}`: `{use.name}` is not defined", where, hint)
        elif use.kind == "filter" and use.name not in env.filters:
            yield error("E039", f"prompt `{name}`: no filter named `{use.name}`", where,
                        did_you_mean(use.name, env.filters))
        elif use.kind == "test" and use.name not in env.tests:
            yield error("E039", f"prompt `{name}`: no test named `{use.name}`", where,
                        did_you_mean(use.name, env.tests))
        elif use.kind == "field":
            yield from _field(ctx, name, use.name, where, attrs, gens)
            yield from _personal(ctx, name, field, use.name, where)
        elif use.kind == "whole":
            yield from _granularity(name, use.name, None, where, gens)
            yield from _personal(ctx, name, field, use.name, where)


def _personal(ctx: Context, prompt: str, field: str, used: str, where: tuple) -> Iterator[Diagnostic]:
    """A template reads personal (pii) attributes only when its prompt lists them in `send_pii`."""
    obj, _, attr = used.partition(".")
    if obj != "user" and not (obj == "segment" and attr):
        return  # the whole `segment` is its segment_by, which holds no personal attribute (E096)
    hidden = withheld(ctx.spec.prompts[prompt], [n for n, a in ctx.spec.attributes.items() if a.pii])
    names = sorted(hidden & {attr}) if attr else [n for n in ctx.spec.attributes if n in hidden]
    if not names:
        return
    what = {"template": "template", "system": "system text"}.get(field, field)
    shown = f"`{used}`" if attr else f"the whole `{obj}` (so {', '.join(f'`{n}`' for n in names)})"
    listed = ", ".join(names)
    yield error("E095", f"prompt `{prompt}`: its {what} reads {shown}, personal data (`pii: true`) that the prompt "
                "does not list in `send_pii`", where,
                f"if its model may receive it, add `send_pii: [{listed}]` to prompt `{prompt}`; otherwise stop "
                "reading it")


def _field(ctx: Context, prompt: str, dotted: str, where: tuple, attrs: dict, gens: list) -> Iterator[Diagnostic]:
    obj, _, attr = dotted.partition(".")
    if obj in ("user", "segment"):
        if attr not in attrs:
            yield error("E039", f"prompt `{prompt}`: `{dotted}` is not a declared attribute", where,
                        did_you_mean(attr, attrs) or "declare it under `attributes`")
        else:
            yield from _granularity(prompt, obj, attr, where, gens)
    elif attr not in CONTEXT_FIELDS[obj]:
        yield error("E039", f"prompt `{prompt}`: `{obj}` has no field `{attr}`", where,
                    did_you_mean(attr, CONTEXT_FIELDS[obj]) or f"fields: {', '.join(CONTEXT_FIELDS[obj])}")


def _granularity(prompt: str, obj: str, attr: str | None, where: tuple, gens: list) -> Iterator[Diagnostic]:
    """A template may only read what has one value for each text it generates.

    per unit: any `user.x`; per segment: `user.x` and `segment.x` for x in segment_by;
    once: neither. ``attr`` None means the template reads the whole object.
    """
    shown = f"{obj}.{attr}" if attr else f"the whole `{obj}`"
    shown = f"`{shown}`" if attr else shown
    for variant, per, segment_by in gens:
        if obj == "segment" and per != "segment":
            yield error("E046", f"prompt `{prompt}` reads {shown}, but variant `{variant}` does not generate per "
                        "segment", where, "use `generate: {per: segment, segment_by: [...]}`, or read `user.<name>`")
        elif per == "once":
            yield error("E046", f"prompt `{prompt}` reads {shown}, but variant `{variant}` generates its content "
                        "once for everyone", where,
                        "use `generate: {per: unit}` or `{per: segment, segment_by: [...]}`")
        elif per == "segment" and obj == "user" and (attr is None or attr not in segment_by):
            what = f"`{attr}` has no single value" if attr else "only the segment's attributes have a single value"
            yield error("E046", f"prompt `{prompt}` reads {shown}, but variant `{variant}` generates per segment "
                        f"of {segment_by or 'nothing'}, where {what}", where,
                        f"add `{attr}` to `segment_by`, or use `per: unit`" if attr else "read `user.<name>` for "
                        "segment attributes, or use `per: unit`")


def _source_lines(ctx: Context, path: PathT) -> str | None:
    """A multi-line folded or plain scalar as written, one file line per template line (else None)."""
    mark = ctx.doc.mark(path)
    if mark is None or mark.style == "|" or not mark.end_line or mark.end_line <= mark.line:
        return None
    lines = ctx.doc.text.splitlines()
    if mark.style == ">":
        body = lines[mark.line: mark.end_line]
        indent = next((len(t) - len(t.lstrip()) for t in body if t.strip()), 0)
        while body and body[-1].strip() and len(body[-1]) - len(body[-1].lstrip()) < indent:
            body.pop()  # the end mark can sit on the next key's line
        return "\n".join(body)
    return "\n".join([lines[mark.line - 1][mark.col - 1:]] + lines[mark.line: mark.end_line])


_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{\{.*|\{%.*")


def _column_of(text: str, needle: str) -> int | None:
    """0-based column of ``needle`` as a whole word, preferring a match inside a Jinja tag."""
    matches = [m.start() for m in re.finditer(rf"(?<!\w){re.escape(needle)}(?!\w)", text)]
    tags = [t.span() for t in _TAG.finditer(text)]
    inside = [m for m in matches if any(a <= m < b for a, b in tags)]
    return (inside or matches)[0] if matches else None


def _template_where(ctx: Context, path: PathT, template_line: int, needle: str | None = None) -> tuple[str, int, int]:
    """Map a line of a template to the YAML file: block scalars start on the next line."""
    file, line, col = ctx.at(path)
    mark = ctx.doc.mark(path)
    block = mark is not None and mark.style in ("|", ">")
    line = line + template_line if block else line + template_line - 1
    text = ctx.doc.line_text(line)
    found = None
    for candidate in (needle, (needle or "").rpartition(".")[2]):
        if candidate and found is None:
            found = _column_of(text, candidate)
    if found is not None:
        col = found + 1
    elif text.strip() and (block or template_line > 1):
        col = len(text) - len(text.lstrip()) + 1
    return (file, line, col)



# ------------------------------------------------------------ personal data


def personal_data(ctx: Context) -> Iterator[Diagnostic]:
    """Personal attributes identify no unit and no segment; `send_pii` lists personal attributes its prompt reads."""
    spec, attrs = ctx.spec, ctx.spec.attributes
    unit = spec.experiment.unit
    if unit in attrs and attrs[unit].pii:
        yield error("E096", f"the unit attribute `{unit}` is marked `pii`: unit ids are written in plain text "
                    "(assignments, content, exposures, reports)", ctx.at(("attributes", unit, "pii")),
                    "identify units by a pseudonymous id (such as a keyed hash of this value) and keep the personal "
                    "value in another attribute")
    for i, v in enumerate(spec.variants):
        for j, name in enumerate(v.generate.segment_by if v.generate else []):
            if name in attrs and attrs[name].pii:
                yield error("E096", f"variant `{v.id}` generates per segment of `{name}`, which is marked `pii`: "
                            "segment values are written in plain text (the content file, the reports)",
                            ctx.at(("variants", i, "generate", "segment_by", j)),
                            f"segment by attributes that are not personal, or generate `per: unit` and list "
                            f"`{name}` in the prompt's `send_pii`")
    segments = spec.analysis.segments
    listed = ("analysis", "segments", "by") if ctx.given(("analysis", "segments", "by")) else ("analysis", "segments")
    for j, name in enumerate(segments.by if segments else []):
        if name in attrs and attrs[name].pii and name != unit:
            yield error("E096", f"the results are broken down by `{name}`, which is marked `pii`: segment values "
                        "are written in plain text (the reports)", ctx.at(listed + (j,)),
                        "break results down by attributes that are not personal")
    pii = [n for n, a in attrs.items() if a.pii]
    for name, prompt in spec.prompts.items():
        segment_by = [s for v in spec.variants if v.prompt == name and v.generate for s in v.generate.segment_by]
        read = set(prompt_reads(prompt, list(attrs), pii, segment_by))
        for j, attr in enumerate(prompt.send_pii):
            path = ("prompts", name, "send_pii", j)
            if attr not in attrs:
                yield from _ref(ctx, "attribute", attr, attrs, path)
            elif not attrs[attr].pii:
                yield warning("W015", f"prompt `{name}` lists `{attr}` in `send_pii`, but `{attr}` is not marked "
                              "`pii: true`", ctx.at(path),
                              f"if `{attr}` is personal data, mark it `pii: true` under `attributes`; otherwise "
                              "remove it from `send_pii`")
            elif attr not in read:
                yield warning("W015", f"prompt `{name}` lists `{attr}` in `send_pii`, but its templates do not read "
                              "it", ctx.at(path), "remove it from `send_pii`: a prompt may send only what it needs")


# ------------------------------------------------------------ destinations


def destinations(ctx: Context) -> Iterator[Diagnostic]:
    """A spec chooses no key variable and no host, except those the user allows from outside it.

    The allow-lists are the environment variables ``EXPC_ALLOWED_KEY_ENVS`` and
    ``EXPC_ALLOWED_API_BASES`` (see :mod:`expc.compiler.destinations`);
    ``params`` may only hold parameters that cannot send a call or a key
    elsewhere.
    """
    allowed = Allowances.from_environ()
    for name, prompt in ctx.spec.prompts.items():
        path = ("prompts", name)
        key_env = prompt.api_key_env
        if key_env is not None and not allowed.key_env_allowed(key_env):
            yield error("E080", f"prompt `{name}`: `api_key_env` chooses the variable `{key_env}` for its API key; "
                        "a spec may not choose which secret is sent", ctx.at(path + ("api_key_env",)),
                        "remove it (litellm reads the provider's own variable, e.g. OPENAI_API_KEY), pass "
                        f"`--api-key-env {key_env}` to `expc run`/`generate`, or allow it outside the spec: "
                        f"EXPC_ALLOWED_KEY_ENVS={key_env}")
        if prompt.api_base is not None and not allowed.base_allowed(prompt.api_base):
            base = parse_base(prompt.api_base)
            what = (f"sends its calls, and their key, to `{base.host}`, which is not on your allow-list"
                    if base is not None else "is not a plain base URL (http(s)://host[:port][/path])")
            yield error("E080", f"prompt `{name}`: `api_base` {what}; a spec may not choose where calls go",
                        ctx.at(path + ("api_base",)),
                        "remove it and pass `--api-base URL` when you run, or allow the server outside the spec: "
                        "EXPC_ALLOWED_API_BASES=" + (f"{base.scheme}://{base.host}" if base else "https://host/v1"))
        for key, value in prompt.params.items():
            problem = param_problem(key)
            if problem is None or _inline_secret(key, value):  # an inline secret is E044's to report
                continue
            where = ctx.at(path + ("params", key), key=True)
            if problem == "redirects":
                yield error("E080", f"prompt `{name}`: `params.{key}` can send calls or keys elsewhere; "
                            "a spec may not set it", where,
                            "remove it: the host comes from `--api-base` and keys from your environment")
            else:
                yield error("E081", f"prompt `{name}`: `params.{key}` is not a parameter expc passes to models",
                            where, did_you_mean(key, SAFE_PARAMS) or f"allowed: {', '.join(sorted(SAFE_PARAMS))}")


def deployments(ctx: Context) -> Iterator[Diagnostic]:
    """A prompt's deployments have distinct ids, choose no host or key the user has not allowed (E080), and its
    ``fallbacks`` name some of them, leaving at least one that is not a fallback (E085, E086)."""
    allowed = Allowances.from_environ()
    for name, prompt in ctx.spec.prompts.items():
        path: PathT = ("prompts", name)
        seen: set[str] = set()
        for i, dep in enumerate(prompt.deployments):
            where = path + ("deployments", i)
            if dep.id in seen:
                yield error("E085", f"prompt `{name}`: deployment `{dep.id}` is listed twice", ctx.at(where + ("id",)),
                            "give each deployment its own id")
            seen.add(dep.id)
            if dep.api_key_env is not None and not allowed.key_env_allowed(dep.api_key_env):
                yield error("E080", f"prompt `{name}`: deployment `{dep.id}` chooses the variable `{dep.api_key_env}` "
                            "for its API key; a spec may not choose which secret is sent",
                            ctx.at(where + ("api_key_env",)),
                            f"remove it, or allow it outside the spec: EXPC_ALLOWED_KEY_ENVS={dep.api_key_env}")
            if dep.api_base is not None and not allowed.base_allowed(dep.api_base):
                base = parse_base(dep.api_base)
                what = (f"sends its calls, and their key, to `{base.host}`, which is not on your allow-list"
                        if base is not None else "is not a plain base URL (http(s)://host[:port][/path])")
                yield error("E080", f"prompt `{name}`: deployment `{dep.id}`: `api_base` {what}; a spec may not "
                            "choose where calls go", ctx.at(where + ("api_base",)),
                            "remove it (the run's --api-base applies), or allow the server outside the spec: "
                            "EXPC_ALLOWED_API_BASES=" + (f"{base.scheme}://{base.host}" if base else "https://host/v1"))
        if prompt.fallbacks and not prompt.deployments:
            yield error("E086", f"prompt `{name}`: `fallbacks` without `deployments`", ctx.at(path + ("fallbacks",)),
                        "list the deployments (model ids with their limits) under `deployments`")
            continue
        for j, fallback in enumerate(prompt.fallbacks):
            if fallback not in seen:
                yield error("E086", f"prompt `{name}`: `fallbacks` names `{fallback}`, which is not one of its "
                            "deployments", ctx.at(path + ("fallbacks", j)),
                            did_you_mean(fallback, seen) or "list the deployment under `deployments` first")
        if seen and seen <= set(prompt.fallbacks):
            yield error("E086", f"prompt `{name}`: every deployment is a fallback, so none serves first",
                        ctx.at(path + ("fallbacks",)), "leave at least one deployment out of `fallbacks`")


def models(ctx: Context) -> Iterator[Diagnostic]:
    """Each model id names a provider litellm knows (or `offline`), and no URL."""
    known = known_providers()
    ids: list[tuple[str, str, PathT]] = [(n, p.model, ("prompts", n, "model")) for n, p in ctx.spec.prompts.items()]
    ids += [(n, d.model, ("prompts", n, "deployments", i, "model")) for n, p in ctx.spec.prompts.items()
            for i, d in enumerate(p.deployments)]
    ids += [(n, p.checks.judge.model, ("prompts", n, "checks", "judge", "model"))
            for n, p in ctx.spec.prompts.items() if p.checks.judge is not None]
    for name, model, path in ids:
        where = ctx.at(path)
        if has_url(model):
            yield error("E080", f"prompt `{name}`: the model id holds a URL; a spec may not choose where calls go",
                        where, "name the model as `<provider>/<model>` and pass `--api-base URL` when you run")
        provider = provider_of(model)
        if provider is not None and provider not in known:
            yield error("E082", f"prompt `{name}`: litellm knows no provider `{provider}`", where,
                        did_you_mean(provider.lower(), known)
                        or "write `<provider>/<model>` with a provider from https://docs.litellm.ai/docs/providers, "
                        "e.g. `openai/gpt-4o-mini`, or `offline/<name>` (no key, no network)")


# ------------------------------------------------------------------ metrics


def metrics(ctx: Context) -> Iterator[Diagnostic]:
    """One primary; guardrails have margin and direction; each kind has what it needs."""
    spec = ctx.spec
    primaries = [i for i, m in enumerate(spec.metrics) if m.role == "primary"]
    if not primaries:
        where = ctx.at(("metrics",)) if ctx.given(("metrics",)) else ctx.at(())
        yield error("E041", "no metric has `role: primary`", where, "mark the metric that decides the experiment")
    for i in primaries[1:]:
        yield error("E041", f"metric `{spec.metrics[i].id}` is a second primary metric "
                    f"(`{spec.metrics[primaries[0]].id}` is the first)", ctx.at(("metrics", i, "role")),
                    "make the others `secondary` or `guardrail`")
    for i, m in enumerate(spec.metrics):
        path = ("metrics", i)
        if m.role == "guardrail":
            missing = [k for k in ("margin", "direction") if not ctx.given(path + (k,))]
            if missing:
                yield error("E042", f"guardrail `{m.id}` needs {' and '.join(f'`{k}`' for k in missing)}",
                            ctx.at(path), "e.g. `direction: decrease` and `margin: 2%` for unsubscribes")
        if m.kind == "ratio":
            missing = [k for k in ("numerator", "denominator") if getattr(m, k) is None]
            if missing or m.event is not None:
                detail = (f"needs {' and '.join(f'`{k}`' for k in missing)}" if missing
                          else "takes `numerator` and `denominator`, not `event`")
                yield error("E047", f"ratio metric `{m.id}` {detail}", ctx.at(path))
        elif m.event is None or m.numerator is not None or m.denominator is not None:
            detail = "needs an `event`" if m.event is None else "takes an `event`, not `numerator`/`denominator`"
            yield error("E047", f"{m.kind} metric `{m.id}` {detail}", ctx.at(path))
        if m.kind == "proportion" and m.baseline is not None and not 0 < m.baseline < 1:
            yield error("E043", f"metric `{m.id}`: a proportion's baseline must lie between 0 and 1",
                        ctx.at(path + ("baseline",)))


def caps(ctx: Context) -> Iterator[Diagnostic]:
    """A cap (E064) is on a mean or a ratio's numerator, once, and gives exactly one of `quantile` and `value`."""
    for i, m in enumerate(ctx.spec.metrics):
        path: PathT = ("metrics", i)
        given: list[tuple[str, PathT, Cap]] = [("metric", path + ("cap",), m.cap)] if m.cap else []
        for side in ("numerator", "denominator"):
            measure = getattr(m, side)
            if measure is not None and measure.cap is not None:
                given.append((side, path + (side, "cap"), measure.cap))
        for on, where, cap in given:
            set_ = [k for k in ("quantile", "value") if getattr(cap, k) is not None]
            if len(set_) != 1:
                said = "gives both" if set_ else "gives neither"
                yield error("E064", f"the cap of metric `{m.id}` needs exactly one of `quantile` and `value`; "
                            f"it {said}", ctx.at(where, key=True), "`cap: {quantile: 0.99}` or `cap: {value: 500}`")
            if m.kind == "proportion":
                yield error("E064", f"metric `{m.id}` is a proportion: a unit's value is 0 or 1, there is nothing "
                            "to cap", ctx.at(where, key=True), "remove `cap`; caps apply to means and ratio numerators")
            elif on == "denominator":
                yield error("E064", f"ratio metric `{m.id}`: a cap on the denominator is not supported (capping it "
                            "would change what the ratio means)", ctx.at(where, key=True),
                            "cap the numerator: `numerator: {event: ..., cap: {quantile: 0.99}}`")
        if m.cap is not None and m.numerator is not None and m.numerator.cap is not None:
            yield error("E064", f"ratio metric `{m.id}` has a cap on the metric and on its numerator",
                        ctx.at(path + ("numerator", "cap"), key=True),
                        "a metric's cap is its numerator's: give one of them")


def analysis(ctx: Context) -> Iterator[Diagnostic]:
    """alpha, power and the SRM threshold lie strictly between 0 and 1; segments are declared, one-valued attributes."""
    a = ctx.spec.analysis
    for name in ("alpha", "power", "srm_threshold"):
        value = getattr(a, name)
        if not 0 < value < 1:
            yield error("E043", f"analysis.{name} is {value}; it must lie strictly between 0 and 1",
                        ctx.at(("analysis", name)))
    if a.method == "bandit":
        yield from _bandit(ctx)
    if a.segments is None:
        return
    listed = ("analysis", "segments", "by") if ctx.given(("analysis", "segments", "by")) else ("analysis", "segments")
    attrs = ctx.spec.attributes
    for j, name in enumerate(a.segments.by):
        if name not in attrs:
            yield error("E034", f"attribute `{name}` is not declared", ctx.at(listed + (j,)),
                        did_you_mean(name, attrs) or "declare it under `attributes`")
        elif name == ctx.spec.experiment.unit or attrs[name].type == "list[string]":
            what = "the unit id" if name == ctx.spec.experiment.unit else "a list"
            yield error("E023", f"attribute `{name}` is {what}, so it cannot split units into segments",
                        ctx.at(listed + (j,)), "segment by an attribute with one value per unit and few values")
        elif name in a.segments.by[:j]:
            yield error("E023", f"attribute `{name}` is listed twice", ctx.at(listed + (j,)))


def _bandit(ctx: Context) -> Iterator[Diagnostic]:
    """A bandit's settings fit its arms, and its primary metric has a posterior it can sample (E075)."""
    spec, b = ctx.spec, ctx.spec.analysis.bandit
    arms = len(expanded(spec, kept_only=True).variants)  # the arms a run assigns to: candidates count, top_k's K
    if arms and b.min_weight * arms > 1:
        yield error("E075", f"analysis.bandit.min_weight is {b.min_weight:g}, so {arms} arms would need "
                    f"{b.min_weight * arms:.0%} of the traffic", ctx.at(("analysis", "bandit", "min_weight")),
                    f"set it to at most {1 / arms:.4g} (1 / arms)")
    if not 0 < b.threshold < 1:
        yield error("E075", f"analysis.bandit.threshold is {b.threshold}; it must lie strictly between 0 and 1",
                    ctx.at(("analysis", "bandit", "threshold")))
    for i, m in enumerate(spec.metrics):
        if m.role == "primary" and m.kind == "ratio":
            yield error("E075", f"the bandit's primary metric `{m.id}` is a ratio: Thompson sampling is defined "
                        "here for proportions (Beta-Binomial) and means (normal)", ctx.at(("metrics", i, "kind")),
                        "make a proportion or a mean the primary metric, and keep the ratio as a guardrail")


def stopping(ctx: Context) -> Iterator[Diagnostic]:
    """Rules name existing metrics and can apply to this spec."""
    spec, st = ctx.spec, ctx.spec.stopping
    by_id = {m.id: m for m in spec.metrics}
    for i, rule in enumerate(st.rules):
        path = ("stopping", "rules", i)
        if rule.metric is not None:
            found = list(_ref(ctx, "metric", rule.metric, by_id, path + ("metric",)))
            yield from found
            if not found and rule.when == "guardrail_harm" and by_id[rule.metric].role != "guardrail":
                yield error("E050", f"`guardrail_harm` names `{rule.metric}`, which is not a guardrail",
                            ctx.at(path + ("metric",)))
        if rule.when == "segment_harm" and spec.analysis.segments is None:
            yield error("E050", "rule `segment_harm` can never fire: `analysis.segments` names no attribute",
                        ctx.at(path), "add `analysis: {segments: [attribute, ...]}`")
        if (rule.when == "segment_harm" and rule.metric is not None and rule.metric in by_id
                and by_id[rule.metric].role not in ("primary", "guardrail")):
            yield error("E050", f"`segment_harm` names `{rule.metric}`, which is neither the primary metric nor "
                                "a guardrail", ctx.at(path + ("metric",)))
        bandit = spec.analysis.method == "bandit"
        if rule.when == "best_arm" and not bandit:
            yield error("E076", "rule `best_arm` needs `analysis.method: bandit` (the probability of being best "
                        "comes from the bandit's posterior)", ctx.at(path + ("when",)))
        if bandit and rule.when == "segment_harm":
            yield error("E076", "a bandit does not stop on `segment_harm` yet: its per-segment tests would pool "
                        "periods with different weights", ctx.at(path + ("when",)),
                        "watch the whole with `guardrail_harm`")
        if bandit and rule.when in ("primary_significant", "futility"):
            yield error("E076", f"a bandit does not stop on `{rule.when}`: its traffic follows the data, so the "
                        "fixed-weight tests behind it do not hold", ctx.at(path + ("when",)),
                        "use `{when: best_arm, then: stop_ship_winner}` (analysis.bandit.threshold)")
        if rule.when == "guardrail_harm" and not any(m.role == "guardrail" for m in spec.metrics):
            yield error("E050", "rule `guardrail_harm` can never fire: no metric has `role: guardrail`", ctx.at(path))
        if rule.when in ("max_days", "max_units") and getattr(st, rule.when) is None:
            yield error("E050", f"rule `{rule.when}` can never fire: `stopping.{rule.when}` is not set", ctx.at(path),
                        f"set `stopping.{rule.when}`")


def simulation(ctx: Context) -> Iterator[Diagnostic]:
    """Simulated variants, metrics and attributes exist, and distributions fit their types."""
    sim = ctx.spec.simulation
    if sim is None:
        return
    variant_ids = [v.id for v in ctx.spec.variants] + [a for v in ctx.spec.variants for a in candidate_ids(v)]
    metric_by_id = {m.id: m for m in ctx.spec.metrics}
    for vid, per_metric in sim.truth.items():
        yield from _ref(ctx, "variant", vid, variant_ids, ("simulation", "truth", vid), key=True)
        for mid, truth in per_metric.items():
            path: PathT = ("simulation", "truth", vid, mid)
            found = list(_ref(ctx, "metric", mid, metric_by_id, path, key=True))
            yield from found
            if not found and metric_by_id[mid].kind == "proportion" and not 0 <= truth.mean <= 1:
                yield error("E043", f"true rate of `{mid}` in `{vid}` is {truth.mean}; a rate lies between 0 and 1",
                            ctx.at(path))
    if sim.truth:
        for v in ctx.spec.variants:
            missing = [f"`{m.id}`" for m in ctx.spec.metrics if m.id not in sim.truth.get(v.id, {})]
            if missing:
                where = (ctx.at(("simulation", "truth", v.id)) if v.id in sim.truth
                         else ctx.at(("simulation", "truth"), True))
                yield warning("W005", f"simulation gives no true value of {', '.join(missing)} for variant `{v.id}`",
                              where, "the simulation will use the control's value (no effect)")
    for name, dist in sim.attributes.items():
        path = ("simulation", "attributes", name)
        if name not in ctx.spec.attributes:
            yield error("E034", f"attribute `{name}` is not declared", ctx.at(path, key=True),
                        did_you_mean(name, ctx.spec.attributes) or "declare it under `attributes`")
            continue
        kind = ctx.spec.attributes[name].type
        fits = {
            "boolean": {"p", "values", "weights"},
            "integer": {"min", "max", "mean", "sd", "values", "weights"},
            "number": {"min", "max", "mean", "sd", "values", "weights"},
            "list[string]": {"values", "weights", "size"},
        }.get(kind, {"values", "weights"})
        given = {k for k in type(dist).model_fields if getattr(dist, k) is not None}
        for extra in sorted(given - fits):
            yield error("E023", f"`{extra}` does not apply to the {kind} attribute `{name}`",
                        ctx.at(path + (extra,), key=True), f"use {', '.join(sorted(fits))}")
        if dist.weights is not None and (dist.values is None or len(dist.weights) != len(dist.values)):
            yield error("E023", f"`{name}`: `weights` must give one weight per entry of `values`",
                        ctx.at(path + ("weights",)))


def simulation_truth(ctx: Context) -> Iterator[Diagnostic]:
    """Every metric has a true value in the control (its truth or baseline), and means and ratios an sd."""
    sim = ctx.spec.simulation
    if sim is None or ctx.spec.control is None:
        return
    metric_ids = {m.id for m in ctx.spec.metrics}
    if not set(sim.truth) <= {a for v in ctx.spec.variants for a in [v.id, *candidate_ids(v)]} or any(
            not set(values) <= metric_ids for values in sim.truth.values()):
        return  # a truth naming an undefined variant or metric is E034 already: fix that first
    from .compile import truth_table

    for path, message in truth_table(ctx.spec)[1]:
        yield error("E060", message, ctx.at(path))


# ------------------------------------------------------------------ design


def design(ctx: Context) -> Iterator[Diagnostic]:
    """The planned sample size is computable and reachable in time, with enough analytic power (W001, W002, W021).

    Planned for the arms that get traffic, each candidate one (K of a `top_k` variant), as the plan is
    (:func:`~expc.compiler.candidates.expanded`).
    """
    ctx = Context(ctx.doc, expanded(ctx.spec, kept_only=True))
    planned, reason = sample_size(ctx.spec)
    metric = ctx.spec.primary
    if planned is None:
        if metric is not None:
            i = ctx.spec.metrics.index(metric)
            yield warning("W002", f"cannot plan the sample size: {reason}", ctx.at(("metrics", i)),
                          "give the primary metric `mde` and `baseline` (and `sd` for means and ratios)")
        return
    st, sim = ctx.spec.stopping, ctx.spec.simulation
    short = False
    # estimated_days is known only when the spec simulates traffic
    if (planned.estimated_days is not None and sim is not None and st.max_days is not None
            and planned.estimated_days > st.max_days):
        short = True
        yield warning("W001", f"the primary metric needs {planned.per_variant:,} units per variant "
                      f"(~{planned.estimated_days} days at {sim.units_per_day:,} units/day), "
                      f"but max_days is {st.max_days}{_power_note(ctx.spec, planned.power)}",
                      ctx.at(("stopping", "max_days")),
                      "raise traffic or coverage, accept a larger MDE, or extend max_days")
    yield from _peeking(ctx, planned.per_variant, planned.estimated_days)
    if st.max_units is not None and planned.total > st.max_units:
        short = True
        yield warning("W001", f"the primary metric needs {planned.total:,} units in total, but max_units is "
                      f"{st.max_units:,}{_power_note(ctx.spec, planned.power)}", ctx.at(("stopping", "max_units")))
    if not short:
        yield from power_shortfall(ctx, MIN_POWER)


def _power_note(spec: Spec, planned: float) -> str:
    """``: by then ... analytic power P% at the MDE (planned Q%)``, or nothing when it cannot be computed."""
    reach = reachable_per_variant(spec)
    power = power_at(spec, reach.per_variant) if reach is not None else None
    if reach is None or power is None:
        return ""
    return (f": by then it has about {reach.per_variant:,} per variant, an analytic power of {power:.0%} "
            f"at the MDE (planned {planned:.0%})")


_POWER_SLACK = 1e-3  # a design planned exactly at the minimum passes, whatever the rounding of its units


def power_shortfall(ctx: Context, target: float) -> Iterator[Diagnostic]:
    """W021: the analytic power at the primary metric's MDE, with the units the design reaches, is below ``target``.

    The units are those at the horizon when the spec simulates traffic
    (:func:`~expc.compiler.operating.reachable_per_variant`), else the planned
    ones (whose power is ``analysis.power``). Nothing when the power cannot be
    computed (W002 says why).
    """
    spec, metric = ctx.spec, ctx.spec.primary
    planned, _ = sample_size(spec)
    if planned is None or metric is None:
        return
    reach = reachable_per_variant(spec)
    per_variant = reach.per_variant if reach is not None else planned.per_variant
    power = power_at(spec, per_variant)
    if power is None or power >= target - _POWER_SLACK:
        return
    i = spec.metrics.index(metric)
    if reach is None:
        where = ctx.at(("analysis", "power")) if ctx.given(("analysis", "power")) else ctx.at(("metrics", i))
        yield warning("W021", f"the design plans for {power:.1%} power at the primary metric's MDE "
                      f"({metric.mde:.1%} on `{metric.id}`): below the minimum of {target:.1%}", where,
                      f"plan for `power: {target:g}` or more ({_units_for(spec, target):,} units per variant)")
        return
    needed = _units_for(spec, target)
    weights = [v.weight for v in spec.variants]
    raise_ = (f"raise `max_units` to {math.ceil(needed * sum(weights) / min(weights)):,}"
              if reach.bound == "max_units" else "raise traffic or coverage, extend `max_days`")
    yield warning("W021", f"the design's analytic power at the primary metric's MDE ({metric.mde:.1%} on "
                  f"`{metric.id}`) is {power:.1%} with the {per_variant:,} units per variant it reaches by "
                  f"{reach.bound}: below the minimum of {target:.1%}", ctx.at(("stopping", reach.bound)),
                  f"it needs about {needed:,} units per variant: {raise_}, or accept a larger MDE")


def with_min_power(doc: Document, spec: Spec, diagnostics: list[Diagnostic], target: float) -> list[Diagnostic]:
    """A checked spec's findings with W021 measured against ``target`` instead of 0.8 (``validate --min-power``).

    W021 is then given even where W001 says the planned units cannot be
    reached, so every spec whose analytic power is below ``target`` has one.
    """
    kept = [d for d in diagnostics if d.code != "W021"]
    return sorted(kept + list(power_shortfall(Context(doc, expanded(spec, kept_only=True)), target)), key=sort_key)


def _units_for(spec: Spec, target: float) -> int:
    """The smallest units per variant whose analytic power reaches ``target`` (bisection; bounded)."""
    low, high = 1, 1
    while (power_at(spec, high) or 0.0) < target and high < 1 << 60:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if (power_at(spec, mid) or 0.0) < target else (low, mid)
    return high


def _looks_once(ctx: Context, per_variant: int) -> bool:
    """The design tests once: its one tested look has the planned units per variant, or it waits for them and a
    ``max_units`` rule stops it at the first look that has them (every arm at ``min_units_per_variant`` makes at
    least ``arms x min`` units)."""
    st = ctx.spec.stopping
    stops = any(r.when == "max_units" and r.then != "continue" for r in st.rules)
    if (stops and st.min_units_per_variant >= per_variant and st.max_units is not None
            and st.max_units <= st.min_units_per_variant * len(ctx.spec.variants)):
        return True
    looks = tested_looks(ctx.spec)
    return _daily_traffic(ctx) and len(looks) == 1 and looks[0] >= per_variant


def _daily_traffic(ctx: Context) -> bool:
    """The spec says how many units enter a day (so looks are counted in units, not days)."""
    return ctx.spec.simulation is not None


def _peeking(ctx: Context, per_variant: int, days: int | None) -> Iterator[Diagnostic]:
    """Designs whose repeated looks spend more than alpha (W006, W011) or outlive their plan (W010)."""
    st, a = ctx.spec.stopping, ctx.spec.analysis
    peeks = [r for r in st.rules if r.when == "primary_significant"]
    if not peeks:
        return
    where = ctx.at(("stopping", "rules", st.rules.index(peeks[0])))
    horizon = st.max_days if st.max_days is not None and (days is None or days <= st.max_days) else days
    by_then = f" (the {per_variant:,} planned units per variant are in by then)" if days is not None else ""
    once = (f"look once, at the end: `looks: {horizon}d` with `max_days: {horizon}`{by_then}, so the test is "
            "made once" if horizon is not None else
            f"look once, at the end (`looks` equal to `max_days`), once the {per_variant:,} planned units per "
            "variant are in, so the test is made once")
    if a.method in ("fixed", "bayesian") and not _looks_once(ctx, per_variant):
        looks = tested_looks(ctx.spec)
        alpha = comparison_alpha(ctx.spec)
        about = "at least about" if len(looks) > MAX_INTEGRATED_LOOKS else "about"
        ships = f"{about} {crossing_probability(alpha, looks, two_sided=False):.1%}"
        if a.method == "fixed":
            rates = (f": an A/A experiment is significant at one of its {len(looks):,} tested looks {about} "
                     f"{crossing_probability(alpha, looks):.1%} of the time (alpha {alpha:g} for one test) and ships "
                     f"a variant that is no better {ships} of the time (`expc simulate SPEC --truth aa` estimates it)"
                     ) if len(looks) > 1 else ""
            yield warning("W006", f"a fixed-horizon test is checked for significance at every look (before and after "
                          f"its {per_variant:,} planned units per variant), which inflates false positives{rates}",
                          where, f"{once}; or use `method: sequential`, which may be checked at every look")
        else:
            rate = f": {ships} of the time at its {len(looks):,} looks" if len(looks) > 1 else ""
            yield warning("W011", "a Bayesian decision taken at every look ships an equal variant more often than "
                          f"alpha = {a.alpha:g}{rate} (the false-positive rate `expc simulate SPEC --truth aa` "
                          "shows)", where,
                          f"{once}; or use `method: sequential`, whose looks keep alpha")
    if (a.method == "sequential" and a.sequential == "group" and days is not None and st.max_days is not None
            and days < st.max_days):
        yield warning("W010", f"the group-sequential design reaches its {per_variant:,} planned units per variant "
                      f"in about {days} days, before max_days ({st.max_days}): it ends at that look, which spends "
                      "the rest of alpha, and no later look can ship", ctx.at(("stopping", "max_days")),
                      f"set `max_days: {days}`, or lower the traffic or coverage to use the whole time")




def limits(ctx: Context) -> Iterator[Diagnostic]:
    """What several values make together stays within expc's resource limits (E070).

    A simulated run holds ``units_per_day x days`` units in memory, a list
    attribute's draw ``units x vocabulary`` numbers, and the schedule has one
    look per ``stopping.looks`` up to the horizon; durations are bounded like days.
    The limits are in :mod:`expc.compiler.model`; single values are bounded there.
    """
    spec, st, sim = ctx.spec, ctx.spec.stopping, ctx.spec.simulation
    durations: list[tuple[PathT, int | None, int]] = [
        (("metrics", i, "window"), m.window, MAX_DAYS * DAY) for i, m in enumerate(spec.metrics)]
    durations += [(("analysis", "cuped_lookback"), spec.analysis.cuped_lookback, MAX_DAYS * DAY),
                  (("generation", "timeout"), spec.generation.timeout, MAX_TIMEOUT)]
    for path, seconds, limit in durations:
        if seconds is not None and seconds > limit:
            yield error("E070", f"{'.'.join(str(p) for p in path)} is {format_duration(seconds)}; the limit is "
                        f"{format_duration(limit)}", ctx.at(path))
    sim_days = sim.days if sim is not None else None
    horizon = max(st.max_days or 0, sim_days or 0) or DEFAULT_HORIZON_DAYS
    looks = -(-horizon * DAY // st.looks)
    if looks > MAX_LOOKS:
        look_path: PathT = ("stopping", "looks") if ctx.given(("stopping", "looks")) else ("stopping",)
        yield error("E070", f"looking every {format_duration(st.looks)} for {horizon:,} days makes {looks:,} looks; "
                    f"the limit is {MAX_LOOKS:,}", ctx.at(look_path), "look less often (such as `looks: daily`)")
    elif spec.analysis.method == "bandit" and looks > MAX_BANDIT_LOOKS:
        look_path = ("stopping", "looks") if ctx.given(("stopping", "looks")) else ("stopping",)
        yield error("E070", f"a bandit looking every {format_duration(st.looks)} for {horizon:,} days makes "
                    f"{looks:,} looks; a bandit's limit is {MAX_BANDIT_LOOKS:,} (each look weighs every period "
                    "before it)", ctx.at(look_path), "look less often (such as `looks: daily`)")
    if sim is None:
        return
    days = sim_days or st.max_days or DEFAULT_HORIZON_DAYS
    units = sim.units_per_day * days
    days_from = "simulation.days" if sim_days else "stopping.max_days" if st.max_days else "the default horizon"
    if units > MAX_SIMULATED_UNITS:
        yield error("E070", f"a simulated run would draw {units:,} units ({sim.units_per_day:,} a day for {days:,} "
                    f"days, from {days_from}); the limit is {MAX_SIMULATED_UNITS:,}",
                    ctx.at(("simulation", "units_per_day")),
                    "simulate fewer days (`simulation.days`) or fewer units a day: the plan's estimates "
                    "scale with units_per_day, a simulated run only needs enough units to show the design")
        return
    for name, attr in spec.attributes.items():
        if not attr.type.startswith("list["):
            continue
        vocabulary = _list_vocabulary(spec, name)
        if units * vocabulary > MAX_LIST_DRAWS:
            values_path: PathT = ("simulation", "attributes", name, "values")
            yield error("E070", f"drawing the list attribute `{name}` for {units:,} simulated units from "
                        f"{vocabulary:,} values needs {units * vocabulary:,} draws; the limit is {MAX_LIST_DRAWS:,}",
                        ctx.at(values_path if ctx.given(values_path) else ("simulation", "units_per_day")),
                        "give it fewer values, or simulate fewer units")
    arms = len(spec.variants) if spec.analysis.method == "bandit" else 1  # a bandit draws outcomes under each arm
    if arms > 1 and units * arms > MAX_SIMULATED_UNITS:
        yield error("E070", f"a simulated bandit draws each of its {units:,} units' outcomes under each of its {arms} "
                    f"arms ({units * arms:,}); the limit is {MAX_SIMULATED_UNITS:,}",
                    ctx.at(("simulation", "units_per_day")), "simulate fewer units, or fewer days")
    per_unit, culprit = _events_per_unit(spec)
    per_unit *= arms
    if units * per_unit > MAX_SIMULATED_EVENTS:
        i, metric = culprit
        truth: PathT = ("simulation", "truth", spec.control.id if spec.control else "", metric.id)
        baseline: PathT = ("metrics", i, "baseline")
        path = truth if ctx.given(truth) else baseline if ctx.given(baseline) else ("metrics", i)
        each = f"{per_unit:,.0f}" if per_unit >= 10 else f"{per_unit:.2g}"
        yield error("E070", f"a simulated run would draw about {units * per_unit:,.0f} events ({each} per unit for "
                    f"{units:,} units, most for metric `{metric.id}`); the limit is {MAX_SIMULATED_EVENTS:,}",
                    ctx.at(path),
                    "a ratio's true value counts numerator events per denominator event: check it, or simulate "
                    "fewer units")


def _events_per_unit(spec: Spec) -> tuple[float, tuple[int, Any]]:
    """Events a simulated unit gets on average (the largest variant's, summed over events), and the metric behind most.

    Mirrors how ``runtime/synthetic.py`` draws events: a proportion or mean
    metric draws at most one event per unit; a ratio's denominator count has
    mean ``numerator mean / ratio`` (2 when that is not known) and a counted
    numerator ``ratio x denominator`` events.
    """
    from .compile import truth_table

    table = truth_table(spec)[0] if spec.simulation is not None and spec.control is not None else {}
    ids = [v.id for v in spec.variants] or [""]

    def means(metric_id: str, default: float) -> list[float]:
        return [table[v][metric_id].mean if metric_id in table.get(v, {}) else default for v in ids]

    drawn: dict[str, dict[str, list[float]]] = {}  # event -> measure -> mean per variant
    per_event: dict[str, tuple[float, int]] = {}  # event -> (events per unit, index of the metric drawing it)
    for i, m in enumerate(spec.metrics):
        if m.kind in ("proportion", "mean") and m.event is not None and m.event not in drawn:
            mu = means(m.id, 1.0)
            p = [min(max(x, 0.0), 1.0) for x in mu]
            drawn[m.event] = ({"count": p, "value": p} if m.kind == "proportion"
                              else {"count": [1.0] * len(mu), "value": mu})
            per_event[m.event] = (max(p) if m.kind == "proportion" else 1.0, i)
    for i, m in enumerate(spec.metrics):
        if m.kind != "ratio" or m.numerator is None or m.denominator is None:
            continue
        num, den, r = m.numerator, m.denominator, [max(x, 0.0) for x in means(m.id, 1.0)]
        if num.event == den.event:
            drawn.setdefault(num.event, {"count": [2.0] * len(r), "value": [2.0 * x for x in r]})
            per_event.setdefault(num.event, (2.0, i))
            continue
        if den.event not in drawn:
            mu_y = [2.0] * len(r)
            if num.event in drawn:
                mu_y = [x / y if y > 0 and 0 < x / y < math.inf else 2.0
                        for x, y in zip(drawn[num.event][num.measure], r)]
            drawn[den.event] = {"count": mu_y, "value": mu_y}
            per_event[den.event] = (max(mu_y), i)
        if num.event not in drawn:
            y = drawn[den.event][den.measure]
            counts = [x * b for x, b in zip(r, y)] if num.measure == "count" else [1.0] * len(r)
            drawn[num.event] = {"count": counts, "value": counts}
            per_event[num.event] = (max(counts), i)
    if not per_event:
        return 0.0, (0, None)
    total = sum(n for n, _ in per_event.values())
    _, most = max(per_event.values())
    return total, (most, spec.metrics[most])


def _list_vocabulary(spec: Spec, name: str) -> int:
    """How many values a simulated list attribute draws from: its `values`, else the audience's, else 5."""
    dist = spec.simulation.attributes.get(name) if spec.simulation else None
    if dist is not None and dist.values is not None:
        return len(dist.values)
    audience = spec.audiences.get(spec.allocation.audience or "")
    found = [5]
    stack: list[Any] = [audience.where] if audience else []
    while stack:  # every list in the condition counts: an upper bound of the one the simulation takes
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            found.append(len(node))
            stack.extend(node)
    return max(found)


# ---------------------------------------------------------------------- data


def data(ctx: Context) -> Iterator[Diagnostic]:
    """Each data source is one table, path or query that reads only what it names (E051-E057).

    The rules are in :mod:`expc.compiler.datasources`: a path stays inside the
    spec's folder, a table is a plain name and a query one read-only ``SELECT``
    in ``data.dialect`` (sqlglot is imported only when there is one of those).
    """
    if ctx.spec.data is None:
        return
    dialect = ctx.spec.data.dialect
    for what in ("exposures", "events"):
        source: DataSource | None = getattr(ctx.spec.data, what)
        if source is not None:
            yield from _data_source(ctx, what, source, dialect)


def _data_source(ctx: Context, what: str, source: DataSource, dialect: str) -> Iterator[Diagnostic]:
    path: PathT = ("data", what)
    name = f"data.{what}"
    given = [k for k in ("table", "path", "query") if getattr(source, k) is not None]
    if len(given) != 1:
        where = ctx.at(path + (given[1],), key=True) if given else ctx.at(path, key=True)
        said = f"gives {' and '.join(f'`{k}`' for k in given)}" if given else "gives none"
        yield error("E051", f"{name} needs exactly one of `table`, `path` and `query`; it {said}", where,
                    "name a table, a file or folder of files (relative to the spec), or a `SELECT`")
    standard = STANDARD_COLUMNS[what] + OPTIONAL_COLUMNS[what]
    for column, mapped in source.columns.items():
        if column not in standard:
            yield error("E052", f"{name}.columns: `{column}` is not a standard column of {what}",
                        ctx.at(path + ("columns", column), key=True),
                        did_you_mean(column, standard) or f"the {what} columns are {', '.join(standard)}")
        problem = column_problem(mapped)
        if problem is not None:
            yield error("E052", f"{name}.columns.{column}: {problem}", ctx.at(path + ("columns", column)),
                        f"map it in a `query` instead (`SELECT ... AS {column}`) when its name needs quoting")
    if source.format is not None and source.path is None:
        yield error("E023", f"{name}.format only applies to a `path`", ctx.at(path + ("format",), key=True),
                    "remove it: a table or a query has no file format")
    if source.path is not None:
        yield from _data_path(ctx, what, source)
    if source.table is not None:
        for found in table_problems(source.table, dialect):
            yield error(found.code, f"{name}.table: {found.message}", ctx.at(path + ("table",)), found.hint)
    if source.query is not None:
        for found in query_problems(source.query, dialect):
            yield error(found.code, f"{name}.query: {found.message}", ctx.at(path + ("query",), key=True),
                        found.hint)


def _data_path(ctx: Context, what: str, source: DataSource) -> Iterator[Diagnostic]:
    path: PathT = ("data", what)
    name, value = f"data.{what}", source.path or ""
    problem = path_problem(value)
    if problem is not None:
        yield error("E053", f"{name}.path: {problem}; a spec reads files only inside its own folder, so that a spec "
                    "from a pull request cannot make expc read other files of the machine",
                    ctx.at(path + ("path",)),
                    f"put the data under the spec's folder and name it relative to the spec, or give any path on "
                    f"the command line: `--{what} PATH`")
    problem = format_problem(value, source.format)
    if problem is not None:
        where = ctx.at(path + ("format",)) if source.format is not None else ctx.at(path + ("path",))
        yield error("E054", f"{name}: {problem}", where,
                    "name files .parquet, .csv, .jsonl (or .ndjson, .json), or say `format: parquet`, `csv` or "
                    "`jsonl`")


def unused(ctx: Context) -> Iterator[Diagnostic]:
    """Prompts and audiences that nothing uses are probably mistakes."""
    used_prompts = {v.prompt for v in ctx.spec.variants}
    for name in ctx.spec.prompts:
        if name not in used_prompts:
            yield warning("W003", f"prompt `{name}` is not used by any variant", ctx.at(("prompts", name), key=True))
    for name in ctx.spec.audiences:
        if name != ctx.spec.allocation.audience:
            yield warning("W004", f"audience `{name}` is not used by the allocation",
                          ctx.at(("audiences", name), key=True))


CHECKS: list[Callable[[Context], Iterator[Diagnostic]]] = [
    unique_ids, unit_declared, variants, allocation, audiences, prompts, personal_data, finite_numbers, destinations,
    deployments, models, metrics, caps, analysis, stopping, simulation, simulation_truth, design, limits, data, unused,
]


def check_spec(doc: Document, spec: Spec) -> list[Diagnostic]:
    """Run every semantic check; return all findings."""
    ctx = Context(doc, spec)
    found = [d for check in CHECKS for d in check(ctx)]
    if any(d.code in ("E041", "E043") for d in found):  # the design cannot be planned; say so once
        found = [d for d in found if d.code != "W002"]
    return found


# ------------------------------------------------------------------ secrets

_SECRET_KEY = re.compile(r"^(api[_-]?key|apikey|secret|secret[_-]?key|password|passwd|token|access[_-]?token|"
                         r"auth[_-]?token|access[_-]?key|private[_-]?key|bearer)$", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_-]{16,}|sk-ant-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|"
                           r"ghp_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})")


def _inline_secret(key: Any, value: Any) -> bool:
    """True when ``key: value`` writes a secret into the spec (a secret-like name with a value)."""
    return bool(_SECRET_KEY.match(str(key))) and isinstance(value, (str, int, float)) and value != ""


def find_secrets(doc: Document) -> list[Diagnostic]:
    """Keys named like secrets with a value, and values shaped like known API keys.

    Runs on the raw document, so a secret is reported even where the key is
    also unknown to the schema.
    """
    found: list[Diagnostic] = []
    stack: list[tuple[PathT, Any]] = [((), doc.data)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            # attribute names and conditions on them may be called `token`: they hold no secret
            names_only = path in (("attributes",), ("simulation", "attributes")) or "where" in path
            for key, value in node.items():
                p = path + (key,)
                if not names_only and _inline_secret(key, value):
                    found.append(error("E044", f"`{key}` holds a secret written into the spec", doc.where(p, True),
                                       "remove it, rotate the key, and keep the key in the environment instead "
                                       "(OPENAI_API_KEY, ANTHROPIC_API_KEY, ...)"))
                else:
                    stack.append((p, value))
        elif isinstance(node, list):
            stack.extend((path + (i,), v) for i, v in enumerate(node))
        elif isinstance(node, str) and _SECRET_VALUE.search(node):
            found.append(error("E044", "this value looks like an API key", doc.where(path),
                               "remove it, rotate the key, and set it in the environment instead"))
    return sorted(found, key=lambda d: (d.line, d.col))
