"""Glaive's function-calling data (glaive-function-calling-v2 and its ShareGPT and OpenAI conversions)
writes an assistant's call in its text, ``<functioncall> {"name": ..., "arguments": '{...}'}
<|endoftext|>``, and a tool's reply as ``FUNCTION RESPONSE: {...}``. Such a turn was read as a text
reply: the training target changed from a call to a text without a word (docs/reading.md)."""

import json

import pytest

from funreason_refine.errors import InputError
from funreason_refine.readers import InputStream
from funreason_refine.record import Quarantined, Record
from tests.conftest import write_jsonl
from tests.readers.test_faithful import WEATHER, exported, read_one, refine

PARIS = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
SINGLE_QUOTED = """<functioncall> {"name": "get_weather", "arguments": '{"city": "Paris"}'} <|endoftext|>"""


def openai_chat(answer, *after):
    return {
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": answer},
            *after,
        ],
    }


def sharegpt_chat(answer, *after, human="human"):
    turns = [{"from": human, "value": "Weather in Paris?"}, {"from": "gpt", "value": answer}, *after]
    return {"tools": json.dumps([WEATHER["function"]]), "conversations": turns}


def chat(fmt, answer, *after):
    if fmt == "openai":
        return openai_chat(answer, *[{"role": "assistant" if a[0] == "gpt" else a[0], "content": a[1]} for a in after])
    return sharegpt_chat(answer, *[{"from": a[0], "value": a[1]} for a in after])


def dumped(calls):
    return [c.model_dump() for c in calls]


FIELDS = [("openai", "messages[1].content"), ("sharegpt", "conversations[1].value")]


# --- the calls are read --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        SINGLE_QUOTED,  # Glaive's own: the arguments JSON text in single quotes, then its end marker
        """<functioncall> {"name": "get_weather", "arguments": '{"city": "Paris"}'}""",  # no end marker
        '<functioncall> {"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"} <|endoftext|>',  # JSON text
        '<functioncall> {"name": "get_weather", "arguments": {"city": "Paris"}}<|endoftext|>',  # an object
        """<functioncall> {'name': 'get_weather', 'arguments': '{"city": "Paris"}'}""",  # as Python writes a dict
        """\n<functioncall>\n{"name": "get_weather", "arguments": ' {"city": "Paris"} '}\n<|endoftext|>\n""",
    ],
)
@pytest.mark.parametrize("fmt", ["openai", "sharegpt"])
def test_a_glaive_call_in_an_assistants_text_is_read_as_the_call(tmp_path, fmt, answer):
    record = read_one(tmp_path, chat(fmt, answer), fmt)
    assert isinstance(record, Record), record
    assert dumped(record.answer) == PARIS  # was the text '<functioncall> {...} <|endoftext|>'
    assert record.problems == []


def test_quotes_inside_single_quoted_arguments_are_the_arguments_own(tmp_path):
    answer = """<functioncall> {"name": "note", "arguments": '{"text": "Don't forget the 'milk'", "n": [1, {}]}'}"""
    record = read_one(tmp_path, openai_chat(answer))
    assert dumped(record.answer) == [{"name": "note", "arguments": {"text": "Don't forget the 'milk'", "n": [1, {}]}}]


def test_text_before_a_glaive_call_is_kept_beside_it_and_the_end_marker_is_not(tmp_path):
    answer = "Sure, let me check. " + SINGLE_QUOTED
    record = read_one(tmp_path, openai_chat(answer, {"role": "tool", "content": "sun"}))
    turn = record.messages[1]
    assert dumped(turn.answer) == PARIS
    assert turn.content == "Sure, let me check."


def test_two_glaive_calls_in_one_turn_are_two_calls(tmp_path):
    oslo = """<functioncall> {"name": "get_weather", "arguments": '{"city": "Oslo"}'} <|endoftext|>"""
    record = read_one(tmp_path, openai_chat(SINGLE_QUOTED + "\n" + oslo))
    assert [c.arguments["city"] for c in record.answer] == ["Paris", "Oslo"]


@pytest.mark.parametrize("fmt", ["openai", "sharegpt"])
def test_a_glaive_conversation_reads_its_function_response_as_the_calls_result(tmp_path, fmt):
    # The function's reply came as a user turn: read so, the user said the weather, and the call had no result.
    after = [("user", 'FUNCTION RESPONSE: {"temperature": 21}'), ("gpt", "It is 21 degrees in Paris. <|endoftext|>")]
    if fmt == "sharegpt":
        after[0] = ("human", after[0][1])
    record = read_one(tmp_path, chat(fmt, SINGLE_QUOTED, *after), fmt)
    assert isinstance(record, Record), record
    assert [m.role for m in record.messages] == ["user", "assistant", "tool", "assistant"]
    call_turn, result = record.messages[1], record.messages[2]
    assert dumped(call_turn.answer) == PARIS
    assert result.content == '{"temperature": 21}' and result.call_id == call_turn.call_ids[0]
    assert record.messages[3].answer == "It is 21 degrees in Paris."  # the turn's end marker is no text of it


def test_an_assistant_text_that_begins_as_a_function_response_stays_the_assistants_text(tmp_path):
    record = read_one(tmp_path, openai_chat("FUNCTION RESPONSE: is what the tool's reply begins with <|endoftext|>"))
    assert isinstance(record, Record), record
    assert record.query == "Weather in Paris?"  # one turn: the user's and the assistant's
    assert record.answer == "FUNCTION RESPONSE: is what the tool's reply begins with"


@pytest.mark.parametrize("tag", ["observation", "function_response", "tool"])
def test_a_sharegpt_result_turn_loses_glaives_label_and_function_response_is_a_result(tmp_path, tag):
    row = sharegpt_chat(SINGLE_QUOTED, {"from": tag, "value": 'FUNCTION RESPONSE: {"t": 21}'})
    record = read_one(tmp_path, row, "sharegpt")
    assert isinstance(record, Record), record
    assert [(m.role, m.content) for m in record.messages[2:]] == [("tool", '{"t": 21}')]


def test_an_openai_tool_message_loses_glaives_label(tmp_path):
    result = {"role": "tool", "tool_call_id": "call_0_0", "content": 'FUNCTION RESPONSE: {"t": 21}'}
    record = read_one(tmp_path, openai_chat(SINGLE_QUOTED, result))
    assert [(m.role, m.content, m.call_id) for m in record.messages[2:]] == [("tool", '{"t": 21}', "call_0_0")]


def test_a_run_keeps_a_glaive_call_as_a_call_target(tmp_path):
    outcome = refine(tmp_path, [openai_chat(SINGLE_QUOTED)])
    (kept,) = outcome["kept"]
    assert kept["target"] == '[get_weather(city="Paris")]'
    assert kept["answer"] == PARIS


# --- what cannot be read faithfully --------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, why",
    [
        (
            """<functioncall> {"name": "get_weather", "arguments": '["Paris"]'}""",
            "arguments must be an object, got list",
        ),
        ("""<functioncall> {"name": "get_weather", "arguments": '"Paris"'}""", "arguments must be an object, got str"),
        (
            """<functioncall> {"name": "get_weather", "arguments": '{"city": "Paris", "city": "Oslo"}'}""",
            "the key 'city' is given twice",
        ),
        (
            """<functioncall> {"name": "get_weather", "name": "w", "arguments": '{"city": "Paris"}'}""",
            "the key 'name' is given twice",
        ),
        ("""<functioncall> {"name": "get_weather", "arguments": '{"city": }'}""", "in single quotes are not JSON"),
        (
            """<functioncall> {"name": "get_weather", "arguments": '{"city": "Paris"} {}'}""",
            "in single quotes hold text after their JSON value",
        ),
        (
            """<functioncall> {"name": "get_weather", "arguments": '{"city": "Paris"}'} Anything else?""",
            "text after the call ('Anything else?'); Glaive ends a call with <|endoftext|>",
        ),
        ('<functioncall> {"arguments": {"city": "Paris"}} <|endoftext|>', "no function name"),
        ("<functioncall> <|endoftext|>", "not JSON"),
        (SINGLE_QUOTED + '<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>', "both as <tool_call>"),
    ],
)
@pytest.mark.parametrize("fmt, field", FIELDS)
def test_a_glaive_call_that_cannot_be_read_is_a_malformed_answer_naming_the_field(tmp_path, answer, why, fmt, field):
    record = read_one(tmp_path, chat(fmt, answer), fmt)
    assert isinstance(record, Record) and record.answer is None  # not a text reply
    ((where, code, message),) = [(p.field, p.code, p.message) for p in record.problems]
    assert (where, code) == (field, "malformed_answer")
    assert message.startswith(f"{field}: ") and why in message, message


def test_a_run_discards_a_malformed_glaive_call_saying_why(tmp_path):
    row = openai_chat("""<functioncall> {"name": "get_weather", "arguments": '["Paris"]'} <|endoftext|>""")
    (discarded,) = refine(tmp_path, [row])["discarded"]
    assert discarded["reason"] == "malformed_answer"
    assert discarded["message"].startswith("messages[1].content: Glaive <functioncall> calls do not parse: ")


@pytest.mark.parametrize("fmt, field", FIELDS)
def test_a_key_of_a_glaive_call_that_would_be_lost_quarantines_the_record(tmp_path, fmt, field):
    answer = """<functioncall> {"name": "get_weather", "confidence": 0.9, "arguments": '{"city": "Paris"}'}"""
    item = read_one(tmp_path, chat(fmt, answer), fmt)
    assert isinstance(item, Quarantined) and item.field == field
    why = "key 'confidence' is not read (it would be lost); only name and arguments are"
    assert item.error == f"{field}: <functioncall> call 0: {why}"


# --- Glaive's own form -----------------------------------------------------------------------------

GLAIVE_ROW = {
    "system": "SYSTEM: You are a helpful assistant with access to the following functions. Use them if required -\n"
    + json.dumps(WEATHER["function"]),
    "chat": "USER: Weather in Paris?\n\n\nASSISTANT: " + SINGLE_QUOTED + '\n\n\nFUNCTION RESPONSE: {"t": 21}\n',
}


@pytest.mark.parametrize("fmt", ["openai", "sharegpt", "xlam"])
def test_a_record_in_glaives_own_form_is_refused_saying_what_to_do(tmp_path, fmt):
    item = read_one(tmp_path, GLAIVE_ROW, fmt)
    assert isinstance(item, Quarantined) and item.field == "chat"
    assert "Glaive's own form" in item.error and "convert it to ShareGPT" in item.error


def test_a_file_in_glaives_own_form_is_refused_before_the_run(tmp_path):
    path = write_jsonl(tmp_path / "glaive.jsonl", [GLAIVE_ROW])
    with pytest.raises(InputError, match="line 1 is in Glaive's own form .*convert it to ShareGPT"):
        InputStream(path, None)


def test_a_sharegpt_record_that_keeps_glaives_chat_beside_its_conversations_is_read_from_them(tmp_path):
    row = {**sharegpt_chat(SINGLE_QUOTED), "chat": GLAIVE_ROW["chat"]}  # as lilacai's conversion keeps it
    record = read_one(tmp_path, row, "sharegpt")
    assert isinstance(record, Record) and dumped(record.answer) == PARIS


# --- read from Glaive, exported, read back: the same calls -------------------------------------------


@pytest.mark.parametrize("export", ["openai", "sharegpt", "hermes", "funreason"])
@pytest.mark.parametrize("fmt", ["openai", "sharegpt"])
def test_a_glaive_conversation_exports_and_reads_back_to_the_same_calls(tmp_path, fmt, export):
    oslo = """Let me look. <functioncall> {"name": "get_weather", "arguments": '{"city": "Oslo"}'} <|endoftext|>"""
    after = [("user", "FUNCTION RESPONSE: sun"), ("user", "And Oslo?"), ("gpt", oslo), ("tool", "rain")]
    if fmt == "sharegpt":
        after = [("human" if role == "user" else "observation" if role == "tool" else role, v) for role, v in after]
    first = read_one(tmp_path, chat(fmt, SINGLE_QUOTED, *after), fmt)
    assert isinstance(first, Record), first
    back = read_one(tmp_path, exported(first, export), "sharegpt" if export == "sharegpt" else "openai")
    assert isinstance(back, Record), back

    def turns(record):
        return [
            (m.role, dumped(m.answer) if isinstance(m.answer, list) else m.answer, m.content) for m in record.messages
        ]

    oslo_call = [{"name": "get_weather", "arguments": {"city": "Oslo"}}]
    beside = None if export == "funreason" else "Let me look."  # the paper's target writes calls alone
    assert turns(back) == [
        ("user", None, "Weather in Paris?"),
        ("assistant", PARIS, None),
        ("tool", None, "sun"),
        ("user", None, "And Oslo?"),
        ("assistant", oslo_call, beside),
        ("tool", None, "rain"),
    ]
    assert turns(back)[1:3] == turns(first)[1:3]


GLAIVE_SYSTEM = "SYSTEM: You are a helpful assistant with access to the following functions. Use them if required -\n"
GLAIVE_TOOLS = json.dumps(WEATHER["function"], indent=4) + "\n\n" + json.dumps({"name": "get_time", "parameters": {}})


def glaive_prompted(fmt, system, tools=None):
    """A chat whose tools are only in Glaive's system prompt, as conversions without a tools field keep them."""
    if fmt == "openai":
        row = openai_chat(SINGLE_QUOTED)
        row["messages"].insert(0, {"role": "system", "content": system})
    else:
        row = sharegpt_chat(SINGLE_QUOTED)
        row["system"] = system
    if tools is None:
        del row["tools"]
    else:
        row["tools"] = tools
    return row


@pytest.mark.parametrize("fmt", ["openai", "sharegpt"])
@pytest.mark.parametrize("label", ["SYSTEM: ", ""])
def test_the_tools_of_glaives_system_prompt_are_the_records_tools_and_no_prompt_is_left(tmp_path, fmt, label):
    # They were not read: the prompt was the record's own, and every call was discarded as unknown_function.
    record = read_one(tmp_path, glaive_prompted(fmt, GLAIVE_SYSTEM.replace("SYSTEM: ", label) + GLAIVE_TOOLS), fmt)
    assert isinstance(record, Record), record
    assert [t["name"] for t in record.tools] == ["get_weather", "get_time"]
    assert record.system is None, "the instructions and the label go with their tools; exports write their own"
    assert dumped(record.answer) == PARIS


def test_glaives_tools_may_also_be_one_json_list(tmp_path):
    tools = json.dumps([WEATHER["function"], {"name": "get_time", "parameters": {}}])
    record = read_one(tmp_path, glaive_prompted("openai", GLAIVE_SYSTEM + tools))
    assert [t["name"] for t in record.tools] == ["get_weather", "get_time"] and record.system is None


def test_text_of_the_records_own_before_glaives_instructions_stays_its_prompt(tmp_path):
    record = read_one(tmp_path, glaive_prompted("openai", "Answer in French.\n" + GLAIVE_SYSTEM + GLAIVE_TOOLS))
    assert record.system == "Answer in French." and len(record.tools) == 2


def test_a_run_keeps_a_glaive_record_whose_tools_are_in_its_prompt_and_its_export_reads_back(tmp_path):
    outcome = refine(tmp_path, [glaive_prompted("openai", GLAIVE_SYSTEM + GLAIVE_TOOLS)])
    (kept,) = outcome["kept"]
    assert kept["target"] == '[get_weather(city="Paris")]' and kept["system"] is None
    row = exported(Record.model_validate(kept))
    assert [t["function"]["name"] for t in row["tools"]] == ["get_weather", "get_time"]
    assert not any(m["role"] == "system" for m in row["messages"]), "no instructions of Glaive's are exported"


@pytest.mark.parametrize(
    "system, tools, says",
    [
        (GLAIVE_SYSTEM + GLAIVE_TOOLS + "\nToday is Monday.", None, "none of their known sentences"),
        (GLAIVE_SYSTEM, None, "hold no tool after 'Use them if required -'"),
        (GLAIVE_SYSTEM + GLAIVE_TOOLS, [WEATHER], "other tools than the record's tools field"),
        (GLAIVE_SYSTEM + GLAIVE_TOOLS.replace("{", "[", 1), None, "cannot be read"),
        (GLAIVE_SYSTEM + GLAIVE_TOOLS + '\n"get_date"', None, "not all tools"),
    ],
    ids=["text among them", "no tool", "other tools than the field", "not JSON", "not a tool"],
)
def test_glaives_system_prompt_that_cannot_be_read_whole_quarantines_naming_the_field(tmp_path, system, tools, says):
    item = read_one(tmp_path, glaive_prompted("openai", system, tools))
    assert isinstance(item, Quarantined), item
    assert item.error.startswith("messages[0].content: ") and says in item.error, item.error
