"""Outcome lines: orjson writes plain records, and every line is the bytes pydantic would write."""

import dataclasses
import datetime
import enum
import json
import uuid
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import PydanticSerializationError, to_json

from funreason_refine.jsonl import loads_unique
from funreason_refine.record import (
    PLAIN_MODELS,
    DatasetDiscard,
    DiscardedRecord,
    ErroredRecord,
    FunctionCall,
    Message,
    Problem,
    Quarantined,
    Record,
    Source,
    Step,
)
from funreason_refine.run_folder import to_json_line
from funreason_refine.testing import make_record
from tests.conftest import read_jsonl

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)


class Color(enum.Enum):
    RED = "red"


class Name(str):
    pass


@dataclasses.dataclass
class Point:
    x: int


# Values a plugin stage might leave in a record; orjson refuses most of them, and pydantic writes the line.
ODD_VALUES = [
    2**64,
    -(2**63) - 1,
    {1: "int key"},
    {"a", "b"},
    b"bytes",
    Decimal("1.5"),
    Name("sub"),
    datetime.datetime(2026, 1, 2, 3, 4, 5),
    datetime.date(2026, 1, 2),
    Point(1),
    Color.RED,
    uuid.UUID(int=7),
    (1, 2),
    Source(file="f", line=1),
    float("nan"),
    float("inf"),
    -0.0,
    1e16,
]


def pydantic_line(model) -> bytes:
    """What the run folder wrote before orjson: pydantic, and escapes where it cannot encode."""
    try:
        return to_json(model)
    except PydanticSerializationError:
        return json.dumps(model.model_dump(mode="json"), ensure_ascii=True).encode()


def kept_record(meta_value=None, arguments=None) -> Record:
    record = make_record(
        answers=[{"name": "get_weather", "arguments": arguments or {"city": "Paris"}}],
        cot="I call get_weather.",
        index=3,
    )
    return record.model_copy(
        update={
            "target": '<think>I call get_weather.</think>\n\n[get_weather(city="Paris")]',
            "trail": [
                Step(stage="classification", verdict="pass"),
                Step(stage="function_params", verdict="regenerate", reason="coerced", message="x", before="[f()]"),
            ],
            "problems": [Problem(field="answers", code="c", message="m")],
            "meta": {"value": meta_value},
        }
    )


def outcome_lines(record: Record) -> list:
    return [
        record,
        DiscardedRecord.model_construct(**dict(record), stage="format", reason="r", message="m"),
        ErroredRecord.model_construct(**dict(record), stage="format", error="boom"),
        Quarantined(index=1, source=Source(file="f", line=2), field="tools", error="e", raw="{"),
    ]


@settings(max_examples=300, deadline=None)
@given(meta=json_values, arguments=st.dictionaries(st.text(min_size=1, max_size=5), json_values, max_size=3))
def test_lines_are_the_bytes_pydantic_writes(meta, arguments):
    for model in outcome_lines(kept_record(meta, arguments)):
        assert to_json_line(model) == pydantic_line(model)


@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda v: repr(sorted(v)) if isinstance(v, set) else repr(v))
def test_odd_values_are_written_as_pydantic_writes_them(value):
    for model in outcome_lines(kept_record(value)):
        assert to_json_line(model) == pydantic_line(model)


def test_lone_surrogates_are_written_escaped():
    record = kept_record("bad \ud800 text")
    line = to_json_line(record)
    assert line == pydantic_line(record)
    assert b"\\ud800" in line and json.loads(line)["meta"]["value"] == "bad \ud800 text"


@pytest.mark.parametrize(
    "meta",
    [
        {"a\ud800b": "x"},
        {"a\ud800b": "x\udc00"},
        {"n": 2**70, "a\ud800b": "x"},  # orjson stops at the integer first; pydantic then changed the key
        {"s": {1, 2}, "k\udfff": [1, {"\ud800": None}]},
    ],
)
def test_lone_surrogates_in_keys_are_written_escaped_not_replaced(meta):
    # pydantic writes a key's lone surrogate as three U+FFFD: the key changed without a word.
    line = to_json_line(kept_record().model_copy(update={"meta": meta}))
    assert line.isascii()
    assert json.loads(line)["meta"] == json.loads(json.dumps(meta, default=sorted))


@pytest.mark.parametrize("meta", [{"n": 2**70, "text": "Par\ufffds caf\u00e9"}, {"text": "caf\u00e9 \ufffd"}])
def test_a_real_replacement_character_leaves_the_line_as_pydantic_writes_it(meta):
    # U+FFFD is common in scraped text; only a key's lone surrogate makes the line an escaped one.
    model = kept_record().model_copy(update={"meta": meta})
    assert to_json_line(model) == pydantic_line(model)


def test_plain_models_have_no_serialization_of_their_own():
    """orjson writes these from ``__dict__``: an alias, serializer or computed field would be skipped."""
    for model in PLAIN_MODELS:
        decorators = model.__pydantic_decorators__
        assert not decorators.field_serializers and not decorators.model_serializers, model
        assert not model.model_computed_fields, model
        assert all(f.alias is None and f.serialization_alias is None for f in model.model_fields.values()), model
    models = {
        FunctionCall,
        Source,
        Problem,
        Step,
        Message,
        Record,
        DiscardedRecord,
        DatasetDiscard,
        ErroredRecord,
        Quarantined,
    }
    assert models == PLAIN_MODELS


def test_a_plugin_model_inside_a_record_is_written_by_pydantic():
    from pydantic import BaseModel, field_serializer

    class Secret(BaseModel):
        token: str

        @field_serializer("token")
        def hide(self, token: str) -> str:
            return "***"

    record = kept_record(Secret(token="abc"))
    assert b'"***"' in to_json_line(record) and to_json_line(record) == to_json(record)


def test_quickstart_outcome_lines_match_pydantic(tmp_path):
    """Every line of the bundled example's run (every reason code, odd input too) reads back as
    a model that writes the same bytes as pydantic."""
    from pathlib import Path

    from funreason_refine.config import load_pipeline
    from funreason_refine.engine import run_pipeline

    example = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "pipeline.toml"
    run = run_pipeline(load_pipeline(example, tmp_path / "run"), workers=1)
    models = {"kept": Record, "discarded": DiscardedRecord, "quarantined": Quarantined, "errors": ErroredRecord}
    checked = 0
    for kind, model in models.items():
        for line in read_jsonl(run.out_dir / f"{kind}.jsonl"):
            record = (DatasetDiscard if "audit" in line else model).model_validate(line)
            assert to_json_line(record) == pydantic_line(record)
            assert json.loads(to_json_line(record)) == line
            checked += 1
    assert checked == run.summary.as_dict()["input"]["records"]


def test_plain_records_are_written_without_pydantic(monkeypatch):
    import funreason_refine.run_folder as run_folder

    expected = [pydantic_line(model) for model in outcome_lines(kept_record({"n": [1, 2.5, None]}))]

    def refuse(model):
        raise AssertionError("pydantic's serializer was used for a plain record")

    monkeypatch.setattr(run_folder, "to_json", refuse)
    assert [to_json_line(model) for model in outcome_lines(kept_record({"n": [1, 2.5, None]}))] == expected


@pytest.mark.parametrize(
    "text, said",
    [
        ('{"a": 1, "a": 2}', "at the top level: the key 'a' is given twice"),
        ('{"x": [{"b": {"c": 1, "c": 2}}]}', "at x[0].b: the key 'c' is given twice"),
        ('{"x": {"t": NaN}}', "at x.t: NaN is not a JSON value"),
        ('{"x y": [1e400]}', 'at ["x y"][0]: 1e400 is too large for a float'),
        # json reads the first "a" whole before it meets the second: its fault is the one refused
        ('{"a": {"b": 1, "b": 2}, "a": 3}', "at a: the key 'b' is given twice"),
        ('[1, {"k": -Infinity}]', "at [1].k: -Infinity is not a JSON value"),
        ('{"n": ' + "9" * 5000 + "}", "at n: Exceeds the limit (4300 digits)"),
    ],
)
def test_a_refused_value_is_named_by_its_place(text, said):
    with pytest.raises(ValueError) as refused:
        loads_unique(text)
    assert str(refused.value).startswith(said)


def test_a_syntax_error_is_json_s_own():
    with pytest.raises(json.JSONDecodeError):
        loads_unique('{"a": 1, "a": }')
