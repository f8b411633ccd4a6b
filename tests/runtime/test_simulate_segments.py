"""`expc simulate` with a `segment_harm` rule: simulated segments, decided as a real look decides them."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import plan_of_text

from expc.runtime.segment_results import harmed_segments, segment_results
from expc.runtime.simulate import SimulationError, design_of, draw, segment_harm, segments_of, simulate
from expc.runtime.stats.moments import Moments
from expc.runtime.stats.segments import SegmentMoments

SPEC = """\
version: 1
experiment: {id: harm}
attributes: {user_id: string, country: string, tier: integer, premium: boolean}
variants: [{id: control, content: A}, {id: a, content: B}, {id: b, content: C}]
analysis: {segments: {by: [country, premium], min_units: 300, top: 3}}
metrics:
  - {id: bought, kind: proportion, event: buy, role: primary, mde: 10%, baseline: 0.1}
  - {id: spend, kind: mean, event: buy, role: guardrail, direction: increase, margin: 5%}
  - {id: clicks, kind: mean, event: click}
stopping:
  max_days: 6
  rules:
    - {when: segment_harm, then: stop_rollback}
    - {when: primary_significant, then: stop_ship_winner}
simulation:
  units_per_day: 2000
  attributes:
    country: {values: [US, DE, FR, IS, NO], weights: [50, 25, 15, 5, 5]}
    premium: {p: 0.3}
  truth:
    control: {bought: 0.1, spend: {mean: 2, sd: 5}, clicks: {mean: 1, sd: 1}}
    a: {bought: 0.1}
    b: {bought: 0.1}
"""


def test_the_segments_are_pooled_as_the_analysis_pools_them_and_their_cells_cover_everyone():
    plan = plan_of_text(SPEC)
    segments = segments_of(plan, design_of(plan))
    assert segments is not None
    # 12,000 units at the horizon: IS and NO (600 each) stand alone by size but not by rank (top 3: US, DE, FR)
    assert segments.names == {"country": ["US", "DE", "FR", "other"], "premium": ["true", "false"]}
    assert segments.shares.size == 8 and segments.shares.sum() == pytest.approx(1.0)
    country = segments.shares @ segments.groups["country"]
    np.testing.assert_allclose(country, [0.5, 0.25, 0.15, 0.10])
    np.testing.assert_allclose(segments.shares @ segments.groups["premium"], [0.3, 0.7])
    assert segments_of(plan_of_text(SPEC.replace("    - {when: segment_harm, then: stop_rollback}\n", "")),
                       design_of(plan)) is None


def test_the_whole_is_the_sum_of_the_cells_and_each_arm_gets_its_weight():
    plan = plan_of_text(SPEC)
    design = design_of(plan)
    segments = segments_of(plan, design)
    d = draw(plan, 400, "aa", seed=3, design=design, segments=segments)
    assert d.cells is not None and d.cells["bought"].n.shape == (400, design.looks, 8, 3)
    np.testing.assert_array_equal(d.metrics["bought"].n, d.cells["bought"].n.sum(axis=2))
    np.testing.assert_array_equal(d.units, d.metrics["bought"].n)
    last = d.units[:, -1].sum(axis=0) / d.units[:, -1].sum()
    np.testing.assert_allclose(last, design.weights, atol=0.005)
    premium = np.einsum("rca,cs->rsa", d.cells["bought"].n[:, -1], segments.groups["premium"]).sum(axis=(0, 2))
    assert premium[0] / premium.sum() == pytest.approx(0.3, abs=0.005)


def grouped(m: Moments, r: int, k: int, groups: np.ndarray) -> Moments:
    """One replication's look, its cells summed into an attribute's groups."""
    return m.map(lambda x: groups.T @ x[r, k])


@pytest.mark.parametrize("seed", [1, 2])
def test_the_simulated_harm_equals_what_a_look_finds_in_the_same_segments(seed):
    """The vectorised harm of every replication and look = segment_results + harmed_segments on that look."""
    plan = plan_of_text(SPEC.replace("a: {bought: 0.1}", "a: {bought: 0.09, spend: {mean: 1.6}}"))
    design = design_of(plan)
    segments = segments_of(plan, design)
    assert segments is not None
    d = draw(plan, 60, "spec", seed=seed, design=design, segments=segments)
    fast = segment_harm(plan, d, segments)
    assert set(fast) == {"bought", "spend"}  # clicks is neither primary nor a guardrail
    assert any(h.any() for h in fast.values()) and not all(h.all() for h in fast.values())
    assert d.cells is not None
    for r in range(60):
        for k in range(design.looks):
            found: dict[str, bool] = {}
            for attribute, groups in segments.groups.items():
                cells = {mid: grouped(m, r, k, groups) for mid, m in d.cells.items()}
                table = SegmentMoments(attribute, segments.names[attribute], cells["bought"].n, cells)
                for h in harmed_segments(segment_results(plan, table, plan.analysis.segments.correction)):
                    found[h["metric"]] = True
            for mid, harm in fast.items():
                assert bool(harm[r, k]) == found.get(mid, False), (r, k, mid)


DESIGNS = {
    "fixed, daily looks": "",
    "sequential (always valid), daily looks": "method: sequential, ",
    "sequential (group), daily looks": "method: sequential, sequential: group, ",
}
ROLLBACK_ONLY = SPEC.replace("    - {when: primary_significant, then: stop_ship_winner}\n", "")


@pytest.mark.parametrize("method", DESIGNS.values(), ids=list(DESIGNS))
def test_with_no_difference_anywhere_segment_harm_rolls_back_at_most_alpha_of_aa_runs(method):
    """2 metrics x 2 attributes x 2 treatments watched at 6 daily looks: still at most alpha (0.05)."""
    out = simulate(plan_of_text(ROLLBACK_ONLY.replace("analysis: {", "analysis: {" + method)), 2000, truth="aa",
                   seed=1).to_dict()
    rate, se = out["false_rollback_rate"], out["false_rollback_rate_se"]
    assert out["rules_fired"]["0:segment_harm"] == rate
    assert se == pytest.approx(np.sqrt(rate * (1 - rate) / 2000))
    assert rate <= 0.05
    assert "false_rollback_rate" not in simulate(plan_of_text(ROLLBACK_ONLY), 20, truth="spec").to_dict()


def test_a_harm_confined_to_one_segment_is_found():
    """Treatment a lowers purchases from 10% to 6% in DE only (a quarter of the units): found in most runs."""
    plan = plan_of_text(ROLLBACK_ONLY)
    harm = {("country", "DE"): {"a": {"bought": 0.06}}}
    out = simulate(plan, 1000, truth="spec", seed=1, segment_truth=harm).to_dict()
    assert out["decisions"]["stop_rollback"] > 0.5
    assert simulate(plan, 1000, truth="spec", seed=1).to_dict()["decisions"].get("stop_rollback", 0.0) < 0.05
    with pytest.raises(SimulationError, match="`country = IS` is not a simulated segment"):
        simulate(plan, 10, segment_truth={("country", "IS"): {"a": {"bought": 0.06}}})  # IS is pooled into other


def test_harm_in_every_segment_rolls_back_most_runs():
    hurt = SPEC.replace("a: {bought: 0.1}", "a: {bought: 0.075}")
    assert simulate(plan_of_text(hurt), 400, truth="spec", seed=5).to_dict()["decisions"]["stop_rollback"] > 0.7


def test_a_segment_attribute_whose_values_cannot_be_listed_is_one_clear_error():
    spec = SPEC.replace("by: [country, premium]", "by: [country, score]") \
        .replace("premium: boolean}", "premium: boolean, score: number}")
    with pytest.raises(SimulationError, match=r"`score` cannot be simulated.*simulation\.attributes\.score"):
        simulate(plan_of_text(spec), 10)


def test_the_text_report_gives_the_false_rollback_rate():
    from expc.simulate_report import render_text

    out = render_text(simulate(plan_of_text(SPEC), 200, truth="aa", seed=2).to_dict())
    assert "False-rollback rate: " in out and "rolled back although no variant differs" in out
