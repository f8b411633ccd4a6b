"""Fixed-horizon comparisons of every treatment arm with the control.

Each function takes :class:`~expc.runtime.stats.moments.Moments` whose arrays
have shape ``(..., arms)`` (index 0 on the last axis is the control; leading
axes, if any, are independent experiments, which lets simulations run
vectorised) and returns a :class:`Comparison` whose arrays have shape
``(..., arms - 1)``: one entry per treatment, in arm order.

Methods
-------
* proportions: unpooled Wald z-test and Wald interval for ``p_t - p_c`` with
  variance ``p(1 - p) / n`` per arm (Newcombe 1998, method 1). This is what
  ``statsmodels.stats.proportion.test_proportions_2indep(method="wald")`` and
  ``confint_proportions_2indep(method="wald")`` compute. ``pooled=True``
  switches the *test* (not the interval) to the classical pooled z-test
  (``statsmodels.stats.proportion.proportions_ztest``).
* means: Welch's t-test with the Welch–Satterthwaite degrees of freedom
  (Welch 1947), per-unit variances with the ``n - 1`` denominator, as
  ``scipy.stats.ttest_ind_from_stats(equal_var=False)``.
* ratio metrics (Σx / Σy over units): delta-method variance of each arm's ratio
  (``Moments.variance_of_mean``; Deng, Knoblich & Lu, KDD 2018), z-based.

Relative lift ``mean_t / mean_c - 1``: by default its interval is computed on
the log scale, ``log(mean_t / mean_c) ± q · se_log`` with
``se_log² = Var(mean_t) / mean_t² + Var(mean_c) / mean_c²`` (delta method on
the log ratio; Katz et al. 1978 for proportions), then mapped back by
``exp(·) - 1``. The interval therefore can never fall below -100% and is
asymmetric like the sampling distribution of a ratio. The plain delta-method
interval ``rel ± q · sqrt(Var(mean_t) / mean_c² + mean_t² Var(mean_c) / mean_c⁴)``
(gbstats) is symmetric and crosses -100% on small samples; Fieller's interval
is exact for normal means but becomes unbounded (or the complement of an
interval) whenever the control mean is not significantly different from zero.
``relative="delta"`` gives the plain delta interval for comparison.

Edge cases never raise: an arm with fewer than two units makes every output of
its comparison NaN (a variance cannot be estimated; a lone proportion's
``p(1 - p)`` is 0 and would claim certainty); a control mean of zero makes the
relative outputs NaN; the log-ratio interval is NaN when either mean is not
positive (e.g. 0 successes); a zero standard error gives a statistic of ±inf
(p = 0) for a non-zero difference and NaN (0 / 0) for a zero difference.
Callers must treat a NaN p-value as "no evidence".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special
from scipy.special import cython_special

from ._build import build, float_arrays
from .moments import Moments

Alternative = Literal["two-sided", "greater", "less"]
Relative = Literal["log", "delta"]
Kind = Literal["proportion", "mean", "ratio"]
Direction = Literal["increase", "decrease"]

_ALTERNATIVES = ("two-sided", "greater", "less")


@dataclass(frozen=True, eq=False)
class Comparison:
    """Treatment-vs-control results, one entry per treatment (shape ``(..., t)``; intervals ``(..., t, 2)``).

    ``statistic`` is a z statistic when ``df`` is infinite, else Welch's t.
    ``abs_ci`` is exactly dual to ``p_value`` (it excludes 0 iff p < alpha);
    ``rel_ci``, on the log scale, can disagree with ``p_value`` when p is
    within a hair of ``alpha`` (decide on ``p_value``).
    ``rel_ci`` uses ``relative`` ("log" or "delta"); for a one-sided
    ``alternative`` both intervals are one-sided (the open end is ±inf).
    ``rel_se`` is the standard error on that method's scale (of the log ratio
    for "log", of the relative lift for "delta").
    """

    method: str
    alternative: str
    alpha: float
    relative: str
    control_mean: np.ndarray
    treatment_mean: np.ndarray
    abs_lift: np.ndarray
    abs_ci: np.ndarray
    rel_lift: np.ndarray
    rel_ci: np.ndarray
    p_value: np.ndarray
    statistic: np.ndarray
    se: np.ndarray
    df: np.ndarray
    rel_se: np.ndarray


@dataclass(frozen=True, eq=False)
class NonInferiority:
    """One-sided non-inferiority tests, one entry per treatment (shape ``(..., t)``).

    ``bound`` is the ratio ``θ`` of the null hypothesis (``1 - margin`` when
    an increase is good, ``1 + margin`` when a decrease is good), ``statistic``
    the z or Welch t statistic of ``mean_t - θ · mean_c`` and ``p_value`` the
    one-sided p-value: small means "shown not to be harmed by more than the
    margin".
    """

    method: str
    margin: float
    direction: str
    bound: float
    p_value: np.ndarray
    statistic: np.ndarray
    se: np.ndarray
    df: np.ndarray


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Control (kept as a length-1 last axis, to broadcast) and treatments."""
    return x[..., :1], x[..., 1:]


def _welch_df(a_t: np.ndarray, a_c: np.ndarray, n_t: np.ndarray, n_c: np.ndarray) -> np.ndarray:
    """Welch–Satterthwaite degrees of freedom of ``a_t + a_c`` (each a variance of a mean).

    When both variances are 0 the formula is 0/0; the pooled ``n_t + n_c - 2``
    is used instead, so a non-zero difference between two constant arms gets
    p = 0 as under the z-test (the t statistic is ±inf for any df).
    """
    df = (a_t + a_c) ** 2 / (a_t**2 / (n_t - 1) + a_c**2 / (n_c - 1))
    return np.where((a_t == 0) & (a_c == 0), n_t + n_c - 2.0, df)


def _check(alpha: float, alternative: str, relative: str = "log") -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    if relative not in ("log", "delta"):
        raise ValueError(f"relative must be 'log' or 'delta', got {relative!r}")


def _p_value(statistic: np.ndarray, df: np.ndarray | None, alternative: str) -> np.ndarray:
    """p-value of a z (``df is None``) or t statistic for H1 ``≠``, ``>`` or ``<`` 0.

    ``scipy.special`` (``ndtr``, ``stdtr``) rather than ``scipy.stats``
    distribution objects: the same Cephes functions without the per-call
    argument checking, several times faster for a handful of arms.
    """
    cdf = special.ndtr if df is None else (lambda x: special.stdtr(df, x))
    if alternative == "greater":
        return cdf(-statistic)
    if alternative == "less":
        return cdf(statistic)
    return 2 * cdf(-np.abs(statistic))


def _quantile(alpha: float, df: np.ndarray | None, alternative: str) -> np.ndarray:
    """Critical value: ``q[1 - alpha/2]`` two-sided, ``q[1 - alpha]`` one-sided (normal or Student t)."""
    level = 1 - alpha / 2 if alternative == "two-sided" else 1 - alpha
    return special.ndtri(level) if df is None else special.stdtrit(df, level)


def _interval(est: np.ndarray, half: np.ndarray, alternative: str) -> np.ndarray:
    """``[est - half, est + half]``, opened to ±inf on the side a one-sided alternative leaves free."""
    lo = est - half if alternative != "less" else np.full_like(est, -np.inf)
    hi = est + half if alternative != "greater" else np.full_like(est, np.inf)
    return np.stack([lo, hi], axis=-1)


def _compare(
    method: str,
    mean: np.ndarray,
    var_mean: np.ndarray,
    n: np.ndarray,
    *,
    welch: bool,
    alpha: float,
    alternative: str,
    relative: str,
    test_se: np.ndarray | None = None,
) -> Comparison:
    """Shared engine: estimates, standard errors and intervals from per-arm means and variances of means."""
    m_c, m_t = _split(mean)
    v_c, v_t = _split(np.maximum(var_mean, 0.0))  # Σx² - (Σx)²/n can round below 0 for a constant arm
    n_c, n_t = _split(n)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        valid = (n_c >= 2) & (n_t >= 2) & np.isfinite(m_c) & np.isfinite(m_t)
        nan = np.where(valid, 0.0, np.nan)  # adds NaN wherever the comparison is undefined

        diff = m_t - m_c + nan
        se = np.sqrt(v_t + v_c) + nan
        df = _welch_df(v_t, v_c, n_t, n_c) + nan if welch else np.full_like(diff, np.inf)
        dfq = df if welch else None
        statistic = diff / (se if test_se is None else test_se + nan)
        p_value = _p_value(statistic, dfq, alternative)
        abs_ci = _interval(diff, _quantile(alpha, dfq, alternative) * se, alternative)

        rel_ok = valid & (m_c != 0)
        rel = np.where(rel_ok, m_t / m_c - 1, np.nan)
        if relative == "log":
            ok = rel_ok & (m_c > 0) & (m_t > 0)
            a_t, a_c = v_t / m_t**2, v_c / m_c**2
            rel_se = np.where(ok, np.sqrt(a_t + a_c), np.nan)
            log_ratio = np.where(ok, np.log(np.where(ok, m_t / m_c, 1.0)), np.nan)
            q = _quantile(alpha, _welch_df(a_t, a_c, n_t, n_c) if welch else None, alternative)
            rel_ci = np.expm1(_interval(log_ratio, q * rel_se, alternative))
        else:
            a_t, a_c = v_t / m_c**2, m_t**2 * v_c / m_c**4
            rel_se = np.where(rel_ok, np.sqrt(a_t + a_c), np.nan)
            q = _quantile(alpha, _welch_df(a_t, a_c, n_t, n_c) if welch else None, alternative)
            rel_ci = _interval(rel, q * rel_se, alternative)

    shape = diff.shape
    return Comparison(
        method=method,
        alternative=alternative,
        alpha=float(alpha),
        relative=relative,
        control_mean=m_c[..., 0],
        treatment_mean=np.broadcast_to(m_t, shape).copy(),
        abs_lift=diff,
        abs_ci=abs_ci,
        rel_lift=rel,
        rel_ci=rel_ci,
        p_value=np.broadcast_to(p_value, shape).copy(),
        statistic=statistic,
        se=se,
        df=np.broadcast_to(df, shape).copy(),
        rel_se=rel_se,
    )


_NDTRI: dict[float, float] = {}


def _z_quantile(level: float) -> float:
    """``Φ⁻¹(level)``, computed once per level (``special.ndtri``) and cached: the scalar path's normal quantile."""
    q = _NDTRI.get(level)
    if q is None:
        q = _NDTRI[level] = float(special.ndtri(level))
    return q


def _scalar_arms(m: Moments) -> tuple[float, float, float, float, float, float] | None:
    """``(n_c, n_t, Σx_c, Σx_t, Σx²_c, Σx²_t)`` as floats for one control and one treatment, else None.

    The scalar fast path applies to 1-D moments of exactly two arms (one
    comparison), the shape of a single experiment's look. Everything else
    (more arms, leading axes) goes through the vectorised engine.
    """
    n = m.n
    if n.shape != (2,) or m.sum.shape != (2,) or m.sum_sq.shape != (2,):
        return None
    n_c, n_t = n.tolist()
    x_c, x_t = m.sum.tolist()
    q_c, q_t = m.sum_sq.tolist()
    return n_c, n_t, x_c, x_t, q_c, q_t


# Student t CDF and quantile for the float path. scipy.special's ufuncs spend 1-2 µs per call on a
# Python float in ufunc dispatch; cython_special exposes the same compiled functions as plain callables
# (~0.3 µs; bit-for-bit the ufuncs' results, tested).
_stdtr = cython_special.stdtr
_stdtrit = cython_special.stdtrit


def _welch_df_scalar(a_t: float, a_c: float, n_t: float, n_c: float) -> float:
    """:func:`_welch_df` on floats (both variances positive)."""
    return (a_t + a_c) * (a_t + a_c) / (a_t * a_t / (n_t - 1) + a_c * a_c / (n_c - 1))


def _compare_scalar(
    method: str,
    m_c: float,
    m_t: float,
    v_c: float,
    v_t: float,
    n_c: float,
    n_t: float,
    *,
    welch: bool,
    alpha: float,
    alternative: str,
    relative: str,
) -> Comparison | None:
    """The engine of :func:`_compare` for one treatment, in plain floats and ``math``.

    Why: on shape-(2,) arrays every numpy operation costs about a microsecond of
    overhead, so the vectorised engine spends 150-200 µs on a single
    comparison; this path computes the same formulas on floats (``math.erfc``
    for normal tails, Student t from ``cython_special``'s ``stdtr`` / ``stdtrit``,
    the functions behind ``special.stdtr`` / ``stdtrit`` without the ufunc
    overhead; normal quantiles cached per level) and builds the result arrays
    from one buffer. It covers the regular case only: both arms with at least
    two units, finite means and positive variances, and for the log-ratio
    interval positive means (for ``"delta"``, a non-zero control mean). It
    returns None otherwise and the caller falls back to the vectorised engine,
    so every edge case keeps one implementation. Results agree with the
    vectorised engine to rounding (tested).
    """
    if not (
        n_c >= 2 and n_t >= 2 and v_c > 0 and v_t > 0 and math.isfinite(m_c) and math.isfinite(m_t)
        and math.isfinite(v_c) and math.isfinite(v_t)
    ):
        return None
    if relative == "log":
        if not (m_c > 0 and m_t > 0):
            return None
    elif m_c == 0:
        return None
    two = alternative == "two-sided"
    level = 1 - alpha / 2 if two else 1 - alpha
    diff = m_t - m_c
    se = math.sqrt(v_t + v_c)
    stat = diff / se
    if welch:
        df = _welch_df_scalar(v_t, v_c, n_t, n_c)
        if alternative == "greater":
            p = _stdtr(df, -stat)
        elif alternative == "less":
            p = _stdtr(df, stat)
        else:
            p = 2 * _stdtr(df, -abs(stat))
        q = _stdtrit(df, level)
    else:
        df = math.inf
        if alternative == "greater":
            p = 0.5 * math.erfc(stat / _SQRT2)
        elif alternative == "less":
            p = 0.5 * math.erfc(-stat / _SQRT2)
        else:
            p = math.erfc(abs(stat) / _SQRT2)
        q = _z_quantile(level)
    half = q * se
    lo = diff - half if alternative != "less" else -math.inf
    hi = diff + half if alternative != "greater" else math.inf
    rel = m_t / m_c - 1
    if relative == "log":
        a_t, a_c = v_t / (m_t * m_t), v_c / (m_c * m_c)
        rel_se = math.sqrt(a_t + a_c)
        centre = math.log(m_t / m_c)
        qr = _stdtrit(_welch_df_scalar(a_t, a_c, n_t, n_c), level) if welch else q
        r_lo = _expm1(centre - qr * rel_se) if alternative != "less" else -1.0
        r_hi = _expm1(centre + qr * rel_se) if alternative != "greater" else math.inf
    else:
        a_t, a_c = v_t / (m_c * m_c), m_t * m_t * v_c / (m_c * m_c * m_c * m_c)
        rel_se = math.sqrt(a_t + a_c)
        qr = _stdtrit(_welch_df_scalar(a_t, a_c, n_t, n_c), level) if welch else q
        r_lo = rel - qr * rel_se if alternative != "less" else -math.inf
        r_hi = rel + qr * rel_se if alternative != "greater" else math.inf
    cm, tm, lift, ci, rl, rci, pv, st, se_, df_, rse = _COMPARISON_ARRAYS(
        m_c, m_t, diff, lo, hi, rel, r_lo, r_hi, p, stat, se, df, rel_se
    )
    return build(Comparison, {
        "method": method,
        "alternative": alternative,
        "alpha": float(alpha),
        "relative": relative,
        "control_mean": cm,
        "treatment_mean": tm,
        "abs_lift": lift,
        "abs_ci": ci,
        "rel_lift": rl,
        "rel_ci": rci,
        "p_value": pv,
        "statistic": st,
        "se": se_,
        "df": df_,
        "rel_se": rse,
    })


# the arrays of a one-comparison Comparison, in field order: the vectorised engine's shapes for 1-D moments
# (control_mean is 0-d there, ``m_c[..., 0]``)
_COMPARISON_ARRAYS = float_arrays((), (1,), (1,), (1, 2), (1,), (1, 2), (1,), (1,), (1,), (1,), (1,))

_SQRT2 = math.sqrt(2.0)


def _expm1(x: float) -> float:
    """``math.expm1`` that gives inf instead of raising on overflow (as numpy does)."""
    return math.expm1(x) if x < 709.0 else math.inf


def _proportion_parts(m: Moments) -> tuple[np.ndarray, np.ndarray]:
    """Per-arm rate ``p = Σx / n`` and its Wald variance ``p (1 - p) / n``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = m.sum / m.n
        return p, p * (1 - p) / m.n


def is_binary(m: Moments) -> bool:
    """True when the moments can only come from a 0/1 metric: not a ratio, ``Σx² = Σx`` and ``0 ≤ Σx ≤ n``."""
    if m.is_ratio:
        return False
    with np.errstate(invalid="ignore"):
        return bool(np.array_equal(m.sum, m.sum_sq) and np.all((m.sum >= 0) & (m.sum <= m.n)))


def unit_variance(m: Moments, kind: Kind | None = None) -> np.ndarray:
    """Per-unit variance of each arm under expc's one convention per metric kind.

    * proportion: ``p (1 - p)``, the Bernoulli variance with the ``n``
      denominator (Wald; what ``proportions`` tests with, what
      ``statsmodels ... method="wald"`` and gbstats use); NaN below two units;
    * mean: the sample variance with ``n - 1`` (``Moments.variance``; Welch,
      ``scipy.stats.ttest_ind_from_stats``);
    * ratio: the delta-method variance (``Moments.variance``).

    ``kind=None`` infers it: ratio when the moments have a denominator,
    proportion when :func:`is_binary`, else mean. Every method that needs a
    per-unit or per-mean variance of a proportion (fixed, non-inferiority,
    sequential, group-sequential) uses this, so one comparison never mixes
    the two conventions.
    """
    if kind is None:
        kind = "ratio" if m.is_ratio else "proportion" if is_binary(m) else "mean"
    if kind != "proportion":
        return m.variance()
    with np.errstate(divide="ignore", invalid="ignore"):
        p = m.sum / m.n
        return np.where(m.n >= 2, p * (1 - p), np.nan)


def proportions(
    m: Moments,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    relative: Relative = "log",
    pooled: bool = False,
) -> Comparison:
    """Compare rates of a 0/1 metric: unpooled Wald z-test and interval for ``p_t - p_c``.

    Why Wald/unpooled: the same variance drives the test and the interval, so
    the two never disagree, and it is the standard of gbstats and statsmodels'
    ``method="wald"`` (Newcombe 1998, method 1; se² = p_t q_t / n_t + p_c q_c / n_c).
    ``pooled=True`` uses ``p̄ q̄ (1/n_t + 1/n_c)`` in the test statistic only
    (the score test under H0: p_t = p_c, as ``proportions_ztest``).
    ``alternative="greater"`` means H1: p_t > p_c.
    """
    _check(alpha, alternative, relative)
    if m.is_ratio:
        raise ValueError("proportions() needs Moments of a 0/1 metric, not a ratio metric")
    arms = None if pooled else _scalar_arms(m)
    if arms is not None and arms[0] >= 2 and arms[1] >= 2:
        n_c, n_t, x_c, x_t = arms[:4]
        p_c, p_t = x_c / n_c, x_t / n_t
        fast = _compare_scalar(
            "z-test (unpooled Wald)", p_c, p_t, p_c * (1 - p_c) / n_c, p_t * (1 - p_t) / n_t, n_c, n_t,
            welch=False, alpha=alpha, alternative=alternative, relative=relative,
        )
        if fast is not None:
            return fast
    p, v = _proportion_parts(m)
    test_se = None
    if pooled:
        (sum_c, sum_t), (units_c, units_t) = _split(m.sum), _split(m.n)
        with np.errstate(divide="ignore", invalid="ignore"):
            pbar = (sum_c + sum_t) / (units_c + units_t)
            test_se = np.sqrt(pbar * (1 - pbar) * (1 / units_c + 1 / units_t))
    name = "z-test (pooled), Wald interval" if pooled else "z-test (unpooled Wald)"
    return _compare(
        name, p, v, m.n, welch=False, alpha=alpha, alternative=alternative, relative=relative, test_se=test_se
    )


def means(
    m: Moments,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    relative: Relative = "log",
) -> Comparison:
    """Compare means with Welch's unequal-variance t-test (Welch 1947).

    ``t = (x̄_t - x̄_c) / sqrt(s_t²/n_t + s_c²/n_c)`` with ``n - 1`` variances
    and Welch–Satterthwaite ``df``; the interval uses the same t quantile.
    Why Welch: arms of an experiment need not share a variance (a treatment
    that changes behaviour usually changes the spread too), and Welch costs
    nothing when they do. The relative interval uses its own Satterthwaite
    ``df`` on the log (or delta) scale.
    """
    _check(alpha, alternative, relative)
    if m.is_ratio:
        raise ValueError("means() needs Moments of a unit-level metric; use ratios() for Σx / Σy")
    arms = _scalar_arms(m)
    if arms is not None and arms[0] >= 2 and arms[1] >= 2:
        n_c, n_t, x_c, x_t, q_c, q_t = arms
        # the arithmetic of Moments.mean / variance_of_mean, on floats
        fast = _compare_scalar(
            "Welch t-test", x_c / n_c, x_t / n_t,
            (q_c - x_c * x_c / n_c) / (n_c - 1) / n_c, (q_t - x_t * x_t / n_t) / (n_t - 1) / n_t, n_c, n_t,
            welch=True, alpha=alpha, alternative=alternative, relative=relative,
        )
        if fast is not None:
            return fast
    return _compare(
        "Welch t-test",
        m.mean(),
        m.variance_of_mean(),
        m.n,
        welch=True,
        alpha=alpha,
        alternative=alternative,
        relative=relative,
    )


def ratios(
    m: Moments,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    relative: Relative = "log",
) -> Comparison:
    """Compare ratio metrics (Σx / Σy) with a z-test on delta-method variances.

    ``Var(x̄/ȳ) ≈ (Var x̄ - 2 r Cov(x̄, ȳ) + r² Var ȳ) / μ_y²`` per arm
    (``Moments.variance_of_mean``; Deng, Knoblich & Lu, "Applying the Delta
    Method in Metric Analytics", KDD 2018). Why: the unit of randomisation
    is not the unit of analysis (sessions per user), so the naive binomial
    or i.i.d. variance is wrong; z because the delta method is asymptotic.
    """
    _check(alpha, alternative, relative)
    if not m.is_ratio:
        raise ValueError("ratios() needs Moments with denominator sums (den_sum, den_sum_sq, cross)")
    return _compare(
        "delta-method z-test",
        m.mean(),
        m.variance_of_mean(),
        m.n,
        welch=False,
        alpha=alpha,
        alternative=alternative,
        relative=relative,
    )


def compare(
    m: Moments,
    kind: Kind,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    relative: Relative = "log",
) -> Comparison:
    """Dispatch on the metric kind: ``proportions`` (z), ``means`` (Welch t) or ``ratios`` (delta z)."""
    funcs = {"proportion": proportions, "mean": means, "ratio": ratios}
    if kind not in funcs:
        raise ValueError(f"kind must be one of {tuple(funcs)}, got {kind!r}")
    return funcs[kind](m, alpha=alpha, alternative=alternative, relative=relative)


def non_inferiority(
    m: Moments,
    kind: Kind,
    margin: float,
    direction: Direction = "increase",
) -> NonInferiority:
    """One-sided non-inferiority test of each treatment against a relative margin (guardrails).

    When an increase is good the null is harm beyond the margin,
    H0: μ_t ≤ (1 - margin) μ_c, against H1: μ_t > (1 - margin) μ_c; when a
    decrease is good (errors, latency) harm is an increase, H0: μ_t ≥
    (1 + margin) μ_c. With θ the bound, the test is on the linear contrast
    ``μ_t - θ μ_c``, whose estimate has variance ``Var(m_t) + θ² Var(m_c)``
    (Hauschke, Kieser & Hothorn 1999, "Proof of safety ... based on the ratio
    of two means"; the Fieller-type test). Why the linear contrast rather than
    the log ratio: it is exact for normal means (Welch t with Satterthwaite
    df for means, which reduces to ``ttest_ind_from_stats`` against θ-scaled
    control statistics) and still works when the treatment has no events
    (a guardrail with 0 errors), where the log is undefined. z for proportions
    (Wald variances) and ratio metrics (delta method). Assumes a positive
    metric (a relative margin has no meaning otherwise).
    """
    if direction not in ("increase", "decrease"):
        raise ValueError(f"direction must be 'increase' or 'decrease', got {direction!r}")
    if not margin >= 0 or (direction == "increase" and margin >= 1):
        raise ValueError(f"margin must lie in [0, 1) (in [0, inf) when a decrease is good), got {margin!r}")
    if kind == "proportion":
        mean, var_mean = _proportion_parts(m)
    elif kind in ("mean", "ratio"):
        if (kind == "ratio") != m.is_ratio:
            raise ValueError(f"kind {kind!r} does not match the Moments (is_ratio={m.is_ratio})")
        mean, var_mean = m.mean(), m.variance_of_mean()
    else:
        raise ValueError(f"kind must be 'proportion', 'mean' or 'ratio', got {kind!r}")
    theta = 1 - margin if direction == "increase" else 1 + margin
    welch = kind == "mean"
    m_c, m_t = _split(mean)
    v_c, v_t = _split(np.maximum(var_mean, 0.0))
    n_c, n_t = _split(m.n)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        valid = (n_c >= 2) & (n_t >= 2) & np.isfinite(m_c) & np.isfinite(m_t)
        nan = np.where(valid, 0.0, np.nan)
        contrast = m_t - theta * m_c + nan
        se = np.sqrt(v_t + theta**2 * v_c) + nan
        statistic = contrast / se
        df = _welch_df(v_t, theta**2 * v_c, n_t, n_c) + nan if welch else np.full_like(contrast, np.inf)
        alt = "greater" if direction == "increase" else "less"
        p_value = _p_value(statistic, df if welch else None, alt)
    name = ("Welch t" if welch else "z") + " test of mean_t - θ·mean_c (Fieller-type)"
    return NonInferiority(
        method=name,
        margin=float(margin),
        direction=direction,
        bound=float(theta),
        p_value=p_value,
        statistic=statistic,
        se=se,
        df=np.broadcast_to(df, contrast.shape).copy(),
    )
