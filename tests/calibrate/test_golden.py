"""Golden files: what a person writes, and the errors that say which line and field is wrong."""

import json

import pytest
from click.testing import CliRunner

from funreason_refine.calibrate.golden import GoldenSetError, read_golden
from funreason_refine.cli import main
from funreason_refine.record import FunctionCall
from tests.conftest import QUICKSTART, REPO, write_jsonl, xlam_row


def labelled(rid, label, **extra):
    return {**xlam_row(rid), "label": label, **extra}


def test_labels_comments_and_answers_are_read(tmp_path):
    path = write_jsonl(
        tmp_path / "g.jsonl",
        [
            labelled("a", {"outcome": "keep", "answer": '[get_weather(city="Paris")]'}, comment="fine"),
            "",
            labelled("b", {"outcome": "discard", "stage": "cot", "reason": "cot_misses_function"}),
        ],
    )
    golden = read_golden(path)
    a, b = golden.records
    assert (a.line, a.id, a.comment, a.label.answer) == (
        1,
        "a",
        "fine",
        [FunctionCall(name="get_weather", arguments={"city": "Paris"})],
    )
    assert "label" not in a.record and "comment" not in a.record and a.record["query"]
    assert (b.line, b.label.outcome, b.label.stage, b.label.reason) == (3, "discard", "cot", "cot_misses_function")


def test_every_problem_is_reported_with_its_line_and_field(tmp_path):
    path = write_jsonl(
        tmp_path / "g.jsonl",
        [
            labelled("ok", {"outcome": "keep"}),
            "{not json",
            xlam_row("unlabelled"),
            labelled("typo", {"outcome": "discrad"}),
            labelled("extra", {"outcome": "keep", "stgae": "cot"}),
            labelled("both", {"outcome": "discard", "answer": [{"name": "f", "arguments": {}}]}),
            labelled("syntax", {"outcome": "keep", "answer": "get_weather(city=Paris"}),
            "[1, 2]",
        ],
    )
    with pytest.raises(GoldenSetError) as caught:
        read_golden(path)
    problems = caught.value.problems
    assert len(problems) == 7, problems
    assert problems[0].startswith(f"{path}:2: not valid JSON")
    assert problems[1].startswith(f'{path}:3: no "label"')
    assert problems[2].startswith(f"{path}:4: label.outcome: Input should be 'keep' or 'discard'")
    assert problems[3].startswith(f"{path}:5: label.stgae: Extra inputs are not permitted")
    assert "answer goes with outcome 'keep'" in problems[4] and problems[4].startswith(f"{path}:6: label:")
    assert problems[5].startswith(f"{path}:7: label.answer") and "not a call list" in problems[5]
    assert problems[6] == f"{path}:8: expected a JSON object (an input record with a label), got list"


def test_a_label_naming_a_stage_the_pipeline_does_not_run_stops_calibrate(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", [labelled("a", {"outcome": "discard", "stage": "function_param"})])
    result = CliRunner().invoke(
        main, ["calibrate", str(path), str(QUICKSTART / "pipeline.toml"), "--out", str(tmp_path / "c")]
    )
    assert result.exit_code == 1
    assert f"{path}:1: label.stage 'function_param' is not a stage of the pipeline" in result.output
    assert "classification, query_tool, cot, function_params, format" in result.output


def test_the_example_golden_set_is_what_its_script_writes_and_calibrates_offline(tmp_path):
    folder = REPO / "examples" / "golden"
    namespace: dict = {}
    exec(compile((folder / "build_golden.py").read_text(), "build_golden.py", "exec"), namespace)
    rows = [namespace["row"](*r) for r in namespace["RECORDS"]]
    assert (folder / "golden.jsonl").read_text() == "".join(json.dumps(r) + "\n" for r in rows)
    assert all(r["comment"] for r in rows) and len(rows) >= 24
    stages = {r["label"].get("stage") for r in rows if r["label"]["outcome"] == "discard"}
    assert stages >= {"classification", "query_tool", "cot", "function_params", None}

    result = CliRunner().invoke(
        main,
        ["calibrate", str(folder / "golden.jsonl"), str(QUICKSTART / "pipeline.toml"), "--out", str(tmp_path / "c")],
    )
    assert result.exit_code == 0, result.output
    (rules,) = json.loads((tmp_path / "c" / "calibration.json").read_text())["candidates"]
    o = rules["overall"]
    # The numbers docs/trust.md quotes for the rules alone.
    assert (o["tp"], o["fp"], o["fn"], o["tn"], o["precision"], o["recall"]) == (7, 1, 6, 16, 0.875, 0.5385)
    trust = " ".join((REPO / "docs" / "trust.md").read_text().split())
    assert "the example set gives precision 0.875 and recall 0.538" in trust


def test_records_of_no_format_refine_reads_are_named(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", [{"prompt": "hi", "completion": "there", "label": {"outcome": "keep"}}])
    result = CliRunner().invoke(
        main, ["calibrate", str(path), str(QUICKSTART / "pipeline.toml"), "--out", str(tmp_path / "c")]
    )
    assert result.exit_code == 1
    assert f"{path}:1: not a record of a format refine reads (its keys: completion, prompt)" in result.output


def test_bytes_that_are_not_utf8_are_named_by_line_and_column(tmp_path):
    path = tmp_path / "g.jsonl"
    good = json.dumps(labelled("a", {"outcome": "keep"})).encode()
    path.write_bytes(good + b"\n" + good.replace(b'"a"', b'"caf\xe9"') + b"\n")  # Latin-1, as a spreadsheet saves it
    with pytest.raises(GoldenSetError) as caught:
        read_golden(path)
    column = good.index(b'"a"') + 5
    assert caught.value.problems == [f"{path}:2: not UTF-8 text (byte 0xe9 at column {column}); save the file as UTF-8"]


def test_a_record_labelled_twice_differently_is_refused_naming_both_lines(tmp_path):
    row = {k: v for k, v in xlam_row("x").items() if k != "id"}
    path = write_jsonl(
        tmp_path / "g.jsonl",
        [
            labelled("a", {"outcome": "keep"}),
            labelled("b", {"outcome": "keep"}),
            labelled("a", {"outcome": "discard", "stage": "cot"}),
            {**row, "label": {"outcome": "keep"}},
            {**row, "label": {"outcome": "discard"}},
        ],
    )
    with pytest.raises(GoldenSetError) as caught:
        read_golden(path)
    assert caught.value.problems == [
        f'{path}:3: id \'a\' as on line 1, with another label ({{"outcome": "discard", "stage": "cot"}} here, '
        '{"outcome": "keep"} there): keep the line whose label is right and delete the other, or give the two '
        "records different ids if they are different records",
        f'{path}:5: the same record (no id) as on line 4, with another label ({{"outcome": "discard"}} here, '
        '{"outcome": "keep"} there): keep the line whose label is right and delete the other',
    ]
    result = CliRunner().invoke(main, ["calibrate", str(path), str(QUICKSTART / "pipeline.toml")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{path}:3: id 'a' as on line 1, with another label" in " ".join(result.output.split())


def test_a_record_given_twice_with_the_same_label_is_a_note(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", [labelled("a", {"outcome": "keep"}), labelled("a", {"outcome": "keep"})])
    golden = read_golden(path)
    assert len(golden.records) == 2
    assert golden.notes == [
        f"{path}:2: id 'a' as on line 1, with the same label: it counts twice in the scores; delete one of the "
        "lines unless that is meant"
    ]
