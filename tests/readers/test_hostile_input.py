"""Input real files hold and the happy path does not expect: values JSON allows and Python or the
serialisers do not take (deep nesting, integers over Python's 4,300 digits), Parquet's struct columns and
long rows. Each record ends in one outcome file, naming its line, read as it was written; the run goes on."""

import json

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from tests.conftest import read_jsonl, write_jsonl, write_pipeline, xlam_row

WEATHER = {"name": "get_weather", "description": "Weather.", "parameters": {"city": {"type": "str"}}}


def nested(depth):
    value = "x"
    for _ in range(depth):
        value = [value]
    return value


def deep_dict(depth):
    value = {"leaf": "x"}
    for _ in range(depth):
        value = {"next": value}
    return value


def run(tmp_path, rows, workers=1):
    write_jsonl(tmp_path / "in.jsonl", rows)
    result = run_pipeline(load_pipeline(write_pipeline(tmp_path)), workers=workers)
    files = {kind: read_jsonl(result.out_dir / f"{kind}.jsonl") for kind in ("kept", "discarded", "quarantined")}
    assert not (result.out_dir / "errors.jsonl").exists() or read_jsonl(result.out_dir / "errors.jsonl") == []
    return files


@pytest.mark.parametrize("workers", [1, 2])
def test_records_nested_deeper_than_can_be_written_are_quarantined_and_the_run_goes_on(tmp_path, workers):
    deep_tool = {**WEATHER, "description": "Weather.", "x": deep_dict(500)}  # past the recursion limit: reading
    rows = [
        xlam_row("good-1"),
        xlam_row("deep-args", answers=[{"name": "get_weather", "arguments": {"city": nested(300)}}]),
        {**xlam_row("deep-tools"), "tools": [deep_tool]},
        {**xlam_row("deep-meta"), "meta": deep_dict(300)},
        xlam_row("good-2"),
    ]
    files = run(tmp_path, rows, workers)
    assert [r["id"] for r in files["kept"]] == ["good-1", "good-2"]
    quarantined = {q["source"]["line"]: q for q in files["quarantined"]}
    assert sorted(quarantined) == [2, 3, 4] and files["discarded"] == []
    assert "nested too deeply to be written" in quarantined[2]["error"]
    assert "nested too deeply to be read" in quarantined[3]["error"]
    assert "nested too deeply to be written" in quarantined[4]["error"]
    assert all('"deep-' in q["raw"] for q in quarantined.values())  # the input, for a person to see


def test_a_repair_that_would_make_a_record_too_deep_quarantines_it(tmp_path):
    # function_params reads an array argument written as JSON text; this one is nested 300 deep.
    tool = {"name": "f", "description": "F.", "parameters": {"xs": {"type": "list", "description": "X"}}}
    rows = [xlam_row("deep-text", tools=[tool], answers=[{"name": "f", "arguments": {"xs": json.dumps(nested(300))}}])]
    files = run(tmp_path, rows)
    (q,) = files["quarantined"]
    assert q["source"]["line"] == 1 and "nested too deeply to be written" in q["error"]


def test_a_value_nested_deeper_than_the_validator_walks_is_a_discard_not_a_stage_failure(tmp_path):
    # The schema validator gives up on a list nested 300 deep ("Recursion limit reached"); the values are
    # wrong for List[int] anyway.
    tool = {"name": "f", "description": "F.", "parameters": {"xs": {"type": "List[int]", "description": "X"}}}
    rows = [xlam_row("deep", tools=[tool], answers=[{"name": "f", "arguments": {"xs": json.dumps(nested(300))}}])]
    files = run(tmp_path, rows)
    (d,) = files["discarded"]
    assert (d["stage"], d["reason"]) == ("function_params", "invalid_value") and "nested too deeply" in d["message"]


def test_integers_over_pythons_digit_limit(tmp_path):
    huge = "9" * 5000
    row = xlam_row("huge-id")
    line = json.dumps(row)[:-1] + f', "n": {huge}}}'  # json.dumps cannot write it: Python cannot either
    tool = {"name": "f", "description": "F.", "parameters": {"n": {"type": "int", "description": "N"}}}
    as_text = xlam_row("huge-text", tools=[tool], answers=[{"name": "f", "arguments": {"n": huge}}])
    files = run(tmp_path, [xlam_row("good"), line, as_text])
    (q,) = files["quarantined"]
    assert q["source"]["line"] == 2 and "4300 digits" in q["error"] and q["error"].startswith("cannot be read")
    # A string of 5,000 digits for an integer parameter: no repair to an integer, a wrong type (not a stage's crash)
    (d,) = files["discarded"]
    assert (d["id"], d["stage"], d["reason"]) == ("huge-text", "function_params", "wrong_type")
    assert [r["id"] for r in files["kept"]] == ["good"]


def test_a_judged_run_quarantines_a_record_it_cannot_write(tmp_path, monkeypatch):
    from funreason_refine.testing.fake_llm import FakeLLM

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows = [xlam_row("good", cot="get_weather for Paris."), {**xlam_row("deep-meta", cot="x"), "meta": deep_dict(300)}]
    write_jsonl(tmp_path / "in.jsonl", rows)
    with FakeLLM(lambda r: "<judge>True</judge><reason>fine</reason>") as server:
        judge = f'[judge]\nmodel = "openai/fake-judge"\napi_base = "{server.api_base}"\nmax_retries = 0\n'
        result = run_pipeline(load_pipeline(write_pipeline(tmp_path, extra="", stages=judge)))
    assert result.summary.outcomes["quarantined"] == 1 and result.summary.errors == 0
    (q,) = read_jsonl(result.out_dir / "quarantined.jsonl")
    assert q["source"]["line"] == 2 and "nested too deeply to be written" in q["error"] and '"deep-meta"' in q["raw"]


def test_a_reader_that_fails_on_a_record_quarantines_it_instead_of_stopping_the_run(tmp_path, monkeypatch):
    from funreason_refine.readers import xlam

    real = xlam.to_record

    def failing(obj, source, index):
        if obj["id"] == "bad":
            raise KeyError("a reader's own bug")
        return real(obj, source, index)

    monkeypatch.setattr(xlam, "to_record", failing)
    files = run(tmp_path, [xlam_row("good"), xlam_row("bad")])
    (q,) = files["quarantined"]
    assert q["source"]["line"] == 2 and q["error"].startswith("the reader failed on this record (KeyError")
    assert '"bad"' in q["raw"] and [r["id"] for r in files["kept"]] == ["good"]


def run_parquet(tmp_path, rows, extra=""):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    result = run_pipeline(load_pipeline(write_pipeline(tmp_path, input_name="in.parquet", extra=extra)))
    return {kind: read_jsonl(result.out_dir / f"{kind}.jsonl") for kind in ("kept", "discarded", "quarantined")}


def test_parquet_struct_columns_read_as_the_objects_they_were_made_from(tmp_path):
    # `datasets` writes objects with different keys as one struct of all keys, null where a row had none.
    weather = {"name": "get_weather", "description": "W.", "parameters": {"city": {"type": "str", "description": "C"}}}
    clock = {"name": "get_time", "description": "T.", "parameters": {"tz": {"type": "str", "description": "Z"}}}
    tools = json.dumps([weather, clock])
    rows = [
        {
            "id": "a",
            "query": "Weather in Paris?",
            "tools": tools,
            "answers": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
        },
        {
            "id": "b",
            "query": "Time in UTC?",
            "tools": tools,
            "answers": [{"name": "get_time", "arguments": {"tz": "UTC"}}],
        },
    ]
    from_parquet = run_parquet(tmp_path, rows)
    assert [r["answer"] for r in from_parquet["kept"]] == [rows[0]["answers"], rows[1]["answers"]]
    jsonl = tmp_path / "jsonl"
    jsonl.mkdir()
    from_jsonl = run(jsonl, rows)
    assert [r["answer"] for r in from_jsonl["kept"]] == [r["answer"] for r in from_parquet["kept"]]


def test_parquet_rows_over_max_record_bytes_are_quarantined(tmp_path):
    rows = [xlam_row("small"), xlam_row("big", query="x" * 5000), xlam_row("small-2")]
    files = run_parquet(tmp_path, rows, extra="max_record_bytes = 4096")
    (q,) = files["quarantined"]
    assert q["source"]["line"] == 2 and "over the limit of 4096 ([input] max_record_bytes)" in q["error"]
    assert q["raw"].startswith('{"id":"big"') and [r["id"] for r in files["kept"]] == ["small", "small-2"]


def test_an_integer_over_pythons_digit_limit_in_a_json_array_is_quarantined_and_the_array_read_on(tmp_path):
    huge = "1" * 5001
    rows = [json.dumps(xlam_row("a")), f'{{"id": "b", "n": {huge}}}', json.dumps(xlam_row("c"))]
    (tmp_path / "in.json").write_text("[" + ",\n".join(rows) + "]\n")
    result = run_pipeline(load_pipeline(write_pipeline(tmp_path, input_name="in.json")))
    (q,) = read_jsonl(result.out_dir / "quarantined.jsonl")
    assert q["source"]["line"] == 2 and "4300 digits" in q["error"]
    assert [r["id"] for r in read_jsonl(result.out_dir / "kept.jsonl")] == ["a", "c"] and result.summary.complete


def test_a_parquet_row_with_an_integer_over_64_bits_is_read(tmp_path):
    import polars as pl

    frame = pl.DataFrame([xlam_row(r) for r in "abc"]).with_columns(pl.Series("big", [1, 2**100, 3], dtype=pl.Int128))
    frame.write_parquet(tmp_path / "in.parquet")
    result = run_pipeline(load_pipeline(write_pipeline(tmp_path, input_name="in.parquet")))
    assert [r["id"] for r in read_jsonl(result.out_dir / "kept.jsonl")] == list("abc")


def test_nan_and_infinity_which_json_has_not_are_refused_not_written_as_null(tmp_path):
    # Python's json writes NaN for a float that is no number; read as it is, it came out as null.
    good = xlam_row("good", query="NaN and Infinity in a text are words")
    top = json.dumps(xlam_row("meta"))[:-1] + ', "meta": {"score": NaN}}'
    in_answers = {**xlam_row("args"), "answers": '[{"name": "get_weather", "arguments": {"city": Infinity}}]'}
    chat = {
        "id": "chat",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "tool_calls": [{"function": {"name": "get_weather", "arguments": '{"city": -Infinity}'}}],
            },
        ],
    }
    hermes = {
        "id": "hermes",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": '<tool_call>{"name": "get_weather", "arguments": {"city": NaN}}</tool_call>',
            },
        ],
    }
    files = run(tmp_path, [good, top, in_answers, chat, hermes])
    assert [r["id"] for r in files["kept"]] == ["good"]
    (q_top,) = files["quarantined"]
    assert q_top["source"]["line"] == 2 and "NaN is not a JSON value" in q_top["error"]
    discarded = [(d["id"], d["reason"]) for d in files["discarded"]]
    assert discarded == [("args", "malformed_answer"), ("chat", "malformed_answer"), ("hermes", "malformed_answer")]
    messages = [d["message"] for d in files["discarded"]]
    assert "at [0].arguments.city: Infinity is not a JSON value" in messages[0]
    assert "(at city: -Infinity is not" in messages[1]
    assert "at arguments.city: NaN is not a JSON value" in messages[2]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "in.json").write_text(f'[{json.dumps(good)},\n{{"id": "x", "n": NaN}}]')
    result = run_pipeline(load_pipeline(write_pipeline(tmp_path / "a", input_name="in.json")))
    (q,) = read_jsonl(result.out_dir / "quarantined.jsonl")
    assert q["source"]["line"] == 2 and "NaN is not a JSON value" in q["error"]


def test_a_lone_surrogate_in_a_key_is_kept_as_it_was_read(tmp_path):
    # JSON may escape a lone surrogate (\ud800) in a key; pydantic wrote it as three U+FFFD.
    row = json.dumps({**xlam_row("k"), "meta": {"note\ud800": "x\udc00"}})
    (tmp_path / "in.jsonl").write_text(row + "\n", encoding="ascii")
    result = run_pipeline(load_pipeline(write_pipeline(tmp_path)))
    line = (result.out_dir / "kept.jsonl").read_bytes()
    assert b'"note\\ud800": "x\\udc00"' in line and "\ufffd" not in line.decode("utf-8")


def test_a_number_too_large_for_a_float_is_refused_not_written_as_null(tmp_path):
    # json reads 1e400 as inf, which the writers write as null.
    good = xlam_row("good")
    top = json.dumps(xlam_row("meta"))[:-1] + ', "meta": {"score": 1e400}}'
    in_answers = {**xlam_row("args"), "answers": '[{"name": "get_weather", "arguments": {"city": -1e400}}]'}
    files = run(tmp_path, [good, top, in_answers])
    assert [r["id"] for r in files["kept"]] == ["good"]
    (q,) = files["quarantined"]
    assert q["source"]["line"] == 2 and "1e400 is too large for a float" in q["error"]
    (d,) = files["discarded"]
    assert (d["id"], d["reason"]) == ("args", "malformed_answer") and "-1e400 is too large" in d["message"]


def test_an_array_argument_given_as_text_with_nan_is_not_repaired_into_null(tmp_path):
    tool = {"name": "f", "description": "F.", "parameters": {"xs": {"type": "list", "description": "X"}}}
    rows = [
        xlam_row("nan", tools=[tool], answers=[{"name": "f", "arguments": {"xs": "[1.5, NaN]"}}]),
        xlam_row("ok", tools=[tool], answers=[{"name": "f", "arguments": {"xs": "[1.5, 2]"}}]),
    ]
    write_jsonl(tmp_path / "in.jsonl", rows)
    result = run_pipeline(load_pipeline(write_pipeline(tmp_path, stages='[[stages]]\nname = "function_params"\n')))
    (kept,) = read_jsonl(result.out_dir / "kept.jsonl")
    assert kept["answer"][0]["arguments"] == {"xs": [1.5, 2]}  # repaired: the text was JSON
    (discarded,) = read_jsonl(result.out_dir / "discarded.jsonl")
    assert (discarded["id"], discarded["reason"]) == ("nan", "wrong_type")
    assert discarded["answer"][0]["arguments"] == {"xs": "[1.5, NaN]"}  # left as it was read


def test_parquet_rows_holding_nan_or_infinity_are_quarantined_naming_the_column(tmp_path):
    import polars as pl

    rows = [xlam_row(i) for i in ("a", "b", "c", "d")]
    frame = pl.DataFrame(
        {
            **{key: [r[key] for r in rows] for key in ("id", "query", "tools", "answers")},
            "score": [0.5, float("nan"), 1.0, 2.0],
            "meta": [{"w": [1.0]}, {"w": [1.0]}, {"w": [float("-inf")]}, {"w": None}],
        }
    )
    frame.write_parquet(tmp_path / "in.parquet")
    result = run_pipeline(load_pipeline(write_pipeline(tmp_path, input_name="in.parquet", extra='format = "xlam"')))
    assert [r["id"] for r in read_jsonl(result.out_dir / "kept.jsonl")] == ["a", "d"]
    quarantined = read_jsonl(result.out_dir / "quarantined.jsonl")
    assert [(q["source"]["line"], q["error"].split(" holds")[0]) for q in quarantined] == [
        (2, "column 'score'"),
        (3, "column 'meta'"),
    ]
    assert "NaN or Infinity, which JSON has not" in quarantined[0]["error"] and "NaN" in quarantined[0]["raw"]


@pytest.mark.parametrize(
    "line, error",
    [
        # A line cut short: json counted its newline as a line 2 and said "at column 1".
        (
            '{"id": "not-json", "query": "Weather?", "tools": "[]", "answers": "[]"',
            "Expecting ',' delimiter at the end of the line",
        ),
        ('{"id": "a", "query": "Wea\tther?"}', "Invalid control character at column 26"),  # not "at at column"
    ],
)
def test_a_line_that_is_not_json_names_the_column_of_the_line_where_it_goes_wrong(tmp_path, line, error):
    (tmp_path / "in.jsonl").write_text(line + "\n" + json.dumps(xlam_row("ok")) + "\n", encoding="utf-8")
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\nformat = "xlam"\n[output]\ndir = "run"\n')
    run_pipeline(load_pipeline(tmp_path / "p.toml"))
    (item,) = read_jsonl(tmp_path / "run" / "quarantined.jsonl")
    assert item["error"] == f"not JSON: {error}", item["error"]


@pytest.mark.parametrize("fmt", ["", 'format = "xlam"\n'])
def test_a_compressed_input_is_refused_saying_how_to_decompress_it(tmp_path, fmt):
    # Read as it was, a .jsonl.gz was refused as "not valid UTF-8 ... set [input] format"; with a format set,
    # its binary lines were quarantined and the run called complete.
    import gzip

    from click.testing import CliRunner

    from funreason_refine.cli import main

    (tmp_path / "in.jsonl.gz").write_bytes(gzip.compress((json.dumps(xlam_row()) + "\n").encode()))
    (tmp_path / "p.toml").write_text(f'[input]\npath = "in.jsonl.gz"\n{fmt}[output]\ndir = "run"\n')
    result = CliRunner().invoke(main, ["run", str(tmp_path / "p.toml")])
    assert result.exit_code == 1, result.output
    assert "in.jsonl.gz is gzip-compressed, which refine does not read: decompress it (gunzip -k in.jsonl.gz)" in (
        result.output
    )
    assert not (tmp_path / "run" / "quarantined.jsonl").exists()
