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


def test_json_array_syntax_error_names_the_line_and_stops(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n{"a": 1},\n{"a": 2,,},\n{"a": 3}\n]')
    got = items(path)
    assert got[0] == (2, {"a": 1})
    assert got[1][0] == 3 and "the rest of the file was not read" in got[1][1]
    assert len(got) == 2


def test_truncated_json_array_is_reported(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[{"a": 1}, {"a": 2}')
    got = items(path)
    assert got[:2] == [(1, {"a": 1}), (1, {"a": 2})]
    assert "not closed" in got[2][1]


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
