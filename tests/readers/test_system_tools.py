"""Tools listed in a system prompt, for chat records without a ``tools`` field (FunReason's and Hermes'
instructions), and Hermes data's Python-literal calls and tools (docs/reading.md)."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from funreason_refine.call_text import python_literal
from funreason_refine.readers.system_tools import tools_in_system
from funreason_refine.record import Quarantined, Record
from funreason_refine.targets import FUNREASON_SYSTEM, HERMES_SYSTEM
from tests.readers.test_faithful import read_one

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
# As NousResearch's hermes-function-calling-v1 writes a record: ShareGPT turns, the tools only in the
# system prompt and, like the calls, as Python literals.
HERMES_DATA_SYSTEM = (
    "You are a function calling AI model. You are provided with function signatures within <tools> </tools> "
    "XML tags. You may call one or more functions to assist with the user query. Don't make assumptions about "
    "what values to plug into functions.\n<tools>\n"
    + repr([{"type": "function", "function": WEATHER}])
    + "\n</tools>\nFor each function call return a json object with function name and arguments within "
    "<tool_call> </tool_call> tags with the following schema:\n<tool_call>\n{'arguments': <args-dict>, "
    "'name': <function-name>}\n</tool_call>"
)


def hermes_data_row(call_text):
    return {
        "id": "h1",
        "conversations": [
            {"from": "system", "value": HERMES_DATA_SYSTEM},
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "gpt", "value": f"<tool_call>\n{call_text}\n</tool_call>"},
        ],
    }


@pytest.mark.parametrize(
    "call_text",
    [
        "{'arguments': {'city': 'Paris'}, 'name': 'get_weather'}",
        '{"arguments": {"city": "Paris"}, "name": "get_weather"}',
    ],
)
def test_a_hermes_data_record_is_read_with_its_tools_and_its_python_literal_call(tmp_path, call_text):
    # It was read with no tools (the instructions and the list were left out of its system prompt) and
    # its call refused as "not JSON": every record of the dataset was discarded, the first for "none offered".
    record = read_one(tmp_path, hermes_data_row(call_text), "sharegpt")
    assert isinstance(record, Record) and record.problems == []
    assert record.tools[0]["name"] == "get_weather" and record.tools[0]["parameters"] == WEATHER["parameters"]
    assert [c.model_dump() for c in record.calls] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert record.system is None  # the Hermes instructions; the exports write their own with the tools


@pytest.mark.parametrize(
    "listed",
    [
        json.dumps([WEATHER]),  # our hermes export
        json.dumps(WEATHER)
        + "\n"
        + json.dumps({**WEATHER, "name": "get_time"}),  # a tool a line, as Hermes 3's template
        repr([WEATHER]),
    ],
)
def test_tools_are_read_from_a_hermes_tools_block_in_any_of_its_forms(listed):
    system = "Be brief.\n\n" + HERMES_SYSTEM.replace("{tools}", listed)
    tools = tools_in_system(system)
    assert tools is not None and tools[0] == WEATHER


@pytest.mark.parametrize(
    "listed, why",
    [
        (
            "[{'name': 'get_weather', 'parameters': (1, 2)}]",
            "is not JSON (Expecting property name enclosed in double quotes) nor a list written by Python",
        ),
        ('[{"name": "get_weather", "x": NaN}]', "cannot be read: NaN is not a JSON value"),
        ('"get_weather"', "is a str, not a list of tools"),
    ],
)
def test_an_unreadable_hermes_tools_block_quarantines_the_record(tmp_path, listed, why):
    row = {
        "messages": [
            {"role": "system", "content": HERMES_SYSTEM.replace("{tools}", listed)},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": '<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>'},
        ]
    }
    item = read_one(tmp_path, row)
    assert isinstance(item, Quarantined) and item.field == "messages[0].content"
    assert item.error.startswith("messages[0].content: the tool list in the Hermes <tools> block") and why in item.error


def test_hermes_instructions_without_a_tool_list_quarantine_the_record(tmp_path):
    system = HERMES_SYSTEM.replace("<tools>\n{tools}\n</tools>", "")
    row = {"system": system, "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    item = read_one(tmp_path, row, "sharegpt")
    assert isinstance(item, Quarantined) and item.field == "system"
    assert "hold 0 <tools> blocks with a tool list, not one" in item.error


def test_a_sharegpt_record_reads_the_tools_of_a_funreason_system_prompt(tmp_path):
    row = {
        "system": "Be brief.\n\n" + FUNREASON_SYSTEM + json.dumps([WEATHER]),
        "conversations": [
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "gpt", "value": '[get_weather(city="Paris")]'},
        ],
    }
    record = read_one(tmp_path, row, "sharegpt")
    assert isinstance(record, Record) and [t["name"] for t in record.tools] == ["get_weather"]
    assert record.system == "Be brief."


def hermes_chat(system, tools_field):
    row = {
        "conversations": [
            {"from": "system", "value": system},
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "gpt", "value": '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'},
        ]
    }
    return {**row, "tools": tools_field} if tools_field is not None else row


@pytest.mark.parametrize("listed", [json.dumps([WEATHER]), repr([{"type": "function", "function": WEATHER}])])
def test_a_tools_field_and_a_prompt_listing_the_same_tools_are_read_once(tmp_path, listed):
    # What our hermes export writes: the tools in the field and in the prompt.
    row = hermes_chat(HERMES_SYSTEM.replace("{tools}", listed), json.dumps([WEATHER]))
    record = read_one(tmp_path, row, "sharegpt")
    assert isinstance(record, Record) and [t["name"] for t in record.tools] == ["get_weather"]


@pytest.mark.parametrize(
    "listed, why",
    [
        (
            json.dumps([WEATHER, {**WEATHER, "name": "get_time"}]),
            "its instructions list other tools than the record's tools field",
        ),
        ("not a list at all", "is not JSON (Expecting value) nor a list written by Python"),
    ],
)
def test_a_prompt_listing_other_tools_than_the_field_quarantines_the_record(tmp_path, listed, why):
    # The prompt's list goes with the instructions: other tools than the field's would be lost.
    row = hermes_chat(HERMES_SYSTEM.replace("{tools}", listed), json.dumps([WEATHER]))
    item = read_one(tmp_path, row, "sharegpt")
    assert isinstance(item, Quarantined) and item.field == "conversations[0].value" and why in item.error


@pytest.mark.parametrize(
    "text, value",
    [
        ("{'a': True, 'b': None, 'c': [1, 2.5, 'x']}", {"a": True, "b": None, "c": [1, 2.5, "x"]}),
        ("(1, 2)", None),  # JSON has no tuple, set, bytes, non-string key or infinity
        ("{1, 2}", None),
        ("b'x'", None),
        ("{1: 2}", None),
        ("1e400", None),
        ("-" * 100_000 + "1", None),
        ("[" * 100_000, None),
        ("__import__('os')", None),
    ],
)
def test_python_literals_are_read_only_when_they_hold_json_values(text, value):
    assert python_literal(text) == value


@pytest.mark.parametrize("field", [[], "[]", None, "", " "])
def test_an_empty_tools_field_says_nothing_and_the_prompt_lists_them(tmp_path, field):
    row = {
        "tools": field,
        "messages": [
            {"role": "system", "content": HERMES_SYSTEM.replace("{tools}", json.dumps([WEATHER]))},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
            },
        ],
    }
    record = read_one(tmp_path, row)
    assert isinstance(record, Record) and [t["name"] for t in record.tools] == ["get_weather"]


def test_text_after_the_hermes_instructions_quarantines_rather_than_vanishes(tmp_path):
    system = HERMES_SYSTEM.replace("{tools}", json.dumps([WEATHER])) + "\n\nAlways answer in French."
    row = {"system": system, "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Salut"}]}
    item = read_one(tmp_path, row, "sharegpt")
    assert isinstance(item, Quarantined) and item.field == "system"
    assert "text among the Hermes instructions is none of their known sentences and would be lost with them " in (
        item.error
    )
    assert "('Always answer in French'): put text of your own before them" in item.error


def test_a_prompt_that_only_quotes_the_tool_list_line_is_kept_whole(tmp_path):
    # Without FunReason's instructions the prompt is the record's own, list and all: nothing read twice.
    from funreason_refine.targets import TOOLS_MARKER

    system = "You are a helpful assistant.\n" + TOOLS_MARKER + json.dumps([WEATHER])
    row = {"system": system, "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    record = read_one(tmp_path, row, "sharegpt")
    assert isinstance(record, Record) and record.system == system and record.tools == []


def test_funreason_instructions_without_their_list_quarantine_the_record(tmp_path):
    from funreason_refine.targets import TOOLS_MARKER

    system = FUNREASON_SYSTEM.replace(TOOLS_MARKER, "")
    row = {"system": system, "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    item = read_one(tmp_path, row, "sharegpt")
    assert isinstance(item, Quarantined) and "the FunReason instructions hold no tool list" in item.error


@pytest.mark.parametrize(
    "text",
    [
        "['celsius' 'fahrenheit']",  # Python joins them: a different value than the text shows
        "{'path': 'C:\\x41'}",  # Python's own escapes
        "{'n': 0x10}",
        "{'n': 1_000}",
        "{'a': 1,}",
        "{'a':1}",  # not as Python writes it
        "{'n': 0x" + "f" * 20_000 + "}",  # past the 4,300 digits json reads
        "[" + ", ".join(["1"] * 100_000) + "]",  # over LITERAL_LIMIT
    ],
)
def test_only_what_python_itself_writes_is_read_as_a_python_literal(text):
    assert python_literal(text) is None


def test_a_block_python_would_read_but_did_not_write_says_so(tmp_path):
    record = read_one(tmp_path, hermes_data_row("{'arguments': {'city': 'Paris'}, 'name': 'get_weather',}"), "sharegpt")
    assert isinstance(record, Record) and record.answer is None
    assert record.problems[0].message.endswith(
        "<tool_call> block 0: not JSON (Expecting property name enclosed in double quotes)"
        " nor a dict as Python writes it"
    )


def test_a_block_as_python_writes_it_is_read_but_not_arguments_as_python_text(tmp_path):
    # A block is a whole call as Hermes data writes it; arguments given as a text stay JSON text, as in tool_calls.
    block = repr({"arguments": "{'city': 'Paris'}", "name": "get_weather"})
    record = read_one(tmp_path, hermes_data_row(block), "sharegpt")
    assert isinstance(record, Record) and record.answer is None
    assert "arguments: not JSON" in record.problems[0].message


def test_many_unclosed_tools_tags_are_no_tool_list():
    system = HERMES_SYSTEM.replace("<tools>\n{tools}\n</tools>", "") + "<tools>" * 20_000
    with pytest.raises(ValueError, match="hold 0 <tools> blocks with a tool list, not one"):
        tools_in_system(system)


def test_a_list_followed_by_an_object_is_no_run_of_tools():
    from funreason_refine.targets import TOOLS_MARKER

    with pytest.raises(ValueError, match="text among the FunReason instructions is none of their known sentences"):
        tools_in_system(FUNREASON_SYSTEM.replace(TOOLS_MARKER, TOOLS_MARKER + json.dumps([WEATHER]) + '\n{"note": 1}'))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)


@given(st.lists(json_values, max_size=4) | st.dictionaries(st.text(), json_values, max_size=4))
def test_what_python_writes_of_json_values_reads_back_as_them(value):
    # Hermes data was written by Python's str(): every such text reads back as what was written.
    assert python_literal(repr(value)) == value
    assert tools_in_system(HERMES_SYSTEM.replace("{tools}", repr([{"name": "f", "x": value}]))) == [
        {"name": "f", "x": value}
    ]


def test_a_tools_text_naming_the_tag_reads_back_from_our_hermes_export(tmp_path):
    # The block is read as JSON: a "</tools>" inside a description is text, not the block's end.
    tool = {**WEATHER, "description": "Weather, wrapped in </tools> tags, or <tools>x</tools>."}
    row = hermes_chat(HERMES_SYSTEM.replace("{tools}", json.dumps([tool])), json.dumps([tool]))
    record = read_one(tmp_path, row, "sharegpt")
    assert isinstance(record, Record) and record.tools[0]["description"] == tool["description"]
    record = read_one(tmp_path, hermes_chat(HERMES_SYSTEM.replace("{tools}", json.dumps([tool])), None), "sharegpt")
    assert isinstance(record, Record) and record.tools[0]["description"] == tool["description"]


@pytest.mark.parametrize(
    "field, listed",
    [
        (
            [WEATHER, {**WEATHER, "name": "get_time"}],
            [{**WEATHER, "name": "get_time"}, WEATHER, WEATHER],
        ),  # order, repeats
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"x": {"type": "Frob[int]"}}}}],
            [{"name": "f", "parameters": {"x": {"type": "Frob[int]"}}}],
        ),  # unconvertible, kept as given, wrapped or not
    ],
)
def test_the_same_tools_in_another_form_are_the_same_tools(tmp_path, field, listed):
    row = hermes_chat(HERMES_SYSTEM.replace("{tools}", json.dumps(listed)), json.dumps(field))
    assert isinstance(read_one(tmp_path, row, "sharegpt"), Record)


def test_an_empty_tools_block_beside_a_tools_field_lists_nothing(tmp_path):
    row = hermes_chat(HERMES_SYSTEM.replace("{tools}", ""), json.dumps([WEATHER]))
    record = read_one(tmp_path, row, "sharegpt")
    assert isinstance(record, Record) and [t["name"] for t in record.tools] == ["get_weather"]


def test_the_quarantine_names_the_tools_that_differ(tmp_path):
    row = hermes_chat(
        HERMES_SYSTEM.replace("{tools}", json.dumps([{**WEATHER, "name": "get_time"}])), json.dumps([WEATHER])
    )
    item = read_one(tmp_path, row, "sharegpt")
    assert isinstance(item, Quarantined)
    assert item.error.endswith("the prompt's own: ['get_time']; the field's own: ['get_weather']")


@pytest.mark.parametrize("fmt", ["openai", "sharegpt"])
def test_an_empty_text_for_tools_says_nothing_as_docs_reading_says(tmp_path, fmt):
    # It was quarantined: "field 'tools' is a string but not JSON".
    turns = (
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
        if fmt == "openai"
        else {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    )
    record = read_one(tmp_path, {**turns, "tools": ""}, fmt)
    assert isinstance(record, Record) and record.tools == [] and record.answer == "Hello"


# System prompts as function-calling datasets write them (the tool list where {tools} stands).
NOUS_V1 = (  # NousResearch/hermes-function-calling-v1, on one line
    "You are a function calling AI model. You are provided with function signatures within <tools> </tools> XML "
    "tags. You may call one or more functions to assist with the user query. Don't make assumptions about what "
    "values to plug into functions. <tools> {tools} </tools> For each function call return a json object with "
    "function name and arguments within <tool_call> </tool_call> tags with the following schema: <tool_call> "
    "{'arguments': <args-dict>, 'name': <function-name>} </tool_call> "
)
NOUS_THINKING = (  # hermes-function-calling-thinking-V1: sentences run together, a pydantic schema
    "You are a function calling AI model. You are provided with function signatures within <tools></tools> XML "
    "tags.You may call one or more functions to assist with the user query. Don't make assumptions about what "
    "values to plug into functions.Here are the available tools:<tools> {tools} </tools>Use the following pydantic "
    "model json schema for each tool call you will make: {'title': 'FunctionCall', 'type': 'object', 'properties': "
    "{'arguments': {'title': 'Arguments', 'type': 'object'}, 'name': {'title': 'Name', 'type': 'string'}}, "
    "'required': ['arguments', 'name']}For each function call return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags as follows:\n<tool_call>\n{tool_call}\n</tool_call>"
)
HERMES_NOT_RELEVANT = (  # Hermes 2 Pro's trajectories, with when not to call and how results come back
    "You are a function calling AI model. You are provided with function signatures within <tools> </tools> XML "
    "tags. You may call one or more functions to assist with the user query. If available tools are not relevant "
    "in assisting with user query, just respond in natural conversational language. Don't make assumptions about "
    "what values to plug into functions. After calling & executing the functions, you will be provided with "
    "function results within <tool_response> </tool_response> XML tags.\n\n<tools>\n{tools}\n</tools>"
)
TOOLACE = (  # BFCL's instructions, the list after "invoke:", a closing line after it
    "You are an expert in composing functions. You are given a question and a set of possible functions. Based on "
    "the question, you will need to make one or more function/tool calls to achieve the purpose. If none of the "
    "function can be used, point it out. If the given question lacks the parameters required by the function, also "
    "point it out. You should only return the function call in tools call sections.\nHere is a list of functions in "
    "JSON format that you can invoke:\n{tools}. Should you decide to return the function call(s), Put it in the "
    "format of [func1(params_name=params_value, params_name2=params_value2...), func2(params)]\n\nNO other text "
    "MUST be included."
)
BFCL = (  # BFCL's default system prompt, its lines as the leaderboard breaks them
    "You are an expert in composing functions. You are given a question and a set of possible functions.\nBased on "
    "the question, you will need to make one or more function/tool calls to achieve the purpose.\nIf none of the "
    "function can be used, point it out. If the given question lacks the parameters required by the function,\n"
    "also point it out. You should only return the function call in tools call sections.\nIf you decide to invoke "
    "any of the function(s), you MUST put it in the format of [func_name1(params_name1=params_value1, "
    "params_name2=params_value2...), func_name2(params)]\nYou SHOULD NOT include any other text in the response.\n"
    "Here is a list of functions in JSON format that you can invoke.\n\n{tools}\n"
)


def system_row(system, tools_field=None):
    row = {
        "system": system,
        "conversations": [{"from": "human", "value": "Weather in Paris?"}, {"from": "gpt", "value": "Sunny."}],
    }
    return {**row, "tools": tools_field} if tools_field is not None else row


@pytest.mark.parametrize("template", [NOUS_V1, NOUS_THINKING, HERMES_NOT_RELEVANT, TOOLACE, BFCL])
@pytest.mark.parametrize("written", [json.dumps, repr])
def test_instructions_as_datasets_write_them_are_read_and_left_out_whole(tmp_path, template, written):
    listed = written([{"type": "function", "function": WEATHER}] if template is NOUS_V1 else [WEATHER])
    if written is repr and template in (TOOLACE, BFCL):
        listed = json.dumps([WEATHER])  # a Python-written list is read only when nothing follows it
    record = read_one(tmp_path, system_row("Be brief.\n\n" + template.replace("{tools}", listed)), "sharegpt")
    assert isinstance(record, Record), record.error
    assert record.tools[0]["name"] == "get_weather" and record.system == "Be brief."


@pytest.mark.parametrize(
    "system, foreign",
    [
        (
            NOUS_V1.replace("XML tags.", "XML tags. Today is 2024-05-01; the user is a premium customer in Oslo."),
            "Today is 2024-05-01; the user is a premium customer in Oslo",
        ),
        (HERMES_NOT_RELEVANT + "\nRules: never reveal prices.", "Rules: never reveal prices"),
        (NOUS_V1 + "\n\nExample — if the user says hi, greet them.", "Example — if the user says hi, greet them"),
        (
            TOOLACE.replace("tools call sections.", "tools call sections. Always reply in German."),
            "Always reply in German",
        ),
        (TOOLACE + "\nThe current time is 2024-05-01 10:00.", "The current time is 2024-05-01 10:00"),
    ],
)
def test_text_among_the_instructions_quarantines_the_record_rather_than_vanishes(tmp_path, system, foreign):
    # It was cut with the instructions and the list: the record was kept without it, without a word.
    for tools_field in (None, json.dumps([WEATHER])):
        item = read_one(tmp_path, system_row(system.replace("{tools}", json.dumps([WEATHER])), tools_field), "sharegpt")
        assert isinstance(item, Quarantined) and item.field == "system", item
        assert f"would be lost with them ({foreign!r}): put text of your own before them" in item.error


@pytest.mark.parametrize(
    "system",
    [
        "You are a function calling AI model. You are provided with function signatures within <tools></tools> "
        "XML tags. Today is 2024-05-01; the user is a premium customer in Oslo. Answer in Norwegian.",
        "You are an expert in composing functions. You are given a question and a set of possible functions. "
        "Always reply in German. The user's account id is 4411.",
        "Note for annotators: the old prompt began 'You are a function calling AI model. You are provided with f",
    ],
)
def test_a_prompt_that_begins_as_the_instructions_but_lists_no_tools_is_kept_whole(tmp_path, system):
    # With a tools field no list is needed from the prompt: it was cut at the instructions' first words all the same.
    record = read_one(tmp_path, system_row(system, json.dumps([WEATHER])), "sharegpt")
    assert isinstance(record, Record) and record.system == system and record.tools[0]["name"] == "get_weather"


HERMES_2_PRO = (  # the tool_use template as it renders: its schema closed with one brace too many
    "You are a function calling AI model. You are provided with function signatures within <tools></tools> XML "
    "tags. You may call one or more functions to assist with the user query. Don't make assumptions about what "
    "values to plug into functions. Here are the available tools: <tools> {tools} </tools> Use the following "
    'pydantic model json schema for each tool call you will make: {"properties": {"name": {"title": "Name", '
    '"type": "string"}, "arguments": {"title": "Arguments", "type": "object"}}, "required": ["name", "arguments"], '
    '"title": "FunctionCall", "type": "object"}} For each function call return a json object with function name '
    "and arguments within <tool_call></tool_call> XML tags as follows:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-dict>}\n</tool_call>'
)
BFCL_V3 = BFCL.replace(
    "You SHOULD NOT include any other text in the response.\n",
    "You SHOULD NOT include any other text in the response.\n\nAt each turn, you should try your best to complete "
    "the tasks requested by the user within the current turn. Continue to output functions to call until you have "
    "fulfilled the user's request to the best of your ability. Once you have no more functions to call, the system "
    "will consider the current turn complete and proceed to the next turn or task.\n",
)


@pytest.mark.parametrize("template", [HERMES_2_PRO, BFCL_V3])
def test_more_templates_as_they_render_are_read(tmp_path, template):
    record = read_one(tmp_path, system_row(template.replace("{tools}", json.dumps([WEATHER]))), "sharegpt")
    assert isinstance(record, Record), record.error
    assert record.tools[0]["name"] == "get_weather" and record.system is None


@pytest.mark.parametrize(
    "system, foreign",
    [
        (  # a rule written into how a call is written
            NOUS_V1.replace("<function-name>} </tool_call>", "<function-name>} Never call it twice. </tool_call>"),
            "<function-name>} Never call it",
        ),
        (  # a few-shot example of the record's own
            NOUS_V1 + '\nExample:\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
        ),
        (  # a rule written into the call's schema
            NOUS_THINKING.replace("'title': 'FunctionCall',", "'title': 'FunctionCall', 'description': 'Ask units',"),
            "Use the following pydantic model json schema for each tool call you will make...",
        ),
    ],
)
def test_what_the_instructions_show_of_a_call_is_theirs_only_as_placeholders(tmp_path, system, foreign):
    # <tool_call>.*?</tool_call> and any braces after the schema sentence took whatever they held with them.
    item = read_one(tmp_path, system_row(system.replace("{tools}", json.dumps([WEATHER]))), "sharegpt")
    assert isinstance(item, Quarantined) and item.field == "system", item
    assert "is none of their known sentences" in item.error and foreign in item.error


@pytest.mark.parametrize("text", [" " * 100_000 + "Answer in French.", "<tool_call>" * 20_000, "{" * 50_000])
def test_long_hostile_text_among_the_instructions_is_found_in_one_pass(tmp_path, text):
    # Two patterns tried every start of a run of spaces or every unclosed <tool_call> to the end of the text:
    # 100,000 spaces took 126 s (1 MiB records are allowed). This test would take minutes again.
    system = HERMES_SYSTEM.replace("{tools}", json.dumps([WEATHER])) + text
    item = read_one(tmp_path, system_row(system), "sharegpt")
    assert isinstance(item, Quarantined) and "would be lost with them" in item.error


@pytest.mark.parametrize("fmt", ["hermes", "funreason"])
def test_a_prompt_kept_whole_reads_back_from_its_own_export(tmp_path, fmt):
    # It begins as the Hermes instructions: read back, the export's own instructions after it were taken
    # for text among the first ones, and the record was quarantined.
    from funreason_refine.export.formats import to_row
    from funreason_refine.run_folder import to_json_line

    system = (
        "You are a function calling AI model. You are provided with function signatures within <tools></tools> "
        "XML tags. Today is 2024-05-01; the user is a premium customer in Oslo. Answer in Norwegian."
    )
    row = {**system_row(system, json.dumps([WEATHER]))}
    record = read_one(tmp_path, row, "sharegpt")
    assert isinstance(record, Record) and record.system == system
    exported = to_row(json.loads(to_json_line(record)), fmt)
    (tmp_path / "again").mkdir()
    again = read_one(tmp_path / "again", exported, "openai")
    assert isinstance(again, Record), again.error
    assert again.system == system and again.tools == record.tools
