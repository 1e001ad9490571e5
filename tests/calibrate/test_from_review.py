"""refine calibrate --golden-from: a reviewed run becomes a golden set, which calibrates."""

import json

from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.overrides import OverrideLog, decision_for
from funreason_refine.testing import run_rows
from tests.conftest import read_jsonl
from tests.review.conftest import rows


def decide(run_dir, kind, rid, decision, note=""):
    line = next(r for r in read_jsonl(run_dir / f"{kind}.jsonl") if r["id"] == rid)
    OverrideLog(run_dir).append(decision_for(line, kind, decision, note))


def test_a_reviewed_run_becomes_a_golden_set_that_calibrates(tmp_path):
    run_rows(rows(), tmp_path)
    run_dir = tmp_path / "run"
    decide(run_dir, "discarded", "no-days", "wrong", "five days is the default")
    decide(run_dir, "discarded", "unknown-param", "right")
    decide(run_dir, "kept", "repaired", "right")
    decide(run_dir, "kept", "ok-rome", "wrong")
    golden = tmp_path / "golden.jsonl"
    args = ["calibrate", str(golden), str(tmp_path / "pipeline.toml"), "--golden-from", str(run_dir)]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "cal")])
    assert result.exit_code == 0, result.output
    assert f"wrote 4 labelled records to {golden}" in " ".join(result.output.split())
    written = read_jsonl(golden)
    assert [(r["id"], r["label"]) for r in written] == [
        ("ok-rome", {"outcome": "discard"}),
        (
            "repaired",
            {"outcome": "keep", "answer": [{"name": "get_forecast", "arguments": {"city": "Oslo", "days": 5}}]},
        ),
        ("no-days", {"outcome": "keep"}),
        ("unknown-param", {"outcome": "discard", "stage": "function_params", "reason": "unknown_parameter"}),
    ]
    original = {r["id"]: r for r in rows()}
    assert all({k: v for k, v in r.items() if k not in ("label", "comment")} == original[r["id"]] for r in written)
    assert written[2]["comment"].endswith(
        "discarded (function_params: missing_required), verdict marked wrong; note: five days is the default"
    )

    (rules,) = json.loads((tmp_path / "cal" / "calibration.json").read_text())["candidates"]
    o = rules["overall"]  # tp unknown-param, fp no-days, fn ok-rome, tn repaired
    assert (o["tp"], o["fp"], o["fn"], o["tn"], o["precision"], o["recall"]) == (1, 1, 1, 1, 0.5, 0.5)
    assert rules["corrections"] == {"labelled": 1, "kept": 1, "matched": 1}

    again = CliRunner().invoke(main, ["calibrate", str(golden), "--golden-from", str(run_dir)])
    assert again.exit_code == 0, "a set written from a review may be written again"
    hand_made = tmp_path / "mine.jsonl"
    hand_made.write_text('{"id": "x", "label": {"outcome": "keep"}}\n')
    refused = CliRunner().invoke(main, ["calibrate", str(hand_made), "--golden-from", str(run_dir)])
    assert refused.exit_code == 1 and "exists and was not written by --golden-from" in refused.output


def test_a_run_without_decisions_says_to_review_it_first(tmp_path):
    run_rows(rows(), tmp_path)
    result = CliRunner().invoke(main, ["calibrate", str(tmp_path / "g.jsonl"), "--golden-from", str(tmp_path / "run")])
    assert result.exit_code == 1 and "holds no decision: review the run with `refine review" in result.output


def test_a_golden_set_from_a_run_that_mixes_formats_is_read_whole(tmp_path):
    from tests.readers.test_faithful import WEATHER, call

    chat = [{"role": "user", "content": "Weather in Oslo?"}, {"role": "assistant", "tool_calls": [call("c1", "Oslo")]}]
    run_rows([], tmp_path)  # the pipeline file (xlam), rewritten below for input of any format
    (tmp_path / "input.jsonl").write_text(
        json.dumps(rows()[0]) + "\n" + json.dumps({"id": "chat", "messages": chat, "tools": [WEATHER]}) + "\n"
    )
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text(pipeline.read_text().replace('format = "xlam"\n', ""))
    assert CliRunner().invoke(main, ["run", str(pipeline), "--fresh"]).exit_code == 0
    run_dir = tmp_path / "run"
    decide(run_dir, "kept", rows()[0]["id"], "right")
    decide(run_dir, "kept", "chat", "wrong")
    golden = tmp_path / "golden.jsonl"
    args = ["calibrate", str(golden), str(pipeline), "--golden-from", str(run_dir), "--out", str(tmp_path / "cal")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (rules,) = json.loads((tmp_path / "cal" / "calibration.json").read_text())["candidates"]
    o = rules["overall"]  # the conversation read too: a keep kept (tn), a discard kept (fn)
    assert (o["tp"], o["fp"], o["fn"], o["tn"]) == (0, 0, 1, 1)
