"""What a record says beside its conversation or answer, and keys given twice: read, or quarantined
naming the field, never dropped or picked without a word (docs/reading.md)."""

import json

import pytest

from funreason_refine.readers import InputStream
from funreason_refine.record import Quarantined, Record
from tests.conftest import xlam_row
from tests.readers.test_faithful import WEATHER, call, exported, read_one, refine

CHAT = [{"role": "user", "content": "Weather in Oslo?"}, {"role": "assistant", "tool_calls": [call("c1", "Oslo")]}]
TURNS = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]


def chat(**fields):
    return {"messages": CHAT, "tools": [WEATHER], **fields}


# --- a record's own fields --------------------------------------------------------------------


def test_an_openai_records_own_system_prompt_is_read_and_written_back_as_its_leading_message(tmp_path):
    record = read_one(tmp_path, chat(system="Answer in French."))
    assert isinstance(record, Record) and record.system == "Answer in French."
    messages = exported(record)["messages"]
    assert messages[0] == {"role": "system", "content": "Answer in French."}
    again = read_one(tmp_path, {"messages": messages, "tools": [WEATHER]})
    assert again.system == "Answer in French." and again.messages == record.messages


def test_an_openai_records_own_system_prompt_beside_a_leading_system_message_keeps_both(tmp_path):
    record = read_one(tmp_path, chat(system="Be brief.", messages=[{"role": "system", "content": "Be kind."}, *CHAT]))
    assert record.system == "Be brief."
    assert [(m.role, m.content) for m in record.messages][0] == ("system", "Be kind.")


@pytest.mark.parametrize(
    "fmt, row, field",
    [
        ("openai", chat(cot="I call get_weather."), "cot"),
        ("openai", chat(cots=["I call get_weather."]), "cots"),
        ("openai", chat(reasoning_content="I call get_weather."), "reasoning_content"),
        ("openai", chat(chosen=[{"role": "assistant", "content": "Sunny."}]), "chosen"),
        ("sharegpt", {"conversations": TURNS, "reasoning": "I greet."}, "reasoning"),
        ("sharegpt", {"conversations": TURNS, "rejected": {"from": "gpt", "value": "Go away."}}, "rejected"),
        ("xlam", xlam_row(**{}) | {"system": "You are a pirate."}, "system"),
    ],
)
def test_a_field_with_training_meaning_that_the_format_does_not_hold_is_quarantined(tmp_path, fmt, row, field):
    item = read_one(tmp_path, row, fmt)
    assert isinstance(item, Quarantined) and item.field == field
    assert item.error.startswith(f"{field}: ") and "it would be lost" in item.error


@pytest.mark.parametrize("fmt", ["openai", "sharegpt", "xlam"])
def test_a_record_weighed_zero_or_marked_undesirable_by_kto_is_quarantined(tmp_path, fmt):
    row = {"openai": chat(), "sharegpt": {"conversations": TURNS}, "xlam": xlam_row()}[fmt]
    weighed = read_one(tmp_path, {**row, "weight": 0}, fmt)
    assert isinstance(weighed, Quarantined) and weighed.field == "weight" and "0: not trained on" in weighed.error
    marked = read_one(tmp_path, {**row, "label": False}, fmt)
    assert isinstance(marked, Quarantined) and marked.field == "label" and "TRL's KTO data" in marked.error
    for harmless in ({"weight": 1}, {"label": True}, {"label": "simple"}, {"tool_choice": "auto"}, {"source": "x"}):
        assert isinstance(read_one(tmp_path, {**row, **harmless}, fmt), Record), harmless


def test_a_sharegpt_records_cot_and_system_are_still_read(tmp_path):
    turns = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]
    record = read_one(tmp_path, {"conversations": turns, "system": "Be kind.", "cot": "I greet."}, "sharegpt")
    assert record.system == "Be kind." and record.cot == "I greet."


# --- keys given twice -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, key",
    [
        ('{"messages": [{"role": "user", "content": "A", "content": "B"}]}', "content"),
        ('{"query": "q", "tools": "[]", "answers": [{"name": "f", "name": "g", "arguments": {}}]}', "name"),
        ('{"query": "q", "tools": "[]", "answers": [{"name": "f", "arguments": {"a": 1, "a": 2}}]}', "a"),
        ('{"query": "q", "query": "r", "tools": "[]", "answers": []}', "query"),
    ],
)
def test_a_line_that_gives_a_key_twice_is_quarantined_naming_the_key(tmp_path, line, key):
    (tmp_path / "in.jsonl").write_text(line + "\n")
    (item,) = InputStream(tmp_path / "in.jsonl", "openai" if "messages" in line else "xlam").items()
    assert isinstance(item, Quarantined) and item.source.line == 1
    assert f"the key {key!r} is given twice (JSON readers keep only the last)" in item.error


def test_a_json_array_element_that_gives_a_key_twice_is_quarantined_and_the_next_one_read(tmp_path):
    good = json.dumps(xlam_row(rid="good"))
    (tmp_path / "in.json").write_text(f'[\n{{"id": "a", "id": "b", "query": "q"}},\n{good}\n]\n')
    first, second = InputStream(tmp_path / "in.json", None).items()
    assert isinstance(first, Quarantined) and first.source.line == 2 and "the key 'id' is given twice" in first.error
    assert isinstance(second, Record) and second.id == "good"


def test_tools_given_as_json_text_with_a_key_twice_quarantine_the_record(tmp_path):
    tools = '[{"name": "f", "description": "one", "description": "two", "parameters": {}}]'
    item = read_one(tmp_path, {**xlam_row(), "tools": tools}, "xlam")
    assert isinstance(item, Quarantined) and item.field == "tools" and "'description' is given twice" in item.error


def test_an_argument_whose_json_text_gives_a_key_twice_is_not_coerced_into_an_object(tmp_path):
    tool = {"name": "f", "parameters": {"type": "object", "properties": {"o": {"type": "object"}}}}
    row = xlam_row(tools=[tool], answers=[{"name": "f", "arguments": {"o": '{"k": 1, "k": 2}'}}])
    outcome = refine(tmp_path, [row], "xlam")
    assert outcome["kept"] == []
    (discarded,) = outcome["discarded"]
    assert discarded["stage"] == "function_params" and discarded["reason"] == "wrong_type"


# --- what the messages name -------------------------------------------------------------------


@pytest.mark.parametrize(
    "legacy, field, problem",
    [
        ({"name": "get_weather", "arguments": "{not json"}, "messages[1].function_call.arguments", "not JSON"),
        ({"arguments": "{}"}, "messages[1].function_call.name", "no function name"),
    ],
)
def test_a_legacy_function_calls_faults_name_the_function_call_field(tmp_path, legacy, field, problem):
    messages = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "function_call": legacy}]
    record = read_one(tmp_path, {"messages": messages, "tools": [WEATHER]})
    assert isinstance(record, Record)
    (found,) = record.problems
    assert found.code == "malformed_answer" and found.field == field and problem in found.message


def test_a_legacy_function_call_with_a_field_it_never_has_is_quarantined_naming_it(tmp_path):
    legacy = {"name": "get_weather", "arguments": "{}", "id": "c1"}
    messages = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "function_call": legacy}]
    item = read_one(tmp_path, {"messages": messages, "tools": [WEATHER]})
    assert isinstance(item, Quarantined) and item.field == "messages[1].function_call.id"


def test_a_byte_order_mark_opening_a_later_line_is_skipped_as_on_the_first(tmp_path):
    """What ``cat a.jsonl b.jsonl`` gives when b.jsonl opens with one."""
    one, two = json.dumps(xlam_row(rid="one")), json.dumps(xlam_row(rid="two"))
    (tmp_path / "in.jsonl").write_text(f"\ufeff{one}\n\ufeff{two}\n", encoding="utf-8")
    assert [item.id for item in InputStream(tmp_path / "in.jsonl", None).items()] == ["one", "two"]


def test_a_message_stored_as_json_text_that_is_not_json_says_why(tmp_path):
    """As the Parquet export stores messages: each one JSON text."""
    row = {"messages": [json.dumps(CHAT[0]), '{"role": "assistant", "content": NaN}'], "tools": [WEATHER]}
    item = read_one(tmp_path, row)
    assert isinstance(item, Quarantined) and item.field == "messages[1]"
    assert "got a string that is not JSON (at content: NaN is not a JSON value" in item.error


def test_a_key_given_twice_deep_in_a_line_is_named_by_its_place(tmp_path):
    line = '{"query": "q", "tools": "[]", "answers": [{"name": "f", "arguments": {"o": {"k": 1, "k": 2}}}]}'
    (tmp_path / "in.jsonl").write_text(line + "\n")
    (item,) = InputStream(tmp_path / "in.jsonl", "xlam").items()
    assert isinstance(item, Quarantined) and item.source.line == 1
    assert "at answers[0].arguments.o: the key 'k' is given twice" in item.error
