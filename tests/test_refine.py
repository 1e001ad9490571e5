"""The policy of one record through the stages: what each verdict leads to."""

import pytest

from funreason_refine.record import FunctionCall, Verdict
from funreason_refine.refine import refine_record
from funreason_refine.stages.base import PipelineStage, Stage
from funreason_refine.stages.cot import Cot
from funreason_refine.stages.function_params import FunctionParams
from funreason_refine.testing import make_record

FORECAST = {"name": "get_forecast", "parameters": {"city": {"type": "str"}, "days": {"type": "int"}}}
WEATHER = {"name": "get_weather", "parameters": {"city": {"type": "str"}}}


def staged(*stages, on_fail="regenerate", max_attempts=3):
    return [PipelineStage(stage=s, plugin="tests", on_fail=on_fail, max_attempts=max_attempts) for s in stages]


def refine(record, stages):
    return refine_record(record, stages)


class SwitchToForecast(Stage):
    """Regenerates every get_weather answer into a get_forecast answer."""

    name = "switch"

    def check(self, record):
        if record.calls and record.calls[0].name == "get_weather":
            new = [FunctionCall(name="get_forecast", arguments={"city": "Paris", "days": 1})]
            return Verdict.regenerate(record.model_copy(update={"answer": new}), "switched", "to forecast")
        return Verdict.passed()


class AlwaysRegenerate(Stage):
    name = "restless"

    def check(self, record):
        return Verdict.regenerate(record.model_copy(update={"cot": (record.cot or "") + "x"}), "again", "once more")


class Explodes(Stage):
    name = "explodes"

    def check(self, record):
        raise KeyError("boom")


class ReturnsGarbage(Stage):
    name = "garbage"

    def check(self, record):
        return "pass"


def test_repair_is_rechecked_and_the_trail_records_both_attempts():
    record = make_record(
        tools=[FORECAST], answers=[{"name": "get_forecast", "arguments": {"city": "Rome", "days": "2"}}]
    )
    outcome = refine(record, staged(FunctionParams()))
    assert outcome.outcome == "kept"
    assert outcome.record.calls[0].arguments == {"city": "Rome", "days": 2}
    assert [(s.verdict, s.reason, s.attempt) for s in outcome.record.trail] == [
        ("regenerate", "coerced_type", 1),
        ("pass", None, 2),
    ]


def test_cot_is_rechecked_when_a_later_stage_changes_the_answer():
    record = make_record(tools=[WEATHER, FORECAST], cot="The user asks for Paris: get_weather.")
    outcome = refine(record, staged(Cot(), SwitchToForecast()))
    assert (outcome.outcome, outcome.stage, outcome.reason) == ("discarded", "cot", "cot_misses_function")
    assert [s.stage for s in outcome.record.trail] == ["cot", "switch", "cot"]


def test_regeneration_is_bounded_by_max_attempts():
    outcome = refine(make_record(), staged(AlwaysRegenerate(), max_attempts=2))
    assert (outcome.outcome, outcome.reason) == ("discarded", "again")
    assert "after 2 regeneration(s)" in outcome.message
    assert [s.attempt for s in outcome.record.trail] == [1, 2, 3]


def test_on_fail_discard_turns_a_repair_into_a_discard():
    record = make_record(
        tools=[FORECAST], answers=[{"name": "get_forecast", "arguments": {"city": "Rome", "days": "2"}}]
    )
    outcome = refine(record, staged(FunctionParams(), on_fail="discard"))
    assert (outcome.outcome, outcome.reason) == ("discarded", "coerced_type")


@pytest.mark.parametrize("stage, words", [(Explodes(), "raised KeyError"), (ReturnsGarbage(), "not a Verdict")])
def test_a_broken_stage_sends_the_record_to_errors_naming_the_plugin(stage, words):
    outcome = refine(make_record(), staged(stage))
    assert outcome.outcome == "errors"
    assert words in outcome.message and "plugin tests" in outcome.message


def test_a_stage_cannot_move_a_record():
    class Mover(Stage):
        name = "mover"

        def check(self, record):
            return Verdict(action="pass", record=record.model_copy(update={"index": 99}))

    assert refine(make_record(index=3), staged(Mover())).record.index == 3


class Mixed(Stage):
    """A different path through the policy for each record, by index."""

    name = "mixed"

    def check(self, record):
        kind = record.index % 6
        if kind == 0:
            raise ValueError("broken plugin")
        if kind == 1 and record.calls and record.calls[0].name == "get_weather":  # changes the answer: cot re-checks
            new = [FunctionCall(name="get_forecast", arguments={"city": "Paris", "days": 1})]
            return Verdict.regenerate(record.model_copy(update={"answer": new}), "switched", "to forecast")
        if kind == 2:
            return Verdict.passed("enough", "accepted here", final=True)
        if kind == 3:
            return Verdict.discard("bad", "discarded here")
        if kind == 4:  # never satisfied: bounded by max_attempts
            return Verdict.regenerate(record.model_copy(update={"cot": (record.cot or "") + "."}), "again", "more")
        return Verdict.passed()


class Last(Stage):
    name = "last"

    def check(self, record):
        return Verdict(action="pass", record=record.model_copy(update={"target": f"done {record.index}"}))


def test_every_path_through_the_policy():
    stages = staged(Cot(), Mixed(), Last(), max_attempts=2)
    cot = "I call get_weather."
    got = {}
    for i in range(6):
        finished = refine(make_record(tools=[WEATHER, FORECAST], cot=cot, index=i), stages)
        got[i] = (
            finished.outcome,
            finished.stage,
            finished.reason,
            [(s.stage, s.verdict) for s in finished.record.trail],
        )
    assert got[0][:2] == ("errors", "mixed") and got[0][3] == [("cot", "pass")]
    # the answer changed: the CoT (which names get_weather) is checked again, and fails
    assert got[1] == (
        "discarded",
        "cot",
        "cot_misses_function",
        [("cot", "pass"), ("mixed", "regenerate"), ("cot", "discard")],
    )
    assert got[2] == ("kept", None, None, [("cot", "pass"), ("mixed", "pass")])  # final: "last" never ran
    assert got[3] == ("discarded", "mixed", "bad", [("cot", "pass"), ("mixed", "discard")])
    assert got[4][:3] == ("discarded", "mixed", "again") and [v for _, v in got[4][3]].count("regenerate") == 3
    assert got[5] == ("kept", None, None, [("cot", "pass"), ("mixed", "pass"), ("last", "pass")])


def test_hard_pool_and_a_regenerate_without_a_record():
    class Empty(Stage):
        name = "empty"

        def check(self, record):
            return Verdict("regenerate", "oops", "forgot the record")

    finished = refine(make_record(), staged(Empty(), on_fail="hard_pool"))
    assert (finished.outcome, finished.reason) == ("hard", "oops")  # on_fail hard_pool: a regenerate is a discard
    finished = refine(make_record(), staged(Empty()))
    assert finished.outcome == "errors" and "asked to regenerate without a corrected record" in finished.message


def test_a_verdict_with_an_unknown_action_is_refused():
    with pytest.raises(ValueError, match="verdict action must be one of pass, regenerate, discard, got 'keep'"):
        Verdict("keep")


class Vandal(Stage):
    """Changes a shared tool in place: not allowed."""

    name = "vandal"

    def check(self, record):
        copy = record.model_copy()
        copy.tools[0]["description"] = "vandalised"
        return Verdict(action="pass", record=copy)


class Renamer(Stage):
    """Changes its own record's tools the allowed way: new tools on a copy."""

    name = "renamer"

    def check(self, record):
        tools = [{**record.tools[0], "description": "renamed"}, *record.tools[1:]]
        return Verdict(action="pass", record=record.model_copy(update={"tools": tools}))


def test_shared_tools_cannot_be_changed_through_one_record():
    first, second = make_record(index=0), make_record(index=1)
    assert first.tools[0] is second.tools[0]  # readers share one tool object among records
    vandalised = refine(first, staged(Vandal()))
    assert vandalised.outcome == "errors" and "read-only" in vandalised.message
    assert "record.model_copy(update={'tools'" in vandalised.message
    renamed = refine(second, staged(Renamer()))
    assert renamed.outcome == "kept" and renamed.record.tools[0]["description"] == "renamed"
    later = make_record(index=2)  # read after both
    for record in (first, second, later):
        assert record.tools[0]["description"] == "Weather for a city."
