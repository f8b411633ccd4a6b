"""Batch assignment: the GrowthBook SDK agrees with `expc assign` on every unit; a golden file; statistics; reasons.

The reference throughout is the GrowthBook Python SDK (``growthbook``), fed
the payload of ``expc export --to growthbook``: whatever it serves a user is
what ``expc assign`` must have written for that unit.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import BASE, ROOT, plan_of_text
from growthbook import GrowthBook
from growthbook import core as gb
from scipy import stats

import expc
from expc.cli import main
from expc.compiler.plan import Plan
from expc.runtime.assign import (
    ASSIGNED,
    MISSING_ID,
    NOT_IN_AUDIENCE,
    OUTSIDE_COVERAGE,
    OUTSIDE_LAYER,
    REASONS,
    assign,
    hash_values,
)
from expc.runtime.tables import read_units
from expc.runtime.units import Units

SPECS = ROOT / "specs"
GOLDEN = ROOT / "tests" / "fixtures" / "golden"
P_MIN = 0.001


# ------------------------------------------------------------------ helpers


def cli(*args: str):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def export_payload(spec: Path) -> dict[str, Any]:
    result = cli("export", spec, "--to", "growthbook", "--values", "variant")  # the assignment alone
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def sdk(payload: dict[str, Any], attributes: dict[str, Any]):
    """What the GrowthBook SDK serves a user: (variant or None, bucket or None)."""
    (key,) = payload["features"]
    found = GrowthBook(attributes=attributes, features=payload["features"]).eval_feature(key)
    in_experiment = found.experimentResult is not None and found.experimentResult.inExperiment
    return found.value, (found.experimentResult.bucket if in_experiment else None)


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


BASE_VARIANTS = """\
variants:
  - id: control
    content: Welcome!
  - id: treatment
    prompt: subject
    generate: {per: unit}
"""
BASE_ALLOCATION = "allocation:\n  audience: everyone_us\n"


def base_spec(weights=(1, 1), *, coverage: str | None = None, audience: bool = True, layer: str | None = None,
              seed: str | None = None, hash_version: int | None = None, unit_type: str = "string") -> str:
    """BASE (tests/conftest.py) with ``len(weights)`` variants and the allocation given."""
    text = BASE
    names = ["control", "treatment"] + [f"treatment_{i}" for i in range(2, len(weights))]
    variants = f"variants:\n  - id: control\n    weight: {weights[0]}\n    content: Welcome!\n"
    variants += f"  - id: treatment\n    weight: {weights[1]}\n    prompt: subject\n    generate: {{per: unit}}\n"
    for name, w in zip(names[2:], weights[2:]):
        variants += f"  - id: {name}\n    weight: {w}\n    content: Hello from {name}!\n"
    text = replace_once(text, BASE_VARIANTS, variants)
    allocation = "allocation:\n" + ("  audience: everyone_us\n" if audience else "")
    allocation += f"  coverage: {coverage}\n" if coverage else ""
    allocation += f"  layer: {layer}\n" if layer else ""
    allocation += f"  hash_version: {hash_version}\n" if hash_version else ""
    if allocation == "allocation:\n":
        allocation += "  coverage: 100%\n"
    text = replace_once(text, BASE_ALLOCATION, allocation)
    if seed:
        text = replace_once(text, "  id: demo\n", f"  id: demo\n  seed: {seed}\n")
    if unit_type != "string":
        text = replace_once(text, "  user_id: string\n", f"  user_id: {unit_type}\n")
    return text


def write_spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    assert expc.check_file(path).ok(), [str(d) for d in expc.check_file(path).diagnostics]
    return path


def compile_text(folder: Path, text: str, name: str = "spec.yaml") -> Plan:
    return expc.compile_file(write_spec(folder, text, name))


def write_parquet(path: Path, rows: list[dict[str, Any]], schema: dict[str, str]) -> Path:
    """A Parquet file with DuckDB types ``schema``, made by DuckDB (independently of expc's reader)."""
    staging = path.with_suffix(".staging.jsonl")
    staging.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in schema.items()) + "}"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT * FROM read_json('{staging}', format='newline_delimited', columns={columns})) "
                    f"TO '{path}' (FORMAT parquet)")
    staging.unlink()
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of a data file as plain Python values (lists as lists, NULL as None), in file order."""
    with duckdb.connect() as con:
        cursor = con.execute(f"SELECT * FROM '{path}'")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


# ids as they come in real tables: numeric-looking, UUIDs, accents, CJK, RTL,
# emoji (outside the BMP, ZWJ sequences, flags), spaces, quotes and commas
EXOTIC = ["José", "Zoë", "Łukasz", "ß", "日本語", "한국어", "Ωμέγα", "مرحبا", "😀", "👩‍💻", "🇫🇷", "𝔘𝔫𝔦", "e\u0301",
          "\u00a0", "🎉"]
SPECIAL_IDS = ["0", "-1", "1e3", "0.0", "null", "None", "NaN", "undefined", " u1", "u1 ", "o'brien, pat", 'say "hi"',
               "😀", "👩‍💻", "🇯🇵", "\u200b", "a\tb", "x" * 200]


def realistic_id(rng: random.Random, i: int) -> str:
    r = rng.random()
    if r < 0.5:
        return f"user-{rng.randrange(10**12):012d}"
    if r < 0.75:
        a, b, c, d, e = (rng.getrandbits(bits) for bits in (32, 16, 16, 16, 48))
        return f"{a:08x}-{b:04x}-{c:04x}-{d:04x}-{e:012x}"
    if r < 0.85:
        return str(rng.randrange(1, 10**9))
    return f"{rng.choice(EXOTIC)}{i}{rng.choice(EXOTIC)}"


def unique_ids(rng: random.Random, n: int) -> list[str]:
    ids = list(dict.fromkeys(SPECIAL_IDS))
    seen = set(ids)
    i = 0
    while len(ids) < n:
        uid = realistic_id(rng, i)
        i += 1
        if uid not in seen:
            seen.add(uid)
            ids.append(uid)
    rng.shuffle(ids)
    return ids


def check_sdk_agrees(spec: Path, units: Path, out: Path) -> dict[str, Any]:
    """Run `expc assign` and the SDK on every unit; they must agree on the variant (and bucket). Returns counts."""
    result = cli("assign", spec, "--units", units, "-o", out)
    assert result.exit_code == 0, result.stderr
    payload = export_payload(spec)
    plan = expc.compile_file(spec)
    unit = plan.assignment.unit
    rows, assigned = read_rows(units), read_rows(out)
    assert [r[unit] for r in assigned] == [str(r[unit]) for r in rows]  # one row per unit, in input order

    mismatches = []
    for row, got in zip(rows, assigned):
        attributes = {k: v for k, v in row.items() if v is not None}
        variant, bucket = sdk(payload, attributes)
        if variant != got["variant"] or (variant is not None and bucket != got["bucket"]):
            mismatches.append((attributes, (variant, bucket), (got["variant"], got["bucket"])))
    assert not mismatches, f"{len(mismatches)} units differ from the SDK (attributes, sdk, expc): {mismatches[:5]}"

    # the summary of an in-process run adds up and matches the file
    names = [v.id for v in plan.variants]
    counts = assign(plan, read_units(units, plan.attributes, unit)).counts(names)
    assert counts["units"] == len(rows) == sum(counts["assigned"].values()) + sum(counts["excluded"].values())
    assert counts["assigned"] == {v: sum(r["variant"] == v for r in assigned) for v in names}
    assert counts["excluded"]["missing id"] == 0
    return counts


# --------------------------------------------------- the SDK, end to end


def push_units(n: int = 10_000, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)

    def pick(common: list, rare: list, p_common: float = 0.8):
        return rng.choice(common) if rng.random() < p_common else rng.choice(rare)

    return [
        {
            "user_id": uid,
            "first_name": pick(["Ana", "Chloé", "Hiro", "李", "Zoë 😀"], [None, ""], 0.85),
            "platform": pick(["ios", "android"], [None, "", "web", "iOS", " ios", "Android"]),
            "app_version": pick(
                ["5.10.1", "v5.4.0", "6.0.0-rc.1", "5.4.0", "5.6.2", "6.0.1", "10.0.0", "5.4.0+build.7"],
                [None, "", "5.3.9", "5.4.0-rc.1", "5.4", "abc", "5.04.0", "5.4.0.1", "v6", "7", "4.99.99"]),
            "days_since_last_open": pick([3, 4, 15, 29, 30], [None, -1, 0, 2, 31, 365, 10**12]),
            "favorite_category": rng.choice(["shoes", "bags", "日用品", None, ""]),
            "notification_topics": pick(
                [["promotions"], ["recommendations"], ["news", "promotions"], ["promotions", "recommendations"]],
                [None, [], ["news"], ["Promotions"], ["", "news"], ["recommendations "], ["😀"]]),
        }
        for uid in unique_ids(rng, n)
    ]


PUSH_SCHEMA = {"user_id": "VARCHAR", "first_name": "VARCHAR", "platform": "VARCHAR", "app_version": "VARCHAR",
               "days_since_last_open": "BIGINT", "favorite_category": "VARCHAR", "notification_topics": "VARCHAR[]"}


def test_push_notification_assignments_agree_with_the_sdk(tmp_path):
    units = write_parquet(tmp_path / "units.parquet", push_units(), PUSH_SCHEMA)
    counts = check_sdk_agrees(SPECS / "push-notification.yaml", units, tmp_path / "out.parquet")
    # the data reaches every branch: each variant, audience misses, the 10% left out by coverage
    assert min(counts["assigned"].values()) > 300
    assert counts["excluded"]["not in the audience"] > 3000
    assert counts["excluded"]["outside coverage"] > 50


def welcome_units(n: int = 10_000, seed: int = 2) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "user_id": uid,
            "first_name": rng.choice(["Ana", "Ben", "Chloé", "", None, "Ærø"]),
            "country": rng.choice(["US", "US", "CA", "CA", "us", "", None, "FR", "US ", "MX"]),
            "interests": rng.choice([None, [], ["running"], ["cooking", "travel"], ["日本"], ["🎮"]]),
            "signup_days": rng.choice([None, -3, 0, 1, 6, 7, 7, 8, 30, 0, 2]),
        }
        for uid in unique_ids(rng, n)
    ]


WELCOME_SCHEMA = {"user_id": "VARCHAR", "first_name": "VARCHAR", "country": "VARCHAR", "interests": "VARCHAR[]",
                  "signup_days": "BIGINT"}


def test_welcome_email_with_its_layer_agrees_with_the_sdk(tmp_path):
    units = write_parquet(tmp_path / "units.parquet", welcome_units(), WELCOME_SCHEMA)
    spec = SPECS / "welcome-email.yaml"
    assert expc.compile_file(spec).assignment.namespace is not None
    counts = check_sdk_agrees(spec, units, tmp_path / "out.parquet")
    assert min(counts["assigned"].values()) > 1000
    assert counts["excluded"]["not in the audience"] > 1000


def test_welcome_email_in_part_of_its_layer_agrees_with_the_sdk(tmp_path):
    text = (SPECS / "welcome-email.yaml").read_text(encoding="utf-8")
    text = replace_once(text, "  layer: welcome-email\n", "  layer: {id: welcome-email, range: [0.25, 0.75]}\n")
    spec = write_spec(tmp_path, text)
    units = write_parquet(tmp_path / "units.parquet", welcome_units(seed=3), WELCOME_SCHEMA)
    counts = check_sdk_agrees(spec, units, tmp_path / "out.parquet")
    assert min(counts["assigned"].values()) > 500
    assert counts["excluded"]["outside the layer"] > 1000


def base_units(n: int = 10_000, seed: int = 4) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "user_id": uid,
            "first_name": rng.choice(["Ana", "Ben", None, "", "Zoë"]),
            "country": rng.choice(["US"] * 6 + ["us", "", None, "CA", "US ", "ＵＳ"]),
            "plan": rng.choice(["free", "pro", None]),
            "interests": rng.choice([None, [], ["running", "cooking"]]),
            "signup_days": rng.choice([None, 0, 5, 400]),
            "score": rng.choice([None, 0.0, -1.5, 3.25, 1e300]),
            "beta": rng.choice([None, True, False]),
            "app_version": rng.choice([None, "", "5.10.1", "v5.4.0", "6.0.0-rc.1"]),
        }
        for uid in unique_ids(rng, n)
    ]


BASE_SCHEMA = {"user_id": "VARCHAR", "first_name": "VARCHAR", "country": "VARCHAR", "plan": "VARCHAR",
               "interests": "VARCHAR[]", "signup_days": "BIGINT", "score": "DOUBLE", "beta": "BOOLEAN",
               "app_version": "VARCHAR"}


def test_partial_coverage_unequal_weights_hash_v1_agree_with_the_sdk(tmp_path):
    spec = write_spec(tmp_path, base_spec((1, 2, 3), coverage="40%", hash_version=1))
    plan = expc.compile_file(spec)
    assert plan.assignment.hash_version == 1 and plan.assignment.coverage == 0.4
    units = write_parquet(tmp_path / "units.parquet", base_units(), BASE_SCHEMA)
    counts = check_sdk_agrees(spec, units, tmp_path / "out.parquet")
    control, treatment, third = counts["assigned"].values()
    assert 0 < control < treatment < third
    assert counts["excluded"]["outside coverage"] > 2000


# --------------------------------------------------------- golden file
#
# tests/fixtures/golden/assignments.csv is what `expc assign` wrote for
# spec.yaml and units.csv beside it, checked against the GrowthBook SDK before
# it was committed. It must NEVER change: a running experiment's units must
# keep their variant across expc versions. If this test fails, the change broke
# assignment; fix the code, never the fixture.


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_golden_assignments_never_change(tmp_path):
    out = tmp_path / "assignments.csv"
    result = cli("assign", GOLDEN / "spec.yaml", "--units", GOLDEN / "units.csv", "-o", out)
    assert result.exit_code == 0, result.stderr
    golden, produced = read_csv(GOLDEN / "assignments.csv"), read_csv(out)
    assert golden[0] == produced[0] == ["user_id", "variant", "bucket"]
    assert len(golden) == len(produced) == 1001
    for line, (want, got) in enumerate(zip(golden[1:], produced[1:]), start=2):
        assert got[:2] == want[:2], f"line {line}: {got} != {want}"
        # buckets exactly: the same float (empty for units that were not hashed)
        assert (got[2] == "" and want[2] == "") or float(got[2]) == float(want[2]), f"line {line}: {got} != {want}"


def golden_attributes(row: dict[str, str]) -> dict[str, Any]:
    """A units.csv row as the SDK gets it: empty cells omitted, integers as int, lists as lists."""
    attributes: dict[str, Any] = {}
    for name, text in row.items():
        if text == "":
            continue
        if name == "signup_days":
            attributes[name] = int(text)
        elif name == "interests":
            attributes[name] = json.loads(text) if text.startswith("[") else [x for x in text.split("|") if x]
        else:
            attributes[name] = text
    return attributes


def test_golden_assignments_agree_with_the_sdk():
    payload = export_payload(GOLDEN / "spec.yaml")
    plan = expc.compile_file(GOLDEN / "spec.yaml")
    seed = plan.assignment.seed
    with open(GOLDEN / "units.csv", encoding="utf-8", newline="") as f:
        units = list(csv.DictReader(f))
    golden = read_csv(GOLDEN / "assignments.csv")[1:]
    assert len(units) == len(golden) == 1000
    for row, (uid, variant, bucket) in zip(units, golden):
        assert uid == row["user_id"]
        served, served_bucket = sdk(payload, golden_attributes(row))
        assert (served or "") == variant, (row, served, variant)
        if served is not None:
            assert float(bucket) == served_bucket == gb.gbhash(seed, uid, 2)
    # the fixture exercises every path: each variant, and each reason to be left out
    counts = assign(plan, read_units(GOLDEN / "units.csv", plan.attributes, "user_id")).counts(
        [v.id for v in plan.variants])
    assert min(counts["assigned"].values()) > 30
    assert all(counts["excluded"][r] > 30 for r in ("not in the audience", "outside the layer", "outside coverage"))
    ids = [r["user_id"] for r in units]
    assert any(not i.isascii() for i in ids) and any(any(ord(c) > 0xFFFF for c in i) for i in ids)


# ------------------------------------------------------------ statistics


def synthetic_ids(kind: str, n: int = 1_000_000, seed: int = 0) -> np.ndarray:
    """n distinct-looking realistic ids, as a numpy unicode array."""
    rng = np.random.default_rng(seed)
    if kind == "user":  # 'user-' + 12 digits
        return np.char.add("user-", np.char.zfill(rng.integers(0, 10**12, n).astype(str), 12))
    # UUID-like: 8-4-4-4-12 lower-case hex digits
    hexdigits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[rng.integers(0, 16, (n, 32), dtype=np.uint8)]
    dash = np.full((n, 1), ord("-"), dtype=np.uint8)
    parts = [hexdigits[:, :8], dash, hexdigits[:, 8:12], dash, hexdigits[:, 12:16], dash, hexdigits[:, 16:20], dash,
             hexdigits[:, 20:]]
    return np.ascontiguousarray(np.concatenate(parts, axis=1)).view("S36").ravel().astype("U36")


@pytest.fixture(scope="module")
def million() -> dict[str, np.ndarray]:
    ids = {kind: synthetic_ids(kind, seed=i) for i, kind in enumerate(("user", "uuid"))}
    assert len(set(ids["user"].tolist())) > 999_000 and len(set(ids["uuid"].tolist())) == 1_000_000  # (almost) distinct
    return ids


def id_units(ids: np.ndarray) -> Units:
    return Units({"user_id": ids}, {"user_id": "string"})


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """A function (weights, seed, layer) -> compiled plan with no audience and full coverage, cached."""
    folder = tmp_path_factory.mktemp("plans")
    cache: dict[tuple, Plan] = {}

    def plan(weights, seed="demo", layer=None):
        key = (tuple(weights), seed, layer)
        if key not in cache:
            text = base_spec(weights, audience=False, seed=seed, layer=layer)
            cache[key] = compile_text(folder, text, f"spec{len(cache)}.yaml")
        return cache[key]

    return plan


@pytest.mark.parametrize("kind", ["user", "uuid"])
@pytest.mark.parametrize("weights", [(50, 50), (20, 30, 50)])
def test_split_follows_the_weights(million, plans, kind, weights):
    ids = million[kind]
    result = assign(plans(weights), id_units(ids))
    assert (result.reason == ASSIGNED).all()
    observed = np.bincount(result.variant, minlength=len(weights))
    expected = np.array(weights) / sum(weights) * len(ids)
    p = stats.chisquare(observed, expected).pvalue
    assert p > P_MIN, (observed, expected, p)


@pytest.mark.parametrize("kind", ["user", "uuid"])
def test_experiments_with_different_seeds_are_independent(million, plans, kind):
    units = id_units(million[kind])
    first = assign(plans((50, 50), seed="checkout-banner"), units)
    second = assign(plans((20, 30, 50), seed="pricing-page"), units)
    table = np.zeros((2, 3), dtype=np.int64)
    np.add.at(table, (first.variant, second.variant), 1)
    assert table.min() > 0
    p = stats.chi2_contingency(table).pvalue
    assert p > P_MIN, (table, p)


def test_experiments_in_one_layer_never_share_a_unit(million, plans):
    ids = million["user"]
    units = id_units(ids)
    left = assign(plans((1, 1), seed="left", layer="{id: shared, range: [0, 0.5]}"), units)
    right = assign(plans((1, 1), seed="right", layer="{id: shared, range: [0.5, 1]}"), units)
    in_left, in_right = left.variant >= 0, right.variant >= 0
    assert not (in_left & in_right).any()
    assert (in_left | in_right).all()  # the ranges cover the layer, and coverage is 100%
    assert (left.reason[~in_left] == OUTSIDE_LAYER).all() and (right.reason[~in_right] == OUTSIDE_LAYER).all()
    assert stats.binomtest(int(in_left.sum()), len(ids), 0.5).pvalue > P_MIN
    # the layer hash is GrowthBook's namespace hash
    sample = np.random.default_rng(5).choice(len(ids), 2000, replace=False)
    assert all(in_left[i] == gb.inNamespace(str(ids[i]), ("shared", 0, 0.5)) for i in sample)


# --------------------------------------------------------------- reasons


def find_id(prefix: str, wanted, limit: int = 100_000) -> str:
    """The first id ``prefix + k`` for which ``wanted(id)`` holds (computed with the SDK's hash)."""
    for k in range(limit):
        uid = f"{prefix}{k}"
        if wanted(uid):
            return uid
    raise AssertionError(f"no id found for {prefix}")


def test_each_reason_where_expected(tmp_path):
    plan = compile_text(tmp_path, base_spec((1, 1), coverage="50%", layer="{id: reasons, range: [0.2, 0.8]}",
                                            seed="reasons-seed"))
    ranges = [tuple(v.bucket_range) for v in plan.variants]
    assert ranges == [(0.0, 0.25), (0.5, 0.75)]

    def layer_in(uid):
        return gb.inNamespace(uid, ("reasons", 0.2, 0.8))

    def covered(uid):
        return gb.chooseVariation(gb.gbhash("reasons-seed", uid, 2), ranges) >= 0

    in_exp = find_id("in-", lambda u: layer_in(u) and covered(u))
    out_layer = find_id("layer-", lambda u: not layer_in(u))
    out_cover = find_id("cover-", lambda u: layer_in(u) and not covered(u))
    out_both = find_id("audience-", lambda u: not layer_in(u))  # not in the audience *and* outside the layer

    table = [  # (id, country, expected reason)
        (in_exp, "US", ASSIGNED),
        (None, "US", MISSING_ID),
        ("", "US", MISSING_ID),
        (None, "CA", MISSING_ID),  # no id comes first
        (out_layer, "US", OUTSIDE_LAYER),
        (out_cover, "US", OUTSIDE_COVERAGE),
        ("not-us", "CA", NOT_IN_AUDIENCE),
        ("no-country", None, NOT_IN_AUDIENCE),
        (out_both, "FR", NOT_IN_AUDIENCE),  # the audience is tested (and reported) before the layer
    ]
    units = Units(
        {"user_id": np.array([r[0] for r in table], dtype=object),
         "country": np.array([r[1] for r in table], dtype=object)},
        plan.attributes,
    )
    result = assign(plan, units)
    assert result.reason.tolist() == [r[2] for r in table]
    assert (result.variant[result.reason != ASSIGNED] == -1).all()
    # a bucket only for the units that were hashed with the experiment's seed
    hashed = np.isin(result.reason, [ASSIGNED, OUTSIDE_COVERAGE])
    assert np.isnan(result.bucket[~hashed]).all()
    assert result.bucket[0] == gb.gbhash("reasons-seed", in_exp, 2)
    assert result.bucket[5] == gb.gbhash("reasons-seed", out_cover, 2)
    assert result.variant[0] == gb.chooseVariation(gb.gbhash("reasons-seed", in_exp, 2), ranges)

    counts = result.counts(["control", "treatment"])
    assert counts["units"] == len(table) == sum(counts["assigned"].values()) + sum(counts["excluded"].values())
    assert sum(counts["assigned"].values()) == 1
    assert counts["excluded"] == {"missing id": 3, "not in the audience": 3, "outside the layer": 1,
                                  "outside coverage": 1}
    assert list(counts["excluded"]) == list(REASONS[1:])


def test_integer_id_zero_and_null_are_missing(tmp_path):
    plan = compile_text(tmp_path, base_spec((1, 1), unit_type="integer", seed="ints"))
    units = Units({"user_id": np.array([0.0, -0.0, np.nan, 7.0, -7.0]), "country": np.array(["US"] * 5, dtype=object)},
                  plan.attributes)
    result = assign(plan, units)
    assert result.reason.tolist() == [MISSING_ID, MISSING_ID, MISSING_ID, ASSIGNED, ASSIGNED]
    counts = result.counts(["control", "treatment"])
    assert counts["excluded"]["missing id"] == 3 and sum(counts["assigned"].values()) == 2


def test_counts_add_up_on_a_large_table(million, plans, tmp_path):
    plan = compile_text(tmp_path, base_spec((1, 2, 3), coverage="70%", layer="{id: big, range: [0.1, 0.9]}"))
    ids = million["uuid"][:200_000].astype(object)
    ids[::1000] = None
    country = np.where(np.arange(len(ids)) % 3 == 0, "CA", "US").astype(object)
    result = assign(plan, Units({"user_id": ids, "country": country}, plan.attributes))
    counts = result.counts([v.id for v in plan.variants])
    assert counts["units"] == len(ids) == sum(counts["assigned"].values()) + sum(counts["excluded"].values())
    assert all(c > 0 for c in counts["excluded"].values())
    assert sum(counts["assigned"].values()) == int((result.variant >= 0).sum()) == int((result.reason == 0).sum())


# ---------------------------------------------------------- integer ids


INT_IDS = [1, 2, 42, -7, 10, 999_999, 123_456_789_012, 2**31, 2**32 + 1, 2**53 - 1, -(2**53 - 1)]


def test_integer_ids_hash_as_the_sdk_does(tmp_path):
    plan = compile_text(tmp_path, base_spec((1, 1), audience=False, unit_type="integer", seed="int-seed"))
    assert plan.attributes["user_id"] == "integer"
    rng = np.random.default_rng(11)
    ids = INT_IDS + [int(x) for x in rng.integers(-(2**53) + 1, 2**53, 5000)] + list(range(100, 2100))
    units = Units({"user_id": np.array(ids, dtype=np.float64)}, plan.attributes)
    assert hash_values(units, "user_id").tolist() == [str(i) for i in ids]
    result = assign(plan, units)
    assert (result.reason == ASSIGNED).all()
    expected = [gb.gbhash("int-seed", str(i), 2) for i in ids]
    assert result.bucket.tolist() == expected


def test_integer_ids_agree_with_the_sdk_end_to_end(tmp_path):
    spec = write_spec(tmp_path, base_spec((1, 2, 3), coverage="80%", unit_type="integer", seed="int-e2e",
                                          layer="{id: ints, range: [0.1, 0.9]}"))
    rng = random.Random(12)
    ids = INT_IDS + rng.sample(range(1, 10**12), 3000)
    rows = [{"user_id": i, "country": rng.choice(["US", "US", "CA", None])} for i in ids]
    units = write_parquet(tmp_path / "units.parquet", rows, {"user_id": "BIGINT", "country": "VARCHAR"})
    counts = check_sdk_agrees(spec, units, tmp_path / "out.parquet")
    assert min(counts["assigned"].values()) > 100
    # and from a CSV, the SDK hashing the number String(id)
    csv_units = tmp_path / "units.csv"
    csv_units.write_text("user_id,country\n" + "".join(f"{r['user_id']},{r['country'] or ''}\n" for r in rows),
                         encoding="utf-8")
    out = tmp_path / "out.csv"
    assert cli("assign", spec, "--units", csv_units, "-o", out).exit_code == 0
    payload = export_payload(spec)
    for row, (uid, variant, bucket) in zip(rows, read_csv(out)[1:]):
        assert uid == str(row["user_id"])
        served, served_bucket = sdk(payload, {k: v for k, v in row.items() if v is not None})
        assert (served or "") == variant
        if served is not None:
            assert float(bucket) == served_bucket



def test_units_without_an_attribute_the_audience_needs_are_refused_with_its_name():
    from expc.runtime.tables import DataError
    from expc.runtime.units import Units

    plan = plan_of_text("""\
version: 1
experiment: {id: aud, unit: user_id}
attributes: {user_id: string, country: string, age: integer}
audiences:
  adults: {where: {$and: [{country: US}, {age: {$gte: 18}}]}}
variants: [{id: a, content: A}, {id: b, content: B}]
allocation: {audience: adults}
metrics: [{id: m, kind: proportion, event: e, role: primary}]
""")
    units = Units({"user_id": np.array(["u1", "u2"], dtype=object), "country": np.array(["US", "US"], dtype=object)},
                  {"user_id": "string", "country": "string"})
    with pytest.raises(DataError, match=r"units\.csv: the units have no `age` column, which the audience `adults`"):
        assign(plan, units, "units.csv")


# ---------------------------------------------------------- a file, chunk by chunk (assign_file)


def test_assign_file_in_chunks_is_assign_on_the_whole_table(tmp_path):
    from expc.runtime.assign import assign_file, output_columns

    plan = compile_text(tmp_path, base_spec((1, 2, 3), coverage="70%", layer="{id: chunks, range: [0.1, 0.9]}",
                                            seed="chunks"))
    rng = random.Random(21)
    rows = [{"user_id": uid, "country": rng.choice(["US", "US", "CA", None])} for uid in unique_ids(rng, 2000)]
    path = tmp_path / "units.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    whole = read_units(path, plan.attributes, "user_id")
    want = assign(plan, whole)
    want_columns = output_columns(plan, whole, want)
    for chunk_rows in (1, 7, 500, 1999, 5000):
        tables: list[dict[str, np.ndarray]] = []
        counts = assign_file(plan, path, tables.extend, chunk_rows=chunk_rows)
        assert len(tables) == -(-len(whole) // chunk_rows)
        for name, values in want_columns.items():
            got = np.concatenate([t[name] for t in tables])
            if values.dtype == np.float64:
                np.testing.assert_array_equal(got, values)
            else:
                assert got.tolist() == values.tolist(), name
        assert counts == want.counts([v.id for v in plan.variants])
        assert all(counts["excluded"][r] > 0 for r in ("not in the audience", "outside the layer", "outside coverage"))


def test_assign_file_refuses_a_missing_audience_attribute_before_writing(tmp_path):
    from expc.runtime.assign import assign_file
    from expc.runtime.tables import DataError

    plan = compile_text(tmp_path, base_spec((1, 1)))
    path = tmp_path / "units.csv"
    path.write_text("user_id\nu1\nu2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"units\.csv: the units have no `country` column"):
        assign_file(plan, path, lambda tables: pytest.fail("written before the check"), chunk_rows=1)


def test_only_the_hashed_ids_are_made_text(tmp_path):
    from expc.runtime.assign import unhashable

    for unit_type, column in (("string", np.array(["a", None, "", "0", "b"], dtype=object)),
                              ("string", np.array(["a", "", "", "0", "b"])),
                              ("integer", np.array([1.0, np.nan, 0.0, -0.0, 7.0]))):
        units = Units({"user_id": column}, {"user_id": unit_type})
        assert unhashable(units, "user_id").tolist() == (hash_values(units, "user_id") == "").tolist()
        rows = np.array([4, 0])
        assert hash_values(units, "user_id", rows).tolist() == hash_values(units, "user_id")[rows].tolist()
