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
