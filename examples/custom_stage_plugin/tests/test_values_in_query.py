"""Tested the way a plugin author tests a stage: funreason_refine.testing on literal records."""

import pytest
from values_in_query import ValuesInQuery

from funreason_refine.testing import check, make_record

SEARCH = {
    "name": "search",
    "parameters": {
        "q": {"type": "str"},
        "limit": {"type": "int, optional"},
        "tags": {"type": "List[str], optional"},
        "fresh": {"type": "bool, optional"},
    },
}


def record(query, **arguments):
    return make_record(query=query, tools=[SEARCH], answers=[{"name": "search", "arguments": arguments}])


@pytest.mark.parametrize(
    "query, arguments",
    [
        ("Find  RED shoes, 5 results", {"q": "red shoes", "limit": 5}),
        ("Find red shoes, 5 results", {"q": "red shoes", "limit": 5.0}),
        ("Find red shoes tagged sale or new", {"q": "red shoes", "tags": ["sale", "new"], "fresh": True}),
        ("Find shoes", {"q": "shoes", "tags": ["a"]}),  # one-letter strings are not checked
    ],
)
def test_values_stated_in_the_query_pass(query, arguments):
    assert check(ValuesInQuery, record(query, **arguments)).action == "pass"


@pytest.mark.parametrize(
    "query, arguments, words",
    [
        ("Find red shoes", {"q": "blue shoes"}, "search(q='blue shoes')"),
        ("Find red shoes", {"q": "red shoes", "limit": 10}, "search(limit=10)"),
        ("Find red shoes", {"q": "red shoes", "tags": ["sale"]}, "search(tags='sale')"),
    ],
)
def test_invented_values_are_discarded_naming_them(query, arguments, words):
    verdict = check(ValuesInQuery, record(query, **arguments))
    assert (verdict.action, verdict.reason) == ("discard", "value_not_in_query")
    assert words in verdict.message


def test_config_keys():
    assert check(ValuesInQuery, record("Find red shoes", q="red shoes", limit=10), check_numbers=False).action == "pass"
    assert check(ValuesInQuery, record("Shoes", q="trainers"), ignore_parameters=["q"]).action == "pass"


def test_enum_choices_are_implied_not_stated():
    sort = {
        "type": "function",
        "function": {
            "name": "sort",
            "parameters": {"type": "object", "properties": {"order": {"type": "string", "enum": ["asc", "desc"]}}},
        },
    }
    r = make_record(
        query="Largest first, please", tools=[sort], answers=[{"name": "sort", "arguments": {"order": "desc"}}]
    )
    assert check(ValuesInQuery, r).action == "pass"
    assert check(ValuesInQuery, r, check_enums=True).reason == "value_not_in_query"
