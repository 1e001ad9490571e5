"""refine calibrate with a scorer: its threshold fitted to the labels, every figure worked out by hand."""

import json

import pytest

from funreason_refine.calibrate.metrics import Ending
from funreason_refine.calibrate.tables import threshold_lines
from funreason_refine.calibrate.thresholds import at_thresholds, between
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.conftest import refine, write_jsonl, xlam_row

# The classifier's score of record i, and the person's label of it.
SCORES = [0.95, 0.9, 0.85, 0.7, 0.65, 0.4, 0.35, 0.3, 0.1, 0.05]
LABELS = ["keep", "keep", "keep", "keep", "discard", "keep", "discard", "discard", "discard", "discard"]


@pytest.fixture
def calibrated(tmp_path):
    golden = [
        {**xlam_row(f"g{i}", query=f"Weather in city number {i}"), "label": {"outcome": label}}
        for i, label in enumerate(LABELS)
    ]
    # A text answer the person would discard: kept by the rules, never scored (a false negative at any threshold).
    golden.append({**xlam_row("bad", answers="not a call"), "label": {"outcome": "discard"}})
    write_jsonl(tmp_path / "golden.jsonl", golden)

    def script(request):
        good = SCORES[int(json.dumps(request.body).split("city number ")[1][0])]
        return Reply(probs=[1 - good, good])

    def calibrate(*options):
        with FakeLLM(script) as server:
            (tmp_path / "pipeline.toml").write_text(
                '[input]\npath = "golden.jsonl"\n[[stages]]\nname = "classification"\n[[stages]]\n'
                f'name = "function_params"\nscorer = {{model = "hosted_vllm/rm", api_base = "{server.api_base}", '
                'kind = "classify", threshold = 0.5}\n'
            )
            output = refine(
                "calibrate", tmp_path / "golden.jsonl", tmp_path / "pipeline.toml", "--out", tmp_path / "cal", *options
            )
        report = json.loads((tmp_path / "cal" / "calibration.json").read_text())
        return output, report, (tmp_path / "cal" / "calibration.html").read_text()

    return calibrate


def test_the_threshold_with_the_best_f1_and_one_reaching_a_precision_are_proposed_with_the_line_to_paste(calibrated):
    output, report, html = calibrated("--target-precision", "0.95")
    rules, scorers = report["candidates"]
    assert scorers["name"] == "pipeline scorers" and "thresholds" not in rules
    fit = scorers["thresholds"]["function_params"]
    # As configured (0.5): discarded below it 0.4 (labelled keep) and 0.35 0.3 0.1 0.05 (discard); the person's
    # discards 0.65 and the text answer are kept: tp 4, fp 1, fn 2. The candidate's own figures are these.
    assert fit["at_configured"]["threshold"] == 0.5
    assert (fit["at_configured"]["tp"], fit["at_configured"]["fp"], fit["at_configured"]["fn"]) == (4, 1, 2)
    assert (scorers["overall"]["tp"], scorers["overall"]["fp"], scorers["overall"]["fn"]) == (4, 1, 2)
    assert fit["scored"] == 10 and len(fit["curve"]) == 11
    # From discarding none (0) to discarding all (1): each threshold the shortest number between two scores.
    assert [p["threshold"] for p in fit["curve"]] == [0, 0.1, 0.3, 0.35, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 1]
    # 0.7 discards 0.65 0.4 0.35 0.3 0.1 0.05: tp 5, fp 1 (0.4), fn 1 (the text answer): F1 10/12.
    best = fit["best_f1"]
    assert (best["threshold"], best["tp"], best["fp"], best["fn"], best["f1"]) == (0.7, 5, 1, 1, 0.8333)
    assert best["paste"] == 'threshold = 0.7  # in the scorer table of [[stages]] name = "function_params"'
    # Precision 0.95 or more, the most discards: 0.4 (tp 4, fp 0); 0.6 would discard the 0.4 labelled keep.
    target = fit["at_target"]
    assert (target["threshold"], target["precision"], target["recall"]) == (0.4, 1.0, 0.6667)
    assert "best F1 at threshold 0.7: precision 0.833, recall 0.833, F1 0.833, 6 scored below it" in output
    assert "precision 0.95 at threshold 0.4" in output and "paste: threshold = 0.4" in output
    assert 'data-key="thresholds.pipeline-scorers.function_params.chart"' in html
    assert "<polyline" in html


def test_the_target_is_proposed_only_when_asked(calibrated):
    _, report, _ = calibrated("--target-precision", "1")
    assert report["candidates"][1]["thresholds"]["function_params"]["at_target"]["threshold"] == 0.4
    _, report, _ = calibrated()  # no target asked: the best F1 alone
    assert report["candidates"][1]["thresholds"]["function_params"]["at_target"] is None


def test_between_gives_the_shortest_number_that_splits_the_scores_the_same_way():
    assert between(0.4, 0.65) == 0.6
    assert between(0.61, 0.62) == 0.62
    assert between(0.612, 0.6125) == 0.6125
    assert between(None, 0.05) == 0
    assert between(-3.2, -1.5) == -2


def test_a_threshold_applied_afterwards_ends_the_record_at_the_first_stage_it_fails():
    kept = Ending("kept", scores=(("guard", 0.7), ("rm", 0.2)))
    assert at_thresholds(kept, {"guard": 0.5, "rm": None}) == kept
    ended = at_thresholds(kept, {"guard": 0.8, "rm": 0.5})
    assert (ended.kind, ended.stage, ended.reason) == ("discarded", "guard", "low_score")
    assert at_thresholds(Ending("errors", scores=(("guard", 0.1),)), {"guard": 0.5}).kind == "errors"


def test_a_precision_no_threshold_reaches_is_said():
    point = {"threshold": 0.5, "precision": 0.6, "recall": 0.5, "f1": 0.55, "below": 3, "paste": "threshold = 0.5"}
    fit = {
        "model": "m",
        "scored": 4,
        "configured": None,
        "at_configured": {"precision": None, "recall": 0.0, "f1": 0.0},
        "curve": [point],
        "best_f1": point,
        "target_precision": 0.9,
        "at_target": None,
    }
    lines = threshold_lines({"candidates": [{"name": "c", "thresholds": {"rm": fit}}]})
    assert lines[0].endswith("as configured (threshold none): precision -, recall 0.000, F1 0.000")
    assert (
        lines[-1]
        == "  no threshold reaches precision 0.9 (the highest is 0.600): label more records, or try another scorer"
    )


def test_labels_that_keep_every_scored_record_get_no_threshold_that_would_discard_one():
    from funreason_refine.calibrate.golden import GoldenRecord, Label
    from funreason_refine.calibrate.thresholds import fit

    golden = [GoldenRecord(i + 1, {}, Label(outcome="keep"), None, f"g{i}") for i in range(3)]
    endings = [Ending("kept", scores=(("rm", s),)) for s in (0.9, 0.2, 0.6)]
    fitted = fit(golden, endings, {"rm": {"model": "m", "kind": "classify", "threshold": 0.5}})["rm"]
    # Every threshold above 0.2 discards a record the person keeps (F1 0): before, 0.6 was proposed to paste.
    assert fitted["best_f1"] is None
    lines = threshold_lines({"candidates": [{"name": "c", "thresholds": {"rm": fitted}}]})
    assert lines[-1] == (
        "  no threshold discards a record labelled discard (F1 0 at each): none proposed; one below every score "
        "discards none"
    )
    # The page says so too (it left the row out, without a word).
    from funreason_refine.calibrate.html import threshold_chart
    from funreason_refine.pages import render

    shown = {"candidate": {"name": "c", "slug": "c"}, "stage": "rm", "fit": fitted, "chart": threshold_chart(fitted)}
    html = render("calibration/thresholds.html", thresholds=[shown])
    assert 'data-key="thresholds.c.rm.best_F1">none proposed: no threshold discards a record labelled discard' in html
