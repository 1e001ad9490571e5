"""The policy of one record through the stages: what each verdict leads to."""

import asyncio
import functools

import pytest

from funreason_refine.record import FunctionCall, Verdict
from funreason_refine.refine import refine_judged, refine_record
from funreason_refine.stages.base import PipelineStage, Stage
from funreason_refine.stages.classification import Classification
from funreason_refine.stages.cot import Cot
from funreason_refine.stages.format import Format
from funreason_refine.stages.function_params import FunctionParams
from funreason_refine.stages.query_tool import QueryTool
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


STRICT_WEATHER = {
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "units": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"],
    },
}


OSLO = [{"name": "get_forecast", "arguments": {"city": "Oslo", "days": 2}}]


class RewritesOnce(Stage):
    """A plugin after the built-in stages that regenerates the answer into ``calls`` once."""

    name = "rewrites"

    def __init__(self, calls):
        super().__init__()
        self.calls = [FunctionCall(name=name, arguments=args) for name, args in calls]

    def check(self, record):
        if [c.name for c in record.calls] != [c.name for c in self.calls]:
            return Verdict.regenerate(record.model_copy(update={"answer": self.calls}), "rewritten", "new calls")
        return Verdict.passed()


def built_in_and(plugin):
    return staged(Classification(), QueryTool(), Cot(), FunctionParams(), Format(), plugin)


@pytest.mark.parametrize(
    "calls, stage, reason",
    [
        ([("delete_all", {"confirm": True})], "query_tool", "unknown_function"),
        ([("get_weather", {"units": "kelvin", "bogus": 1})], "function_params", "missing_required"),
        ([("get_weather", {"city": "Paris", "bogus": 1})], "function_params", "unknown_parameter"),
        ([("get_weather", {"city": "Paris", "units": "kelvin"})], "function_params", "not_in_enum"),
    ],
)
def test_an_answer_a_later_stage_regenerates_is_checked_by_every_earlier_stage(calls, stage, reason):
    record = make_record(tools=[STRICT_WEATHER, FORECAST], answers=OSLO)
    finished = refine(record, built_in_and(RewritesOnce(calls)))
    assert (finished.outcome, finished.stage, finished.reason) == ("discarded", stage, reason)


def test_a_regenerated_answer_that_passes_every_check_is_kept_with_its_own_target():
    record = make_record(tools=[STRICT_WEATHER, FORECAST], answers=OSLO)
    finished = refine(record, built_in_and(RewritesOnce([("get_weather", {"city": "Oslo", "units": "celsius"})])))
    assert finished.outcome == "kept"
    assert finished.record.target == '[get_weather(city="Oslo", units="celsius")]', "the format stage wrote it again"
    stages = [s.stage for s in finished.record.trail]
    assert stages == [*["classification", "query_tool", "cot", "function_params", "format", "rewrites"] * 2]


def test_regeneration_is_bounded_by_max_attempts():
    outcome = refine(make_record(), staged(AlwaysRegenerate(), max_attempts=2))
    assert (outcome.outcome, outcome.reason) == ("discarded", "again")
    assert "after 2 regeneration(s)" in outcome.message
    assert [s.attempt for s in outcome.record.trail] == [1, 2, 3]


def test_on_fail_discard_turns_a_repair_into_a_discard_that_says_so():
    record = make_record(
        tools=[FORECAST], answers=[{"name": "get_forecast", "arguments": {"city": "Rome", "days": "2"}}]
    )
    outcome = refine(record, staged(FunctionParams(), on_fail="discard"))
    assert (outcome.outcome, outcome.reason) == ("discarded", "coerced_type")
    said = 'a repair, not applied: on_fail is "discard"; on_fail = "regenerate" applies it'
    assert said in outcome.message and said in outcome.record.trail[-1].message
    assert outcome.record.calls[0].arguments["days"] == "2"  # not repaired


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
    """Changes its own record's tools the allowed way: new tools on a copy, a repair the stages check again."""

    name = "renamer"

    def check(self, record):
        if record.tools[0]["description"] == "renamed":
            return Verdict.passed()
        tools = [{**record.tools[0], "description": "renamed"}, *record.tools[1:]]
        return Verdict.regenerate(record.model_copy(update={"tools": tools}), "renamed", "new tools")


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


class ChangesTo(Stage):
    """Returns ``verdict(record with update)``: what a plugin's check may hand back."""

    name = "changer"

    def __init__(self, update, verdict):
        super().__init__()
        self.update, self.verdict = update, verdict

    def check(self, record):
        if record.trail and record.trail[-1].stage == "changer":  # its second look: satisfied
            return Verdict.passed()
        return self.verdict(record.model_copy(update=self.update(record)))


def _pass_with(record):
    return Verdict.passed(record=record)


def _repair_to(record):
    return Verdict.regenerate(record, "changed", "a change")


def test_calls_given_as_dicts_in_a_returned_record_become_function_calls():
    as_dicts = ChangesTo(lambda r: {"answer": [{"name": "get_weather", "arguments": {"city": "Rome"}}]}, _repair_to)
    finished = refine(make_record(cot="I call get_weather."), staged(as_dicts))
    assert finished.outcome == "kept", finished.message
    assert finished.record.calls == [FunctionCall(name="get_weather", arguments={"city": "Rome"})]
    same_as_dicts = ChangesTo(lambda r: {"answer": [c.model_dump() for c in r.calls]}, _pass_with)  # a pass
    record = make_record(cot="I call get_weather.")
    finished = refine(record, staged(same_as_dicts, Cot()))
    assert finished.outcome == "kept", finished.message
    assert finished.record.calls == record.calls


class _PassingJudges:
    """A judge runner whose judge passes every record it is asked about."""

    async def ask(self, panel, stage, record):
        return Verdict.passed(message="the judge agrees")


@pytest.mark.parametrize("judged", [False, True], ids=["rules", "with a judge"])
def test_a_pass_that_changes_the_answer_fails_its_record_instead_of_skipping_the_checks(judged):
    # The new answer was kept with the target of the old one, no earlier stage having seen it; with a judge on
    # the stage, the refusal escaped every guard and stopped the run.
    class Format(Stage):  # as the format stage: writes the target
        name = "target"

        def check(self, record):
            return Verdict.passed(record=record.model_copy(update={"target": str(record.calls)}))

    changer = ChangesTo(
        lambda r: {"answer": [FunctionCall(name="get_weather", arguments={"city": "Rome"})]}, _pass_with
    )
    stages = staged(Format(), changer)
    if judged:
        stages[1].judge = object()  # a panel: _PassingJudges does not look at it
        finished = asyncio.run(refine_judged(make_record(), stages, _PassingJudges()))
    else:
        finished = refine(make_record(), stages)
    assert (finished.outcome, finished.stage) == ("errors", "changer")
    assert "passed with a record whose answer it changed" in finished.message


@pytest.mark.parametrize(
    "update, words",
    [
        ({"cot": 5}, "cot: Input should be a valid string (got 5)"),
        ({"answer": [{"name": 1}]}, "answer.list[FunctionCall].0.name: Input should be a valid string (got 1)"),
        ({"answer": [{"name": "f", "args": {}}]}, "answer.list[FunctionCall].0.args: Extra inputs are not permitted"),
        ({"tools": None}, "tools: Input should be a valid list (got None)"),
        ({"colour": "red"}, "'colour' is not a record field"),
    ],
)
@pytest.mark.parametrize("verdict", [_repair_to, _pass_with])
def test_a_returned_record_with_a_wrong_field_fails_its_record_naming_the_stage_and_the_field(update, words, verdict):
    finished = refine(make_record(), [*staged(ChangesTo(lambda r: update, verdict)), *staged(Cot())])
    assert (finished.outcome, finished.stage) == ("errors", "changer")
    assert finished.message.startswith("stage changer (plugin tests) returned a ")
    assert words in finished.message and "calls are FunctionCall(name=..., arguments={...})" in finished.message
    assert [s.stage for s in finished.record.trail] == []  # the next stage never saw it


@pytest.mark.parametrize(
    "verdict, words",
    [
        (lambda r: Verdict.discard("r", None), "a discard verdict's message must be a text (str), got NoneType None"),
        (lambda r: Verdict.discard(5, "m"), "a discard verdict's reason must be a short snake_case text"),
        (lambda r: Verdict.discard("", "m"), "a discard verdict's reason must be a short snake_case text"),
        (lambda r: Verdict("regenerate", None, "m", r), "a regenerate verdict's reason is missing"),
        (lambda r: Verdict.passed(record={"x": 1}), "a pass verdict's record must be a Record"),
        (lambda r: Verdict.passed(final="yes"), "a pass verdict's final must be True or False"),
    ],
)
def test_a_verdict_with_fields_of_the_wrong_type_fails_its_record_naming_the_stage(verdict, words):
    class Careless(Stage):
        name = "careless"

        def check(self, record):
            return verdict(record)

    finished = refine(make_record(), staged(Careless()))
    assert (finished.outcome, finished.stage) == ("errors", "careless")
    assert finished.message.startswith("stage careless (plugin tests) raised TypeError: ")
    assert words in finished.message


def test_a_verdict_changed_after_it_was_made_is_still_checked():
    class Late(Stage):
        name = "late"

        def check(self, record):
            verdict = Verdict.passed()
            verdict.record = {"x": 1}
            return verdict

    finished = refine(make_record(), staged(Late()))
    assert finished.outcome == "errors"
    assert "returned a pass verdict whose record is a dict, not a Record" in finished.message
    assert "not a Verdict" not in finished.message


def test_a_verdict_the_policy_cannot_apply_fails_its_record_not_the_run():
    from funreason_refine.refine import Refinement

    way = Refinement(make_record(), staged(Cot()))
    way.next_stage()
    unchecked = Verdict.regenerate(way.record, "r", "m")
    unchecked.record = way.record.model_copy(update={"answer": [{"name": "get_weather", "arguments": {}}]})
    way.settle(unchecked)  # not through PipelineStage.check: nothing validated the record
    assert (way.finished.outcome, way.finished.stage) == ("errors", "cot")
    assert "stage cot (plugin tests): its regenerate verdict could not be applied: AttributeError" in (
        way.finished.message
    )
    assert way.finished.record.calls[0].name == "get_weather"  # the record as it was before the verdict
    assert way.finished.record.trail == [], "no regenerate step for a repair that was not applied"


@pytest.mark.parametrize("pipeline", [[FunctionParams()], [FunctionParams(), Format()], []])
def test_an_answer_that_could_not_be_read_is_never_kept_whatever_stages_the_pipeline_has(pipeline):
    finished = refine(make_record(answers='[{"name": "get_weather", "arguments": '), staged(*pipeline))
    assert finished.outcome == "discarded" and (finished.stage, finished.reason) == ("input", "malformed_answer")
    assert "no stage of this pipeline discards a record whose answer cannot be read" in finished.message
    last = finished.record.trail[-1]
    assert (last.stage, last.verdict, last.reason) == ("input", "discard", "malformed_answer")
    assert refine(make_record(), staged(*pipeline)).outcome == "kept"


def test_with_the_classification_stage_an_unreadable_answer_is_its_discard_as_before():
    finished = refine(make_record(answers='[{"name": '), staged(Classification(), FunctionParams()))
    assert (finished.stage, finished.reason) == ("classification", "malformed_answer")


def test_a_conversation_turn_whose_answer_could_not_be_read_is_never_kept(tmp_path):
    from tests.readers.test_faithful import WEATHER, read_one

    bad = {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{not json"}}
    messages = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "Let me look."},
        {"role": "user", "content": "And Bergen?"},
        {"role": "assistant", "tool_calls": [bad]},
    ]
    record = read_one(tmp_path, {"messages": messages, "tools": [WEATHER]})
    finished = refine(record, staged(Format()))
    assert (finished.outcome, finished.stage, finished.reason) == ("discarded", "input", "malformed_answer")
    assert "messages[3].tool_calls[0].function.arguments" in finished.message


class ChangesInPlace(Stage):
    """A plugin's check that edits the record it was given instead of a copy."""

    name = "in_place"

    def __init__(self, edit, repair=False):
        super().__init__()
        self.edit, self.repair = edit, repair

    def check(self, record):
        self.edit(record)
        return Verdict.regenerate(record, "edited", "edited in place") if self.repair else Verdict.passed()


def _add_units(record):
    record.calls[0].arguments["units"] = "metric"


def _set_query(record):
    record.query = "Something else"


def _clear_answer(record):
    record.answer.clear()


def _new_tools(record):
    record.tools = [{**record.tools[0], "name": "lookup"}]


@pytest.mark.parametrize(
    "edit, repair, field",
    [
        (_add_units, True, "answer"),
        (_add_units, False, "answer"),
        (_set_query, False, "query"),
        (_clear_answer, False, "answer"),
        (_new_tools, False, "tools"),
    ],
)
def test_a_plugin_check_that_changes_its_record_in_place_fails_the_record_naming_the_field(edit, repair, field):
    # The edit was kept without a word: no earlier stage saw it, the target stayed the old answer's, and the
    # trail's "before" showed the edited answer as the original.
    finished = refine(make_record(), staged(FunctionParams(), ChangesInPlace(edit, repair)))
    assert (finished.outcome, finished.stage) == ("errors", "in_place")
    assert f"changed the record it was given in place ({field})" in finished.message
    assert "record.model_copy" in finished.message


def test_the_package_s_own_stages_are_not_watched_for_changes_in_place():
    stage = PipelineStage(stage=ChangesInPlace(_set_query), plugin="builtin", on_fail="discard", max_attempts=1)
    stage.trusted = True
    assert refine(make_record(), [stage]).outcome == "kept"


@pytest.mark.parametrize(
    "update, field",
    [
        (lambda r: {"query": "Weather in Rome?"}, "query"),
        (lambda r: {"tools": [{**r.tools[0], "name": "lookup"}]}, "tools"),
        (lambda r: {"system": "Answer in French."}, "system"),
    ],
)
def test_a_pass_that_changes_what_the_record_says_fails_its_record(update, field):
    finished = refine(make_record(), staged(ChangesTo(update, _pass_with)))
    assert (finished.outcome, finished.stage) == ("errors", "changer")
    assert f"passed with a record whose {field} it changed" in finished.message


def test_a_pass_may_change_derived_fields():
    stages = staged(ChangesTo(lambda r: {"meta": {"checked": True}, "cot": "Weather: get_weather."}, _pass_with))
    finished = refine(make_record(), stages)
    assert finished.outcome == "kept" and finished.record.meta == {"checked": True}


def _regenerate_with(record):
    return Verdict.regenerate(record, "changed", "changed")


@pytest.mark.parametrize(
    "update, reason",
    [
        (lambda r: {"tools": [{**r.tools[0], "name": "lookup_forecast"}]}, "unknown_function"),
        (lambda r: {"cot": "I should call delete_account."}, "cot_misses_function"),
    ],
)
def test_a_repair_of_tools_or_cot_is_checked_again_by_the_earlier_stages(update, reason):
    # Only a changed answer was checked again: a record offering lookup_forecast was kept calling get_weather,
    # and a CoT naming a function the answer never calls was kept.
    cot = Cot(Cot.Config(forbid_uncalled_functions=True))
    stages = staged(QueryTool(), cot, FunctionParams(), ChangesTo(update, _regenerate_with))
    finished = refine(make_record(cot="The user wants the weather: get_weather for Paris."), stages)
    assert (finished.outcome, finished.reason) == ("discarded", reason), finished.message


class Exits(Stage):
    name = "exits"

    def check(self, record):
        raise SystemExit(1)


def test_a_check_that_calls_sys_exit_fails_its_record_not_the_run():
    # The run ended with status 1, no output and no summary, run.lock left behind.
    finished = refine(make_record(), staged(Exits()))
    assert (finished.outcome, finished.stage) == ("errors", "exits")
    assert "raised SystemExit: 1" in finished.message


def test_a_record_holding_a_lone_surrogate_is_watched_too():
    record = make_record(query="Weather in Paris \ud800?")
    assert refine(record, staged(FunctionParams())).outcome == "kept"
    finished = refine(record, staged(ChangesInPlace(_add_units)))
    assert finished.outcome == "errors" and "in place (answer)" in finished.message


def test_with_debug_on_a_check_s_exception_prints_its_traceback(monkeypatch, capsys):
    # errors.jsonl holds one line; a plugin's author had no way to see where the check failed.
    monkeypatch.setenv("FUNREASON_REFINE_DEBUG", "1")
    finished = refine(make_record(), staged(Explodes()))
    assert finished.outcome == "errors" and "raised KeyError: 'boom'" in finished.message
    err = capsys.readouterr().err
    assert "stage explodes (plugin tests), record 0:" in err and "Traceback" in err and 'raise KeyError("boom")' in err


def test_a_discard_of_an_answer_a_repair_wrote_says_so_and_gives_the_record_s_own():
    # "the answer calls get_forecast, which is not among the tools" blamed the record for its repair's call.
    finished = refine(make_record(), staged(QueryTool(), SwitchToForecast()))
    assert (finished.outcome, finished.stage, finished.reason) == ("discarded", "query_tool", "unknown_function")
    assert finished.message.endswith(
        """(the answer is a repair's; the record's own was [get_weather(city="Paris")])"""
    ), finished.message
    assert "repair's" not in refine(make_record(), staged(Explodes())).message
    plain = refine(make_record(answers=[{"name": "nope", "arguments": {}}]), staged(QueryTool()))
    assert plain.outcome == "discarded" and "repair's" not in plain.message


class NewTools(Stage):
    name = "new_tools"

    def check(self, record):
        if record.tools[0]["description"] == "x":
            return Verdict.passed()
        return Verdict.regenerate(
            record.model_copy(update={"tools": [{**record.tools[0], "description": "x"}]}), "r", "m"
        )


def _mutate_tools(record):
    record.tools[0]["description"] = "MUTATED"


def test_tools_a_repair_gave_are_read_only_too():
    # A later stage changed them in place unseen: only a reader's tools were frozen.
    stages = staged(NewTools(), ChangesInPlace(_mutate_tools))
    finished = refine(make_record(), stages)
    assert (finished.outcome, finished.stage) == ("errors", "in_place") and "read-only" in finished.message


@pytest.mark.parametrize(
    "arguments",
    [
        {"city": "Paris", "x": functools.reduce(lambda v, _: [v], range(300), "Paris")},
        {"city": "Paris", "o": {"\udc00": 1}},
    ],
    ids=["nested past the serialiser's depth", "a lone surrogate as a key"],
)
def test_a_record_the_snapshot_cannot_write_is_not_watched_and_does_not_crash(arguments):
    # The snapshot raised out of PipelineStage.check and stopped the whole run.
    record = make_record(answers=[{"name": "get_weather", "arguments": arguments}])
    assert refine(record, staged(ChangesInPlace(lambda r: None))).outcome == "kept"


def test_judge_only_stages_are_trusted_as_the_package_s_own_and_a_plugin_s_check_is_not(tmp_path):
    # A judge-only stage (whose check passes every record as it is) paid a snapshot of the whole conversation at
    # every turn: a conversation's cost was quadratic again.
    from funreason_refine.config import load_pipeline

    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "tone.toml").write_text(
        'name = "tone"\ndescription = "Polite?"\nprompt = "Polite? {query}"\n'
    )
    (tmp_path / "in.jsonl").write_text("")
    (tmp_path / "p.toml").write_text(
        'stage_specs_dir = "specs"\n[input]\npath = "in.jsonl"\n[output]\ndir = "r"\n[judge]\nmodel = "openai/x"\n'
        '[[stages]]\nname = "tone"\n[[stages]]\nname = "cot"\n'
    )
    stages = {s.name: s for s in load_pipeline(tmp_path / "p.toml").stages}
    assert stages["tone"].trusted and stages["cot"].trusted
