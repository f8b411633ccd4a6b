"""The spec, as typed pydantic models: the single source of its structure.

The JSON Schema in ``schemas/`` is generated from these models
(:mod:`expc.compiler.schema`), and structural validation reports the errors
these models raise, so the editor's view and expc's view of a spec cannot
drift apart. Semantic rules that a schema cannot express live in
:mod:`expc.compiler.checks`.

Models are frozen and strict: unknown keys are errors, and ``"12"`` is not a
number. Where a person would write a quantity, they may: durations as ``7d``
and shares as ``5%`` or ``0.05`` (see :mod:`expc.compiler.quantities`).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import CoreSchema, core_schema

from .quantities import DURATION_PATTERN, PERCENT_PATTERN, parse_amount, parse_duration, parse_percent

SPEC_VERSION = 1

# Resource limits (docs/security.md, "Resource bounds"): generous for any real experiment, small enough
# that no spec makes expc allocate or loop without bound. A single value is bounded by its field (the
# schema shows the limit); what several values make together by the `limits` check of compiler/checks.py.
MAX_DAYS = 3650  #: ten years: simulation.days, stopping.max_days, metric windows, the CUPED lookback
MAX_UNITS_PER_DAY = 1_000_000_000  #: simulation.units_per_day
MAX_COUNT = 10**12  #: stopping.max_units and min_units_per_variant
MAX_VARIANTS = 100
MAX_METRICS = 100
MAX_PROMPTS = 100
MAX_DEPLOYMENTS = 32  #: a prompt's deployments
MAX_RATE = 10**9  #: a deployment's rpm and tpm
MAX_NAMES = 1000  #: attributes, audiences
MAX_RULES = 100
MAX_VALUES = 10_000  #: entries of a simulated distribution's `values` and `weights`
MAX_LOOKS = 5000  #: looks in the schedule (stopping.looks over the horizon): hourly for 208 days
MAX_BANDIT_LOOKS = 500  #: a bandit's looks (each weighs every period before it): hourly for 20 days
MAX_SIMULATED_UNITS = 5_000_000  #: units a simulated run draws (units_per_day x days), about 3 GB of memory
MAX_LIST_DRAWS = 50_000_000  #: simulated units x vocabulary of a list attribute (its draw holds both at once)
MAX_SIMULATED_EVENTS = 50_000_000  #: events a simulated run draws (units x the events each gets on average)
MAX_TIMEOUT = 3600  #: generation.timeout, in seconds
MAX_CANDIDATES = 20  #: a variant's `candidates` (each is an arm with its own copy)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
"""What an id may be: it names files and folders too (a run directory), so no `/`, no leading `.`."""

Id = Annotated[
    str,
    StringConstraints(pattern=ID_PATTERN),
]
"""An identifier: letters, digits, ``.``, ``_`` and ``-``; starts with a letter or digit."""

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,127}$")]
"""An attribute name: usable as a Jinja variable and a column name."""

EnvVar = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")]

Percent = Annotated[
    float,
    BeforeValidator(parse_percent),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": 1},
                {"type": "string", "pattern": PERCENT_PATTERN},
            ]
        }
    ),
]
"""A share in [0, 1], written ``5%`` or ``0.05``."""

Amount = Annotated[
    float,
    BeforeValidator(parse_amount),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string", "pattern": PERCENT_PATTERN}]}),
]
"""A number; a rate may also be written as a percentage (``6%`` = 0.06)."""

Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]
"""A duration in seconds, written ``45s``, ``30m``, ``12h``, ``7d`` or ``2w``."""

AttributeType = Literal["string", "integer", "number", "boolean", "list[string]", "version", "datetime"]


@dataclass(frozen=True)
class _Shorthand:
    """Accept a bare scalar where a one-field object is meant (``string`` -> ``{type: string}``).

    The schema says so too: the field takes the scalar form or the full object.
    """

    field: str
    scalar: dict[str, Any]  # JSON Schema of the short form

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        def expand(value: Any) -> Any:
            short = isinstance(value, (str, int, float)) and not isinstance(value, bool)
            listed = isinstance(value, list) and self.scalar.get("type") == "array"  # a list for its one list field
            return {self.field: value} if short or listed else value

        return core_schema.no_info_before_validator_function(expand, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {"anyOf": [self.scalar, handler(schema)]}


def _shorthand(field: str, scalar: dict[str, Any] | None = None) -> _Shorthand:
    return _Shorthand(field, scalar or {"type": "string"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True, allow_inf_nan=False)


# ------------------------------------------------------------------ sections


class Experiment(_Model):
    """Who runs the experiment, why, and on what unit."""

    id: Id
    """Stable id of the experiment; also the default hashing seed. Never change it once running."""
    name: str | None = None
    """Human-readable name."""
    owner: str | None = None
    """Team or person responsible (an email address or a handle)."""
    hypothesis: str | None = None
    """What the experiment is expected to show, in one sentence."""
    description: str | None = None
    """Longer free text."""
    unit: Name = "user_id"
    """The attribute that identifies a unit (what is randomised); it must be declared in `attributes`."""
    seed: str | None = None
    """Hashing seed (salt). Defaults to the experiment id."""
    status: Literal["draft", "running", "stopped"] = "draft"
    ("""draft (not started yet), running (units are being exposed: `expc diff` fails on a change that """
     """re-randomises them, changes the analysis or changes the content) or stopped.""")


class Attribute(_Model):
    """A typed fact known about each unit."""

    type: AttributeType
    """string, integer, number, boolean, list[string], version or datetime."""
    description: str | None = None
    """What the attribute means."""
    pii: bool = False
    ("""Personal data (a name, an e-mail address, a phone number): a prompt may send it to its model only """
     """when it lists it in `send_pii`, and expc never writes it in plain text (store keys, recorded """
     """prompts, reports).""")


class Audience(_Model):
    """A named set of units, defined by a GrowthBook-style condition."""

    where: dict[str, Any]
    """Condition on attributes with MongoDB-style operators ($eq, $in, $lte, $and, ...)."""
    description: str | None = None
    """Who is in the audience, in words."""


class Checks(_Model):
    """Checks each generated text must pass; a failure regenerates, then `on_fail` applies."""

    max_chars: int | None = Field(default=None, gt=0)
    """Longest allowed text, in characters."""
    min_chars: int | None = Field(default=None, ge=0)
    """Shortest allowed text, in characters."""
    forbid: list[str] = []
    """Phrases that must not appear (case-insensitive)."""
    require: list[str] = []
    """Regular expressions that must each match somewhere in the text."""
    json_schema: dict[str, Any] | None = None
    """A JSON Schema the output must satisfy (for structured output)."""
    no_pii: bool = False
    """Reject text that contains an e-mail address, a phone number or a card-like number (Luhn-valid, 13-19 digits)."""
    regenerate: int = Field(default=2, ge=0, le=10)
    """How many times a failing text is regenerated (with a new seed) before giving up."""
    on_fail: Literal["error", "skip", "use_control"] = "error"
    """What happens to content that still fails: stop with an error, skip the unit, or show the control."""
    judge: Judge | None = Field(default=None, exclude_if=lambda v: v is None)
    ("""A model grades each text that passed the other checks against a rubric (a score from 0 to 1); below """
     """`threshold`, or an answer without a score, the text fails (regenerated, then `on_fail`). """
     """See docs/generation.md.""")


class Judge(_Model):
    """A model-graded check: a judge model scores each text against a rubric, from 0 (fails) to 1 (meets it)."""

    model: str = Field(min_length=1)
    """A litellm model id `<provider>/<model>` for the judge; `offline/<name>` is built in (deterministic scores)."""
    rubric: str | None = None
    ("""What a good text is, in words (a Jinja template with the prompt's context: it may read only what the """
     """prompt's variants may read). Required.""")
    threshold: float = Field(default=0.5, ge=0, le=1)
    """The lowest passing score."""


class Deployment(_Model):
    """One place a prompt's calls may go: a model id, optionally its server and key variable, and its rate limits."""

    id: Id
    """Name of the deployment (recorded with every reply it serves, and shown in reports)."""
    model: str = Field(min_length=1)
    """A litellm model id `<provider>/<model>` (no URL), e.g. `azure/gpt-4o-mini`."""
    api_base: str | None = None
    """Base URL of its server: only one the user allows (EXPC_ALLOWED_API_BASES); default: the run's --api-base."""
    api_key_env: EnvVar | None = None
    """Variable that holds its API key (its name): only one the user allows (EXPC_ALLOWED_KEY_ENVS)."""
    rpm: int | None = Field(default=None, gt=0, le=MAX_RATE)
    """Requests per minute it may receive (none: no limit)."""
    tpm: int | None = Field(default=None, gt=0, le=MAX_RATE)
    """Tokens (prompt and completion) per minute it may use (none: no limit)."""


class Prompt(_Model):
    """A prompt template and the model that turns it into content."""

    model: str = Field(min_length=1)
    """A litellm model id `<provider>/<model>`, e.g. `openai/gpt-4o-mini` (no URL); `offline/<name>` is built in."""
    template: str = Field(min_length=1)
    """Jinja template of the user message. Context: `user` (attributes), `variant`, `experiment`, `segment`."""
    system: str | None = None
    """System message."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    """Sampling temperature."""
    max_tokens: int | None = Field(default=None, gt=0)
    """Upper bound on generated tokens."""
    top_p: float | None = Field(default=None, gt=0, le=1)
    """Nucleus sampling."""
    params: dict[str, Any] = {}
    """Further litellm parameters that shape the reply (`stop`, `seed`, ...); none that names a host or a key."""
    api_base: str | None = None
    """Base URL of an OpenAI-compatible server: only one the user allows (EXPC_ALLOWED_API_BASES)."""
    api_key_env: EnvVar | None = None
    """Variable that holds the API key (its name): only one the user allows (EXPC_ALLOWED_KEY_ENVS)."""
    checks: Checks = Field(default_factory=Checks)
    """Checks on the generated text."""
    send_pii: list[Name] = Field(default=[], max_length=MAX_NAMES)
    """Personal (`pii: true`) attributes this prompt's templates may read, and so send to its model."""
    deployments: list[Deployment] = Field(default=[], max_length=MAX_DEPLOYMENTS, exclude_if=lambda v: not v)
    ("""Interchangeable deployments of `model` that share its calls within their `rpm`/`tpm` limits (a reply from """
     """any is stored as the prompt's: a re-run never pays again). See docs/generation.md.""")
    fallbacks: list[Id] = Field(default=[], max_length=MAX_DEPLOYMENTS, exclude_if=lambda v: not v)
    """Ids of `deployments` used only while the others fail (500s, 429s, timeouts), in this order."""


class Generate(_Model):
    """How often a prompted variant's content is generated."""

    per: Literal["once", "segment", "unit"] = "once"
    """once: one text for everyone; segment: one per distinct value of `segment_by`; unit: one per unit."""
    segment_by: list[Name] = []
    """Attributes whose distinct combinations each get their own text (with `per: segment`)."""


class Variant(_Model):
    """One arm of the experiment: static content, or content generated from a prompt."""

    id: Id
    """Stable id of the variant."""
    description: str | None = None
    """What differs in this variant."""
    control: bool = False
    """Marks the baseline the others are compared with. If no variant is marked, the first one is the control."""
    weight: float = Field(default=1, le=1_000_000)
    """Relative share of traffic; weights are normalised to sum to 1."""
    content: str | None = None
    """Static content (give this or `prompt`)."""
    prompt: Id | None = None
    """Name of a prompt in `prompts` that generates the content (give this or `content`)."""
    generate: Generate | None = None
    """How often generated content is made (default: once)."""
    candidates: int | None = Field(default=None, ge=1, le=MAX_CANDIDATES)
    ("""Generate this many candidate texts from the prompt, each its own arm `<id>-1` ... `<id>-N` sharing """
     """this variant's weight equally (each with its own seed). Not on a control or static content.""")
    top_k: int | None = Field(default=None, ge=1, le=MAX_CANDIDATES)
    """Keep only the K candidates the prompt's `judge` scores best (the others get no traffic)."""


class Layer(_Model):
    """A mutual-exclusion layer: experiments in one layer take disjoint ranges, so never share a unit."""

    id: Id
    """Name of the layer (GrowthBook namespace)."""
    range: list[float] = Field(default=[0.0, 1.0], min_length=2, max_length=2)
    """[start, end) of the layer's hash space this experiment takes."""


class Allocation(_Model):
    """Who enters the experiment and how they are split."""

    audience: Id | None = None
    """Name of the audience that is eligible (everyone when omitted)."""
    coverage: Percent = 1.0
    """Share of the eligible audience that enters the experiment."""
    layer: Annotated[Layer | None, _shorthand("id")] = None
    """Layer (namespace) name, or {id, range}; a name alone takes the whole layer."""
    hash_version: Literal[1, 2] = 2
    """GrowthBook hashing algorithm version."""


class Cap(_Model):
    """An upper limit on each unit's value (winsorising): a quantile of the units' values, or a fixed value."""

    quantile: float | None = Field(default=None, gt=0, lt=1)
    ("""Cap at this quantile of the per-unit values of the exposed units, all arms pooled, at each look """
     """(0.99: the 99th percentile).""")
    value: float | None = None
    """Cap at this value."""


class Measure(_Model):
    """One side of a ratio metric: an event, summed by value or counted."""

    event: str = Field(min_length=1)
    """Name of the event."""
    measure: Literal["value", "count"] = "value"
    """Sum the events' values, or count the events."""
    cap: Cap | None = None
    """Cap each unit's sum (a ratio's numerator only): `{quantile: 0.99}` or `{value: 500}`."""


class Metric(_Model):
    """What is measured, how it is judged and what effect matters."""

    id: Id
    """Stable id of the metric."""
    name: str | None = None
    """Human-readable name."""
    description: str | None = None
    """What the metric means."""
    kind: Literal["proportion", "mean", "ratio"]
    ("""proportion: share of units with the event; mean: per-unit sum of values; """
     """ratio: sum of a numerator over sum of a denominator.""")
    event: str | None = Field(default=None, min_length=1)
    """Event that counts (proportion and mean metrics)."""
    numerator: Annotated[Measure | None, _shorthand("event")] = None
    """Numerator of a ratio metric: an event name, or {event, measure}."""
    denominator: Annotated[Measure | None, _shorthand("event")] = None
    """Denominator of a ratio metric: an event name, or {event, measure}."""
    window: Duration | None = None
    """Events count only this long after a unit's first exposure (default: until the end)."""
    role: Literal["primary", "secondary", "guardrail"] = "secondary"
    """primary decides the experiment (exactly one); guardrails must not get worse."""
    direction: Literal["increase", "decrease"] = "increase"
    """Which direction is good."""
    mde: Percent | None = None
    """Minimum detectable effect, relative to the baseline (5% = a lift from 10% to 10.5%)."""
    margin: Percent | None = None
    """Non-inferiority margin for a guardrail, relative to the baseline."""
    baseline: Amount | None = None
    ("""Expected control rate (proportion, e.g. 6% or 0.06) or mean, for planning; """
     """defaults to the simulation's control truth.""")
    sd: float | None = Field(default=None, gt=0)
    """Expected per-unit standard deviation (mean and ratio metrics), for planning."""
    cuped: bool | None = None
    ("""Adjust this metric with its own pre-exposure value (CUPED); """
     """overrides `analysis.cuped` (default: that setting).""")
    cap: Cap | None = None
    ("""Cap each unit's value against heavy tails (a mean's value, a ratio's numerator): """
     """`{quantile: 0.99}` or `{value: 500}`.""")


class Segments(_Model):
    """Per-segment results: which attributes break the results down, and how small segments are pooled."""

    by: list[Name] = Field(min_length=1, max_length=20)
    """Attributes whose values are segments (from the exposures' columns, or the units file)."""
    min_units: int = Field(default=100, ge=0, le=MAX_COUNT)
    """Segments with fewer units (all arms) are pooled into `other`."""
    top: int = Field(default=10, ge=1, le=1000)
    """Only the largest `top` segments of an attribute stand alone; the rest are pooled into `other`."""
    correction: Literal["none", "bonferroni", "holm", "bh"] = "bh"
    """Multiple testing across the segments of each metric and attribute (Benjamini-Hochberg by default)."""


class Bandit(_Model):
    """A multi-armed bandit's traffic (Thompson sampling on the primary metric) and when it stops."""

    explore_days: int = Field(default=1, ge=0, le=MAX_DAYS)
    """Days of equal weights before the weights follow the data (0: from the first look)."""
    min_weight: Percent = 0.05
    """The smallest share of traffic any arm keeps (at most 1 / arms)."""
    threshold: Percent = 0.95
    """The `best_arm` rule holds once one arm's posterior probability of being best reaches this."""


class Analysis(_Model):
    """How results are evaluated."""

    method: Literal["fixed", "sequential", "bayesian", "bandit"] = "fixed"
    ("""fixed horizon, always-valid sequential, Bayesian, or bandit (Thompson sampling: traffic moves to the """
     """arms likely to be best at each look; see `bandit`).""")
    bandit: Bandit = Field(default_factory=Bandit)
    """With method bandit: the exploration period, the minimum weight per arm and the stopping threshold."""
    alpha: Percent = 0.05
    """Significance level (two-sided)."""
    power: Percent = 0.8
    """Planned power at the primary metric's MDE."""
    correction: Literal["none", "bonferroni", "holm", "bh"] = "holm"
    """Multiple-testing correction."""
    family: Literal["per_metric", "primary"] = "per_metric"
    """Family for the correction: each metric's variants, or all primary comparisons together."""
    srm_threshold: Percent = 0.001
    """Sample-ratio-mismatch p-value below which results are flagged untrustworthy."""
    cuped: bool = False
    """Adjust each metric with its own pre-exposure value (CUPED variance reduction; Deng et al. 2013)."""
    cuped_lookback: Duration = 14 * 86400
    """How far before a unit's first exposure its pre-exposure value is measured (CUPED): a duration such as 14d."""
    sequential: Literal["always_valid", "group"] = "always_valid"
    ("""With method sequential: always_valid (mSPRT confidence sequences, look any time) or group """
     """(Lan-DeMets alpha-spending boundaries at the planned looks: stopping.looks up to stopping.max_days).""")
    spending: Literal["obrien_fleming", "pocock"] = "obrien_fleming"
    ("""Alpha-spending function of sequential: group: obrien_fleming (strict early, nearly the full alpha """
     """at the end) or pocock (about equal boundaries at every look).""")
    in_progress: Literal["exclude", "include"] = "exclude"
    ("""Units whose metric window has not ended by the look: exclude (left out of that metric until it ends) """
     """or include (counted with the events so far). Metrics without a window are not affected.""")
    segments: Annotated[Segments | None, _shorthand("by", {"type": "array", "items": {"type": "string"}})] = None
    """Results per segment: `[country, plan]`, or `{by: [...], min_units, top, correction}`."""


Condition = Literal["primary_significant", "guardrail_harm", "segment_harm", "futility", "max_days", "max_units",
                    "srm", "best_arm"]
Action = Literal["continue", "stop_ship_winner", "stop_rollback", "stop_futility", "stop_inconclusive"]


class Rule(_Model):
    """When something holds at a look, do this."""

    when: Condition
    """primary_significant, guardrail_harm, futility, max_days, max_units, srm or best_arm (bandits)."""
    then: Action
    """continue, stop_ship_winner, stop_rollback, stop_futility or stop_inconclusive."""
    metric: Id | None = None
    """Limit the rule to one metric (default: every metric the condition concerns)."""


def _looks(value: Any) -> Any:
    return {"daily": "1d", "weekly": "7d", "hourly": "1h"}.get(value, value) if isinstance(value, str) else value


class Stopping(_Model):
    """When results are looked at and when the experiment ends."""

    looks: Annotated[
        int,
        BeforeValidator(lambda v: parse_duration(_looks(v))),
        WithJsonSchema({"anyOf": [{"enum": ["hourly", "daily", "weekly"]},
                                  {"type": "string", "pattern": DURATION_PATTERN}]}),
    ] = 86400
    """How often results are evaluated: hourly, daily, weekly or a duration such as 12h."""
    min_units_per_variant: int = Field(default=0, ge=0, le=MAX_COUNT)
    ("""primary_significant and futility rules wait until every variant has this many units """
     """(srm, guardrail_harm and the max_ rules apply at every look).""")
    max_days: int | None = Field(default=None, gt=0, le=MAX_DAYS)
    """The experiment ends after this many days."""
    max_units: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    """The experiment ends after this many units in total."""
    rules: list[Rule] = Field(default=[], max_length=MAX_RULES)
    """Rules evaluated in order at each look; the first that holds decides."""


class TruthValue(_Model):
    """The true mean of a metric in a variant (for a proportion, its rate)."""

    mean: Amount
    """True rate (proportion, e.g. 6% or 0.06) or mean."""
    sd: float | None = Field(default=None, gt=0)
    """True per-unit standard deviation (mean and ratio metrics)."""


class Distribution(_Model):
    """How a simulated attribute is drawn. Give the fields that fit its type."""

    values: list[Any] | None = Field(default=None, max_length=MAX_VALUES)
    """Values to choose from (string, list[string], version attributes, or any type)."""
    weights: list[float] | None = Field(default=None, max_length=MAX_VALUES)
    """Relative weights of `values` (default: equal)."""
    min: float | None = None
    """Lower bound of a uniform draw (integer, number)."""
    max: float | None = None
    """Upper bound of a uniform draw (integer, number)."""
    mean: float | None = None
    """Mean of a normal draw (integer, number)."""
    sd: float | None = Field(default=None, gt=0)
    """Standard deviation of a normal draw."""
    p: float | None = Field(default=None, ge=0, le=1)
    """Probability of true (boolean)."""
    size: list[int] | None = Field(default=None, min_length=2, max_length=2)
    """[min, max] number of items drawn (list[string])."""


class Simulation(_Model):
    """A simulated population for dry runs and `expc run --simulate`."""

    units_per_day: int = Field(gt=0, le=MAX_UNITS_PER_DAY)
    """Units that reach the experiment's allocation each day."""
    days: int | None = Field(default=None, gt=0, le=MAX_DAYS)
    """Days to simulate (default: stopping.max_days)."""
    seed: int = 0
    """Random seed of the simulation."""
    attributes: dict[str, Distribution] = Field(default={}, max_length=MAX_NAMES)
    """How each attribute is drawn (default: a sensible distribution per type)."""
    truth: dict[str, dict[str, Annotated[TruthValue, _shorthand("mean", {"type": "number"})]]] = {}
    """True value per variant and metric: a number (rate or mean) or {mean, sd}."""


DIALECTS = ("duckdb", "spark", "databricks", "trino", "bigquery", "snowflake", "postgres", "redshift", "clickhouse")
"""The SQL dialects expc writes its reduction in (``expc sql``) and reads a spec's ``data`` queries in."""
Dialect = Literal["duckdb", "spark", "databricks", "trino", "bigquery", "snowflake", "postgres", "redshift",
                  "clickhouse"]

STANDARD_COLUMNS = {
    "exposures": ("unit_id", "variant", "timestamp"),
    "events": ("unit_id", "event", "timestamp", "value"),
}
"""The columns each relation of ``data`` provides (``value`` is read only when a metric sums values)."""
OPTIONAL_COLUMNS = {
    "exposures": ("experiment_id", "variation_id"),
    "events": (),
}
"""Columns a relation may have: ``experiment_id`` (a log shared by experiments: rows of others are counted
and left out) and ``variation_id`` (GrowthBook's variation index, 0 for the first variant, where ``variant``
is absent)."""


class DataSource(_Model):
    """Where one relation's rows are: exactly one of a table, a file or folder of files, or a query."""

    table: str | None = Field(default=None, min_length=1, max_length=512)
    """A table or view, qualified as the engine names it (`analytics.experiment_viewed`)."""
    path: str | None = Field(default=None, min_length=1, max_length=1024)
    """A Parquet, CSV or JSON Lines file, or a folder of them (partitioned folders too), relative to the spec."""
    query: str | None = Field(default=None, min_length=1, max_length=100_000)
    """A `SELECT` (in `data.dialect`) returning the standard columns."""
    format: Literal["parquet", "csv", "jsonl"] | None = None
    """The files' format, when the path's extension does not say (a folder)."""
    columns: dict[str, Annotated[str, StringConstraints(min_length=1, max_length=256)]] = Field(
        default={}, max_length=8)
    """The source's name of a standard column, where it differs: `{unit_id: user_id, variant: variation_id}`."""


class Data(_Model):
    """Where the experiment's exposures and events live; `--exposures` and `--events` override it."""

    dialect: Dialect = "duckdb"
    """The SQL dialect of the tables' names and the queries (the engine's)."""
    exposures: DataSource | None = None
    """Each unit's exposures: `unit_id`, `variant`, `timestamp`."""
    events: DataSource | None = None
    """The events metrics count: `unit_id`, `event`, `timestamp`, `value`."""


class Generation(_Model):
    """Limits on content generation for the whole spec."""

    max_cost_usd: float | None = Field(default=None, ge=0)
    """Budget: no new model call starts once this much has been spent."""
    concurrency: int = Field(default=8, gt=0, le=256)
    """Model calls in flight at once."""
    timeout: Duration = 60
    """Per-call timeout."""
    batch: bool = False
    ("""Submit the calls through the provider's batch API (OpenAI-compatible: about half the price, results """
     """within 24 h) instead of one by one; `expc generate --batch/--no-batch` wins.""")


class Spec(_Model):
    """An expc experiment spec."""

    version: Literal[1]
    """Spec language version; 1 is the only one so far."""
    experiment: Experiment
    """Who runs the experiment, why, and on what unit."""
    attributes: dict[Name, Annotated[Attribute, _shorthand("type", {"enum": list(typing.get_args(AttributeType))})]] = (
        Field(default={}, max_length=MAX_NAMES))
    """What is known about each unit, typed: `name: string` or `name: {type: ..., description: ...}`."""
    audiences: dict[Id, Audience] = Field(default={}, max_length=MAX_NAMES)
    """Named sets of units."""
    prompts: dict[Id, Prompt] = Field(default={}, max_length=MAX_PROMPTS)
    """Prompt templates and their models."""
    variants: list[Variant] = Field(default=[], max_length=MAX_VARIANTS)
    """The arms of the experiment; at least two."""
    allocation: Allocation = Field(default_factory=Allocation)
    """Who enters and how they are split."""
    metrics: list[Metric] = Field(default=[], max_length=MAX_METRICS)
    """What is measured; exactly one primary."""
    analysis: Analysis = Field(default_factory=Analysis)
    """How results are evaluated."""
    stopping: Stopping = Field(default_factory=Stopping)
    """When results are looked at and when the experiment ends."""
    simulation: Simulation | None = None
    """A simulated population for dry runs."""
    generation: Generation = Field(default_factory=Generation)
    """Limits on content generation."""
    data: Data | None = None
    """Where exposures and events live (a table, files or a query), for `analyze` and `run`."""

    @property
    def control(self) -> Variant | None:
        """The baseline variant: the one marked `control: true`, else the first."""
        marked = [v for v in self.variants if v.control]
        return marked[0] if marked else (self.variants[0] if self.variants else None)

    @property
    def primary(self) -> Metric | None:
        """The primary metric, if there is exactly one."""
        primaries = [m for m in self.metrics if m.role == "primary"]
        return primaries[0] if len(primaries) == 1 else None
