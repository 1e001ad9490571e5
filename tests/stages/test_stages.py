"""Every reason code of the five built-in stages, on literal records."""

import json

import pytest

from funreason_refine.record import FunctionCall
from funreason_refine.stages.classification import Classification
from funreason_refine.stages.cot import Cot
from funreason_refine.stages.format import Format
from funreason_refine.stages.function_params import FunctionParams
from funreason_refine.stages.query_tool import QueryTool
from funreason_refine.testing import check, make_record

WEATHER = {
    "name": "get_weather",
    "description": "Weather.",
    "parameters": {
        "city": {"type": "str", "description": "City"},
        "days": {"type": "int, optional", "description": "Days"},
    },
}
FORECAST = {
    "name": "get_forecast",
    "description": "Forecast.",
    "parameters": {"city": {"type": "str", "description": "City"}},
}
SORT = {
    "type": "function",
    "function": {
        "name": "sort_list",
        "parameters": {
            "type": "object",
            "required": ["values"],
            "properties": {
                "values": {"type": "array", "items": {"type": "number"}, "minItems": 1},
                "order": {"type": "string", "enum": ["asc", "desc"]},
                "opts": {"type": "object", "properties": {"stable": {"type": "boolean"}}},
            },
        },
    },
}


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


# --- classification ---


def test_call_answer_passes_classification():
    verdict = check(Classification, make_record())
    assert (verdict.action, verdict.reason, verdict.final) == ("pass", None, False)


def test_empty_call_list_is_a_valid_no_call_answer():
    verdict = check(Classification, make_record(answers=[]))
    assert (verdict.action, verdict.reason) == ("pass", "no_call")


@pytest.mark.parametrize("answers", ['[{"name": "get_weather", "arguments": {"city": "Par', '[{"arguments": {}}]'])
def test_malformed_answer_is_discarded_with_the_reader_message(answers):
    verdict = check(Classification, make_record(answers=answers))
    assert (verdict.action, verdict.reason) == ("discard", "malformed_answer")
    assert "answers" in verdict.message


def test_empty_text_answer_is_discarded():
    assert check(Classification, make_record(answers="  ")).reason == "empty_answer"


def test_text_answers_keep_check_or_discard():
    record = make_record(answers="Hello, I can check the weather.", cot="Greeting, no tool needed.")
    kept = check(Classification, record, text_answers="keep")
    assert (kept.action, kept.final, kept.reason) == ("pass", True, "text_answer")
    assert kept.record.target == "<think>Greeting, no tool needed.</think>\n\nHello, I can check the weather."
    checked = check(Classification, record, text_answers="check")
    assert (checked.action, checked.final) == ("pass", False)
    assert check(Classification, record, text_answers="discard").reason == "text_answer"


# --- query_tool ---


def test_good_tools_pass_query_tool():
    assert check(QueryTool, make_record(tools=[WEATHER, FORECAST, SORT])).action == "pass"


@pytest.mark.parametrize(
    "tools, answers, reason, words",
    [
        (
            [{"name": "apply", "parameters": {"f": {"type": "Callable[[int], int]"}}}],
            [call("apply", f="g")],
            "unconvertible_type",
            "Callable",
        ),
        (
            [{"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "strng"}}}}],
            [call("f", x="a")],
            "invalid_tool_schema",
            "tool 'f'",
        ),
        (
            [{"name": "f", "parameters": {"type": "object", "properties": {"x": {"minLength": -1}}}}],
            [call("f", x="a")],
            "invalid_tool_schema",
            "minLength",
        ),
        ([{"name": "f", "parameters": {"type": "array"}}], [call("f")], "invalid_tool_schema", "object schema"),
        ([WEATHER, WEATHER], [call("get_weather", city="Rome")], "duplicate_tool_name", "get_weather"),
        ([WEATHER], [call("get_temperature", city="Rome")], "unknown_function", "get_temperature"),
        ([], [call("get_weather", city="Rome")], "unknown_function", "none offered"),
    ],
)
def test_query_tool_discards(tools, answers, reason, words):
    verdict = check(QueryTool, make_record(tools=tools, answers=answers))
    assert (verdict.action, verdict.reason) == ("discard", reason)
    assert words in verdict.message


# --- cot ---


def test_cot_naming_exactly_the_called_function_passes():
    assert check(Cot, make_record(cot="The user wants Paris weather: get_weather with city Paris.")).action == "pass"


def test_missing_cot_passes_unless_required():
    assert check(Cot, make_record()).reason == "no_cot"
    verdict = check(Cot, make_record(), required=True)
    assert (verdict.action, verdict.reason) == ("discard", "missing_cot")


@pytest.mark.parametrize(
    "cot, reason",
    [
        ("   ", "empty_cot"),
        ("<think></think>", "empty_cot"),
        ("<think>call get_weather", "unclosed_think"),
        ("get_weather</think>[get_weather(city='Paris')]", "unclosed_think"),
        ("I will look up Paris.", "cot_misses_function"),
        ("I call get_forecast and get_weather for Paris.", "cot_names_other_function"),
        ("I call get_weathers for Paris.", "cot_misses_function"),
    ],
)
def test_cot_discards(cot, reason):
    verdict = check(Cot, make_record(tools=[WEATHER, FORECAST], cot=cot))
    assert (verdict.action, verdict.reason) == ("discard", reason)


def test_cot_wrapper_is_stripped_and_the_inside_checked():
    verdict = check(Cot, make_record(cot="<think> get_weather for Paris </think>"))
    assert (verdict.action, verdict.reason, verdict.record.cot) == ("pass", "wrapped_think", "get_weather for Paris")
    assert check(Cot, make_record(cot="<think>look it up</think>")).reason == "cot_misses_function"


def test_ordinary_words_that_are_tool_names_do_not_count_as_naming_them():
    search = {"name": "search", "parameters": {"q": {"type": "str"}}}
    record = make_record(tools=[WEATHER, search], cot="No need to search: get_weather for Paris.")
    assert check(Cot, record).action == "pass"
    strict = make_record(tools=[WEATHER, FORECAST], cot="get_weather, not get_forecast.")
    assert check(Cot, strict, forbid_uncalled_functions=False).action == "pass"


# --- function_params ---


def test_valid_parameters_pass():
    assert (
        check(
            FunctionParams, make_record(tools=[SORT], answers=[call("sort_list", values=[3, 1.5], order="asc")])
        ).action
        == "pass"
    )


@pytest.mark.parametrize(
    "arguments, reason, where",
    [
        ({"order": "asc"}, "missing_required", "values"),
        ({"values": [1], "reverse": True}, "unknown_parameter", "reverse"),
        ({"values": [1], "order": "random"}, "not_in_enum", "sort_list['order']"),
        ({"values": [1, "two"]}, "wrong_type", "sort_list['values'][1]"),
        ({"values": []}, "invalid_value", "sort_list['values']"),
        ({"values": [1], "opts": {"stable": "maybe"}}, "wrong_type", "sort_list['opts']['stable']"),
        ({"values": [1], "order": None}, "wrong_type", "order"),
    ],
)
def test_function_params_discards(arguments, reason, where):
    verdict = check(FunctionParams, make_record(tools=[SORT], answers=[call("sort_list", **arguments)]))
    assert (verdict.action, verdict.reason) == ("discard", reason)
    assert where in verdict.message


@pytest.mark.parametrize(
    "given, repaired",
    [
        ({"values": ["5", " -2.5 "]}, {"values": [5, -2.5]}),
        ({"values": "[1, 2]"}, {"values": [1, 2]}),
        ({"values": [1], "opts": {"stable": "TRUE"}}, {"values": [1], "opts": {"stable": True}}),
        ({"values": [1], "opts": '{"stable": "false"}'}, {"values": [1], "opts": {"stable": False}}),
    ],
)
def test_unambiguous_repairs_are_a_regenerate_with_the_repaired_answer(given, repaired):
    record = make_record(tools=[SORT], answers=[call("sort_list", **given)])
    verdict = check(FunctionParams, record)
    assert (verdict.action, verdict.reason) == ("regenerate", "coerced_type")
    assert verdict.record.calls[0].arguments == repaired
    assert record.calls[0].arguments == given, "the input record must not be mutated"
    assert check(FunctionParams, verdict.record).action == "pass"


def test_integer_repairs():
    tools = [WEATHER]
    assert (
        check(FunctionParams, make_record(tools=tools, answers=[call("get_weather", city="Rome", days="5")]))
        .record.calls[0]
        .arguments["days"]
        == 5
    )
    assert (
        check(FunctionParams, make_record(tools=tools, answers=[call("get_weather", city="Rome", days=5.0)]))
        .record.calls[0]
        .arguments["days"]
        == 5
    )
    verdict = check(FunctionParams, make_record(tools=tools, answers=[call("get_weather", city="Rome", days="5.5")]))
    assert (verdict.action, verdict.reason) == ("discard", "wrong_type")


@pytest.mark.parametrize(
    "extra, verdict",
    [
        (None, ("discard", "unknown_parameter")),  # absent: a tool is closed
        (False, ("discard", "unknown_parameter")),
        (True, ("pass", None)),
        ({}, ("pass", None)),  # any value, though an empty dict is falsy
        ({"type": "integer"}, ("discard", "wrong_type")),  # open, and extras are validated
        ({"type": "string"}, ("pass", None)),
    ],
)
def test_additional_properties_open_a_tool_to_unknown_parameters(extra, verdict):
    parameters = {"type": "object", "properties": {"q": {"type": "string"}}}
    if extra is not None:
        parameters["additionalProperties"] = extra
    record = make_record(tools=[{"name": "f", "parameters": parameters}], answers=[call("f", q="x", lang="en")])
    got = check(FunctionParams, record)
    assert (got.action, got.reason) == verdict


def test_a_tool_without_parameters_takes_none():
    tools = [{"name": "now", "description": "The time."}]
    assert check(FunctionParams, make_record(tools=tools, answers=[call("now")])).action == "pass"
    got = check(FunctionParams, make_record(tools=tools, answers=[call("now", tz="UTC")]))
    assert (got.action, got.reason) == ("discard", "unknown_parameter")


def test_ambiguous_values_are_not_repaired():
    union = {
        "name": "f",
        "parameters": {"type": "object", "properties": {"x": {"type": ["integer", "string"]}, "y": {"type": "string"}}},
    }
    record = make_record(tools=[union], answers=[call("f", x="5", y=5)])
    verdict = check(FunctionParams, record)
    assert (verdict.action, verdict.reason) == ("discard", "wrong_type"), "5 -> '5' for a string is not repaired"


def test_a_parameter_whose_default_is_null_takes_null_and_is_still_repaired():
    tools = [{"name": "f", "parameters": {"type": "object", "properties": {"n": {"type": "integer", "default": None}}}}]
    assert check(FunctionParams, make_record(tools=tools, answers=[call("f", n=None)])).action == "pass"
    verdict = check(FunctionParams, make_record(tools=tools, answers=[call("f", n="5")]))
    assert (verdict.action, verdict.reason, verdict.record.calls[0].arguments) == (
        "regenerate",
        "coerced_type",
        {"n": 5},
    )


GENRES = {
    "name": "find_movies",
    "parameters": {
        "type": "object",
        "properties": {
            "genre": {"type": "string", "enum": ["Horror", "Comedy-drama", "World"]},
            "unisex": {"type": "string", "enum": ["True", "False", "dontcare"]},
            "rooms": {"type": "string", "enum": ["1", "2", "dontcare"]},
            "tags": {"type": "array", "items": {"type": "string", "enum": ["new", "classic"]}},
            "mood": {"enum": ["calm", "Calm", "tense"]},
            "year": {"type": "integer"},
        },
    },
}


@pytest.mark.parametrize(
    "given, repaired",
    [
        ({"unisex": True}, {"unisex": "True"}),
        ({"rooms": 2}, {"rooms": "2"}),
        ({"genre": "horror"}, {"genre": "Horror"}),
        ({"genre": "WORLD", "tags": ["Classic", "new"]}, {"genre": "World", "tags": ["classic", "new"]}),
    ],
)
def test_a_value_whose_written_form_names_one_enum_member_becomes_that_member(given, repaired):
    record = make_record(tools=[GENRES], answers=[call("find_movies", **given)])
    verdict = check(FunctionParams, record)
    assert (verdict.action, verdict.reason) == ("regenerate", "coerced_enum")
    assert verdict.record.calls[0].arguments == repaired
    assert "(enum member)" in verdict.message and record.calls[0].arguments == given
    assert check(FunctionParams, verdict.record).action == "pass"


@pytest.mark.parametrize(
    "given",
    [
        {"mood": "CALM"},  # two members, "calm" and "Calm": ambiguous
        {"genre": "Comedy drama"},  # more than case differs
        {"genre": "Reggaeton"},  # no member at all
        {"unisex": "yes"},
    ],
)
def test_values_matching_two_enum_members_or_none_are_not_repaired(given):
    verdict = check(FunctionParams, make_record(tools=[GENRES], answers=[call("find_movies", **given)]))
    assert (verdict.action, verdict.reason) == ("discard", "not_in_enum")


def test_a_call_with_type_and_enum_repairs_is_one_coerced_type_repair_naming_both():
    record = make_record(tools=[GENRES], answers=[call("find_movies", genre="horror", year="1999")])
    verdict = check(FunctionParams, record)
    assert (verdict.action, verdict.reason) == ("regenerate", "coerced_type")
    assert verdict.record.calls[0].arguments == {"genre": "Horror", "year": 1999}
    assert "'horror' -> 'Horror' (enum member)" in verdict.message and "'1999' -> 1999" in verdict.message


# --- format ---


def test_format_renders_the_training_target():
    verdict = check(
        Format, make_record(cot="get_weather for Paris", answers=[call("get_weather", city="Paris", days=2)])
    )
    assert verdict.action == "pass"
    assert verdict.record.target == '<think>get_weather for Paris</think>\n\n[get_weather(city="Paris", days=2)]'
    assert check(Format, make_record(answers=[])).record.target == "[]"


@pytest.mark.parametrize(
    "answers, reason",
    [
        ([call("get weather", city="Paris")], "unrenderable_call"),
        ([call("f", **{"max-results": 3})], "unrenderable_call"),
        ('[{"name": "f", "arguments": {"x": "bad \\ud800"}}]', "round_trip_mismatch"),
        ([call("ﬁle")], "round_trip_mismatch"),  # Python reads the name back as "file"
        ([call("f", x=json.loads("[" * 199 + "]" * 199))], "round_trip_mismatch"),  # parser's nesting limit
    ],
)
def test_format_discards(answers, reason):
    verdict = check(Format, make_record(answers=answers))
    assert (verdict.action, verdict.reason) == ("discard", reason)


def test_format_discards_a_nan_argument_a_plugin_put_in():
    # The readers refuse NaN (JSON has none); a stage plugin's record may still hold a float('nan').
    record = make_record(answers=[call("f", x=1.5)])
    record = record.model_copy(update={"answer": [FunctionCall(name="f", arguments={"x": float("nan")})]})
    verdict = check(Format, record)
    assert (verdict.action, verdict.reason) == ("discard", "unrenderable_call")
    assert "nan has no Python literal" in verdict.message


@pytest.mark.parametrize(
    "parameters, words",
    [
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "a"]},
            "names 'a' more than once",
        ),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": "a"}, "not of type 'array'"),
        ({"type": "object", "properties": {"a": {"type": "string", "description": 7}}}, "in properties/a"),
        ({"type": "object", "properties": {"a": {"type": "integer", "minimum": "zero"}}}, "in properties/a"),
        ({"type": "object", "properties": {"a": {"items": {"type": "nothing"}}}}, "in properties/a"),
    ],
)
def test_schema_checks_cached_by_shape_still_catch_every_invalid_schema(parameters, words):
    verdict = check(QueryTool, make_record(tools=[{"name": "f", "parameters": parameters}], answers=[]))
    assert (verdict.action, verdict.reason) == ("discard", "invalid_tool_schema")
    assert words in verdict.message


def test_a_schema_error_quotes_at_most_300_characters_of_the_value_it_faults():
    # jsonschema's message repeats the faulty value: a megabyte enum made a megabyte message, twice a line.
    parameters = {"type": "object", "properties": {"a": {"type": "string", "enum": "x" * 1_000_000}}}
    verdict = check(QueryTool, make_record(tools=[{"name": "f", "parameters": parameters}], answers=[]))
    assert (verdict.action, verdict.reason) == ("discard", "invalid_tool_schema")
    assert len(verdict.message) < 450
    assert "... (1,000,0" in verdict.message and verdict.message.endswith("in properties/a")
    parameters = {"type": "object", "properties": {}, "required": "x" * 1000}
    verdict = check(QueryTool, make_record(tools=[{"name": "f", "parameters": parameters}], answers=[]))
    assert "... (1,0" in verdict.message and verdict.message.endswith("at required")  # where it is, kept


def test_every_required_name_given_more_than_once_is_named():
    parameters = {"type": "object", "properties": {}, "required": ["a", "b", "a", "c", "b", "a"]}
    verdict = check(QueryTool, make_record(tools=[{"name": "f", "parameters": parameters}], answers=[]))
    assert verdict.message.endswith("required names 'a', 'b' more than once (non-unique elements)")
