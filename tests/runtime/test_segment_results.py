"""Per-segment results equal an independent computation: pandas groups, statsmodels tests and multipletests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import plan_of_text
from scipy import stats
from statsmodels.stats import proportion as smp
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests

from expc.runtime.segment_results import SegmentMoments, segment_results
from expc.runtime.stats.moments import Moments

ARMS = ("control", "a", "b")
PLAN_TEXT = """\
version: 1
experiment: {id: segments}
attributes: {user_id: string, country: string}
variants: [{id: control, content: A}, {id: a, content: B}, {id: b, content: C}]
metrics:
  - {id: bought, kind: proportion, event: buy, role: primary, mde: 10%, baseline: 0.1}
  - {id: spend, kind: mean, event: buy}
"""
PLAN = plan_of_text(PLAN_TEXT)


def units_frame(seed: int, n: int = 6000) -> pd.DataFrame:
    """Units with an arm, a country (a few large values, a long tail, unknowns) and two outcomes; arm a helps DE."""
    rng = np.random.default_rng(seed)
    country = rng.choice(["US", "DE", "FR", "IS", "(unknown)"], size=n, p=[0.5, 0.25, 0.15, 0.02, 0.08])
    arm = rng.integers(0, 3, size=n)
    rate = 0.10 + 0.06 * ((arm == 1) & (country == "DE"))
    bought = (rng.random(n) < rate).astype(float)
    spend = bought * rng.lognormal(3.0, 1.0, size=n)
    return pd.DataFrame({"country": country, "arm": arm, "bought": bought, "spend": spend})


def moments_of(frame: pd.DataFrame, values: list[str]) -> SegmentMoments:
    """The segments' moments, (S, arms), as the reduction grouped by segment gives them."""
    g = frame.groupby(["country", "arm"])
    shape = (len(values), len(ARMS))

    def table(series: pd.Series) -> np.ndarray:
        out = np.zeros(shape)
        for (country, arm), v in series.items():
            out[values.index(country), arm] = v
        return out

    n = table(g.size())
    metrics = {m: Moments.of(n, table(g[m].sum()), table((frame[m] ** 2).groupby([frame.country, frame.arm]).sum()))
               for m in ("bought", "spend", "buys") if m in frame}
    return SegmentMoments("country", values, n, metrics)


@pytest.mark.parametrize("seed", [1, 2])
def test_every_segment_equals_statsmodels_and_the_adjustment_equals_multipletests(seed):
    frame = units_frame(seed)
    values = sorted(frame.country.unique())
    plan = PLAN
    result = {r["metric"]: r for r in segment_results(plan, moments_of(frame, values))}
    for j, variant in enumerate(ARMS[1:], start=1):
        treatment = result["bought"]["treatments"][j - 1]
        assert treatment["variant"] == variant
        p_ref = []
        for row, value in zip(treatment["segments"], values):
            seg = frame[frame.country == value]
            c, t = seg[seg.arm == 0].bought, seg[seg.arm == j].bought
            ref = smp.test_proportions_2indep(t.sum(), t.size, c.sum(), c.size, method="wald", compare="diff",
                                              correction=False)
            assert row["value"] == value and row["units"][variant] == t.size and row["units"]["control"] == c.size
            assert row["abs_lift"] == pytest.approx(t.mean() - c.mean(), rel=1e-9)
            assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-6)
            p_ref.append(ref.pvalue)
        adjusted = multipletests(p_ref, method="fdr_bh")[1]
        assert [r["adjusted_p_value"] for r in treatment["segments"]] == pytest.approx(adjusted, rel=1e-9)
        spend = result["spend"]["treatments"][j - 1]
        for row, value in zip(spend["segments"], values):
            seg = frame[frame.country == value]
            c, t = seg[seg.arm == 0].spend, seg[seg.arm == j].spend
            assert row["p_value"] == pytest.approx(stats.ttest_ind(t, c, equal_var=False).pvalue, rel=1e-6)
        se = [np.sqrt(frame[(frame.country == v) & (frame.arm == j)].bought.var(ddof=0) /
                      (frame[(frame.country == v) & (frame.arm == j)].shape[0])
                      + frame[(frame.country == v) & (frame.arm == 0)].bought.var(ddof=0) /
                      frame[(frame.country == v) & (frame.arm == 0)].shape[0]) for v in values]
        lifts = [r["abs_lift"] for r in treatment["segments"]]
        q = combine_effects(np.array(lifts), np.array(se) ** 2)
        assert treatment["heterogeneity"]["q"] == pytest.approx(q.q, rel=1e-9)
        assert treatment["heterogeneity"]["p_value"] == pytest.approx(q.test_homogeneity().pvalue, rel=1e-9)


def test_an_effect_confined_to_one_segment_is_found_and_flagged_as_heterogeneous():
    frame = units_frame(5, n=60_000)
    values = sorted(frame.country.unique())
    a = segment_results(PLAN, moments_of(frame, values))[0]["treatments"][0]
    significant = [r["value"] for r in a["segments"] if r["significant"]]
    assert significant == ["DE"] and a["heterogeneity"]["differs"]


def test_a_segment_whose_split_is_off_fails_its_sample_ratio_check():
    frame = units_frame(3)
    us_control = frame[(frame.country == "US") & (frame.arm == 0)].index[:400]
    values = sorted(frame.country.unique())
    result = segment_results(PLAN, moments_of(frame.drop(us_control), values))
    flags = {r["value"]: r["srm_flagged"] for r in result[0]["treatments"][0]["segments"]}
    assert flags["US"] and not any(flag for value, flag in flags.items() if value != "US")


def test_the_analysis_json_carries_each_comparisons_segments_and_heterogeneity():
    from expc.runtime.evaluate import evaluate
    from expc.runtime.stats.reduce import EXCLUDED_KEYS, Reduction

    frame = units_frame(4)
    values = sorted(frame.country.unique())
    seg = moments_of(frame, values)
    whole = {k: m.map(lambda x: np.asarray(x).sum(axis=0)) for k, m in seg.metrics.items()}
    units = np.asarray(seg.units).sum(axis=0).astype(np.int64)
    reduction = Reduction(whole, units, dict.fromkeys(EXCLUDED_KEYS, 0), "")
    plan = plan_of_text(PLAN_TEXT.replace("metrics:", "analysis: {segments: [country]}\nmetrics:"))
    out = evaluate(plan, reduction, segments=[seg]).to_dict()
    assert out["segment_attributes"] == ["country"]
    comparison = out["metrics"][0]["comparisons"][0]
    assert [r["value"] for r in comparison["segments"]] == values
    assert comparison["segments"][0].keys() >= {"attribute", "value", "units", "abs_lift", "abs_ci", "rel_lift",
                                                "rel_ci", "p_value", "adjusted_p_value", "srm_flagged"}
    assert [h["attribute"] for h in comparison["heterogeneity"]] == ["country"]
    assert "segments" not in evaluate(plan, reduction).to_dict()["metrics"][0]["comparisons"][0]


HARM = PLAN_TEXT.replace("metrics:", "analysis: {segments: [country]}\nmetrics:") + """\
stopping:
  rules:
    - {when: segment_harm, then: stop_rollback}
"""


def harmed_frame(seed: int, n: int = 60_000) -> pd.DataFrame:
    """Arm a hurts DE's purchases (0.10 -> 0.06) and helps everyone else a little."""
    frame = units_frame(seed, n)
    rng = np.random.default_rng(seed + 100)
    de_a = (frame.country == "DE") & (frame.arm == 1)
    frame.loc[de_a, "bought"] = (rng.random(int(de_a.sum())) < 0.06).astype(float)
    return frame


def evaluate_frame(plan, frame):
    from expc.runtime.evaluate import evaluate
    from expc.runtime.stats.reduce import EXCLUDED_KEYS, Reduction

    values = sorted(frame.country.unique())
    seg = moments_of(frame, values)
    whole = {k: m.map(lambda x: np.asarray(x).sum(axis=0)) for k, m in seg.metrics.items()}
    units = np.asarray(seg.units).sum(axis=0).astype(np.int64)
    return evaluate(plan, Reduction(whole, units, dict.fromkeys(EXCLUDED_KEYS, 0), ""), segments=[seg])


def test_segment_harm_rolls_back_and_names_the_segment():
    decision = evaluate_frame(plan_of_text(HARM), harmed_frame(8)).decision
    assert (decision.action, decision.rule, decision.variant) == ("stop_rollback", "segment_harm", "control")
    assert any(r.startswith("bought: a is significantly worse than control for country = DE") for r in decision.reasons)


def test_segment_harm_does_not_fire_without_harm_nor_on_a_guardrail_loss_within_its_margin():
    assert evaluate_frame(plan_of_text(HARM), units_frame(9, 60_000)).decision.rule is None
    guarded = HARM.replace("  - {id: spend, kind: mean, event: buy}\n",
                           "  - {id: spend, kind: mean, event: buy}\n"
                           "  - {id: buys, kind: proportion, event: buy, role: guardrail, direction: increase,\n"
                           "     margin: 60%}\n")
    frame = harmed_frame(8).assign(buys=lambda f: f.bought)
    frame["bought"] = units_frame(8, 60_000).bought  # the primary is not harmed; the guardrail loses 40% in DE
    assert evaluate_frame(plan_of_text(guarded), frame).decision.rule is None  # 40% is within the 60% margin
    tight = evaluate_frame(plan_of_text(guarded.replace("margin: 60%", "margin: 10%")), frame).decision
    assert tight.rule == "segment_harm" and tight.reasons[0].startswith("buys: a is significantly worse")


def test_a_segment_harm_rule_without_segments_cannot_fire():
    from conftest import check_text, codes

    assert codes(check_text(PLAN_TEXT + "stopping:\n  rules:\n    - {when: segment_harm, then: stop_rollback}\n")) \
        == ["E050"]
