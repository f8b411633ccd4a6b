"""The compiler: a checked spec becomes a deterministic plan."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
from conftest import BASE, ROOT, check_text

from expc.compiler.buckets import bucket_ranges
from expc.compiler.compile import compile_plan, plan_json
from expc.compiler.planning import units_for_mean, units_for_proportion


def plan_of(text: str) -> dict:
    """The compiled plan's JSON form (the contract the runtime and other tools read)."""
    result = check_text(text)
    assert result.ok(), result.diagnostics
    return compile_plan(result.doc, result.spec).to_dict()


def test_same_spec_same_bytes_in_another_process():
    path = ROOT / "specs" / "welcome-email.yaml"
    code = "import sys; from expc import compile_file; from expc.compiler.compile import plan_json; " \
           "sys.stdout.write(plan_json(compile_file(sys.argv[1])))"
    outputs = {
        subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    plan = json.loads(outputs.pop())
    assert plan["spec_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_defaults_are_resolved_and_weights_normalised():
    plan = plan_of(BASE.replace("generate: {per: unit}", "generate: {per: unit}\n    weight: 3"))
    assert [v["weight"] for v in plan["variants"]] == [0.25, 0.75]
    assert [v["bucket_range"] for v in plan["variants"]] == [[0.0, 0.25], [0.25, 1.0]]
    assert plan["control"] == "control" and plan["variants"][0]["control"] is True
    assert plan["assignment"]["seed"] == "demo" and plan["assignment"]["hash_version"] == 2
    assert plan["assignment"]["condition"] == {"country": "US"}
    assert plan["analysis"] == {"method": "fixed", "alpha": 0.05, "power": 0.8, "correction": "holm",
                                "family": "per_metric", "srm_threshold": 0.001, "cuped": False,
                                "cuped_lookback": 14 * 86400, "sequential": "always_valid",
                                "spending": "obrien_fleming", "in_progress": "exclude", "segments": None}
    assert plan["sequential"] is None  # only method sequential carries a design
    assert plan["schedule"]["every"] == "1d" and plan["schedule"]["every_seconds"] == 86400
    assert plan["schedule"]["horizon_seconds"] == 28 * 86400 and not plan["schedule"]["bounded"]


def test_layer_becomes_a_namespace_and_coverage_shrinks_ranges():
    text = BASE.replace("  audience: everyone_us",
                        "  audience: everyone_us\n  coverage: 40%\n  layer: {id: emails, range: [0, 0.5]}")
    plan = plan_of(text)
    assert plan["assignment"]["namespace"] == {"id": "emails", "start": 0, "end": 0.5}
    assert plan["variants"][1]["bucket_range"] == pytest.approx([0.5, 0.7])


def test_bucket_ranges_match_growthbooks_documented_example():
    flat = [x for r in bucket_ranges(3, 0.2, [0.2, 0.3, 0.5]) for x in r]
    assert flat == pytest.approx([0, 0.04, 0.2, 0.26, 0.5, 0.6])
    # wrong length or a sum far from 1 fall back to equal weights, as in GrowthBook
    assert bucket_ranges(2, 1, [0.9]) == [(0, 0.5), (0.5, 1.0)]
    assert bucket_ranges(2, 1.5, [0.7, 0.7]) == [(0, 0.5), (0.5, 1.0)]


def test_sample_size_matches_the_reference_figure():
    # references: baseline 10%, relative MDE 5%, alpha 0.05 two-sided, power 0.8 -> 57,760 per arm (unpooled)
    assert units_for_proportion(0.10, 0.105, 0.05, 0.8) == 57_760
    plan = plan_of(BASE)
    assert plan["sample_size"]["per_variant"] == 57_760 and plan["sample_size"]["total"] == 115_520


def test_sample_size_for_means_follows_the_closed_form():
    # 2 (1.959964 + 0.841621)^2 * 100^2 / 5^2 = 6279.1 -> 6280
    assert units_for_mean(100, 5, 0.05, 0.8) == 6280


def test_more_treatments_split_alpha_under_bonferroni_or_holm():
    text = BASE.replace("variants:\n", "variants:\n  - id: third\n    content: Hi\n")
    text = text.replace("  - id: control\n", "  - id: control\n    control: true\n")
    plan = plan_of(text)
    assert plan["sample_size"]["alpha"] == pytest.approx(0.025)
    assert plan["sample_size"]["per_variant"] > 57_760


def test_estimated_days_use_the_smallest_arm():
    text = BASE + "simulation:\n  units_per_day: 10000\n"
    plan = plan_of(text.replace("generate: {per: unit}", "generate: {per: unit}\n    weight: 3"))
    # control gets a quarter of 10,000 a day: 57,760 / 2,500 -> 24 days
    assert plan["sample_size"]["estimated_days"] == 24


def test_generation_jobs_list_each_prompted_variant():
    jobs = plan_of(BASE)["generation"]["jobs"]
    assert jobs == [{"variant": "treatment", "prompt": "subject", "model": "offline/test", "per": "unit",
                     "segment_by": []}]


def test_plan_json_has_no_nan_or_machine_specific_content():
    result = check_text(BASE)
    text = plan_json(compile_plan(result.doc, result.spec))
    assert text.endswith("\n") and "NaN" not in text and str(ROOT) not in text
