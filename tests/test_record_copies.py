"""record.changed and read_record: the engine's own copies of a record, built without pydantic's
model_copy (a speed trick, docs/benchmarks.md), must be the copies pydantic makes, byte for byte."""

from pydantic import ConfigDict, PrivateAttr

from funreason_refine.record import FunctionCall, Message, Record, Source, changed, read_record
from funreason_refine.run_folder import to_json_line


def _record() -> Record:
    return read_record(
        3,
        "r3",
        Source(file="in.jsonl", line=4),
        "Weather in Oslo?",
        [{"name": "get_weather", "parameters": {"type": "object"}}],
        [FunctionCall(name="get_weather", arguments={"city": "Oslo"})],
        "I call get_weather.",
        [],
        {"round": 1},
        [Message(role="user", content="Weather in Oslo?"), Message(role="assistant", content="ok")],
        "Be brief.",
    )


def test_a_read_record_is_what_model_construct_builds_with_every_field():
    record = _record()
    built = Record.model_construct(**{name: getattr(record, name) for name in Record.model_fields})
    assert list(record.__dict__) == list(Record.model_fields), "the field order is the order lines are written in"
    assert record.__dict__ == built.__dict__
    assert record.model_fields_set == built.model_fields_set == set(Record.model_fields)
    assert to_json_line(record) == to_json_line(built) == record.model_dump_json().encode()
    assert record.turn == 0 and record.trail == [] and record.trail is not _record().trail


def test_a_changed_record_is_the_copy_model_copy_makes_and_leaves_the_original_alone():
    record = _record()
    update = {"target": "<think>x</think>", "trail": []}
    copy, expected = changed(record, update), record.model_copy(update=update)
    assert type(copy) is Record and copy is not record
    assert copy.__dict__ == expected.__dict__ and list(copy.__dict__) == list(expected.__dict__)
    assert copy.model_fields_set == expected.model_fields_set
    assert to_json_line(copy) == to_json_line(expected)
    assert record.target is None and copy.target == "<think>x</think>"
    copy.meta["round"] = 2  # a shallow copy, as model_copy's: the values are shared
    assert record.meta["round"] == 2


class _Annotated(Record):
    """A plugin's record type with extra fields and a private attribute: pydantic copies it."""

    model_config = ConfigDict(extra="allow")
    _seen: int = PrivateAttr(default=0)


def test_a_subclass_of_record_is_copied_by_pydantic_keeping_its_extra_fields_and_private_attributes():
    record = _Annotated(**_record().model_dump(), note="kept")
    record._seen = 5
    copy = changed(record, {"target": "t"})
    assert type(copy) is _Annotated and copy.note == "kept" and copy._seen == 5 and copy.target == "t"
