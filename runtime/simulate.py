"""Operating characteristics of a design before launch: thousands of simulated experiments at once.

:func:`simulate` answers "what will this design do?" for a compiled plan with
a ``simulation`` block: the share of replications that ship a treatment when
every variant is the same (the false-positive rate, ``truth="aa"``), the share
that ship the truly best variant under the spec's truth (the power,
``truth="spec"``), and the distributions of decisions, stopping days and units
used. Everything works on sufficient statistics, vectorised over replications
``R`` and looks ``K``: no Python loop runs per unit or per replication (only
over metrics, rules and blocks of replications).

The model
=========

Traffic. The experiment runs for ``simulation.days`` (default
``stopping.max_days``; 28 when neither is set) and is looked at every
``stopping.looks``; the last look is the first one at or after that horizon.
Each day ``units_per_day × share × coverage`` units enter, where ``share`` is
the width of the layer's range (1 without a layer) and ``coverage`` the plan's
coverage: the same arithmetic as the compiler's duration planning.
``units_per_day`` counts units that already match the audience, so the
audience is not applied again. Between two looks the number entering is the
difference of the rounded cumulative counts (so totals are exact); they are
split between the arms by ``Multinomial(entering, normalised weights)``.

Outcomes, drawn per arm and per look interval from the truth, exactly in
distribution for the unit-level model named (no per-unit loop):

* proportion: ``successes ~ Binomial(n, p)``.
* mean: units ``x ~ N(μ, σ²)`` i.i.d.; ``Σx ~ N(nμ, nσ²)`` and, independently,
  ``Σ(x - x̄)² ~ σ² χ²_{n-1}`` (Cochran), so ``Σx² = Σ(x - x̄)² + (Σx)²/n``.
* ratio (``Σx / Σy``): the truth's ``mean`` is the ratio ``r`` and its ``sd``
  the per-unit standard deviation of the delta-method linearisation
  ``(x - r y) / E y`` (what ``Moments.variance()`` estimates and what the
  compiler plans with). Units draw a denominator ``y ~ N(1, 1)`` and an
  independent residual ``e ~ N(0, σ²)``, and ``x = r y + e``; then
  ``E x / E y = r`` and the linearisation is exactly ``e``. The sums
  ``Σy, Σe`` are normal and the centred scatter matrix of ``(y, e)`` is
  ``Wishart(n - 1)``, drawn by Bartlett's decomposition; ``Σx, Σx², Σy²,
  Σxy`` follow. The delta-method test's behaviour depends on the denominator's
  spread only at second order, so this choice does not drive the results.

Outcomes are counted at the look at which a unit enters: metric windows and
conversion delays are not modelled (events are assumed complete at the look).
No pre-exposure covariate is drawn, so CUPED never applies: the figures are
those of the plain analysis (conservative for a design that uses CUPED).

Truth: ``truth="spec"`` takes ``simulation.truth``; a variant without a value
for a metric gets the control's; a control without one gets the metric's
``baseline`` (and ``sd``). ``truth="aa"`` gives every variant the control's
truth. Means and ratios need an ``sd`` (from the truth or the metric).

Evaluation
==========

Each look is evaluated as :func:`expc.runtime.evaluate.evaluate` would
evaluate the same moments (a test draws replications and checks the decisions
and stopping looks against ``evaluate`` itself): the method's comparisons on
arrays of shape ``(R, K, arms)`` in one call per metric (``fixed.compare``,
``sequential.always_valid`` tuned to the plan's ``per_variant``,
``bayesian`` posteriors), the correction within families, guardrails,
the sample-ratio check and the stopping rules in order, then the first look
where a rule that stops fires. Only the metrics that can change a decision
are drawn and evaluated: the primary metric, metrics named by
``primary_significant`` / ``futility`` rules, guardrails when a
``guardrail_harm`` rule exists, and their correction families.

Two shortcuts keep Bayesian proportions fast while giving the decision that the
exact computation would give:

* Decisions compare posterior probabilities with fixed levels (``1 - α/2``
  and ``α/2``), so the credible interval's end ``q`` is never needed, only
  which side of a threshold it falls on: ``q_{1-α/2} < t ⟺ P(T - C ≤ t) >
  1 - α/2``. One CDF replaces a root search.
* The exact Beta–Binomial probability (a quadrature whose nodes cost a
  ``betaincinv`` each, ~5 ms per comparison) is computed, with
  :mod:`~expc.runtime.stats.bayesian` itself, only where the normal
  approximation of ``T - C`` (posterior means and variances) lands within a
  band of the threshold: ``0.02 + 3 e`` in z units, ``e`` the Cornish–Fisher
  correction of the threshold's quantile from the skewness and kurtosis of
  ``T - C`` (exact Beta cumulants), and always where an arm has fewer than
  10 successes or failures. Elsewhere the approximation is on the same side as
  the exact value. ``exact=True`` computes every element exactly.

Outputs
=======

``false_positive_rate`` (``truth="aa"``): the share of replications that
decide ``stop_ship_winner`` with a winner, i.e. ship some treatment although
none is better. ``power`` (``truth="spec"``): the share that ship the truly best
variant, the treatment whose true primary mean is best in the metric's good
direction (any of them on a tie), provided it is strictly better than the
control (``None`` when no treatment is: then every shipment is a false
positive, reported as ``false_positive_rate``). Each rate has its Monte Carlo
standard error ``√(p(1 - p)/R)``. Replications that no rule stops within the
horizon end ``continue`` (not stopped); their units and day are those of the
last look. The stopping-day quantiles are over the replications that stopped.

:meth:`SimulationResult.to_dict` (``expc simulate --format json``) has the keys
``experiment``, ``truth`` (``"aa"`` or ``"spec"``), ``false_positive_rate`` and
``false_positive_rate_se`` (with ``aa``, or ``spec`` without a true
improvement), ``power``, ``power_se`` and ``best_variant`` (with ``spec``),
``replications``, ``seed``, ``design`` (method, alpha, correction, looks,
look_every, horizon_days, units_per_day entering, variants with their
weights, control, planned_per_variant, min_units_per_variant, rules),
``truth_values`` (variant → metric → mean, sd), ``decisions`` (action →
share, ``continue`` = not stopped), ``shipped`` (treatment → share),
``rules_fired`` (``"<index>:<when>"`` → share), ``stopping_day``
(``stopped`` share, ``quantiles`` p5/p25/p50/p75/p95, ``mean``,
``histogram`` of ``{day, share}`` with shares of all replications) and
``units_used`` (``quantiles``, ``mean``). It is a pure function of the plan,
the replications, the truth and the seed: the same inputs give the same JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from .stats import bayesian, corrections, fixed, sequential
from .stats.moments import Moments
from .stats.reduce import EXCLUDED_KEYS, Reduction
from .stats.srm import srm as srm_test

__all__ = [
    "CONTINUE",
    "Design",
    "Draws",
    "LookDecisions",
    "SimulationError",
    "SimulationResult",
    "decide",
    "design_of",
    "draw",
    "look_reduction",
    "resolve_truth",
    "simulate",
]

CONTINUE = "continue"
TRUTH_MODES = ("spec", "aa")
_DEFAULT_DAYS = 28
_EXACT_MIN_COUNT = 10.0  # Beta arms with fewer successes or failures are always computed exactly
_BAND_FLOOR = 0.02  # z units
_BAND_FACTOR = 3.0  # × the Cornish–Fisher correction
_BLOCK_ELEMENTS = 1_500_000  # replications × looks × arms per block (bounds memory)
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class SimulationError(ValueError):
    """The plan cannot be simulated (no simulation block, a truth without the numbers it needs)."""


# ================================================================== design and truth


@dataclass(frozen=True, eq=False)
class Design:
    """The plan's traffic and looks, arms in control-first order."""

    arm_ids: tuple[str, ...]  # control first
    order: tuple[int, ...]  # the plan index of each arm above
    weights: np.ndarray  # (arms,), normalised
    look_seconds: int
    look_days: np.ndarray  # (K,) int: whole days from the start to each look (evaluate's `day`)
    entering: np.ndarray  # (K,) int: units entering the experiment between looks
    per_day: float  # units entering per day (after layer share and coverage)
    horizon_days: int

    @property
    def looks(self) -> int:
        """Number of looks ``K``."""
        return int(self.look_days.size)


def design_of(plan: dict[str, Any]) -> Design:
    """Traffic and looks of a plan with a ``simulation`` block (raises :class:`SimulationError` without one)."""
    sim = plan.get("simulation")
    if not sim:
        raise SimulationError(f"the spec of {plan['experiment']['id']} has no `simulation` block; add one "
                              "(units_per_day and the true rates or means per variant) to simulate it")
    ids = [v["id"] for v in plan["variants"]]
    control = plan.get("control") or ids[0]
    ci = ids.index(control)
    order = tuple([ci] + [i for i in range(len(ids)) if i != ci])
    weights = np.asarray([float(plan["variants"][i].get("weight", 1.0)) for i in order])
    if weights.sum() <= 0:
        raise SimulationError("every variant has weight 0: no unit would enter")
    weights = weights / weights.sum()
    stopping = plan.get("stopping") or {}
    look_seconds = int(stopping.get("look_seconds") or 86400)
    horizon = int(sim.get("days") or stopping.get("max_days") or _DEFAULT_DAYS)
    looks = math.ceil(horizon * 86400 / look_seconds)
    assignment = plan.get("assignment") or {}
    namespace = assignment.get("namespace")
    share = float(namespace[2]) - float(namespace[1]) if namespace else 1.0
    per_day = float(sim["units_per_day"]) * share * float(assignment.get("coverage", 1.0))
    seconds = np.arange(1, looks + 1, dtype=np.int64) * look_seconds
    cumulative = np.rint(per_day * seconds / 86400.0).astype(np.int64)
    entering = np.diff(np.concatenate([[0], cumulative]))
    return Design(tuple(ids[i] for i in order), order, weights, look_seconds, seconds // 86400, entering,
                  per_day, horizon)


def resolve_truth(plan: dict[str, Any], mode: str = "spec") -> dict[str, dict[str, tuple[float, float | None]]]:
    """True ``(mean, sd)`` per variant and metric (``sd`` None for proportions); see the module docs."""
    if mode not in TRUTH_MODES:
        raise ValueError(f"truth must be one of {TRUTH_MODES}, got {mode!r}")
    sim = plan.get("simulation") or {}
    given = sim.get("truth") or {}
    ids = [v["id"] for v in plan["variants"]]
    control = plan.get("control") or ids[0]
    out: dict[str, dict[str, tuple[float, float | None]]] = {v: {} for v in ids}
    for metric in plan["metrics"]:
        mid, kind = metric["id"], metric["kind"]
        base = (given.get(control) or {}).get(mid)
        mean = base["mean"] if base else metric.get("baseline")
        sd = (base or {}).get("sd") or metric.get("sd")
        if mean is None:
            raise SimulationError(f"metric `{mid}` has no true value for the control `{control}`: give "
                                  f"simulation.truth.{control}.{mid} (or the metric's baseline)")
        for v in ids:
            value = (given.get(v) or {}).get(mid) if mode == "spec" else None
            m, s = (value["mean"], value.get("sd") or sd) if value else (mean, sd)
            if kind == "proportion":
                if not 0 <= m <= 1:
                    raise SimulationError(f"the true rate of `{mid}` in `{v}` is {m}, outside [0, 1]")
                out[v][mid] = (float(m), None)
            else:
                if not s:
                    raise SimulationError(f"metric `{mid}` ({kind}) needs a per-unit sd: give "
                                          f"simulation.truth.<variant>.{mid} as {{mean, sd}} or the metric's sd")
                out[v][mid] = (float(m), float(s))
    return out


# ================================================================== drawing moments


@dataclass(frozen=True, eq=False)
class Draws:
    """Cumulative sufficient statistics at every look: arrays ``(R, K, arms)``, arms control-first."""

    design: Design
    units: np.ndarray
    metrics: dict[str, Moments]


def _chi2(rng: np.random.Generator, df: np.ndarray) -> np.ndarray:
    """χ² draws that allow 0 degrees of freedom (giving 0)."""
    return rng.gamma(np.maximum(df, 0.0) / 2.0, 2.0)


def _draw_proportion(rng, n: np.ndarray, p: np.ndarray) -> Moments:
    x = rng.binomial(n, p).astype(np.float64)
    return Moments.proportion(n.astype(np.float64), x)


def _draw_mean(rng, n: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> Moments:
    nf = n.astype(np.float64)
    s = rng.normal(nf * mu, np.sqrt(nf) * sd)
    scatter = sd**2 * _chi2(rng, nf - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.where(nf > 0, scatter + s**2 / nf, 0.0)
    return Moments.of(nf, s, s2)


def _draw_ratio(rng, n: np.ndarray, r: np.ndarray, sd: np.ndarray, sd_y: float = 1.0) -> Moments:
    nf = n.astype(np.float64)
    sy = rng.normal(nf, np.sqrt(nf) * sd_y)
    se = rng.normal(0.0, np.sqrt(nf) * sd)
    nu = nf - 1.0  # Bartlett: A = [[a11, 0], [a21, a22]], A Aᵀ ~ Wishart(ν, I)
    a11 = np.sqrt(_chi2(rng, nu))
    a21 = np.where(nu >= 1, rng.standard_normal(nf.shape), 0.0)
    a22 = np.sqrt(_chi2(rng, nu - 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_n = np.where(nf > 0, 1.0 / nf, 0.0)
    syy = sd_y**2 * a11**2 + sy**2 * inv_n
    sye = sd_y * sd * a11 * a21 + sy * se * inv_n
    see = sd**2 * (a21**2 + a22**2) + se**2 * inv_n
    return Moments.of(nf, r * sy + se, r**2 * syy + 2 * r * sye + see, sy, syy, r * syy + sye)


def _cumulative(m: Moments) -> Moments:
    c = lambda x: None if x is None else np.cumsum(x, axis=1)
    return Moments(c(m.n), c(m.sum), c(m.sum_sq), c(m.den_sum), c(m.den_sum_sq), c(m.cross))


def draw(plan: dict[str, Any], replications: int, truth: str = "spec", seed: int | None = None,
         metrics: list[str] | None = None, design: Design | None = None,
         rng: np.random.SeedSequence | None = None) -> Draws:
    """Draw ``replications`` experiments: cumulative units and moments per look (see the module docs).

    ``metrics`` limits the metrics drawn (default: all). Each metric has its own
    random stream, so drawing fewer metrics leaves the others unchanged.
    ``seed`` defaults to ``simulation.seed``; ``rng`` (a ``SeedSequence``)
    overrides it.
    """
    design = design or design_of(plan)
    values = resolve_truth(plan, truth)
    ss = rng or np.random.SeedSequence(int((plan.get("simulation") or {}).get("seed", 0) if seed is None else seed))
    streams = ss.spawn(1 + len(plan["metrics"]))
    R, K = int(replications), design.looks
    gen = np.random.default_rng(streams[0])
    increments = gen.multinomial(design.entering, design.weights, size=(R, K))  # (R, K, arms)
    out: dict[str, Moments] = {}
    for i, metric in enumerate(plan["metrics"]):
        mid = metric["id"]
        if metrics is not None and mid not in metrics:
            continue
        g = np.random.default_rng(streams[1 + i])
        mean = np.asarray([values[a][mid][0] for a in design.arm_ids])
        if metric["kind"] == "proportion":
            m = _draw_proportion(g, increments, mean)
        else:
            sd = np.asarray([values[a][mid][1] for a in design.arm_ids])
            m = (_draw_mean if metric["kind"] == "mean" else _draw_ratio)(g, increments, mean, sd)
        out[mid] = _cumulative(m)
    return Draws(design, np.cumsum(increments, axis=1), out)


def look_reduction(draws: Draws, plan: dict[str, Any], replication: int, look: int) -> Reduction:
    """The :class:`Reduction` that one replication has at one look (arms in the plan's order), for ``evaluate``."""
    inverse = np.argsort(draws.design.order)
    pick = lambda x: None if x is None else np.asarray(x[replication, look])[inverse]
    metrics = {k: Moments(pick(m.n), pick(m.sum), pick(m.sum_sq), pick(m.den_sum), pick(m.den_sum_sq),
                          pick(m.cross)) for k, m in draws.metrics.items()}
    units = np.asarray(draws.units[replication, look])[inverse].astype(np.int64)
    return Reduction(metrics=metrics, units=units, excluded={k: 0 for k in EXCLUDED_KEYS}, sql="")


# ================================================================== Bayesian probabilities


def _beta_cumulants(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, variance, third and fourth cumulants of ``Beta(a, b)``."""
    s = a + b
    mean = a / s
    var = a * b / (s**2 * (s + 1))
    skew = 2 * (b - a) * np.sqrt(s + 1) / ((s + 2) * np.sqrt(a * b))
    exkurt = 6 * ((a - b) ** 2 * (s + 1) - a * b * (s + 2)) / (a * b * (s + 2) * (s + 3))
    return mean, var, skew * var**1.5, exkurt * var**2


def _beta_probability(m: Moments, x: np.ndarray, upper: bool, z_star: float, exact: bool) -> np.ndarray:
    """``P(T - C > x)`` (``upper``) or ``P(T - C ≤ x)`` under Beta(1, 1) posteriors, ``(..., t)``.

    Exact (``bayesian.beta_binomial_posterior``) wherever the decision could
    depend on it: where the normal approximation's z is within the
    Cornish–Fisher band of ``±z_star`` or an arm has few successes or failures
    (see the module docs); elsewhere the approximation, which is then on the
    same side of ``Φ(±z_star)`` as the exact value.
    """
    n, s = np.asarray(m.n, dtype=np.float64), np.asarray(m.sum, dtype=np.float64)
    a, b = 1.0 + s, 1.0 + n - s
    x = np.broadcast_to(np.asarray(x, dtype=np.float64), n[..., 1:].shape)
    if exact:
        need = np.ones(x.shape, dtype=bool)
        out = np.full(x.shape, np.nan)
    else:
        mean, var, k3, k4 = _beta_cumulants(a, b)
        delta = mean[..., 1:] - mean[..., :1]
        s2 = var[..., 1:] + var[..., :1]
        sd = np.sqrt(s2)
        g1 = (k3[..., 1:] - k3[..., :1]) / sd**3
        g2 = (k4[..., 1:] + k4[..., :1]) / s2**2
        z = z_star
        cf = np.abs(g1) * (z * z - 1) / 6 + np.abs(g2) * abs(z**3 - 3 * z) / 24 + g1**2 * abs(2 * z**3 - 5 * z) / 36
        band = _BAND_FLOOR + _BAND_FACTOR * cf
        zx = (delta - x) / sd  # P(D > x) ≈ Φ(zx)
        out = special.ndtr(zx) if upper else special.ndtr(-zx)
        few = np.minimum(a, b) < _EXACT_MIN_COUNT
        need = (np.abs(np.abs(zx) - z_star) < band) | ~np.isfinite(zx) | few[..., :1] | few[..., 1:]
    # exact values, one two-arm comparison (control, treatment) per element that needs one
    rows, col = np.nonzero(need.reshape(-1, need.shape[-1]))
    if rows.size:
        arms = n.shape[-1]
        n_rows, x_rows = n.reshape(-1, arms), s.reshape(-1, arms)
        sub = Moments.proportion(np.stack([n_rows[rows, 0], n_rows[rows, col + 1]], axis=-1),
                                 np.stack([x_rows[rows, 0], x_rows[rows, col + 1]], axis=-1))
        post = bayesian.beta_binomial_posterior(sub)
        xs = x.reshape(-1, need.shape[-1])[rows, col][:, None]
        vals = post.sf_abs(xs) if upper else post.cdf_abs(xs)
        out = np.array(out, dtype=np.float64)
        flat = out.reshape(-1, need.shape[-1])
        flat[rows, col] = vals[:, 0]
    return out


# ================================================================== one look, vectorised


@dataclass(frozen=True, eq=False)
class _MetricLooks:
    """Per metric: arrays ``(R, K, t)`` (control mean ``(R, K)``) as evaluate's per-comparison fields."""

    metric: dict[str, Any]
    lift: np.ndarray
    p_value: np.ndarray  # NaN under bayesian
    chance_up: np.ndarray | None  # bayesian: P(T > C) (approximate far from the thresholds)
    control_mean: np.ndarray
    moments: Moments
    reject: np.ndarray | None = None  # group sequential: |z| crossed the look's boundary
    ci: np.ndarray | None = None  # group sequential: the repeated confidence interval Δ̂ ± c_k se


def _needed_metrics(plan: dict[str, Any]) -> list[str]:
    """Metrics that can change a decision (with their correction families)."""
    rules = (plan.get("stopping") or {}).get("rules") or []
    metrics = plan["metrics"]
    needed = {m["id"] for m in metrics if m.get("role") == "primary"}
    for rule in rules:
        if rule["when"] in ("primary_significant", "futility") and rule.get("metric"):
            needed.add(rule["metric"])
        if rule["when"] == "guardrail_harm":
            needed |= {m["id"] for m in metrics
                       if m.get("role") == "guardrail" and (not rule.get("metric") or m["id"] == rule["metric"])}
    if (plan.get("analysis") or {}).get("family") == "primary" and any(
            m.get("role") == "primary" for m in metrics if m["id"] in needed):
        needed |= {m["id"] for m in metrics if m.get("role") == "primary"}
    return [m["id"] for m in metrics if m["id"] in needed]


def _compare(m: Moments, metric: dict[str, Any], method: str, alpha: float, planned_n: Any,
             exact: bool, boundary: np.ndarray | None = None) -> _MetricLooks:
    kind = metric["kind"]
    with np.errstate(divide="ignore", invalid="ignore"):
        control_mean = m.mean()[..., 0]
    if method == "fixed":
        c = fixed.compare(m, kind, alpha=alpha)
        return _MetricLooks(metric, c.abs_lift, c.p_value, None, control_mean, m)
    if method == "sequential" and boundary is not None:  # group sequential: the look's z boundary
        c = np.asarray(boundary, dtype=np.float64)[:, None]  # (K, 1) against (R, K, t)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean, vom = m.mean(), fixed.unit_variance(m, kind) / m.n
            diff = mean[..., 1:] - mean[..., :1]
            se = np.sqrt(vom[..., 1:] + vom[..., :1])
            z = diff / se
            ok = np.isfinite(z)
            p = np.where(ok, 2.0 * special.ndtr(-np.abs(z)), np.nan)  # nominal, for information only
            ci = np.stack([diff - c * se, diff + c * se], axis=-1)
        return _MetricLooks(metric, diff, p, None, control_mean, m, reject=ok & (np.abs(z) >= c), ci=ci)
    if method == "sequential":
        n_plan = planned_n if planned_n else np.maximum(np.max(m.n, axis=-1, keepdims=True), 2.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = sequential.always_valid(m, planned_n=n_plan, alpha=alpha, kind=kind)
        ok = np.isfinite(r.abs_lift) & np.isfinite(r.se) & (r.se > 0)
        return _MetricLooks(metric, r.abs_lift, np.where(ok, r.p_value, np.nan), None, control_mean, m)
    if method == "bayesian":
        z_star = _z(1 - alpha / 2)
        if kind == "proportion":
            post = bayesian.beta_binomial_posterior(m)
            up = _beta_probability(m, 0.0, True, z_star, exact)
        else:
            post = bayesian.normal_posterior(m)
            up = post.chance_to_beat_control()
        lift = np.where(post.valid, post.mean_t - post.mean_c, np.nan)
        nan = np.full(lift.shape, np.nan)
        return _MetricLooks(metric, lift, nan, up, control_mean, m)
    raise ValueError(f"analysis.method must be fixed, sequential or bayesian, got {method!r}")


def _z(q: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(q)


def _good(direction: str | None) -> float:
    return 1.0 if (direction or "increase") == "increase" else -1.0


def _futility_bound_below(ml: _MetricLooks, method: str, alpha: float, threshold: np.ndarray,
                          planned_n: Any, exact: bool) -> np.ndarray:
    """Per treatment: the good-side bound of the ``1 - α`` interval is finite and below ``threshold``."""
    m, metric = ml.moments, ml.metric
    sign = _good(metric.get("direction"))
    thr = np.broadcast_to(threshold[..., None], ml.lift.shape)
    if ml.ci is not None:
        ci = ml.ci
    elif method == "fixed":
        ci = fixed.compare(m, metric["kind"], alpha=alpha).abs_ci
    elif method == "sequential":
        n_plan = planned_n if planned_n else np.maximum(np.max(m.n, axis=-1, keepdims=True), 2.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ci = sequential.always_valid(m, planned_n=n_plan, alpha=alpha, kind=metric["kind"]).abs_ci
    elif metric["kind"] != "proportion":
        post = bayesian.normal_posterior(m)
        ci = np.stack([post.abs_quantile(alpha / 2), post.abs_quantile(1 - alpha / 2)], axis=-1)
    else:  # q_{1-α/2} < t ⟺ F(t) > 1 - α/2;  -q_{α/2} < t ⟺ F(-t) < α/2
        valid = np.isfinite(ml.lift) & np.isfinite(thr)
        x = np.where(valid, sign * thr, 0.0)
        cdf = _beta_probability(m, x, False, _z(1 - alpha / 2), exact)
        return valid & ((cdf > 1 - alpha / 2) if sign > 0 else (cdf < alpha / 2))
    bound = ci[..., 1] if sign > 0 else -ci[..., 0]
    return np.isfinite(bound) & (bound < thr)


def _group_boundaries(plan: dict[str, Any], design: Design, units: np.ndarray):
    """For ``sequential: group``: a function metric -> the z boundary of every look ``(K,)``; else None.

    evaluate's own ``_group_boundary`` (Lan-DeMets spending at the look's
    information fraction, Bonferroni over the family), called once per look and
    family size: the fraction depends only on the total units so far, which is
    the same in every replication (the entering units are fixed, only their
    split is random).
    """
    analysis = plan.get("analysis") or {}
    seq = plan.get("sequential") or {}
    if analysis.get("method") != "sequential" or seq.get("type") != "group":
        return None
    from .evaluate import _group_boundary

    alpha = float(analysis.get("alpha", 0.05))
    correction = analysis.get("correction", "holm")
    family = analysis.get("family", "per_metric")
    stopping = plan.get("stopping") or {}
    planned_n = (plan.get("sample_size") or {}).get("per_variant")
    treatments = len(design.arm_ids) - 1
    n_primary = sum(1 for m in plan["metrics"] if m.get("role") == "primary")
    first = units[0]  # (K, arms): totals per look are the same in every replication
    cache: dict[float, np.ndarray] = {}

    def boundary(metric: dict[str, Any]) -> np.ndarray:
        size = treatments * (n_primary if family == "primary" and metric.get("role") == "primary" else 1)
        a = alpha / size if correction != "none" else alpha
        if a not in cache:
            cache[a] = np.asarray([_group_boundary(seq, first[k], planned_n, stopping.get("max_days"),
                                                   int(design.look_days[k]), a) for k in range(design.looks)])
        return cache[a]

    return boundary


@dataclass(frozen=True, eq=False)
class LookDecisions:
    """What every look of every replication decides: arrays ``(R, K)``.

    ``action`` indexes ``actions`` (``continue`` first); ``rule`` is the index
    of the rule that decided (-1 for the default continue); ``variant`` the arm
    (control-first index) to serve afterwards, as ``Decision.variant``: the
    winner of ``stop_ship_winner`` (-1 when there is none), the control (0) for
    ``stop_rollback``, else -1.
    """

    actions: tuple[str, ...]
    action: np.ndarray
    rule: np.ndarray
    variant: np.ndarray

    @property
    def winner(self) -> np.ndarray:
        """``(R, K)``: the treatment shipped at that look (-1 for none)."""
        return np.where(self.variant > 0, self.variant, -1)

    def stops(self) -> np.ndarray:
        """``(R, K)``: the look decides something other than ``continue``."""
        return self.action != 0


def decide(plan: dict[str, Any], draws: Draws, exact: bool = False) -> LookDecisions:
    """Evaluate every look of every replication as ``evaluate`` + its stopping rules would."""
    analysis = plan.get("analysis") or {}
    method = analysis.get("method", "fixed")
    alpha = float(analysis.get("alpha", 0.05))
    correction = analysis.get("correction", "holm")
    family = analysis.get("family", "per_metric")
    stopping = plan.get("stopping") or {}
    rules = stopping.get("rules") or []
    planned_n = (plan.get("sample_size") or {}).get("per_variant")
    design = draws.design
    units = draws.units.astype(np.float64)
    R, K = units.shape[:2]

    flagged = srm_test(units, design.weights, threshold=float(analysis.get("srm_threshold", 0.001))).flagged
    min_units = int(stopping.get("min_units_per_variant") or 0)
    enough = np.all(units >= min_units, axis=-1)
    metrics = {m["id"]: m for m in plan["metrics"]}

    boundaries = _group_boundaries(plan, design, units)
    looks: dict[str, _MetricLooks] = {
        mid: _compare(draws.metrics[mid], metrics[mid], method, alpha, planned_n, exact,
                      boundaries(metrics[mid]) if boundaries else None)
        for mid in _needed_metrics(plan)}

    # ---- significance: corrected p within families, or the posterior's chance
    significant: dict[str, np.ndarray] = {}
    if method == "bayesian":
        for mid, ml in looks.items():
            up = ml.chance_up
            significant[mid] = np.isfinite(up) & (np.maximum(up, 1 - up) >= 1 - alpha / 2)
    elif boundaries:  # group sequential: the boundary already splits alpha over the family
        significant = {mid: ml.reject for mid, ml in looks.items()}
    else:
        groups: dict[str, list[str]] = {}
        for mid in looks:
            is_primary = family == "primary" and metrics[mid].get("role") == "primary"
            groups.setdefault("__primary__" if is_primary else f"metric:{mid}", []).append(mid)
        for members in groups.values():
            p = np.concatenate([looks[mid].p_value for mid in members], axis=-1)
            adj = corrections.adjust_rows(p, correction)
            t = looks[members[0]].p_value.shape[-1]
            for i, mid in enumerate(members):
                a = adj[..., i * t:(i + 1) * t]
                significant[mid] = np.isfinite(a) & (a < alpha)

    def better(mid: str) -> np.ndarray:
        lift = looks[mid].lift
        return np.isfinite(lift) & (_good(metrics[mid].get("direction")) * lift > 0)

    def worse(mid: str) -> np.ndarray:
        lift = looks[mid].lift
        return np.isfinite(lift) & (_good(metrics[mid].get("direction")) * lift < 0)

    # the final look: every arm at the planned size, or max_days reached (evaluate's _final_look)
    max_days = stopping.get("max_days")
    final = np.zeros((R, K), dtype=bool) if max_days is not None or planned_n else np.ones((R, K), dtype=bool)
    if planned_n:
        final |= units.min(axis=-1) >= float(planned_n)
    if max_days is not None:
        final |= design.look_days >= max_days

    def significantly_worse(mid: str) -> np.ndarray:
        """The method's own uncorrected test at the look, on the bad side."""
        ml = looks[mid]
        if ml.reject is not None:
            return worse(mid) & ml.reject
        if method == "bayesian":
            up = ml.chance_up
            good = up if _good(metrics[mid].get("direction")) > 0 else 1 - up
            return worse(mid) & np.isfinite(good) & (good <= alpha / 2)
        return worse(mid) & np.isfinite(ml.p_value) & (ml.p_value < alpha)

    def harm(mid: str) -> np.ndarray:
        """Final look: non-inferiority not shown; interim: significantly worse (see evaluate's docs)."""
        metric = metrics[mid]
        margin = float(metric.get("margin") or 0.0)
        ni = fixed.non_inferiority(looks[mid].moments, metric["kind"], margin, metric.get("direction") or "increase")
        non_inferior = np.isfinite(ni.p_value) & (ni.p_value < alpha)
        at_final = ~non_inferior & np.isfinite(looks[mid].lift)
        return np.where(final[..., None], at_final, significantly_worse(mid))

    primary = next((m["id"] for m in plan["metrics"] if m.get("role") == "primary"), None)
    false = np.zeros((R, K), dtype=bool)

    def holds(rule: dict[str, Any]) -> np.ndarray:
        when, target = rule["when"], rule.get("metric")
        if when == "srm":
            return flagged
        if when == "guardrail_harm":
            out = false.copy()
            for mid in looks:
                if metrics[mid].get("role") == "guardrail" and (not target or mid == target):
                    out |= np.any(harm(mid), axis=-1)
            return out & enough
        if when in ("primary_significant", "futility"):
            mid = target or primary
            if mid is None or mid not in looks:
                return false
            gate = enough & ~flagged
            if when == "primary_significant":
                return gate & np.any(significant[mid] & better(mid), axis=-1)
            mde = metrics[mid].get("mde")
            if not mde or looks[mid].lift.shape[-1] == 0:
                return false
            threshold = float(mde) * np.abs(looks[mid].control_mean)
            below = _futility_bound_below(looks[mid], method, alpha, threshold, planned_n, exact)
            return gate & np.all(below, axis=-1)
        if when == "max_days":
            limit = stopping.get("max_days")
            return false if limit is None else np.broadcast_to(design.look_days >= limit, (R, K))
        if when == "max_units":
            limit = stopping.get("max_units")
            return false if limit is None else units.sum(axis=-1) >= limit
        raise ValueError(f"unknown stopping condition {when!r}")

    actions = [CONTINUE] + sorted({r["then"] for r in rules} - {CONTINUE})
    action = np.zeros((R, K), dtype=np.int64)
    rule_index = np.full((R, K), -1, dtype=np.int64)
    open_ = np.ones((R, K), dtype=bool)  # no earlier rule has held
    for i, rule in enumerate(rules):
        fire = open_ & holds(rule)
        action[fire] = actions.index(rule["then"])
        rule_index[fire] = i
        open_ &= ~fire

    winner = np.full((R, K), -1, dtype=np.int64)
    if primary is not None and primary in looks:
        sign = _good(metrics[primary].get("direction"))
        wins = significant[primary] & better(primary)
        score = np.where(wins, sign * looks[primary].lift, -np.inf)
        best = np.argmax(score, axis=-1)
        has = np.any(wins, axis=-1) & ~flagged
        winner = np.where(has, best + 1, -1)
    ship = action == actions.index("stop_ship_winner") if "stop_ship_winner" in actions else false
    rollback = action == actions.index("stop_rollback") if "stop_rollback" in actions else false
    variant = np.where(ship, winner, np.where(rollback, 0, -1))
    return LookDecisions(tuple(actions), action, rule_index, variant)


# ================================================================== many replications


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Per-replication outcomes of a simulation and the design they came from."""

    plan: dict[str, Any]
    design: Design
    truth_mode: str
    truth: dict[str, dict[str, tuple[float, float | None]]]
    seed: int
    actions: tuple[str, ...]
    action: np.ndarray  # (R,) index into actions; 0 = never stopped
    rule: np.ndarray  # (R,) rule index, -1 when never stopped
    winner: np.ndarray  # (R,) control-first arm index shipped, -1 for none
    stop_look: np.ndarray  # (R,) look index, -1 when never stopped
    units_used: np.ndarray  # (R,) total units at the stopping (or last) look

    @property
    def replications(self) -> int:
        """Number of replications."""
        return int(self.action.size)

    def best_arms(self) -> list[int]:
        """Control-first indexes of the truly best treatments (empty when none beats the control)."""
        primary = next((m for m in self.plan["metrics"] if m.get("role") == "primary"), None)
        if primary is None:
            return []
        sign = _good(primary.get("direction"))
        values = [sign * self.truth[a][primary["id"]][0] for a in self.design.arm_ids]
        top = max(values[1:]) if len(values) > 1 else -math.inf
        if not top > values[0]:
            return []
        return [i for i in range(1, len(values)) if values[i] == top]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``expc simulate --format json`` (keys described in the module docs)."""
        R = self.replications
        plan, design = self.plan, self.design
        analysis = plan.get("analysis") or {}
        stopping = plan.get("stopping") or {}
        shipped = self.winner >= 0
        rate = lambda x: float(np.mean(x)) if R else None
        se = lambda p: None if p is None else math.sqrt(p * (1 - p) / R)
        best = self.best_arms()
        out: dict[str, Any] = {"experiment": plan["experiment"]["id"], "truth": self.truth_mode}
        if self.truth_mode == "aa" or not best:
            fpr = rate(shipped)
            out["false_positive_rate"] = fpr
            out["false_positive_rate_se"] = se(fpr)
        if self.truth_mode == "spec":
            power = rate(np.isin(self.winner, best)) if best else None
            out["power"] = power
            out["power_se"] = se(power)
            out["best_variant"] = [design.arm_ids[i] for i in best]
        out["replications"] = R
        out["seed"] = self.seed
        out["design"] = {
            "method": analysis.get("method", "fixed"),
            "alpha": analysis.get("alpha", 0.05),
            "correction": analysis.get("correction", "holm"),
            "looks": design.looks,
            "look_every": stopping.get("looks", "1d"),
            "horizon_days": design.horizon_days,
            "units_per_day": design.per_day,
            "variants": {a: float(w) for a, w in zip(design.arm_ids, design.weights)},
            "control": design.arm_ids[0],
            "planned_per_variant": (plan.get("sample_size") or {}).get("per_variant"),
            "min_units_per_variant": stopping.get("min_units_per_variant") or 0,
            "rules": [f"{r['when']}{'(' + r['metric'] + ')' if r.get('metric') else ''} -> {r['then']}"
                      for r in stopping.get("rules") or []],
        }
        out["truth_values"] = {a: {k: {"mean": v[0], "sd": v[1]} for k, v in self.truth[a].items()}
                               for a in design.arm_ids}
        out["decisions"] = {name: float(np.mean(self.action == i)) for i, name in enumerate(self.actions)}
        out["shipped"] = {a: float(np.mean(self.winner == i)) for i, a in enumerate(design.arm_ids) if i > 0}
        rules = stopping.get("rules") or []
        out["rules_fired"] = {f"{i}:{r['when']}": float(np.mean(self.rule == i)) for i, r in enumerate(rules)}
        stopped = self.stop_look >= 0
        days = design.look_days[self.stop_look[stopped]]
        values, counts = np.unique(days, return_counts=True)
        out["stopping_day"] = {
            "stopped": float(np.mean(stopped)) if R else 0.0,
            "quantiles": _quantiles(days),
            "mean": float(days.mean()) if days.size else None,
            "histogram": [{"day": int(d), "share": float(c) / R} for d, c in zip(values, counts)],
        }
        out["units_used"] = {"quantiles": _quantiles(self.units_used),
                             "mean": float(self.units_used.mean()) if R else None}
        return out


def _quantiles(x: np.ndarray) -> dict[str, float | None]:
    if not np.asarray(x).size:
        return {f"p{int(q * 100)}": None for q in _QUANTILES}
    return {f"p{int(q * 100)}": float(v) for q, v in zip(_QUANTILES, np.quantile(x, _QUANTILES))}


def simulate(plan: dict[str, Any], replications: int, truth: str = "spec", seed: int | None = None,
             exact: bool = False) -> SimulationResult:
    """Simulate ``replications`` experiments of a plan and collect their decisions (see the module docs).

    Replications run in blocks (bounded memory); each block has its own
    random streams, derived from ``seed`` (default ``simulation.seed``), so the
    result is reproducible.
    """
    if replications < 1:
        raise ValueError("replications must be at least 1")
    design = design_of(plan)
    values = resolve_truth(plan, truth)
    seed = int((plan.get("simulation") or {}).get("seed", 0) if seed is None else seed)
    needed = _needed_metrics(plan)
    arms = len(design.arm_ids)
    block = max(1, min(replications, _BLOCK_ELEMENTS // max(1, design.looks * arms)))
    n_blocks = math.ceil(replications / block)
    parts: list[tuple[np.ndarray, ...]] = []
    actions: tuple[str, ...] = ()
    for b, ss in enumerate(np.random.SeedSequence(seed).spawn(n_blocks)):
        size = min(block, replications - b * block)
        d = draw(plan, size, truth, metrics=needed, design=design, rng=ss)
        looks = decide(plan, d, exact=exact)
        actions = looks.actions
        stops = looks.stops()
        any_stop = stops.any(axis=1)
        k = np.where(any_stop, np.argmax(stops, axis=1), design.looks - 1)
        r = np.arange(size)
        parts.append((
            np.where(any_stop, looks.action[r, k], 0),
            np.where(any_stop, looks.rule[r, k], -1),
            np.where(any_stop, looks.winner[r, k], -1),
            np.where(any_stop, k, -1),
            d.units[r, k].sum(axis=-1),
        ))
    cat = [np.concatenate([p[i] for p in parts]) for i in range(5)]
    return SimulationResult(plan, design, truth, values, seed, actions, *cat)
