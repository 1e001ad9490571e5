import json

import polars as pl
import pytest

from funreason_refine.readers import json_array, raw
from funreason_refine.readers.raw import iter_raw


def items(path, max_bytes=1 << 20):
    return [(line, obj) for line, obj, _ in iter_raw(path, max_bytes)]


def test_jsonl_lines_keep_their_line_numbers_and_skip_blank_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": 2}\nnot json\n[1]\n\xef\xbb\xbf\n{"a": "\xe9"}\n')
    got = items(path)
    assert got[0] == (1, {"a": 1})
    assert got[1] == (3, {"a": 2})
    assert got[2][0] == 4 and got[2][1].startswith("not JSON")
    assert got[3] == (5, "expected a JSON object, got list")
    assert got[-1][0] == 7 and "not valid UTF-8" in got[-1][1]


def test_unparsed_jsonl_lines_parse_later_to_the_same_items(tmp_path):
    """parse=False (the engine's reading process) hands over bytes; parse_line finishes them identically."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"a": 1}\n\n{"a": 2}\nnot json\n[1]\n' + b'{"q": "' + b"x" * 300 + b'"}\n{"a": "\xe9"}\n'
    )
    eager = list(iter_raw(path, 256))
    lazy = list(iter_raw(path, 256, parse=False))
    assert any(isinstance(obj, bytes) for _, obj, _ in lazy)
    finished = [raw.parse_line(line, obj) if isinstance(obj, bytes) else (line, obj, text) for line, obj, text in lazy]
    assert finished == eager
    assert [line for line, _, _ in eager] == [1, 3, 4, 5, 6, 7]


def test_oversized_jsonl_line_is_reported_without_parsing(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"q": "x" * 5000}) + "\n" + '{"ok": 1}\n')
    got = items(path, max_bytes=1024)
    assert "over the limit of 1024" in got[0][1]
    assert got[1] == (2, {"ok": 1})


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_json_array_streams_elements_across_chunk_boundaries(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(json_array, "_CHUNK", chunk)
    rows = [{"id": i, "text": "é" * (i * 13), "n": 12345.5} for i in range(40)]
    path = tmp_path / "a.json"
    path.write_text("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n]\n", encoding="utf-8")
    got = items(path)
    assert [obj for _, obj in got] == rows
    assert [line for line, _ in got] == list(range(2, 42))


def test_json_array_syntax_error_names_the_line_and_the_reading_goes_on(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n{"a": 1},\n{"a": 2,,},\n{"a": 3}\n]')
    got = items(path)
    assert got[0] == (2, {"a": 1})
    assert got[1][0] == 3 and got[1][1].startswith("not JSON") and "the element was skipped" in got[1][1]
    assert got[2] == (4, {"a": 3})
    assert len(got) == 3


def test_a_malformed_element_ends_at_a_comma_outside_its_strings_and_brackets(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[{"a": 1},\n{bad "x,]\\" [1, 2]" {"b": [3, ]}},\n{"a": 3}, nope, {"a": 4}]')
    got = list(iter_raw(path, 1 << 20))
    assert [line for line, _, _ in got] == [1, 2, 3, 3, 3]
    assert got[1][2] == '{bad "x,]\\" [1, 2]" {"b": [3, ]}}'
    assert [obj for _, obj, _ in got if isinstance(obj, dict)] == [{"a": 1}, {"a": 3}, {"a": 4}]
    assert got[3][1].startswith("not JSON") and got[3][2] == "nope"


def test_text_where_a_comma_should_be_is_one_item_and_the_next_element_is_read(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[{"a": 1} {"b": 2},\n{"a": 3}]')
    got = list(iter_raw(path, 1 << 20))
    assert got[0][:2] == (1, {"a": 1})
    assert "expected ',' or ']' between array elements, found '{'" in got[1][1] and got[1][2] == '{"b": 2}'
    assert got[2][:2] == (2, {"a": 3})


def test_an_empty_element_a_trailing_comma_is_one_item(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[{"a": 1},\n]')
    got = items(path)
    assert got[0] == (1, {"a": 1}) and "an empty array element" in got[1][1] and len(got) == 2


def test_an_element_nested_too_deeply_is_skipped(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[{"a": 1}, ' + "[" * 100_000 + "]" * 100_000 + ', {"a": 2}]')
    got = items(path)
    assert got[0] == (1, {"a": 1}) and "nested too deeply" in got[1][1] and got[2] == (1, {"a": 2})


@pytest.mark.parametrize("chunk", [7, 1000, 1 << 20])
def test_an_oversized_element_is_skipped_streaming_and_the_next_one_is_read(tmp_path, monkeypatch, chunk):
    """Its end is found without holding it: the buffer stays within the limit and a chunk or two."""
    monkeypatch.setattr(json_array, "_CHUNK", chunk)
    big = {"q": 'x, ] } " [' * 3000, "n": [[1, 2]] * 500}
    path = tmp_path / "a.json"
    path.write_text("[\n" + json.dumps({"a": 1}) + ",\n" + json.dumps(big, indent=1) + ',\n{"a": 2}\n]')
    most = 0
    more = json_array._ArrayReader._more

    def watched(self):
        nonlocal most
        most = max(most, len(self.buf))
        return more(self)

    monkeypatch.setattr(json_array._ArrayReader, "_more", watched)
    got = list(iter_raw(path, 1024))
    assert got[0][:2] == (2, {"a": 1})
    size = len(json.dumps(big, indent=1))
    assert got[1][0] == 3
    assert got[1][1] == f"record is {size} characters, over the limit of 1024 ([input] max_record_bytes)"
    assert got[1][2].endswith(f"... [{size} characters]")
    assert got[2][:2] == (3 + json.dumps(big, indent=1).count("\n") + 1, {"a": 2})
    assert most <= 1024 + 2 * chunk + 2048


def test_arrays_one_after_the_other_are_read_as_one(tmp_path):
    """cat a.json b.json > in.json: the records of both, with their lines."""
    path = tmp_path / "a.json"
    path.write_text('[{"a": 1}]\n[{"a": 2},\n{"a": 3}]\n\ufeff[]\n[{"a": 4}]\n')
    assert items(path) == [(1, {"a": 1}), (2, {"a": 2}), (3, {"a": 3}), (5, {"a": 4})]


def test_text_after_the_array_is_one_item_naming_its_line(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[{"a": 1},\n{"a": 2}]\ngarbage\nmore {"a": 9}\n[{"a": 3}]\ntail')
    got = list(iter_raw(path, 1 << 20))
    records = [(line, obj) for line, obj, _ in got if isinstance(obj, dict)]
    assert records == [(1, {"a": 1}), (2, {"a": 2}), (5, {"a": 3})]
    (line, message, raw_text), (last_line, last, last_raw) = [item for item in got if isinstance(item[1], str)]
    assert line == 3 and "text after the JSON array's closing ']' (from line 3)" in message
    assert raw_text == 'garbage\nmore {"a": 9}\n'
    assert last_line == 6 and last_raw == "tail"


@pytest.mark.parametrize("text", ["", "  \n\n", "[]", "\ufeff[ ]\n", "[]\n[]"])
def test_an_array_file_without_elements_has_no_items(tmp_path, text):
    path = tmp_path / "a.json"
    path.write_text(text)
    assert items(path) == []


def test_a_missing_closing_bracket_leaves_the_run_incomplete(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[{"a": 1}, {"a": 2}')
    got = items(path)
    assert got[:2] == [(1, {"a": 1}), (1, {"a": 2})]
    assert isinstance(got[2][1], raw.Unread) and "is closed with ']' (file truncated?)" in got[2][1]
    assert got[2][1].unread_bytes == 0 and len(got) == 3


@pytest.mark.parametrize("chunk", [5, 1 << 20])
@pytest.mark.parametrize("limit", [1024, 1 << 20])
@pytest.mark.parametrize(
    "tail",
    [
        '{"b": "cut off, {' + "é" * 2000,  # a file cut off in a string
        '{"b": [1, 2' + "é" * 2000,  # in brackets
        '{"b": {"c": 1},\n' + "é" * 2000 + ',\n{"a": 2}]\n',  # a bracket left open: the element goes on to the end
    ],
)
def test_an_element_that_does_not_end_says_how_many_bytes_were_not_read(tmp_path, monkeypatch, chunk, limit, tail):
    """Nothing after it can be told apart; the rest is one Unread item."""
    monkeypatch.setattr(json_array, "_CHUNK", chunk)
    path = tmp_path / "a.json"
    path.write_text('[{"a": 1},\n{"a": "é"},\n' + tail, encoding="utf-8")
    got = list(iter_raw(path, limit))
    assert [obj for _, obj, _ in got[:2]] == [{"a": 1}, {"a": "é"}]
    line, message, raw_text = got[2]
    assert line == 3 and isinstance(message, raw.Unread) and len(got) == 3
    assert message.unread_bytes == len(tail.encode()) and f"the last {len(tail.encode())} bytes" in message
    assert "--out NEW_DIR" in message and raw_text.startswith('{"b": ')


def test_bytes_that_are_not_utf8_stop_the_reading_saying_how_many_were_left(tmp_path, monkeypatch):
    monkeypatch.setattr(json_array, "_CHUNK", 16)
    path = tmp_path / "a.json"
    data = b'[{"a": 1},\n{"a": 2},\n{"b": "\xff"},\n{"a": 3}]'
    path.write_bytes(data)
    got = list(iter_raw(path, 1 << 20))
    assert [obj for _, obj, _ in got[:2]] == [{"a": 1}, {"a": 2}]
    message = got[-1][1]
    assert isinstance(message, raw.Unread) and message.startswith("not valid UTF-8")
    unread = len(data) - data.index(b'{"b"')
    assert got[-1][0] == 3 and len(got) == 3
    assert message.unread_bytes == unread and f"the last {unread} bytes" in message


def test_an_unread_message_survives_pickling():
    import pickle

    message = pickle.loads(pickle.dumps(raw.Unread("the rest", 12)))
    assert message == "the rest" and message.unread_bytes == 12


def test_parquet_rows_stream_with_row_numbers(tmp_path):
    path = tmp_path / "a.parquet"
    pl.DataFrame(
        {"id": ["a", "b"], "query": ["q1", "q2"], "answers": ["[]", "[]"], "tools": ["[]", "[]"]}
    ).write_parquet(path)
    got = items(path)
    assert got == [
        (1, {"id": "a", "query": "q1", "answers": "[]", "tools": "[]"}),
        (2, {"id": "b", "query": "q2", "answers": "[]", "tools": "[]"}),
    ]
