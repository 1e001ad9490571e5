"""What a run's kept set is worth: `refine calibrate` and `refine report --calibration`, numbers worked out by hand.

The run refines the golden records themselves (without their labels) with the strict judge of
test_calibrate.py: it discards r3 r4 r5 r8 at query_tool, r7 r9 r10 at cot and r11 at
function_params, 8 of 13. On the labels the strict judge caught 6 of 7 discards (sensitivity
6/7) and passed 4 of 6 keeps (specificity 2/3): j = 11/21, q = 8/13, q + sp - 1 = 11/39, so the
bad share is 7/13, bad among kept (1/7)(7/13)/(5/13) = 1/5 and good among discarded
(1/3)(6/13)/(8/13) = 1/4.

Per stage, among the labelled records that reached it: query_tool caught r4 r5, missed r6, and let
go r3 r8 (r8: the person discards it later, at cot), passing r1 r2 r7 r10 r11 r12 r13 (tp 2, fn 1,
fp 2, tn 7); cot saw r1 r2 r7 r10 r11 r12 r13: caught r7, let go r10 (tp 1, fp 1, tn 5), and the
run's cot discarded 3 of the 9 that reached it: j = 5/6, bad share (1/3 + 5/6 - 1)/(5/6) = 1/5,
bad among kept 0, good among discarded (1/6)(4/5)/(1/3) = 2/5.
"""

import json

import pytest

from funreason_refine.calibrate.worth import choose, worth_row
from funreason_refine.calibrate.worth_view import cells
from funreason_refine.errors import RefineError
from funreason_refine.testing.fake_llm import FakeLLM
from tests.calibrate.test_calibrate import LABELS, PIPELINE, golden_row, judge
from tests.conftest import refine, write_jsonl, xlam_row
from tests.report.test_report import Numbers


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


@pytest.fixture
def folder(tmp_path):
    rows = [golden_row(rid) for rid in LABELS]
    write_jsonl(tmp_path / "golden.jsonl", rows)
    write_jsonl(tmp_path / "in.jsonl", [{k: v for k, v in r.items() if k not in ("label", "comment")} for r in rows])
    return tmp_path


def pipeline(folder, server):
    text = PIPELINE.format(api_base=server.api_base).replace("not-read-by-calibrate.jsonl", "in.jsonl")
    (folder / "pipeline.toml").write_text(text)
    return folder / "pipeline.toml"


def test_calibrate_and_report_say_what_the_kept_set_is_worth(folder):
    with FakeLLM(judge) as server:
        refine("run", pipeline(folder, server), code=0)
        output = refine("calibrate", folder / "golden.jsonl", folder / "pipeline.toml", "--out", folder / "cal")
        reported = refine("report", folder / "run", "--calibration", folder / "cal")
    worth = json.loads((folder / "cal" / "calibration.json").read_text())["worth"]
    assert worth["candidate"] == "openai/strict" and worth["warnings"] == []
    o = worth["overall"]
    assert (o["records"], o["discarded"], o["sensitivity"], o["specificity"]) == (13, 8, 0.8571, 0.6667)
    assert o["labels"] == {"discard": 7, "caught": 6, "keep": 6, "passed": 4}
    assert o["bad_share"]["value"] == round(7 / 13, 4)
    assert (o["bad_among_kept"]["value"], o["bad_among_kept"]["records"], o["bad_among_kept"]["of"]) == (0.2, 1, 5)
    assert (o["good_among_discarded"]["value"], o["good_among_discarded"]["records"]) == (0.25, 2)
    stages = {s["stage"]: s for s in worth["stages"]}
    assert [(s["records"], s["discarded"]) for s in stages.values()] == [(13, 0), (13, 4), (9, 3), (6, 1), (5, 0)]
    assert stages["query_tool"]["labels"] == {"discard": 3, "caught": 2, "keep": 9, "passed": 7}
    cot = stages["cot"]
    assert cot["labels"] == {"discard": 1, "caught": 1, "keep": 6, "passed": 5}
    assert (cot["bad_share"]["value"], cot["bad_among_kept"]["value"]) == (0.2, 0.0)
    assert cot["good_among_discarded"]["value"] == 0.4
    assert any("only 1 labelled discard (fewer than 10)" in n for n in cot["notes"])
    assert stages["classification"]["bad_among_kept"] is None
    assert stages["classification"]["notes"] == ["no labelled discards: its error on them is unknown"]

    for text in (output, reported):
        assert "What the kept set is worth" in text and "20.0% (" in text and "25.0% (" in text
        assert "cot: only 1 labelled discard (fewer than 10)" in " ".join(text.split())
    page = Numbers()
    page.feed((folder / "run" / "report.html").read_text())
    assert page.values["worth.overall.bad_among_kept"].startswith("20.0% (0.0%-")
    assert page.values["worth.cot.good_among_discarded"].startswith("40.0% (")
    calibration_page = Numbers()
    calibration_page.feed((folder / "cal" / "calibration.html").read_text())
    assert calibration_page.values["worth.overall.bad_among_kept"] == page.values["worth.overall.bad_among_kept"]
    assert "## What the kept set is worth" in (folder / "run" / "report.md").read_text()


def test_a_run_whose_judge_was_not_calibrated_is_not_estimated_without_a_warning(folder):
    with FakeLLM(judge) as server:
        path = pipeline(folder, server)
        said = refine("calibrate", folder / "golden.jsonl", path, "--out", folder / "cal")
        assert "no finished run to apply the measured error to" in " ".join(said.split())
        assert json.loads((folder / "cal" / "calibration.json").read_text())["worth"] is None
        refine("run", path, "--judge-model", f"openai/lenient@{server.api_base}", "--out", folder / "other")
    report = refine("report", folder / "other", "--calibration", folder / "cal")
    flat = " ".join(report.split())
    assert "What the kept set is worth" not in report
    assert "the run's judges (query_tool: openai/lenient; cot: openai/lenient; function_params: openai/lenient)" in flat
    assert "are not a candidate of" in flat and "--candidate NAME" in flat
    page = Numbers()
    page.feed((folder / "other" / "report.html").read_text())
    assert "not a candidate" in page.values["worth.warning.1"]

    forced = " ".join(
        refine("report", folder / "other", "--calibration", folder / "cal", "--candidate", "openai/strict").split()
    )
    assert "What the kept set is worth" in forced
    assert "the calibrated candidate 'openai/strict'" in forced and "is not the run's judge" in forced
    refine("report", folder / "other", "--calibration", folder / "cal", "--candidate", "gpt-9", code=1)


def test_a_calibration_without_error_rates_is_named_with_what_to_do(tmp_pipeline, tmp_path):
    path, run = tmp_pipeline([xlam_row("a")])
    refine("run", path)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "calibration.json").write_text(json.dumps({"candidates": [{"name": "rules only"}]}))
    said = " ".join(refine("report", run, "--calibration", tmp_path / "old", code=1).split())
    assert "has no judge error rates to correct with" in said and "run `refine calibrate` again" in said
    refine("report", run, "--candidate", "rules only", code=2)


def test_calibrate_refuses_a_run_that_is_not_finished_before_asking_anything(folder):
    (folder / "nothing").mkdir()
    with FakeLLM(judge) as server:
        path = pipeline(folder, server)
        said = refine(
            "calibrate", folder / "golden.jsonl", path, "--out", folder / "cal", "--run", folder / "nothing", code=1
        )
        assert server.requests == []
    assert "is not a run folder" in " ".join(said.split())


CALIBRATION = {
    "path": "cal/calibration.json",
    "candidates": [
        {"name": "rules only", "slug": "rules-only", "configuration": {"stages_hash": "r", "models": {}}},
        {"name": "m", "slug": "m", "configuration": {"stages_hash": "m1", "models": {"cot": ["openai/m"]}}},
        {"name": "broken", "slug": "broken", "error": "judge unreachable"},
    ],
}


def test_the_candidate_with_the_run_s_configuration_is_chosen_and_any_other_is_warned():
    rules, m = CALIBRATION["candidates"][:2]
    assert choose(CALIBRATION, {"stages_hash": "r", "models": {}}, None) == (rules, None)
    other_prompt = {"stages_hash": "m2", "models": {"cot": ["openai/m"]}}
    chosen, warning = choose(CALIBRATION, other_prompt, None)
    assert chosen is m and "asks the run's models, but its prompts or stage settings differ" in warning
    chosen, warning = choose(CALIBRATION, {"stages_hash": "x", "models": {"cot": ["openai/x"]}}, None)
    assert chosen is None
    assert "the run's judges (cot: openai/x) are not a candidate of cal/calibration.json" in warning
    assert "rules only (rules only); m (cot: openai/m)" in warning
    chosen, warning = choose(CALIBRATION, {"stages_hash": "x", "models": {"cot": ["openai/x"]}}, "rules-only")
    assert chosen is rules and "is not the run's judge (cot: openai/x)" in warning
    with pytest.raises(RefineError, match="'broken' is not a scored candidate"):
        choose(CALIBRATION, {"stages_hash": "r", "models": {}}, "broken")


def test_a_row_as_people_read_it():
    # tests/calibrate/test_correction.py's example: 8 of 10 labelled discards caught, 18 of 20 keeps
    # passed, 300 of 1,000 records discarded. Of the variance of bad among kept, the labelled discards
    # hold 0.285190 * 0.014668 / 0.0059422 = 70%: labelling discards narrows it fastest.
    row = worth_row("cot", 300, 1000, {"tp": 8, "fn": 2, "tn": 18, "fp": 2})
    assert cells(row) == [
        "cot",
        "1,000",
        "300",
        "8/10 (0.80)",
        "18/20 (0.90)",
        "8.2% (0.0%-25.3%), ~57 of 700 kept",
        "23.8% (0.0%-90.3%), ~71 of 300 discarded",
        "kept +101 (mostly discards), discarded +98 (mostly keeps)",
    ]
    assert row["bad_among_kept"]["from_discards"] == 0.704
