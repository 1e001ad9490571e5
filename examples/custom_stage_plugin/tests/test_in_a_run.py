"""The stage in whole runs, with the fixtures funreason-refine gives plugin authors' tests
(record_factory, register_stage, fake_judge: no import needed)."""

import json

from values_in_query import ValuesInQuery

from funreason_refine.testing import run_rows

SEARCH = {"name": "search", "parameters": {"q": {"type": "str"}}}
STAGES = '[[stages]]\nname = "classification"\n[[stages]]\nname = "values_in_query"\n'


def row(rid, query, q):
    return {
        "id": rid,
        "query": query,
        "tools": json.dumps([SEARCH]),
        "answers": json.dumps([{"name": "search", "arguments": {"q": q}}]),
    }


def test_the_stage_in_a_rules_only_run(register_stage, tmp_path):
    register_stage(ValuesInQuery, replace=True)  # replace: the installed entry point may have registered it
    out = run_rows(
        [row("a", "Find red shoes", "red shoes"), row("b", "Find red shoes", "blue shoes")], tmp_path, STAGES
    )
    assert [r["id"] for r in out["kept"]] == ["a"]
    assert [(r["id"], r["stage"], r["reason"]) for r in out["discarded"]] == [
        ("b", "values_in_query", "value_not_in_query")
    ]


def test_the_stage_before_a_judge(register_stage, fake_judge, tmp_path):
    register_stage(ValuesInQuery, replace=True)
    server = fake_judge(lambda request: "<judge>False</judge><reason>not polite</reason>")
    judged = (
        '[[stages]]\nname = "classification"\njudge = false\n[[stages]]\nname = "values_in_query"\n'
        '[[stages]]\nname = "polite"\nspec = {description = "Polite?", prompt = "Polite? {query}"}\n'
    )
    judge = f'[judge]\nmodel = "openai/fake"\napi_base = "{server.api_base}"\n'
    out = run_rows(
        [row("a", "Find red shoes", "red shoes"), row("b", "Find red shoes", "blue shoes")], tmp_path, judged, judge
    )
    # b never reaches the judge: the stage's rules discard it first
    assert [r["reason"] for r in out["discarded"]] == ["judge_rejected", "value_not_in_query"]
    assert [r.prompt for r in server.requests] == ["Polite? Find red shoes"]


def test_records_from_the_factory(record_factory):
    from funreason_refine.testing import check

    record = record_factory(
        query="Find red shoes", tools=[SEARCH], answers=[{"name": "search", "arguments": {"q": "red"}}]
    )
    assert check(ValuesInQuery, record).action == "pass"
