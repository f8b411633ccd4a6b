"""Audience conditions at run time: GrowthBook's semantics, one unit and a whole table.

Examples per operator family (each also checked against the GrowthBook SDK),
then properties: ``evaluate`` agrees with ``growthbook.core.evalCondition`` on
random attributes and random conditions the static checker accepts, and
``evaluate_columns`` agrees with ``evaluate`` row by row.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
from growthbook.core import evalCondition
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from expc.compiler.conditions import TYPE_NAMES, check_condition
from expc.runtime.conditions import evaluate, evaluate_columns
from expc.runtime.units import Units

TYPES = {
    "country": "string",
    "name": "string",
    "age": "integer",
    "score": "number",
    "beta": "boolean",
    "tags": "list[string]",
    "app": "version",
    "joined": "datetime",
}

# --------------------------------------------------------------------------
# examples: condition, attributes, expected

LOGICAL = [
    ({}, {}, True),
    ({"$and": [{"country": "US"}, {"age": {"$gte": 18}}]}, {"country": "US", "age": 20}, True),
    ({"$and": [{"country": "US"}, {"age": {"$gte": 18}}]}, {"country": "US", "age": 17}, False),
    ({"$or": [{"country": "US"}, {"age": {"$gte": 18}}]}, {"country": "FR", "age": 30}, True),
    ({"$nor": [{"country": "US"}, {"beta": True}]}, {"country": "FR", "beta": False}, True),
    ({"$nor": [{"country": "US"}, {"beta": True}]}, {"country": "FR", "beta": True}, False),
    ({"$not": {"country": "US"}}, {}, True),
    # every key of a mapping must hold, $or included
    ({"country": "US", "$or": [{"age": 1}, {"age": 2}]}, {"country": "US", "age": 3}, False),
    ({"country": "US", "$or": [{"age": 1}, {"age": 2}]}, {"country": "US", "age": 2}, True),
]

COMPARISON = [
    ({"age": 3}, {"age": 3}, True),
    ({"age": 3}, {"age": 3.0}, True),  # one number type
    ({"beta": True}, {"beta": 1}, False),  # strict: a boolean is not a number
    ({"country": None}, {}, True),  # null literal: missing
    ({"tags": ["a", "b"]}, {"tags": ["a", "b"]}, True),  # a literal list equals an equal list
    ({"tags": ["a", "b"]}, {"tags": ["b", "a"]}, False),
    ({"tags": ["a"]}, {"tags": "a"}, False),
    ({"age": {"$eq": 3}}, {"age": 3}, True),
    ({"age": {"$ne": 3}}, {}, True),  # null is not 3
    ({"age": {"$eq": None}}, {}, True),
    ({"age": {"$lt": 5}}, {"age": 4.5}, True),
    ({"age": {"$lt": 5}}, {}, False),  # null is ordered with nothing
    ({"age": {"$lt": 5}}, {"age": "4"}, False),  # no coercion, unlike JavaScript
    ({"age": {"$lt": 2**60 + 1}}, {"age": 2**60}, True),  # exact, beyond 2**53
    ({"age": {"$gte": 18, "$lt": 65}}, {"age": 65}, False),
    ({"country": {"$lt": "a"}}, {"country": "B"}, True),  # by code unit, uppercase first
    ({"joined": {"$gte": "2026-01-01"}}, {"joined": "2026-03-04T10:00:00Z"}, True),
    # UTF-16 order: an emoji (a surrogate pair, D83D DE00) sorts below U+FFFF
    ({"name": {"$lt": "\uffff"}}, {"name": "😀"}, True),
    ({"name": {"$gt": "\uffff"}}, {"name": "😀"}, False),
    ({"name": {"$lt": "日本"}}, {"name": "日"}, True),
]

MEMBERSHIP = [
    ({"country": {"$in": ["US", "CA"]}}, {"country": "CA"}, True),
    ({"country": {"$in": ["US", "CA"]}}, {}, False),
    ({"country": {"$in": ["US", None]}}, {}, True),  # null is in a list holding null
    ({"country": {"$nin": ["US", "CA"]}}, {}, True),
    ({"country": {"$in": ["us"]}}, {"country": "US"}, False),
    ({"country": {"$ini": ["us"]}}, {"country": "US"}, True),
    ({"country": {"$nini": ["us"]}}, {"country": "US"}, False),
    ({"age": {"$in": [1, 2]}}, {"age": 1.0}, True),
    ({"age": {"$in": [1, None]}}, {}, True),
    ({"age": {"$nin": [1, None]}}, {"age": None}, False),
    ({"beta": {"$in": [True]}}, {"beta": 1}, False),  # strict, again
    ({"tags": {"$in": ["a", "z"]}}, {"tags": ["x", "a"]}, True),  # lists intersect
    ({"tags": {"$in": ["a", "z"]}}, {"tags": []}, False),
    ({"tags": {"$nin": ["a"]}}, {"tags": ["b"]}, True),
    ({"tags": {"$ini": ["VIP"]}}, {"tags": ["vip"]}, True),
]

ARRAY = [
    ({"tags": {"$all": ["a", "b"]}}, {"tags": ["b", "c", "a"]}, True),
    ({"tags": {"$all": ["a", "b"]}}, {"tags": ["a"]}, False),
    ({"tags": {"$all": ["a", {"$regex": "^b"}]}}, {"tags": ["a", "bee"]}, True),
    ({"tags": {"$alli": ["A"]}}, {"tags": ["a"]}, True),
    ({"tags": {"$all": []}}, {"tags": []}, True),
    ({"tags": {"$all": []}}, {}, False),  # only a list holds every value
    ({"tags": {"$size": 2}}, {"tags": ["a", "b"]}, True),
    ({"tags": {"$size": {"$gte": 2}}}, {"tags": ["a"]}, False),
    ({"tags": {"$size": 0}}, {}, False),
    ({"tags": {"$elemMatch": {"$regex": "^v"}}}, {"tags": ["new", "vip"]}, True),
    ({"tags": {"$elemMatch": {"$in": ["x", "y"]}}}, {"tags": ["a", "b"]}, False),
    ({"tags": {"$elemMatch": {"$ne": "a"}}}, {"tags": ["a"]}, False),
    ({"tags": {"$elemMatch": {"$exists": True}}}, {}, False),
    ({"tags": {"$elemMatch": {"$exists": False}}}, {"tags": [None]}, False),  # null elements are skipped
]

EXISTS_TYPE = [
    ({"country": {"$exists": True}}, {"country": ""}, True),
    ({"country": {"$exists": False}}, {}, True),
    ({"country": {"$exists": False}}, {"country": None}, True),
    ({"country": {"$type": "string"}}, {"country": "US"}, True),
    ({"age": {"$type": "number"}}, {"age": 3}, True),
    ({"beta": {"$type": "boolean"}}, {"beta": False}, True),
    ({"tags": {"$type": "array"}}, {"tags": []}, True),
    ({"country": {"$type": "null"}}, {}, True),
    ({"country": {"$type": "undefined"}}, {}, False),  # the Python SDK: missing is null
]

REGEX = [
    ({"country": {"$regex": "S"}}, {"country": "US"}, True),  # anywhere in the text
    ({"country": {"$regex": "^s"}}, {"country": "US"}, False),
    ({"country": {"$regexi": "^us$"}}, {"country": "US"}, True),
    ({"country": {"$regex": "."}}, {}, False),
    ({"country": {"$notRegex": "^X"}}, {"country": "US"}, True),
    ({"country": {"$notRegex": "^X"}}, {}, True),  # a missing value does not match
    ({"country": {"$notRegexi": "^u"}}, {"country": "US"}, False),
    ({"name": {"$regex": "😀"}}, {"name": "hi 😀"}, True),
]

VERSION = [
    ({"app": {"$vgt": "9.1.0"}}, {"app": "10.0.0"}, True),  # numeric parts as numbers
    ({"app": {"$vgt": "1.0.0-rc.1"}}, {"app": "1.0.0"}, True),  # a release after its pre-releases
    ({"app": {"$vlt": "1.0.0-rc.2"}}, {"app": "1.0.0-rc.1"}, True),
    ({"app": {"$vlt": "1.0.0-rc.1.1"}}, {"app": "1.0.0-rc.1"}, True),  # only x.y.z gets the release mark
    ({"app": {"$veq": "1.2.3"}}, {"app": "v1.2.3"}, True),  # leading v dropped
    ({"app": {"$veq": "1.2.3"}}, {"app": "1.2.3+build.7"}, True),  # build metadata dropped
    ({"app": {"$vgte": "2.0.0", "$vlt": "3.0.0"}}, {"app": "2.10.1"}, True),
    ({"app": {"$veq": "1.0.0"}}, {}, False),
    ({"app": {"$vne": "1.0.0"}}, {}, True),  # not a version string: $vne holds
    ({"name": {"$vlte": "v2.0.0-rc.1"}}, {"name": "2.0.0-beta"}, True),
]

NEGATION = [
    ({"age": {"$not": {"$gt": 100}}}, {"age": 5}, True),
    ({"age": {"$not": {"$gt": 100}}}, {}, True),  # null is not > 100
    ({"age": {"$not": {"$gte": 1, "$lte": 9}}}, {"age": 5}, False),
    ({"$not": {"$or": [{"age": 1}, {"country": "US"}]}}, {"age": 2}, True),
]

EXAMPLES = [
    pytest.param(c, a, e, id=f"{family}-{i}")
    for family, table in [("logical", LOGICAL), ("comparison", COMPARISON), ("membership", MEMBERSHIP),
                          ("array", ARRAY), ("exists-type", EXISTS_TYPE), ("regex", REGEX),
                          ("version", VERSION), ("not", NEGATION)]
    for i, (c, a, e) in enumerate(table)
]


@pytest.mark.parametrize("condition, attributes, expected", EXAMPLES)
def test_examples(condition, attributes, expected):
    assert check_condition(condition, TYPES, ()) == []
    assert evaluate(condition, attributes) is expected
    assert evalCondition(attributes, condition) is expected  # the table is GrowthBook's truth


@pytest.mark.parametrize(
    "condition",
    [
        {"country": {"$foo": "US"}},
        {"$not": {"country": {"$foo": "US"}}},  # $not cannot turn "unknown" into a match
        {"$or": [{"country": "US"}, {"country": {"$inGroup": "g"}}]},
        {"$savedGroup": {"id": "g"}},
    ],
)
def test_operators_outside_the_checker_match_nobody(condition):
    assert evaluate(condition, {"country": "US"}) is False
    units = Units({"country": np.array(["US", None], dtype=object)}, {"country": "string"})
    assert evaluate_columns(condition, units).tolist() == [False, False]


def test_an_evaluation_error_fails_the_whole_condition():
    # $elemMatch with a bare value is refused by the checker; GrowthBook fails on it
    condition = {"$not": {"tags": {"$elemMatch": "a"}}}
    assert evaluate(condition, {"tags": ["a"]}) is False
    assert evalCondition({"tags": ["a"]}, condition) is False


def test_empty_logical_lists():
    # refused by the checker (E037), but GrowthBook's answers are these
    for condition, expected in [({"$or": []}, True), ({"$nor": []}, False), ({"$and": []}, True)]:
        assert evaluate(condition, {}) is expected is evalCondition({}, condition)
        assert evaluate_columns(condition, Units({"age": np.zeros(2)}, TYPES)).tolist() == [expected] * 2


def test_columns_example():
    units = Units(
        {
            "country": np.array(["US", "FR", None, "US", "日本"], dtype=object),
            "age": np.array([17.0, 30.0, 40.0, np.nan, 2.5]),
            "tags": column("list[string]", [["vip"], [], None, ["a", "vip"], ["x"]]),
        },
        TYPES,
    )
    where = {"country": {"$in": ["US", "日本"]}, "age": {"$not": {"$lt": 18}}, "beta": {"$exists": False}}
    assert evaluate_columns(where, units).tolist() == [False, False, False, True, False]
    assert evaluate_columns({"tags": {"$elemMatch": {"$eq": "vip"}}}, units).tolist() == [
        True, False, False, True, False]
    assert evaluate_columns({"age": {"$in": [17, 2.5]}}, units).tolist() == [True, False, False, False, True]
    assert evaluate_columns({"age": {"$type": "number"}}, units).tolist() == [True, True, True, False, True]
    assert evaluate_columns({"missing": {"$nin": ["x"]}}, units).tolist() == [True] * 5


# --------------------------------------------------------------------------
# random attributes and conditions

TEXT_POOL = ["US", "us", "FR", "", "a", "B", "vip", "é", "É", "ß", "İ", "日本", "😀", "\ue000", "\U0001f600x",
             "ab"]
TEXTS = st.sampled_from(TEXT_POOL) | st.text(max_size=3)
INTEGERS = st.integers(-3, 3) | st.integers(-(2**53), 2**53)
NUMBERS = INTEGERS | st.floats(allow_nan=False) | st.sampled_from([0.5, -0.0, 2.0, math.inf])
VERSION_POOL = ["1.2.3", "v2.0.0-rc.1", "2.0.0", "2.0.0-rc.2", "10.0.0", "9.1.0", "1.2", "1.2.3.4",
                "1.2.3+build.5", "1.0.0-beta", "1.0.0-beta.2", "v1", "0"]
VERSION_ARGS = st.sampled_from(VERSION_POOL) | st.builds(
    "{}.{}.{}".format, st.integers(0, 12), st.integers(0, 12), st.integers(0, 12))
VALUES = {
    "string": TEXTS,
    "integer": INTEGERS,
    "number": NUMBERS,
    "boolean": st.booleans(),
    "list[string]": st.lists(st.sampled_from(TEXT_POOL[:8]), max_size=4),
    "version": VERSION_ARGS | st.sampled_from(["", "abc", "1.٣.0"]),
    "datetime": st.sampled_from(["2026-01-01", "2026-01-01T10:00:00Z", "2025-12-31T23:59:59Z", ""]),
}
# what a condition may compare with: an integer attribute still meets huge integers and NaN
ARGS = {**VALUES, "integer": INTEGERS | st.just(2**60 + 1), "number": NUMBERS | st.just(math.nan)}
REGEXES = st.sampled_from(["^U", "s$", "S", "é", "^$", ".", "😀", "[0-9]+", "^v?1\\.", "日", "(?i)us", "ab|FR"])
ORDERED = {"string", "integer", "number", "version", "datetime"}


def element(kind: str) -> str:
    return "string" if kind == "list[string]" else kind


@cache  # one strategy per (kind, depth): hypothesis validates a new strategy object on every draw
def operators(kind: str, depth: int) -> st.SearchStrategy[dict]:
    """A mapping of operators on an attribute of ``kind`` that the checker accepts."""
    arg, item = ARGS[kind], ARGS[element(kind)]
    choices = [
        st.tuples(st.sampled_from(["$in", "$nin", "$ini", "$nini"]),
                  st.lists(item | st.none(), min_size=1, max_size=4)),
        st.tuples(st.just("$exists"), st.booleans()),
        st.tuples(st.just("$type"), st.sampled_from(sorted(TYPE_NAMES))),
    ]
    if kind != "list[string]":
        choices.append(st.tuples(st.sampled_from(["$eq", "$ne"]), arg | st.none()))
    if kind in ORDERED:
        choices.append(st.tuples(st.sampled_from(["$lt", "$lte", "$gt", "$gte"]), arg))
    if kind in ("string", "version", "datetime"):
        choices.append(st.tuples(st.sampled_from(["$regex", "$regexi", "$notRegex", "$notRegexi"]), REGEXES))
    if kind in ("string", "version"):
        choices.append(st.tuples(st.sampled_from(["$veq", "$vne", "$vlt", "$vlte", "$vgt", "$vgte"]), VERSION_ARGS))
    if kind == "list[string]":
        on_text = operators("string", depth - 1) if depth > 0 else st.nothing()
        choices += [
            st.tuples(st.sampled_from(["$all", "$alli"]), st.lists(TEXTS | on_text, max_size=3)),
            st.tuples(st.just("$size"), st.integers(0, 4) | operators("integer", 0)),
        ]
        if depth > 0:
            choices.append(st.tuples(st.just("$elemMatch"), on_text))
    if depth > 0:
        choices.append(st.tuples(st.just("$not"), operators(kind, depth - 1)))
    return st.lists(st.one_of(choices), min_size=1, max_size=3).map(dict)


@cache
def clause(kind: str, depth: int) -> st.SearchStrategy:
    """What an attribute maps to: a literal (a whole list for a list) or operators."""
    return st.one_of(VALUES[kind] | st.none(), operators(kind, depth))


FIELDS = st.one_of([st.tuples(st.just(name), clause(kind, 1)) for name, kind in sorted(TYPES.items())])


def conditions(depth: int) -> st.SearchStrategy[dict]:
    entries = [FIELDS]
    if depth > 0:
        sub = conditions(depth - 1)
        entries += [
            st.tuples(st.sampled_from(["$and", "$or", "$nor"]), st.lists(sub, min_size=1, max_size=2)),
            st.tuples(st.just("$not"), sub),
        ]
    return st.lists(st.one_of(entries), max_size=3).map(dict)


CONDITIONS = conditions(2)
ATTRIBUTES = st.fixed_dictionaries({}, optional={name: VALUES[kind] | st.none() for name, kind in TYPES.items()})


# The random tests below draw a few hundred cases each (a few ms apiece, most of it drawing the data); the
# corners (UTF-16 order, huge integers, null, versions, regexes) are pinned as examples above, each also
# checked against the GrowthBook SDK, and every test run draws new cases.
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(condition=CONDITIONS, units=st.lists(ATTRIBUTES, min_size=1, max_size=6))
def test_evaluate_agrees_with_growthbook(condition, units):
    assume(check_condition(condition, TYPES, ()) == [])
    assert [evaluate(condition, a) for a in units] == [evalCondition(a, condition) for a in units]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(set(TYPES.values()))), data=st.data())
def test_single_clauses_agree_with_growthbook(kind, data):
    """One attribute, one clause (nested one level deeper than above), many values."""
    expected = data.draw(clause(kind, 2), "clause")
    condition = {"x": expected}
    assume(check_condition(condition, {"x": kind}, ()) == [])
    values = data.draw(st.lists(VALUES[kind] | st.none(), min_size=1, max_size=10), "values")
    for value in values:
        attributes = {"x": value}
        assert evaluate(condition, attributes) == evalCondition(attributes, condition), value


# --------------------------------------------------------------------------
# a whole table


def column(kind: str, values: list) -> np.ndarray:
    """Values as ``expc.runtime.units`` stores them."""
    if kind in ("integer", "number"):
        return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    out[:] = [tuple(v) if isinstance(v, list) else v for v in values]
    return out


TABLE_VALUES = {**VALUES, "integer": st.integers(-5, 5) | st.integers(-(10**9), 10**9)}
# the values a column draws from (built once: hypothesis validates a new strategy object on every draw)
POOLS = {kind: st.lists(values | st.none(), min_size=1, max_size=4) for kind, values in TABLE_VALUES.items()}


@st.composite
def tables(draw) -> tuple[list[dict], Units]:
    """Rows (for evaluate) and the same units as columns: nulls, missing columns, repeated values."""
    n = draw(st.integers(1, 12))
    missing = draw(st.lists(st.sampled_from(sorted(TYPES)), max_size=3, unique=True))
    names = [name for name in sorted(TYPES) if name not in missing]
    rows: list[dict] = [{} for _ in range(n)]
    columns = {}
    for name in names:
        pool = draw(POOLS[TYPES[name]])
        picks = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
        columns[name] = column(TYPES[name], picks)
        for row, value in zip(rows, picks):
            row[name] = value
    return rows, Units(columns, TYPES)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(condition=CONDITIONS, table=tables())
def test_columns_agree_with_rows(condition, table):
    assume(check_condition(condition, TYPES, ()) == [])
    rows, units = table
    mask = evaluate_columns(condition, units)
    assert mask.dtype == bool and mask.shape == (len(rows),)
    assert mask.tolist() == [evaluate(condition, row) for row in rows]


def test_a_million_units():
    n = 1_000_000
    rng = np.random.default_rng(7)
    countries = np.array(["US", "CA", "FR", "DE", "日本", "BR", None], dtype=object)
    plans = np.array(["free", "pro", "team", None], dtype=object)
    interests = np.empty(9, dtype=object)
    interests[:] = [(), ("running",), ("running", "promotions"), ("recommendations",), ("books", "tea"),
                    ("Promotions",), ("tea",), ("a", "b", "recommendations"), None]
    days = rng.integers(0, 120, n).astype(np.float64)
    days[rng.random(n) < 0.05] = np.nan
    units = Units(
        {
            "country": countries[rng.integers(0, len(countries), n)],
            "signup_days": days,
            "interests": interests[rng.integers(0, len(interests), n)],
            "plan": plans[rng.integers(0, len(plans), n)],
        },
        {"country": "string", "signup_days": "integer", "interests": "list[string]", "plan": "string"},
    )
    audience = {
        "country": {"$in": ["US", "CA", "日本"]},
        "signup_days": {"$lte": 30},
        "$or": [{"interests": {"$elemMatch": {"$in": ["promotions", "recommendations"]}}}, {"plan": {"$ne": "free"}}],
    }
    mask = evaluate_columns(audience, units)
    assert mask.shape == (n,) and 0 < mask.sum() < n
    for i in rng.choice(n, 2_000, replace=False).tolist():
        row = {
            "country": units.columns["country"][i],
            "signup_days": None if math.isnan(days[i]) else int(days[i]),
            "interests": None if units.columns["interests"][i] is None else list(units.columns["interests"][i]),
            "plan": units.columns["plan"][i],
        }
        assert mask[i] == evaluate(audience, row), row


def conforms(attributes: dict) -> bool:
    """Whether every value has its attribute's declared type (or is null), so a column can hold it."""
    fits = {"string": str, "version": str, "datetime": str, "integer": int, "number": (int, float),
            "boolean": bool, "list[string]": list}
    return all(v is None or (isinstance(v, fits[TYPES[k]]) and (TYPES[k] == "boolean" or not isinstance(v, bool)))
               for k, v in attributes.items())


# every example's unit that a table can hold, and values where code-point and UTF-16 order differ
EXAMPLE_ROWS = [a for _, a, _ in (p.values for p in EXAMPLES) if conforms(a)] + [
    {"name": name, "country": name, "tags": [name, "a"]}
    for name in ["😀", "\ue000", "\uffff", "\U0001f600x", "日", "é"]
]


@pytest.mark.parametrize(
    "condition",
    [p.values[0] for p in EXAMPLES]
    + [{"name": {op: arg}} for op in ("$lt", "$lte", "$gt", "$gte") for arg in ("\ue000", "😀", "日本", "a")]
    + [{"country": {op: ["US", None, "😀"]}} for op in ("$in", "$nin", "$ini", "$nini")]
    + [{"age": {op: arg}} for op in ("$in", "$nin", "$ini") for arg in ([3, None], [3, None, 2**60])]
    + [{"age": {op: arg}} for op in ("$eq", "$ne", "$lt", "$gte") for arg in (2**60, 2**60 + 1, 3, 3.5, math.nan)],
)
def test_columns_on_the_examples(condition):
    rows = EXAMPLE_ROWS
    units = Units({name: column(kind, [row.get(name) for row in rows]) for name, kind in TYPES.items()}, TYPES)
    assert evaluate_columns(condition, units).tolist() == [evaluate(condition, row) for row in rows]
