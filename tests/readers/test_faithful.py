"""Issue 25, "nothing silently changed": every chat shape is read as what it means, or quarantined
naming the message and field; what is kept comes out of the export as it went in (docs/reading.md)."""

import json

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.export import export_run
from funreason_refine.export.formats import to_row
from funreason_refine.readers import InputStream
from funreason_refine.record import Quarantined, Record
from funreason_refine.run_folder import to_json_line
from tests.conftest import read_jsonl, write_jsonl

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather now.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/photo.jpg"}}


def call(cid, city):
    return {"id": cid, "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}


def read_one(tmp_path, row, fmt="openai", **limits):
    path = write_jsonl(tmp_path / "in.jsonl", [row])
    (item,) = InputStream(path, fmt, **limits).items()
    return item


def exported(record, fmt="openai"):
    """The record as the run folder writes it, then as the export writes it."""
    return to_row(json.loads(to_json_line(record)), fmt)


def refine(tmp_path, rows, fmt="openai", extra=""):
    write_jsonl(tmp_path / "in.jsonl", rows)
    (tmp_path / "p.toml").write_text(f'[input]\npath = "in.jsonl"\nformat = "{fmt}"\n{extra}[output]\ndir = "run"\n')
    run_pipeline(load_pipeline(tmp_path / "p.toml"), workers=1)
    return {k: read_jsonl(tmp_path / "run" / f"{k}.jsonl") for k in ("kept", "discarded", "quarantined")}


# --- the crash ---------------------------------------------------------------------------------


def test_a_text_part_without_text_is_quarantined_naming_it_not_a_crash(tmp_path):
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": None}]},
            {"role": "assistant", "content": "hi"},
        ]
    }
    item = read_one(tmp_path, row)
    assert isinstance(item, Quarantined)
    assert item.field == "messages[0].content[0].text" and "null" in item.error


def test_hugging_face_mixed_parts_keep_their_images_through_the_run_and_the_export(tmp_path):
    """datasets writes "text": null into image parts (and "image": null into text parts)."""
    parts = [
        {"type": "text", "text": "What animal is this?", "image": None},
        {"type": "image", "text": None, "image": "cat.png"},
    ]
    row = {"id": "mm", "messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "A cat."}]}
    outcome = refine(tmp_path, [row])
    (kept,) = outcome["kept"]
    assert kept["query"] == "What animal is this?" and kept["messages"][0]["parts"] == parts
    export_run(tmp_path / "run", "openai", tmp_path / "o.jsonl")
    (out,) = read_jsonl(tmp_path / "o.jsonl")
    assert out["messages"] == row["messages"]


# --- kept, but not changed -----------------------------------------------------------------------


def test_text_beside_an_empty_tool_calls_list_is_a_text_answer(tmp_path):
    row = {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!", "tool_calls": []}]
    }
    assert read_one(tmp_path, row).answer == "Hello!"


def test_a_legacy_function_call_and_its_function_result(tmp_path):
    row = {
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            },
            {"role": "function", "name": "get_weather", "content": "sunny"},
            {"role": "assistant", "content": "Sunny."},
        ],
    }
    record = read_one(tmp_path, row)
    first, result = record.messages[1], record.messages[2]
    assert [c.arguments for c in first.answer] == [{"city": "Oslo"}]
    assert (result.role, result.name, result.call_id) == ("tool", "get_weather", first.call_ids[0])
    # written in today's form (docs/reading.md): tool_calls and a tool message with its call's id
    out = exported(record)["messages"]
    assert out[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert out[2] == {"role": "tool", "tool_call_id": "call_0_0", "content": "sunny", "name": "get_weather"}


@pytest.mark.parametrize("shape", ["object", "json text"])
def test_tool_calls_given_as_one_object_or_as_json_text(tmp_path, shape):
    given = call("a", "Oslo") if shape == "object" else json.dumps([call("a", "Oslo")])
    row = {
        "tools": [WEATHER],
        "messages": [{"role": "user", "content": "Oslo?"}, {"role": "assistant", "tool_calls": given}],
    }
    assert [c.arguments for c in read_one(tmp_path, row).calls] == [{"city": "Oslo"}]


def test_a_refusal_is_a_text_answer_and_is_written_back_as_a_refusal(tmp_path):
    refusal = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    row = {"id": "r", "messages": [{"role": "user", "content": "Break in for me"}, refusal]}
    outcome = refine(tmp_path, [row])
    (kept,) = outcome["kept"]
    assert kept["messages"][1]["answer"] == "I can't help with that." and kept["messages"][1]["refusal"]
    export_run(tmp_path / "run", "openai", tmp_path / "o.jsonl")
    assert read_one(tmp_path, {"messages": row["messages"]}).messages[1].refusal == "I can't help with that."
    assert read_jsonl(tmp_path / "o.jsonl")[0]["messages"] == row["messages"]


def test_a_refusal_beside_another_answer_is_quarantined(tmp_path):
    row = {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "Sure!", "refusal": "No."}]}
    item = read_one(tmp_path, row)
    assert isinstance(item, Quarantined) and item.field == "messages[1].refusal"


def test_user_content_as_a_list_of_strings(tmp_path):
    row = {
        "messages": [{"role": "user", "content": ["Weather in", "Oslo?"]}, {"role": "assistant", "content": "Sunny."}]
    }
    record = read_one(tmp_path, row)
    assert record.query == "Weather in\nOslo?"  # parts joined by a newline for the stages, not glued
    assert exported(record)["messages"] == row["messages"]


def test_text_parts_are_not_glued_together_and_come_back_as_parts(tmp_path):
    parts = [{"type": "text", "text": "Weather in"}, {"type": "text", "text": "Oslo?"}]
    row = {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "Sunny."}]}
    record = read_one(tmp_path, row)
    assert record.query == "Weather in\nOslo?"
    assert exported(record)["messages"][0]["content"] == parts


def test_text_beside_tool_calls_is_kept(tmp_path):
    row = {
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "Oslo?"},
            {"role": "assistant", "content": "Let me look that up.", "tool_calls": [call("a", "Oslo")]},
        ],
    }
    record = read_one(tmp_path, row)
    assert record.messages[1].content == "Let me look that up." and record.calls[0].arguments == {"city": "Oslo"}
    assert exported(record)["messages"] == row["messages"]


def test_a_system_message_in_the_middle_stays_in_its_place(tmp_path):
    row = {
        "messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "system", "content": "Now answer in French."},
            {"role": "user", "content": "Bye"},
            {"role": "assistant", "content": "Au revoir."},
        ]
    }
    record = read_one(tmp_path, row)
    assert record.system == "Be kind." and [m.role for m in record.messages][2] == "system"
    assert exported(record)["messages"] == row["messages"]


def test_integer_call_ids_tie_results_returned_out_of_order(tmp_path):
    row = {
        "id": "ints",
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "Oslo and Bergen?"},
            {"role": "assistant", "content": None, "tool_calls": [call(1, "Oslo"), call(2, "Bergen")]},
            {"role": "tool", "tool_call_id": 2, "content": "rain"},
            {"role": "tool", "tool_call_id": 1, "content": "sun"},
            {"role": "assistant", "content": "Sun in Oslo, rain in Bergen."},
        ],
    }
    record = read_one(tmp_path, row)
    assert record.messages[1].call_ids == [1, 2] and [m.call_id for m in record.messages[2:4]] == [2, 1]
    outcome = refine(tmp_path, [row])
    assert len(outcome["kept"]) == 1, outcome
    export_run(tmp_path / "run", "openai", tmp_path / "o.jsonl")
    assert read_jsonl(tmp_path / "o.jsonl")[0]["messages"] == row["messages"]


def test_a_result_for_1_does_not_answer_the_call_1_written_as_text(tmp_path):
    row = {
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [call(1, "Oslo")]},
            {"role": "tool", "tool_call_id": "1", "content": "sun"},
            {"role": "assistant", "content": "Sunny."},
        ],
    }
    (line,) = refine(tmp_path, [row])["discarded"]
    assert line["reason"] == "result_without_call"  # ids tie as JSON values: the text "1" is not the number 1


@pytest.mark.parametrize("bad", [True, {"n": 1}, [1]])
def test_call_ids_that_are_no_text_nor_number_are_quarantined_naming_them(tmp_path, bad):
    row = {"messages": [{"role": "user", "content": "Oslo?"}, {"role": "assistant", "tool_calls": [call(bad, "Oslo")]}]}
    item = read_one(tmp_path, row)
    assert isinstance(item, Quarantined) and item.field == "messages[1].tool_calls[0].id"


def test_names_are_kept(tmp_path):
    row = {
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "Oslo?", "name": "ana"},
            {"role": "assistant", "content": None, "tool_calls": [call("a", "Oslo")], "name": "helper"},
            {"role": "tool", "tool_call_id": "a", "content": "sun", "name": "get_weather"},
            {"role": "assistant", "content": "Sunny.", "name": "helper"},
        ],
    }
    record = read_one(tmp_path, row)
    assert [m.name for m in record.messages] == ["ana", "helper", "get_weather", "helper"]
    assert exported(record)["messages"] == row["messages"]


def test_a_field_no_reader_reads_is_quarantined_not_dropped(tmp_path):
    row = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello", "weight": 0}]}
    item = read_one(tmp_path, row)
    assert isinstance(item, Quarantined) and item.field == "messages[1].weight"
    empty = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello", "audio": None}]}
    assert isinstance(read_one(tmp_path, empty), Record)  # a field that says nothing is no loss


def test_media_files_beside_a_conversation_are_quarantined(tmp_path):
    row = {"conversations": [{"from": "human", "value": "<image>What is it?"}, {"from": "gpt", "value": "A cat."}]}
    item = read_one(tmp_path, {**row, "images": ["cat.png"]}, "sharegpt")
    assert isinstance(item, Quarantined) and item.field == "images"


# --- unclear messages ----------------------------------------------------------------------------


def test_unreadable_arguments_in_a_conversation_are_a_malformed_answer_naming_the_field(tmp_path):
    bad = {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{oops"}}
    row = {
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [bad]},
            {"role": "tool", "tool_call_id": "a", "content": "sun"},
            {"role": "assistant", "content": "Sunny."},
        ],
    }
    (line,) = refine(tmp_path, [row])["discarded"]
    assert (line["reason"], line["turn"]) == ("malformed_answer", 0)
    assert line["message"].startswith("messages[1].tool_calls[0].function.arguments: not JSON")


def test_a_cot_that_is_not_text_is_quarantined_naming_the_input_field(tmp_path):
    row = {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo", "reasoning_content": 5}]
    }
    item = read_one(tmp_path, row)
    assert (item.field, item.error) == (
        "messages[1].reasoning_content",
        "messages[1].reasoning_content: must be a text, got int",
    )
    sharegpt = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}], "cot": 5}
    item = read_one(tmp_path, sharegpt, "sharegpt")
    assert (item.field, item.error) == ("cot", "cot: must be a text, got int")


def test_a_conversation_longer_than_max_messages_is_quarantined_naming_the_setting(tmp_path):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}] * 3
    item = read_one(tmp_path, {"messages": messages}, max_messages=5)
    assert isinstance(item, Quarantined) and item.field == "messages"
    assert item.error == "messages: 6 messages, over the limit of 5 ([input] max_messages)"
    outcome = refine(tmp_path, [{"messages": messages}], extra="max_messages = 4\n")
    assert "[input] max_messages" in outcome["quarantined"][0]["error"]


def test_an_xlam_call_field_beside_name_and_arguments_makes_the_answer_malformed_naming_it(tmp_path):
    from tests.conftest import xlam_row

    row = xlam_row(answers=[{"name": "get_weather", "arguments": {"city": "Paris"}, "weight": 0.5}])
    record = read_one(tmp_path, row, "xlam")
    assert record.answer is None
    assert [(p.code, p.message) for p in record.problems] == [
        ("malformed_answer", "answers[0].weight: a field of a call that is not read (it would be lost)")
    ]


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"cots": ["one"]}, "cots", "1 CoT(s) for 2 assistant turn(s)"),
        ({"cot": "one"}, "cot", "one CoT for 2 assistant turns"),
        ({"conversations": [{"from": "human", "value": "Hi", "loss": True}]}, "conversations[0].loss", "not read"),
        (
            {"conversations": [{"from": "human", "value": "Hi"}, {"from": "function_call", "value": "{oops"}]},
            "conversations[1].value",
            "not JSON",
        ),
        (
            {
                "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "<think>a</think>Yo"}],
                "cots": ["b"],
            },
            "conversations[1].value",
            "another in a <think> block",
        ),
    ],
)
def test_sharegpt_fields_that_cannot_be_read_are_quarantined_naming_them(tmp_path, change, field, words):
    row = {
        "conversations": [
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Yo"},
            {"from": "human", "value": "Bye"},
            {"from": "gpt", "value": "Ciao"},
        ]
    }
    item = read_one(tmp_path, {**row, **change}, "sharegpt")
    assert isinstance(item, Quarantined) and item.field == field and words in item.error, item


def test_a_conversation_of_every_kept_shape_is_refined_and_exported_as_it_came(tmp_path):
    """The tester's run: kept conversations exported as OpenAI messages differed from their input.
    Shapes that need no normalisation (docs/reading.md) come back exactly."""
    messages = [
        {"role": "system", "content": "You are a weather bot."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Weather where this was taken,"}, IMAGE, "and in Oslo?"],
            "name": "ana",
        },
        {
            "role": "assistant",
            "content": "<think>Two places: get_weather for each.</think>\n\nChecking both.",
            "tool_calls": [call(7, "Paris"), call("b", "Oslo")],
        },
        {"role": "tool", "tool_call_id": "b", "content": "rain", "name": "get_weather"},
        {"role": "tool", "tool_call_id": 7, "content": [{"type": "text", "text": "sun"}]},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Sun in Paris,"}, {"type": "text", "text": "rain in Oslo."}],
            "name": "bot",
        },
        {"role": "system", "content": "From now on, refuse."},
        {"role": "user", "content": "And tomorrow?"},
        {"role": "assistant", "content": None, "refusal": "I can't forecast."},
    ]
    row = {"id": "every", "tools": [WEATHER], "messages": messages}
    outcome = refine(tmp_path, [row])
    assert len(outcome["kept"]) == 1, outcome
    export_run(tmp_path / "run", "openai", tmp_path / "o.jsonl")
    (out,) = read_jsonl(tmp_path / "o.jsonl")
    assert out["messages"] == messages and out["tools"] == [WEATHER]


LEGACY_WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def legacy_row(**fields):
    call = {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    messages = [{"role": "user", "content": "Weather in Oslo?"}, {"role": "assistant", "function_call": call}]
    return {"messages": messages, **fields}


@pytest.mark.parametrize(
    "fields",
    [
        {"functions": [LEGACY_WEATHER]},
        {"functions": json.dumps([LEGACY_WEATHER]), "tools": []},
        {"functions": [LEGACY_WEATHER], "tools": [{"type": "function", "function": LEGACY_WEATHER}]},
        {"functions": [LEGACY_WEATHER], "tools": ""},  # "" says nothing
        {"functions": "", "tools": [LEGACY_WEATHER]},
    ],
)
def test_the_legacy_functions_field_is_read_as_the_tools(tmp_path, fields):
    # OpenAI's fine-tuning format before tools: read without them, the record was kept with no tools
    # (and, with the stages, discarded as calling a function none offered).
    record = read_one(tmp_path, legacy_row(**fields))
    assert isinstance(record, Record) and record.tools == [LEGACY_WEATHER] and record.problems == []


def test_functions_and_tools_that_differ_quarantine_the_record(tmp_path):
    other = {**LEGACY_WEATHER, "name": "get_time"}
    item = read_one(tmp_path, legacy_row(functions=[LEGACY_WEATHER], tools=[other]))
    assert isinstance(item, Quarantined) and item.field == "functions"
    assert "both tools and the legacy functions, and they list other tools: give one" in item.error


def test_a_custom_tool_call_is_refused_as_such_not_as_a_field_to_remove(tmp_path):
    call = {"id": "c1", "type": "custom", "custom": {"name": "grep", "input": "TODO"}}
    row = {"messages": [{"role": "user", "content": "Find TODOs"}, {"role": "assistant", "tool_calls": [call]}]}
    item = read_one(tmp_path, row)
    assert isinstance(item, Quarantined) and item.field == "messages[1].tool_calls[0].type"
    assert "'custom' calls are not read, only function calls" in item.error


def test_sharegpt_turns_written_as_openai_messages_say_so(tmp_path):
    # "a field this reader does not read ...; remove it" told the user to remove the role.
    row = {"conversations": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    item = read_one(tmp_path, row, "sharegpt")
    assert isinstance(item, Quarantined) and item.field == "conversations[0]"
    assert "a ShareGPT turn says 'from' and 'value', not 'role' and 'content'" in item.error


@pytest.mark.parametrize("fmt", ["sharegpt", "openai"])
def test_a_record_kto_marks_undesirable_is_quarantined_not_made_an_example_to_follow(tmp_path, fmt):
    turns = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Go away."}]
    row = (
        {"conversations": turns}
        if fmt == "sharegpt"
        else {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}]}
    )
    item = read_one(tmp_path, {**row, "kto_tag": False}, fmt)
    assert isinstance(item, Quarantined) and item.field == "kto_tag" and "example not to follow" in item.error
    assert isinstance(read_one(tmp_path, {**row, "kto_tag": True}, fmt), Record)


@pytest.mark.parametrize(
    "fmt, row, field",
    [
        (
            "openai",
            {
                "messages": [
                    {"role": "user", "content": "Weather?"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c", "function": {"name": "w", "arguments": '{"city": "Oslo", "city": "Bergen"}'}}
                        ],
                    },
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            "xlam",
            {
                "query": "Weather?",
                "tools": "[]",
                "answers": '[{"name": "w", "arguments": {"city": "Oslo", "city": "Bergen"}}]',
            },
            "answers",
        ),
        (
            "openai",
            {
                "messages": [
                    {"role": "user", "content": "Weather?"},
                    {
                        "role": "assistant",
                        "content": '<tool_call>{"name": "w", "name": "v", "arguments": {}}</tool_call>',
                    },
                ]
            },
            "messages[1].content",
        ),
    ],
)
def test_a_call_that_gives_a_key_twice_is_malformed_not_read_as_its_last(tmp_path, fmt, row, field):
    # json keeps the last value: the record was kept as calling for Bergen, without a word.
    record = read_one(tmp_path, row, fmt)
    assert isinstance(record, Record) and record.answer is None
    (problem,) = record.problems
    assert problem.code == "malformed_answer" and problem.field == field, problem
    assert "is given twice (JSON readers keep only the last)" in problem.message


def test_null_arguments_are_a_call_with_none_as_empty_text_is(tmp_path):
    # "arguments": "" was read as {} while null made a valid zero-argument call malformed_answer.
    clock = {"name": "get_time", "description": "The time now.", "parameters": {}}
    xlam = {
        "id": "x",
        "query": "What time is it?",
        "tools": [clock],
        "answers": [{"name": "get_time", "arguments": None}],
    }
    record = read_one(tmp_path, xlam, "xlam")
    assert isinstance(record, Record) and record.answer[0].arguments == {}
    message = {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": None}}
    chat = {
        "messages": [{"role": "user", "content": "What time is it?"}, {"role": "assistant", "tool_calls": [message]}],
        "tools": [{"type": "function", "function": clock}],
    }
    record = read_one(tmp_path, chat)
    assert isinstance(record, Record) and record.answer[0].arguments == {}


def test_a_file_that_mixes_formats_says_which_in_the_summary_and_the_card(tmp_path):
    # summary.json said format "xlam" for a file of xLAM rows and chat conversations, and so did the card.
    from funreason_refine.hub.card import render_card, run_facts

    xlam = {"id": "x", "query": "Weather in Paris?", "tools": [WEATHER["function"]], "answers": []}
    chat = {"id": "c", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    write_jsonl(tmp_path / "in.jsonl", [xlam, chat])
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n')
    run_pipeline(load_pipeline(tmp_path / "p.toml"), workers=1)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["input"]["format"] == "xlam" and summary["input"]["formats"] == ["xlam", "openai"]
    card = render_card(run_facts(tmp_path / "run"), "openai", [])
    assert "- Format read: xlam, openai (per record, as its keys say);" in card
    write_jsonl(tmp_path / "in.jsonl", [xlam])  # one format: the key is left out, the line as before
    run_pipeline(load_pipeline(tmp_path / "p.toml"), workers=1, fresh=True)
    assert "formats" not in json.loads((tmp_path / "run" / "summary.json").read_text())["input"]
    assert "- Format read: xlam;" in render_card(run_facts(tmp_path / "run"), "openai", [])
