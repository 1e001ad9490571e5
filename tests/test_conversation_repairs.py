"""A repair of a conversation turn's calls (a judge's NewFC, a plugin's) is checked against that turn's
tool results: the conversation stage sees the calls as they now stand, and each call keeps its own id."""

import pytest

from funreason_refine.readers import InputStream
from funreason_refine.record import FunctionCall, Verdict
from funreason_refine.refine import refine_record
from funreason_refine.stages.base import PipelineStage, Stage
from funreason_refine.stages.conversation import ConversationStructure
from tests.chats import WEATHER, calls, chat, result, say, user
from tests.conftest import write_jsonl

OSLO = FunctionCall(name="get_weather", arguments={"city": "Oslo"})
BERGEN = FunctionCall(name="get_weather", arguments={"city": "Bergen"})
LIMA = FunctionCall(name="get_weather", arguments={"city": "Lima"})


class Corrects(Stage):
    """Corrects turn 0's calls to ``calls``, once, as a judge's NewFC does."""

    name = "corrects"
    on_fail = "regenerate"

    def __init__(self, calls):
        super().__init__()
        self.calls = calls

    def check(self, record):
        if record.turn == 0 and record.answer != self.calls:
            return Verdict.regenerate(record.model_copy(update={"answer": self.calls}), "corrected", "new calls")
        return Verdict.passed()


def weather_chat(tmp_path):
    row = chat(
        "w",
        user("Weather in Oslo and Bergen?"),
        calls(("c1", "get_weather", {"city": "Oslo"}), ("c2", "get_weather", {"city": "Bergen"})),
        result("c1", '{"sky": "snow"}'),
        result("c2", '{"sky": "rain"}'),
        say("Oslo: snow. Bergen: rain."),
        tools=[WEATHER],
    )
    (record,) = InputStream(write_jsonl(tmp_path / "in.jsonl", [row]), "openai").items()
    return record


def refined(record, corrected):
    stages = [
        PipelineStage(ConversationStructure(), "builtin", "discard", 3, trusted=True),
        PipelineStage(Corrects(corrected), "tests", "regenerate", 3),
    ]
    return refine_record(record, stages)


@pytest.mark.parametrize(
    "corrected, reason",
    [
        ([OSLO], "result_without_call"),  # c2's result answers a call the turn no longer makes
        ([OSLO, BERGEN, LIMA], "missing_result"),  # the new call has no result before the next turn
    ],
)
def test_a_correction_that_leaves_results_and_calls_untied_is_discarded(tmp_path, corrected, reason):
    # The conversation stage read the ids the turn had before the correction and passed: the kept
    # conversation held a result for a call it no longer made, or a call without a result.
    finished = refined(weather_chat(tmp_path), corrected)
    assert (finished.outcome, finished.stage, finished.reason) == ("discarded", "conversation", reason)


def test_calls_a_correction_reorders_keep_their_own_ids_and_results(tmp_path):
    # Ids went by position: Oslo's "snow" became the result of the Bergen call.
    finished = refined(weather_chat(tmp_path), [BERGEN, OSLO])
    assert finished.outcome == "kept"
    turn = finished.record.messages[1]
    assert turn.answer == [BERGEN, OSLO] and turn.call_ids == ["c2", "c1"]


def test_a_changed_call_takes_the_id_of_the_call_it_replaces(tmp_path):
    finished = refined(weather_chat(tmp_path), [OSLO, LIMA])
    assert finished.outcome == "kept" and finished.record.messages[1].call_ids == ["c1", "c2"]


class FailsTurn1(Stage):
    name = "fails_turn_1"
    on_fail = "truncate"

    def check(self, record):
        return Verdict.discard("bad", "turn 1 is bad") if record.turn == 1 else Verdict.passed()


def test_a_truncation_to_an_unreadable_turn_does_not_speak_of_a_repair(tmp_path):
    # The cut conversation was discarded (its turn 0 unreadable) saying "(the answer is a repair's; ...)":
    # the turn it remembered was the later one, and no repair was made.
    bad = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{no"}}],
    }
    row = chat("a", user("Weather in Oslo?"), bad, result("c1", "snow"), say("Snowing."), tools=[WEATHER])
    (record,) = InputStream(write_jsonl(tmp_path / "in.jsonl", [row]), "openai").items()
    finished = refine_record(record, [PipelineStage(FailsTurn1(), "tests", "truncate", 3)])
    assert finished.outcome == "discarded" and "repair's" not in finished.message, finished.message


def test_a_sharegpt_observation_follows_the_calls_a_repair_reordered(tmp_path):
    # The observation was written back as it was read, in the order of the calls before the repair:
    # read back, Lima's call took Cusco's result, and Cusco's Lima's.
    import json

    from funreason_refine.export.formats import to_row

    cities = ("Quito", "Cusco", "Lima")
    made = [{"name": "get_weather", "arguments": {"city": c}} for c in cities]
    row = {
        "id": "s",
        "tools": [WEATHER["function"]],
        "conversations": [
            {"from": "human", "value": "Weather in Quito, Cusco and Lima?"},
            {"from": "function_call", "value": json.dumps(made)},
            {"from": "observation", "value": json.dumps([f"{c}: sunny" for c in cities])},
            {"from": "gpt", "value": "Sunny everywhere."},
        ],
    }
    (record,) = InputStream(write_jsonl(tmp_path / "in.jsonl", [row]), "sharegpt").items()
    quito, cusco, lima = (FunctionCall(**c) for c in made)
    finished = refined(record, [quito, lima, cusco])
    assert finished.outcome == "kept"
    exported = to_row(json.loads(finished.written().line), "sharegpt")["conversations"]
    assert json.loads(exported[2]["value"]) == ["Quito: sunny", "Lima: sunny", "Cusco: sunny"]
    unchanged = to_row(json.loads(refined(record, [quito, cusco, lima]).written().line), "sharegpt")
    assert unchanged["conversations"][2]["value"] == row["conversations"][2]["value"]  # as it was read
