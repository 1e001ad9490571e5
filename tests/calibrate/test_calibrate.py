"""refine calibrate against a scripted judge: every number checked against values worked out by hand."""

import json

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.conftest import write_jsonl, xlam_row
from tests.report.test_report import Numbers

FORECAST = {
    "name": "get_forecast",
    "description": "Forecast.",
    "parameters": {"city": {"type": "str", "description": "City"}, "days": {"type": "int", "description": "Days"}},
}
WEATHER = {
    "name": "get_weather",
    "description": "Weather.",
    "parameters": {"city": {"type": "str", "description": "C"}},
}
MARKERS = {
    "query_tool": "The user query can be solved",
    "cot": "===== COT =====",
    "function_params": "checking the function calls",
}
# The strict judge (the pipeline's own) says False on these records at these stages; the lenient
# one (--judge-model openai/lenient) says True to everything.
STRICT_NO = {"query_tool": {"r3", "r4", "r5", "r8"}, "cot": {"r7", "r9", "r10"}}
FIVE_DAYS = [{"name": "get_forecast", "arguments": {"city": "Oslo", "days": 5}}]
LABELS = {
    "r1": {"outcome": "keep"},
    "r2": {"outcome": "keep"},
    "r3": {"outcome": "keep"},
    "r4": {"outcome": "discard", "stage": "query_tool"},
    "r5": {"outcome": "discard", "stage": "query_tool"},
    "r6": {"outcome": "discard", "stage": "query_tool"},
    "r7": {"outcome": "discard", "stage": "cot"},
    "r8": {"outcome": "discard", "stage": "cot"},
    "r9": {"outcome": "discard"},
    "r10": {"outcome": "keep"},
    "r11": {"outcome": "discard", "stage": "function_params", "reason": "missing_required"},
    "r12": {"outcome": "keep", "answer": '[get_forecast(city="Oslo", days=5)]'},
    "r13": {"outcome": "keep", "answer": FIVE_DAYS},
}
PIPELINE = """
[input]
path = "not-read-by-calibrate.jsonl"
[output]
dir = "run"
[judge]
model = "openai/strict"
api_base = "{api_base}"
timeout = 5
max_retries = 1
prices = {{input_per_million = 1000, output_per_million = 2000}}
[[stages]]
name = "classification"
judge = false
[[stages]]
name = "query_tool"
[[stages]]
name = "cot"
[[stages]]
name = "function_params"
[[stages]]
name = "format"
judge = false
"""


def golden_row(rid):
    answers = [{"name": "get_forecast", "arguments": {"city": "Oslo"} if rid == "r11" else {"city": "Oslo", "days": 3}}]
    row = xlam_row(
        rid, f"Forecast for Oslo, 3 days [{rid}]", [FORECAST, WEATHER], answers, "get_forecast for Oslo, 3 days."
    )
    return {**row, "label": LABELS[rid], "comment": f"why {rid}"}


def judge(request):
    stage = next(s for s, marker in MARKERS.items() if marker in request.prompt)
    rid = next(r for r in LABELS if f"[{r}]" in request.prompt)
    if request.model == "lenient":
        return "<judge>True</judge>"
    if rid in STRICT_NO.get(stage, ()):
        return f"<judge>False</judge><reason>strict on {rid}</reason>"
    if stage == "function_params" and rid == "r12" and "days=3" in request.prompt:
        return '<judge>False</judge><reason>five days</reason><NewFC>[get_forecast(city="Oslo", days=5)]</NewFC>'
    return Reply("<judge>True</judge>", prompt_tokens=10, completion_tokens=5)  # the FakeLLM's default usage


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


@pytest.fixture
def setup(tmp_path):
    write_jsonl(tmp_path / "golden.jsonl", [golden_row(rid) for rid in LABELS])
    return tmp_path


def calibrate(folder, server, *extra):
    (folder / "pipeline.toml").write_text(PIPELINE.format(api_base=server.api_base))
    args = ["calibrate", folder / "golden.jsonl", folder / "pipeline.toml", "--out", folder / "cal", *extra]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result, json.loads((folder / "cal" / "calibration.json").read_text())


def test_scores_costs_and_the_second_run_paying_nothing(setup):
    with FakeLLM(judge) as server:
        result, report = calibrate(setup, server, "--judge-model", f"openai/lenient@{server.api_base}")
        asked = len(server.requests)
        _, again = calibrate(setup, server, "--judge-model", f"openai/lenient@{server.api_base}")
        assert len(server.requests) == asked, "the second calibration is answered from the caches"
    rules, strict, lenient = report["candidates"]
    assert [c["name"] for c in report["candidates"]] == ["rules only", "openai/strict", "openai/lenient"]
    assert report["golden"] | {"path": None} == {
        "path": None,
        "records": 13,
        "keep": 6,
        "discard": 7,
        "discard_by_stage": {"query_tool": 3, "cot": 2, "(no stage)": 1, "function_params": 1},
        "with_answer": 2,
        "notes": [],
    }

    # strict: tp r4 r5 r7 r8 r9 r11, fp r3 r10, fn r6, tn r1 r2 r12 r13 (13 records)
    o = strict["overall"]
    assert (o["tp"], o["fp"], o["fn"], o["tn"]) == (6, 2, 1, 4)
    assert (o["precision"], o["recall"], o["f1"], o["agreement"]) == (0.75, 0.8571, 0.8, 0.7692)
    assert o["kappa"] == 0.5301  # (10/13 - 86/169) / (1 - 86/169) = 44/83
    assert (o["wrong_stage"], o["stage_checked"]) == (1, 5)  # r8: the person says cot, the judge query_tool
    # Per stage, r9 (discard, no stage) is left out: 12 records.
    qt = strict["stages"]["query_tool"]  # person r4 r5 r6; judge r3 r4 r5 r8
    assert (qt["tp"], qt["fp"], qt["fn"], qt["tn"]) == (2, 2, 1, 7)
    assert (qt["precision"], qt["recall"], qt["f1"], qt["kappa"]) == (0.5, 0.6667, 0.5714, 0.4)
    cot = strict["stages"]["cot"]  # person r7 r8; judge r7 r10
    assert (cot["tp"], cot["fp"], cot["fn"], cot["tn"], cot["kappa"]) == (1, 1, 1, 9, 0.4)
    fp = strict["stages"]["function_params"]
    assert (fp["tp"], fp["tn"], fp["precision"], fp["recall"], fp["kappa"]) == (1, 11, 1.0, 1.0, 1.0)
    cls = strict["stages"]["classification"]
    assert (cls["tn"], cls["precision"], cls["recall"], cls["kappa"]) == (12, None, None, None)
    assert strict["corrections"] == {"labelled": 2, "kept": 2, "matched": 1}  # r12 corrected, r13 not
    assert strict["confusion"]["discard at cot"] == {"discarded at cot": 1, "discarded at query_tool": 1}

    # The lenient judge and the rules alone discard only r11 (missing days): tp 1, fn 6, tn 6.
    for c in (rules, lenient):
        o = c["overall"]
        assert (o["tp"], o["fp"], o["fn"], o["tn"]) == (1, 0, 6, 6)
        assert (o["precision"], o["recall"], o["f1"], o["agreement"], o["kappa"]) == (1.0, 0.1429, 0.25, 0.5385, 0.1333)
        assert c["corrections"]["matched"] == 0

    # Calls: strict 30 (r1 r2 r6 r13: 3 each; r3 r4 r5 r8: 1; r7 r9 r10: 2; r11: 2; r12: 6 with the
    # re-checks of its corrected answer by every stage); lenient 38 (3 for each of 12 records, 2 for r11).
    # Each call: 10 + 5 tokens at $1000 and $2000 per million = $0.02.
    assert (strict["usage"]["calls"], lenient["usage"]["calls"], rules["usage"]["calls"]) == (30, 38, 0)
    assert strict["usage"]["per_1000"] | {"judge_seconds": None} == {
        "calls": 2307.6923,
        "tokens": 34615.3846,
        "cost_usd": 46.1538,
        "judge_seconds": None,
    }
    # The pipeline's prices are the strict model's: a swapped-in model does not inherit them, and is said unpriced.
    assert lenient["usage"]["per_1000"]["cost_usd"] == 0.0
    assert any("openai/lenient" in note and "price" in note for note in lenient["usage"]["notes"])
    # Per stage: query_tool asked for all 13 (r12 twice), cot for 10 (r12 twice), function_params for 6 (r12 twice).
    per_stage = {stage: u["calls"] for stage, u in strict["usage"]["stages"].items()}
    assert per_stage == {"query_tool": 1076.9231, "cot": 769.2308, "function_params": 461.5385}
    assert strict["usage"]["paid_usd"] == 0.6 and strict["usage"]["judge_seconds"] > 0

    # The second run paid nothing and measured the same.
    for first, second in zip(report["candidates"], again["candidates"], strict=True):
        assert second["usage"]["paid_usd"] == 0 and second["usage"]["new_calls"] == 0
        assert second["usage"]["per_1000"] == first["usage"]["per_1000"]
        assert second["overall"] == first["overall"] and second["stages"] == first["stages"]

    assert "openai/strict" in result.output and "0.530" in result.output
    html = (setup / "cal" / "calibration.html").read_text()
    numbers = Numbers()
    numbers.feed(html)
    assert "script" not in numbers.tags and "svg" in numbers.tags
    assert numbers.values["candidate.openai-strict.overall.kappa"] == "0.5301"
    assert numbers.values["candidate.openai-strict.stages.query_tool.fp"] == "2"
    assert numbers.values["candidate.openai-lenient.per_1000.cost_usd"] == "0.0000"
    assert numbers.values["chart.f1.openai-strict"] == "openai/strict (0.8)"
    assert numbers.values["candidate.openai-strict.stages.cot.per_1000.calls"] == "769.231"
    assert (setup / "cal" / "openai-strict" / "judge_cache.sqlite").exists()


def babbler(request):
    """A small model that never gives a verdict (it talks about the task instead), but on r1 and r2."""
    if request.model == "babbler" and not any(f"[{rid}]" in request.prompt for rid in ("r1", "r2")):
        return "The reference answer calls get_forecast, which seems reasonable."
    return judge(request)


def test_a_candidate_that_scored_too_few_records_is_shown_with_its_unscored_ones_and_not_ranked(setup):
    with FakeLLM(babbler) as server:
        result, report = calibrate(setup, server, "--judge-model", f"openai/babbler@{server.api_base}")
    rules, strict, small = report["candidates"]
    # r1 and r2 get verdicts; the other 11 end in errors.jsonl (no verdict at query_tool).
    assert small["coverage"] == {
        "scored": 2,
        "unscored": 11,
        "unscored_by_outcome": {"errors": 11},
        "readable": 13,
        "share": 0.1538,
    }
    assert small["rank"] is None and small["not_ranked"].startswith(
        "it scored 2 of 13 records (15%), under --min-scored 0.9: 11 in errors.jsonl: no verdict"
    )
    assert "the first error: openai/babbler did not follow the answer protocol" in small["not_ranked"]
    assert small["overall"]["agreement"] == 1.0, "its figures are kept, but they rest on 2 records"
    # Ranked by kappa: strict 0.5301, the rules 0.1333.
    assert report["ranking"] == {"by": ["kappa", "f1", "cost per 1,000 records"], "min_scored": 0.9,
                                 "ranked": ["openai/strict", "rules only"]}  # fmt: skip
    assert (strict["rank"], rules["rank"]) == (1, 2)
    out = " ".join(result.output.split())
    assert "ranked by kappa, then f1, then cost per 1,000 records: 1. openai/strict, 2. rules only" in out
    assert "openai/babbler is not ranked: it scored 2 of 13 records (15%)" in out
    row = next(line for line in result.output.splitlines() if line.startswith(" openai/babbler"))
    assert [cell.strip() for cell in row.split("│")][1:4] == ["not ranked", "2", "11"]
    html = (setup / "cal" / "calibration.html").read_text()
    numbers = Numbers()
    numbers.feed(html)
    assert numbers.values["candidate.openai-babbler.unscored"] == "11"
    assert numbers.values["candidate.openai-babbler.rank"] == "not ranked"
    assert numbers.values["candidate.openai-strict.rank"] == "1"
    assert numbers.values["candidate.openai-babbler.not_ranked"].startswith("openai/babbler is not ranked")


def test_no_candidate_judge_that_can_be_ranked_is_an_error_and_a_lower_min_scored_ranks_it(setup):
    with FakeLLM(babbler) as server:
        (setup / "pipeline.toml").write_text(
            PIPELINE.format(api_base=server.api_base).replace("openai/strict", "openai/babbler")
        )
        args = ["calibrate", setup / "golden.jsonl", setup / "pipeline.toml", "--out", setup / "cal"]
        refused = CliRunner().invoke(main, [str(a) for a in args])
        lowered = CliRunner().invoke(main, [str(a) for a in [*args, "--min-scored", "0.15"]])
    assert refused.exit_code == 1, refused.output
    assert "no candidate judge can be ranked: none ended enough of the golden records kept or discarded" in (
        " ".join(refused.output.split())
    )
    assert (setup / "cal" / "calibration.json").exists(), "what was measured is written all the same"
    assert lowered.exit_code == 0, lowered.output
    ranked = json.loads((setup / "cal" / "calibration.json").read_text())["ranking"]["ranked"]
    assert ranked == ["rules only", "openai/babbler"], "two keeps of two: kappa None, ranked after the rules"
