"""Audience conditions: GrowthBook's syntax, checked against declared attribute types."""

from __future__ import annotations

import pytest

from expc.compiler.conditions import check_condition

ATTRS = {
    "country": "string",
    "age": "integer",
    "score": "number",
    "beta": "boolean",
    "tags": "list[string]",
    "app": "version",
    "joined": "datetime",
}


def found(condition):
    return [(f.code, f.path) for f in check_condition(condition, ATTRS, ("where",))]


@pytest.mark.parametrize(
    "condition",
    [
        {"country": "US"},
        {"country": {"$in": ["US", "CA"]}, "age": {"$gte": 18, "$lt": 65}},
        {"$or": [{"beta": True}, {"score": {"$gt": 0.5}}]},
        {"$and": [{"tags": {"$elemMatch": {"$eq": "vip"}}}, {"tags": {"$size": {"$gt": 1}}}]},
        {"tags": {"$all": ["a", "b"]}, "app": {"$vgte": "2.1.0"}},
        {"country": {"$regex": "^U", "$exists": True, "$type": "string"}},
        {"$nor": [{"country": {"$nin": ["FR"]}}], "$not": {"age": {"$lte": 3}}},
        {"$or": [{"age": 1}], "country": "US"},  # GrowthBook 4 evaluates every key of a mapping
        {"country": {"$notRegex": "^X"}},
        {"age": {"$not": {"$gt": 100}}},
        {"joined": {"$gte": "2026-01-01"}},
        {"country": None},
        {"tags": ["vip", "new"]},
        {"tags": {"$all": ["a", {"$regex": "^b"}]}, "app": {"$vlt": "v10.0.0-rc.1+build5"}},
        {"country": {"$ini": ["us"], "$regexi": "^u"}, "tags": {"$alli": ["A"]}},
    ],
)
def test_valid_conditions_pass(condition):
    assert found(condition) == []


@pytest.mark.parametrize(
    "condition, code, path",
    [
        ({"contry": "US"}, "E035", ("where", "contry")),
        ({"$or": [{"agee": 3}]}, "E035", ("where", "$or", 0, "agee")),
        ({"beta": {"$gt": 1}}, "E036", ("where", "beta", "$gt")),
        ({"country": {"$size": 2}}, "E036", ("where", "country", "$size")),
        ({"age": {"$vgt": "1.0"}}, "E036", ("where", "age", "$vgt")),
        ({"age": {"$regex": "1"}}, "E036", ("where", "age", "$regex")),
        ({"age": "eighteen"}, "E036", ("where", "age")),
        ({"country": {"$in": ["US", 3]}}, "E036", ("where", "country", "$in", 1)),
        ({"beta": 1}, "E036", ("where", "beta")),
        ({"country.city": "x"}, "E036", ("where", "country.city")),
        ({"country": {"$inn": ["US"]}}, "E037", ("where", "country", "$inn")),
        ({"$xor": []}, "E037", ("where", "$xor")),
        ({"$or": []}, "E037", ("where", "$or")),
        ({"$and": {"age": 3}}, "E037", ("where", "$and")),
        ({"country": {"$in": "US"}}, "E037", ("where", "country", "$in")),
        ({"country": {"$exists": "yes"}}, "E037", ("where", "country", "$exists")),
        ({"country": {"$type": "str"}}, "E037", ("where", "country", "$type")),
        ({"country": {"$regex": "("}}, "E048", ("where", "country", "$regex")),
        ({"country": {"eq": "US"}}, "E037", ("where", "country")),
        ({"tags": {"$elemMatch": []}}, "E037", ("where", "tags", "$elemMatch")),
        ({"app": {"$vgt": 2}}, "E037", ("where", "app", "$vgt")),
        ({"app": {"$vgt": "latest"}}, "E037", ("where", "app", "$vgt")),
        # GrowthBook compares a list attribute as a whole, and never matches $regex on a list
        ({"tags": "vip"}, "E036", ("where", "tags")),
        ({"tags": {"$eq": "vip"}}, "E036", ("where", "tags", "$eq")),
        ({"tags": {"$regex": "^v"}}, "E036", ("where", "tags", "$regex")),
        ({"tags": {"$elemMatch": {"foo": 1}}}, "E037", ("where", "tags", "$elemMatch")),
        ({"country": {"$in": []}}, "E037", ("where", "country", "$in")),
        ({"tags": {"$ne": ["vip"]}}, "E036", ("where", "tags", "$ne")),
        ({"tags": {"$size": {"$gt": "x"}}}, "E036", ("where", "tags", "$size", "$gt")),
        ({"tags": {"$size": {"$inGroup": "g"}}}, "E037", ("where", "tags", "$size", "$inGroup")),
        ({"tags": {"$size": {"n": 1}}}, "E037", ("where", "tags", "$size")),
        ({"age": {"$not": {}}}, "E037", ("where", "age", "$not")),
    ],
)
def test_each_mistake_is_found_where_it_is(condition, code, path):
    assert found(condition) == [(code, path)]


def test_unknown_operator_suggests_the_real_one():
    [f] = check_condition({"country": {"$inn": ["US"]}}, ATTRS, ())
    assert f.hint == "did you mean `$in`?" and f.on_key


def test_undeclared_attribute_suggests_a_declared_one():
    [f] = check_condition({"contry": "US"}, ATTRS, ())
    assert f.hint == "did you mean `country`?"


def test_an_infinite_bound_is_refused_because_json_cannot_carry_it():
    from conftest import BASE, check_text, codes

    text = BASE.replace("      country: US\n", "      country: US\n      signup_days: {$lte: .inf}\n")
    result = check_text(text)
    assert codes(result) == ["E036"] and "inf" in result.diagnostics[0].message
