import json

import pytest

from funreason_refine.errors import InputError
from funreason_refine.readers import InputStream, detect_format
from funreason_refine.record import Quarantined, Record
from tests.conftest import write_jsonl, xlam_row

BFCL_QUESTION = {
    "id": "simple_0",
    "question": [[{"role": "user", "content": "Area of a triangle with base 10 and height 5?"}]],
    "function": [
        {
            "name": "calculate_triangle_area",
            "description": "Area.",
            "parameters": {
                "type": "dict",
                "properties": {"base": {"type": "integer"}, "height": {"type": "integer"}, "unit": {"type": "string"}},
                "required": ["base", "height"],
            },
        }
    ],
}
BFCL_ANSWER = {
    "id": "simple_0",
    "ground_truth": [{"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["", "units"]}}],
}


def bfcl_files(tmp_path, questions, answers):
    write_jsonl(tmp_path / "BFCL_v3_simple.json", questions)
    (tmp_path / "possible_answer").mkdir()
    write_jsonl(tmp_path / "possible_answer" / "BFCL_v3_simple.json", answers)
    return tmp_path / "BFCL_v3_simple.json"


def test_xlam_json_strings_and_parsed_values_read_alike(tmp_path):
    row = xlam_row(cot="get_weather for Paris")
    parsed = {**row, "tools": json.loads(row["tools"]), "answers": json.loads(row["answers"])}
    path = write_jsonl(tmp_path / "x.jsonl", [row, parsed])
    a, b = InputStream(path, "xlam").items()
    assert a.model_dump(exclude={"index", "source"}) == b.model_dump(exclude={"index", "source"})
    assert a.tools[0]["parameters"] == {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City"}},
        "required": ["city"],
    }
    assert a.calls[0].arguments == {"city": "Paris"} and a.cot == "get_weather for Paris"


@pytest.mark.parametrize("tools", ["", "  ", None])
def test_xlam_empty_tools_say_what_to_write(tmp_path, tools):
    path = write_jsonl(tmp_path / "x.jsonl", [{**xlam_row(), "tools": tools}])
    (item,) = InputStream(path, "xlam").items()
    assert isinstance(item, Quarantined) and item.field == "tools"
    assert item.error == "field 'tools' is empty: an xLAM record lists its tools as JSON ('[]' when it offers none)"


def test_xlam_json_array_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps([xlam_row("a"), xlam_row("b")], indent=2))
    assert [r.id for r in InputStream(path, None).items()] == ["a", "b"]


@pytest.mark.parametrize(
    "answers, expected",
    [
        ("[]", []),
        ("Sorry, I can't do that.", "Sorry, I can't do that."),
        ('{"name": "f", "arguments": {}}', [{"name": "f", "arguments": {}}]),
        ('[{"name": "f", "arguments": "{\\"x\\": 1}"}]', [{"name": "f", "arguments": {"x": 1}}]),
    ],
)
def test_answer_shapes(tmp_path, answers, expected):
    path = write_jsonl(tmp_path / "x.jsonl", [{**xlam_row(), "answers": answers}])
    (record,) = InputStream(path, "xlam").items()
    got = record.answer if isinstance(record.answer, str) else [c.model_dump() for c in record.answer]
    assert got == expected


@pytest.mark.parametrize(
    "answers, message",
    [
        (
            '[{"name": "f", "arguments": {',  # cut off: where it fails, and what it was, for the reviewer
            """do not parse: Expecting property name enclosed in double quotes at the end; they were '[{"name": "f", """
            """"arguments": {'""",
        ),
        ('[{"name": "f", "arguments": {"city": "Ber', "Unterminated string starting at column 38; they were"),
        ('[{"arguments": {}}]', "no function name"),
        ('[{"name": "f"}]', "no 'arguments'"),
        ('[{"name": "f", "arguments": [1]}]', "must be an object"),
        ("42", "got int"),
    ],
)
def test_malformed_answers_are_kept_apart_from_empty_ones(tmp_path, answers, message):
    row = {**xlam_row(), "answers": answers if answers != "42" else 42}
    path = write_jsonl(tmp_path / "x.jsonl", [row])
    (record,) = InputStream(path, "xlam").items()
    assert record.answer is None
    assert record.problems[0].code == "malformed_answer" and message in record.problems[0].message


@pytest.mark.parametrize(
    "row, field",
    [
        ({"id": "a", "tools": "[]", "answers": "[]"}, "query"),
        ({"id": "a", "query": ["q"], "tools": "[]", "answers": "[]"}, "query"),
        ({"id": "a", "query": "q", "answers": "[]"}, "tools"),
        ({"id": "a", "query": "q", "tools": "[not json", "answers": "[]"}, "tools"),
        ({"id": "a", "query": "q", "tools": "7", "answers": "[]"}, "tools"),
        ({"id": {"x": 1}, "query": "q", "tools": "[]", "answers": "[]"}, "id"),
        ({"id": "a", "query": "q", "tools": "[]", "answers": "[]", "cot": 3}, "cot"),
    ],
)
def test_wrong_fields_are_quarantined_naming_file_line_and_field(tmp_path, row, field):
    path = write_jsonl(tmp_path / "x.jsonl", [xlam_row("good"), row])
    good, bad = InputStream(path, "xlam").items()
    assert isinstance(good, Record)
    assert isinstance(bad, Quarantined)
    assert (bad.source.file, bad.source.line, bad.field, bad.index) == (str(path), 2, field, 1)
    assert field in bad.error


def test_unconvertible_tool_is_read_and_noted_not_quarantined(tmp_path):
    tools = [{"name": "apply", "parameters": {"f": {"type": "Callable[[int], int]"}}}]
    path = write_jsonl(
        tmp_path / "x.jsonl", [xlam_row(tools=tools, answers=[{"name": "apply", "arguments": {"f": "g"}}])]
    )
    (record,) = InputStream(path, "xlam").items()
    assert record.problems[0].code == "unconvertible_type" and "Callable" in record.problems[0].message


def test_bfcl_reference_call_takes_first_acceptable_values(tmp_path):
    path = bfcl_files(tmp_path, [BFCL_QUESTION], [BFCL_ANSWER])
    assert detect_format(path) == "bfcl"
    (record,) = InputStream(path, None).items()
    assert record.query == "Area of a triangle with base 10 and height 5?"
    assert [c.model_dump() for c in record.calls] == [
        {"name": "calculate_triangle_area", "arguments": {"base": 10, "height": 5}}
    ]
    assert record.tools[0]["parameters"]["type"] == "object"


def test_bfcl_nested_dict_values_take_first_acceptable_value(tmp_path):
    answer = {
        "id": "simple_0",
        "ground_truth": [{"f": {"opts": [{"mode": ["fast", "slow"], "skip": [""]}], "n": [[1, 2]]}}],
    }
    question = {**BFCL_QUESTION, "function": [{"name": "f", "parameters": {"type": "dict", "properties": {}}}]}
    (record,) = InputStream(bfcl_files(tmp_path, [question], [answer]), "bfcl").items()
    assert record.calls[0].arguments == {"opts": {"mode": "fast"}, "n": [1, 2]}


def test_bfcl_ground_truth_value_that_is_not_a_list_is_quarantined_naming_it(tmp_path):
    answer = {"id": "simple_0", "ground_truth": [{"calculate_triangle_area": {"base": 10, "height": [5]}}]}
    (item,) = InputStream(bfcl_files(tmp_path, [BFCL_QUESTION], [answer]), "bfcl").items()
    assert isinstance(item, Quarantined) and item.field == "ground_truth[0].calculate_triangle_area.base"
    assert "must be a list of acceptable values, got 10" in item.error


def test_bfcl_question_without_ground_truth_is_quarantined(tmp_path):
    path = bfcl_files(tmp_path, [BFCL_QUESTION, {**BFCL_QUESTION, "id": "simple_1"}], [BFCL_ANSWER])
    _, missing = InputStream(path, "bfcl").items()
    assert isinstance(missing, Quarantined) and "no ground truth for id 'simple_1'" in missing.error


def test_bfcl_answer_file_opening_with_a_byte_order_mark_is_read(tmp_path):
    path = bfcl_files(tmp_path, [BFCL_QUESTION], [BFCL_ANSWER])
    answers = tmp_path / "possible_answer" / "BFCL_v3_simple.json"
    answers.write_bytes(b"\xef\xbb\xbf" + answers.read_bytes())
    (record,) = InputStream(path, "bfcl").items()
    assert isinstance(record, Record) and record.id == "simple_0"


def test_bfcl_missing_answer_file_says_where_to_put_it(tmp_path):
    write_jsonl(tmp_path / "q.json", [BFCL_QUESTION])
    with pytest.raises(InputError, match="possible_answer"):
        InputStream(tmp_path / "q.json", "bfcl")


def test_undetectable_format_says_what_to_set(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"prompt": "hi", "completion": "yo"}])
    with pytest.raises(InputError, match=r"line 1 has keys \[completion, prompt\].*\[input\] format"):
        detect_format(path)


def test_openai_messages_with_tool_calls_reasoning_and_content_parts(tmp_path):
    row = {
        "id": 7,
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}},
            }
        ],
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Call f with 2"}]},
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "f needs x=2",
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"x": 2}'}}],
            },
        ],
    }
    path = write_jsonl(tmp_path / "o.jsonl", [row])
    assert detect_format(path) == "openai"
    (record,) = InputStream(path, None).items()
    assert (record.id, record.query, record.cot) == ("7", "Call f with 2", "f needs x=2")
    assert [c.model_dump() for c in record.calls] == [{"name": "f", "arguments": {"x": 2}}]


def test_sharegpt_parallel_function_calls_and_bad_turns(tmp_path):
    good = {
        "conversations": [
            {"from": "human", "value": "Weather in A and B"},
            {
                "from": "function_call",
                "value": json.dumps([{"name": "w", "arguments": {"c": "A"}}, {"name": "w", "arguments": {"c": "B"}}]),
            },
        ],
        "tools": json.dumps([{"name": "w", "parameters": {"type": "object", "properties": {"c": {"type": "string"}}}}]),
    }
    bad = {"conversations": [{"from": "gpt", "value": "hello"}], "tools": "[]"}
    path = write_jsonl(tmp_path / "s.jsonl", [good, bad])
    record, quarantined = InputStream(path, "sharegpt").items()
    assert [c.arguments for c in record.calls] == [{"c": "A"}, {"c": "B"}]
    assert isinstance(quarantined, Quarantined) and quarantined.field == "conversations"
    assert "no human turn" in quarantined.error


def test_openai_record_without_a_user_message_is_quarantined(tmp_path):
    path = write_jsonl(tmp_path / "o.jsonl", [{"messages": [{"role": "assistant", "content": "hi"}]}])
    (q,) = InputStream(path, "openai").items()
    assert isinstance(q, Quarantined) and (q.field, q.error) == ("messages", "no user message")


def test_read_record_is_model_construct_with_every_field():
    from funreason_refine.record import FunctionCall, Problem, Source, read_record

    fields = dict(
        index=7,
        id="r7",
        source=Source(file="in.jsonl", line=8),
        query="q",
        tools=[{"name": "f"}],
        answer=[FunctionCall(name="f", arguments={"x": 1})],
        cot="c",
        problems=[Problem(field="tools", code="x", message="m")],
        meta={"round": 1},
    )
    first, second = read_record(**fields), read_record(**fields)
    expected = Record.model_construct(**fields, target=None, trail=[], system=None, messages=[], turn=None)
    assert first == expected and first.model_fields_set == expected.model_fields_set
    assert first.model_dump() == expected.model_dump()
    # each record gets its own trail (the engine fills it in place)
    assert first.trail is not second.trail
    first.trail.append("step")
    assert second.trail == []


@pytest.mark.parametrize("name", ["BFCL_v3_irrelevance.json", "BFCL_v3_live_relevance.json"])
def test_bfcl_categories_without_possible_answers_say_they_hold_none(tmp_path, name):
    # "Put the possible_answer file there" named a file BFCL does not ship.
    write_jsonl(tmp_path / name, [BFCL_QUESTION])
    with pytest.raises(InputError, match="irrelevance and relevance categories have no possible answers"):
        InputStream(tmp_path / name, "bfcl")
