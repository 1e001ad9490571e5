"""Inputs a fuzzer found that crashed a run or were changed without a word: each is now read, discarded
as a malformed answer, or quarantined naming its field (docs/reading.md)."""

import json

import pytest

from funreason_refine.call_text import UnreadKey, calls_in_text
from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.readers import InputStream
from funreason_refine.record import Quarantined, Record
from tests.conftest import read_jsonl, write_jsonl, xlam_row
from tests.readers.test_faithful import WEATHER, read_one, refine
from tests.readers.test_formats import BFCL_ANSWER, BFCL_QUESTION, bfcl_files

DEEP = "[" * 100_000 + "]" * 100_000


def hermes(block, fmt="openai"):
    """A one-turn chat whose assistant writes ``block`` inside <tool_call> tags."""
    text = f"<tool_call>\n{block}\n</tool_call>"
    if fmt == "sharegpt":
        return {"conversations": [{"from": "human", "value": "Weather in Paris?"}, {"from": "gpt", "value": text}]}
    return {
        "tools": [WEATHER],
        "messages": [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": text}],
    }


def problems(record):
    return [(p.field, p.code, p.message) for p in record.problems]


# --- 1. a <tool_call> block that does not hold a call ---------------------------------------------


@pytest.mark.parametrize(
    "block, why",
    [
        ('[{"name": "get_weather", "arguments": {"city": "Paris"}}]', "must hold a JSON object"),
        ("null", "must hold a JSON object with a name and arguments, got NoneType"),
        ('"x"', "must hold a JSON object with a name and arguments, got str"),
        ("7", "got int"),
        (DEEP, "not JSON (nested too deeply)"),
        (json.dumps({"name": "get_weather", "arguments": DEEP}), "arguments: not JSON (nested too deeply)"),
        ('{"name": 5, "arguments": {}}', "no function name"),
        ('{"name": "get_weather", "arguments": [1]}', "arguments must be an object, got list"),
    ],
)
@pytest.mark.parametrize("fmt, field", [("openai", "messages[1].content"), ("sharegpt", "conversations[1].value")])
def test_a_tool_call_block_that_holds_no_call_is_a_malformed_answer_not_a_crash(tmp_path, block, why, fmt, field):
    record = read_one(tmp_path, hermes(block, fmt), fmt)
    assert isinstance(record, Record) and record.answer is None
    ((where, code, message),) = problems(record)
    assert (where, code) == (field, "malformed_answer")
    assert message.startswith(f"{field}: tool call blocks do not parse: <tool_call> block 0") and why in message


def test_a_run_discards_a_block_that_is_a_list_and_keeps_going(tmp_path):
    rows = [hermes('[{"name": "get_weather", "arguments": {"city": "Paris"}}]'), hermes(DEEP)]
    outcome = refine(tmp_path, rows)
    assert [line["reason"] for line in outcome["discarded"]] == ["malformed_answer", "malformed_answer"]


def test_calls_in_text_says_value_error_for_every_unreadable_block():
    """What self-refinement catches for sampled answers: never an AttributeError or RecursionError."""
    for block in ("[]", "null", DEEP, '{"name": "f", "arguments": "' + DEEP + '"}'):
        with pytest.raises(ValueError):
            calls_in_text(f"<tool_call>{block}</tool_call>")


def test_xlam_arguments_text_nested_too_deeply_is_a_malformed_answer(tmp_path):
    record = read_one(tmp_path, xlam_row(answers=[{"name": "get_weather", "arguments": DEEP}]), "xlam")
    assert record.answer is None
    assert problems(record) == [
        ("answers[0]", "malformed_answer", "answers[0] (get_weather) arguments are not JSON: nested too deeply")
    ]


# --- 2. a ShareGPT 'from' that is not a text ------------------------------------------------------


@pytest.mark.parametrize("given, kind", [(["human"], "list"), ({"role": "human"}, "dict"), (1, "int")])
def test_a_sharegpt_from_that_is_not_a_text_is_quarantined_naming_it(tmp_path, given, kind):
    row = {"conversations": [{"from": given, "value": "x"}, {"from": "gpt", "value": "y"}]}
    item = read_one(tmp_path, row, "sharegpt")
    assert isinstance(item, Quarantined)
    assert (item.field, item.error) == ("conversations[0].from", f"conversations[0].from: must be a text, got {kind}")


# --- 3. the keys of a <tool_call> block -----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["openai", "sharegpt"])
def test_llama_parameters_in_a_tool_call_block_are_read_as_the_arguments(tmp_path, fmt):
    block = json.dumps({"name": "get_weather", "parameters": {"city": "Paris"}})
    record = read_one(tmp_path, hermes(block, fmt), fmt)
    assert [c.model_dump() for c in record.answer] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]


def test_a_run_keeps_the_parameters_of_a_llama_block(tmp_path):
    (kept,) = refine(tmp_path, [hermes(json.dumps({"name": "get_weather", "parameters": {"city": "Paris"}}))])["kept"]
    assert kept["target"] == '[get_weather(city="Paris")]'


@pytest.mark.parametrize(
    "block, key",
    [
        (
            {"name": "get_weather", "arguments": {"city": "Paris"}, "id": {"n": 1}},
            "a call id must be a text or a number",
        ),
        ({"name": "get_weather", "arguments": {"city": "Paris"}, "weight": 0}, "'weight' is not read"),
        ({"name": "get_weather", "arguments": {"city": "Paris"}, "parameters": {"city": "Oslo"}}, "both"),
    ],
)
@pytest.mark.parametrize("fmt, field", [("openai", "messages[1].content"), ("sharegpt", "conversations[1].value")])
def test_a_tool_call_block_key_that_would_be_lost_is_quarantined_naming_it(tmp_path, block, key, fmt, field):
    item = read_one(tmp_path, hermes(json.dumps(block), fmt), fmt)
    assert isinstance(item, Quarantined) and item.field == field
    assert item.error.startswith(f"{field}: <tool_call> block 0") and key in item.error


def test_a_block_key_that_says_nothing_is_no_loss():
    block = {"name": "get_weather", "arguments": {"city": "Paris"}, "id": None, "parameters": {}}
    calls, _, ids = calls_in_text(f"<tool_call>{json.dumps(block)}</tool_call>")
    assert [c.model_dump() for c in calls or []] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert ids == [None]
    with pytest.raises(UnreadKey) as caught:
        calls_in_text('<tool_call>{"name": "f", "arguments": {}, "id": true}</tool_call>')
    assert caught.value.key == "id"


@pytest.mark.parametrize("fmt", ["openai", "sharegpt"])
def test_a_block_id_is_the_calls_id_and_its_result_ties_to_it(tmp_path, fmt):
    # Some Hermes templates write {"name", "arguments", "id"}: the record was quarantined for its id.
    first = json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}, "id": 7})
    second = json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "b"})
    answer = f"<tool_call>{first}</tool_call><tool_call>{second}</tool_call>"
    if fmt == "openai":
        row = {
            "messages": [
                {"role": "user", "content": "Weather in Paris and Oslo?"},
                {"role": "assistant", "content": answer},
                {"role": "tool", "tool_call_id": "b", "content": "rain"},
                {"role": "tool", "tool_call_id": 7, "content": "sun"},
                {"role": "assistant", "content": "Sun in Paris, rain in Oslo."},
            ]
        }
    else:  # ShareGPT ties results by place
        turns = [{"from": "human", "value": "Weather in Paris and Oslo?"}, {"from": "gpt", "value": answer}]
        turns += [{"from": "observation", "value": json.dumps(["sun", "rain"])}, {"from": "gpt", "value": "Done."}]
        row = {"conversations": turns}
    record = read_one(tmp_path, row, fmt)
    assert isinstance(record, Record), record
    turn = record.messages[1]
    assert turn.call_ids == [7, "b"]
    results = {m.call_id: m.content for m in record.messages if m.role == "tool"}
    assert results == {7: "sun", "b": "rain"}


# --- 4. content given as one object ----------------------------------------------------------------


@pytest.mark.parametrize(
    "at, content",
    [
        (0, {"type": "text", "text": "Weather in Paris?"}),
        (0, {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}),
        (1, {"type": "text", "text": "Sunny"}),
    ],
)
def test_content_given_as_one_object_is_quarantined_naming_it(tmp_path, at, content):
    messages = [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": "Sunny"}]
    messages[at]["content"] = content
    item = read_one(tmp_path, {"messages": messages})
    assert isinstance(item, Quarantined) and item.field == f"messages[{at}].content"
    assert "content must be a text or a list of parts, got an object" in item.error


def test_a_system_content_object_is_quarantined_and_a_tool_result_object_is_still_its_json_text(tmp_path):
    row = {"messages": [{"role": "system", "content": {"a": 1}}, {"role": "user", "content": "Hi"}]}
    item = read_one(tmp_path, {**row, "messages": [*row["messages"], {"role": "assistant", "content": "Yo"}]})
    assert isinstance(item, Quarantined) and item.field == "messages[0].content"
    call = {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    chat = {
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c", "content": {"temp": 3}},
            {"role": "assistant", "content": "3 degrees."},
        ],
    }
    record = read_one(tmp_path, chat)
    assert isinstance(record, Record) and record.messages[2].content == '{"temp": 3}'


# --- 5. meta that is not an object -----------------------------------------------------------------

CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
SHAREGPT = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}


@pytest.mark.parametrize("meta, kind", [("source A", "str"), (["a"], "list"), (3, "int"), (True, "bool")])
@pytest.mark.parametrize("row, fmt", [(xlam_row(), "xlam"), (CHAT, "openai"), (SHAREGPT, "sharegpt")])
def test_a_meta_that_is_not_an_object_is_quarantined_not_dropped(tmp_path, meta, kind, row, fmt):
    item = read_one(tmp_path, {**row, "meta": meta}, fmt)
    assert isinstance(item, Quarantined)
    assert (item.field, item.error) == ("meta", f"field 'meta' must be an object, got {kind}")


@pytest.mark.parametrize(
    "meta, read",
    [
        (None, {}),
        ("", {}),
        ([], {}),
        ({"source": "A"}, {"source": "A"}),
        ('{"source": "A", "n": 1}', {"source": "A", "n": 1}),
    ],
)
@pytest.mark.parametrize("row, fmt", [(xlam_row(), "xlam"), (CHAT, "openai")])
def test_a_meta_object_is_kept_and_an_empty_one_says_nothing(tmp_path, meta, read, row, fmt):
    """An object's JSON text is that object (the exports write meta so)."""
    assert read_one(tmp_path, {**row, "meta": meta}, fmt).meta == read


def test_a_meta_text_that_is_no_json_object_is_quarantined(tmp_path):
    item = read_one(tmp_path, {**CHAT, "meta": '{"source": "A",'}, "openai")
    assert isinstance(item, Quarantined) and item.field == "meta"
    assert item.error.startswith("field 'meta' is a string but not JSON")


# --- 6. BFCL questions --------------------------------------------------------------------------------


def bfcl_item(tmp_path, question):
    tmp_path.mkdir(exist_ok=True)
    (item,) = InputStream(
        bfcl_files(tmp_path, [{**BFCL_QUESTION, "question": question}], [BFCL_ANSWER]), "bfcl"
    ).items()
    return item


USER = {"role": "user", "content": "Find the area of a triangle with a base of 10 units and height of 5 units."}


def test_a_bfcl_system_message_is_the_records_system_prompt(tmp_path):
    record = bfcl_item(tmp_path, [[{"role": "system", "content": "Answer in French"}, USER]])
    assert (record.system, record.query) == ("Answer in French", USER["content"])
    assert bfcl_item(tmp_path / "plain", [[USER]]).system is None


def test_a_bfcl_system_prompt_goes_through_the_run(tmp_path):
    path = bfcl_files(
        tmp_path, [{**BFCL_QUESTION, "question": [[{"role": "system", "content": "Be brief"}, USER]]}], [BFCL_ANSWER]
    )
    (tmp_path / "p.toml").write_text(f'[input]\npath = "{path.name}"\nformat = "bfcl"\n[output]\ndir = "run"\n')
    run_pipeline(load_pipeline(tmp_path / "p.toml"), workers=1)
    (kept,) = read_jsonl(tmp_path / "run" / "kept.jsonl")
    assert kept["system"] == "Be brief"


@pytest.mark.parametrize(
    "question, field, words",
    [
        ([[USER], [{"role": "user", "content": "And Oslo?"}]], "question[1]", "a second turn (BFCL multi-turn)"),
        ([[USER, {"role": "assistant", "content": "Sure"}]], "question[0][1].role", "role 'assistant'"),
        ([[USER, {"role": "system", "content": "Late"}]], "question[0][1].role", "a system message after"),
        ([[{"role": "user", "content": ["a"]}]], "question[0][0].content", "must be a text, got list"),
        ([[{**USER, "weight": 0}]], "question[0][0].weight", "not read"),
        ([["hi"]], "question[0][0]", "must be an object"),
        ([[{"role": "system", "content": "S"}]], "question", "no user message"),
    ],
)
def test_what_a_bfcl_record_cannot_hold_is_quarantined_naming_it(tmp_path, question, field, words):
    item = bfcl_item(tmp_path, question)
    assert isinstance(item, Quarantined) and item.field == field and words in item.error, item


def test_an_empty_later_bfcl_turn_says_nothing(tmp_path):
    assert bfcl_item(tmp_path, [[USER], []]).query == USER["content"]
    assert bfcl_item(tmp_path / "flat", [USER]).query == USER["content"]


def test_a_bfcl_file_without_questions_of_several_turns_reads_as_before(tmp_path):
    rows = [{**BFCL_QUESTION, "id": str(n)} for n in range(2)]
    path = write_jsonl(tmp_path / "BFCL_v3_simple.json", rows)
    (tmp_path / "possible_answer").mkdir()
    write_jsonl(tmp_path / "possible_answer" / "BFCL_v3_simple.json", [{**BFCL_ANSWER, "id": r["id"]} for r in rows])
    assert [r.query for r in InputStream(path, "bfcl").items()] == [BFCL_QUESTION["question"][0][0]["content"]] * 2


# --- a text that starts as a [func(...)] call list but does not parse ----------------------------


def chat_text(text, fmt):
    if fmt == "sharegpt":
        return {"conversations": [{"from": "human", "value": "Weather in Paris?"}, {"from": "gpt", "value": text}]}
    return {
        "tools": [WEATHER],
        "messages": [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": text}],
    }


@pytest.mark.parametrize("fmt, field", [("openai", "messages[1].content"), ("sharegpt", "conversations[1].value")])
@pytest.mark.parametrize(
    "text", ['[get_weather(city="Paris"', "[get_weather(city=)]", "[get_weather()", "[ get_weather (city = 'Paris'"]
)
def test_a_call_list_that_does_not_parse_is_a_malformed_answer_not_a_text_reply(tmp_path, text, fmt, field):
    # It was kept as a text reply: a model trained on it learns to write broken calls as its answer.
    record = read_one(tmp_path, chat_text(text, fmt), fmt)
    assert isinstance(record, Record) and record.answer is None
    ((where, code, message),) = problems(record)
    assert (where, code) == (field, "malformed_answer")
    assert message.startswith(f"{field}: calls do not parse: starts as a [func(...)] call list")


@pytest.mark.parametrize(
    "text",
    [
        "[Note (see below)] It is sunny.",
        "[1, 2] are the options.",
        "[x.strip() for x in lines] strips every line.",  # code in a coding chat's reply
        "[print()] prints an empty line.",
        "[dict(a=1), dict(b=2)] is a list of two dicts.",
    ],
)
def test_a_text_in_brackets_that_is_no_call_list_stays_a_text_reply(tmp_path, text):
    record = read_one(tmp_path, chat_text(text, "openai"), "openai")
    assert isinstance(record, Record) and record.answer == text and record.problems == []


# --- a FunReason system prompt whose tool list cannot be read -------------------------------------


@pytest.mark.parametrize(
    "after, why",
    [
        ('[{"name": "get_weather", "parameters": {"x": NaN}}]', "cannot be read: NaN is not a JSON value"),
        ('"get_weather"', "is a str, not a list of tools"),
        ("[{'name': 'get_weather'}] Use them well.", "is not JSON (Expecting property name"),
    ],
)
def test_a_funreason_system_prompt_whose_tools_cannot_be_read_is_quarantined_not_read_without_them(
    tmp_path, after, why
):
    # The instructions and the list are left out of the record's own system prompt: its tools were lost.
    from funreason_refine.targets import FUNREASON_SYSTEM

    row = {
        "messages": [
            {"role": "system", "content": "Be brief.\n\n" + FUNREASON_SYSTEM + after},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": '[get_weather(city="Paris")]'},
        ]
    }
    item = read_one(tmp_path, row)
    assert isinstance(item, Quarantined) and item.field == "messages[0].content"
    assert (
        item.error.startswith("messages[0].content: the tool list after the FunReason instructions")
        and why in item.error
    )


def test_a_funreason_system_prompt_with_its_tools_is_read():
    from funreason_refine.readers.system_tools import tools_in_system
    from funreason_refine.targets import FUNREASON_SYSTEM

    assert tools_in_system("Be brief.\n\n" + FUNREASON_SYSTEM + '[{"name": "f"}]') == [{"name": "f"}]
    assert tools_in_system("Be brief.") is None


def test_a_call_to_a_function_whose_name_holds_spaces_is_a_malformed_answer_saying_so(tmp_path):
    # ToolACE names its APIs so ("Market Trends API"); the record was kept as a text reply.
    text = '[Market Trends API(trend_type="MARKET_INDEXES", country="us")]'
    record = read_one(tmp_path, chat_text(text, "sharegpt"), "sharegpt")
    assert isinstance(record, Record) and record.answer is None
    ((where, code, message),) = problems(record)
    assert (where, code) == ("conversations[1].value", "malformed_answer")
    assert message.endswith(
        "the function name 'Market Trends API' holds spaces, which the [func(...)] syntax cannot write"
    )
