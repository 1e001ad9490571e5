"""A run with a scorer read back: the scores in report.html, report.md, the terminal, and the exports."""

import json

import polars as pl
import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.summary import ScoreStats, score_bin
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.conftest import read_jsonl, refine, write_jsonl, xlam_row

GOOD = [0.92, 0.15, 0.64, 0.61, 0.05]


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scored")
    rows = [xlam_row(f"r{i}", query=f"Weather in city number {i}") for i in range(len(GOOD))]
    write_jsonl(folder / "in.jsonl", rows)

    def script(request):
        good = GOOD[int(json.dumps(request.body).split("city number ")[1][0])]
        return Reply(probs=[1 - good, good])

    with FakeLLM(script) as server:
        (folder / "pipeline.toml").write_text(
            '[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n[[stages]]\nname = "function_params"\n'
            f'scorer = {{model = "hosted_vllm/rm", api_base = "{server.api_base}", kind = "classify", '
            "threshold = 0.6}\n"
        )
        run_pipeline(load_pipeline(folder / "pipeline.toml"))
    return folder / "run"


def test_the_report_shows_each_scorers_scores_and_histogram_with_its_threshold(scored_run):
    output = refine("report", scored_run)
    assert "Scores" in output and "function_params" in output
    html = (scored_run / "report.html").read_text()
    assert 'data-key="scores.function_params.count">5<' in html
    assert 'data-key="scores.function_params.threshold">0.6<' in html
    assert 'data-key="scores.function_params.low_score">2<' in html
    assert 'data-key="histogram.function_params"' in html and 'data-key="threshold.function_params"' in html
    assert "0.6 to 0.65: 2" in html  # two scores in that bin, named in its tooltip
    markdown = (scored_run / "report.md").read_text()
    [row] = [line for line in markdown.splitlines() if "| 0.05 to 0.92 |" in line]
    assert row.startswith("| function_params | 5 |") and "|" in row.split("`")[1]  # the threshold, in the sparkline


def test_exports_carry_the_score_as_a_column(scored_run, tmp_path):
    refine("export", scored_run, "--format", "openai", "-o", tmp_path / "train.jsonl")
    assert [r["score"] for r in read_jsonl(tmp_path / "train.jsonl")] == [0.92, 0.64, 0.61]
    refine("export", scored_run, "--format", "funreason", "-o", tmp_path / "train.parquet")
    assert pl.read_parquet(tmp_path / "train.parquet")["score"].to_list() == [0.92, 0.64, 0.61]


def test_score_histograms_add_up_over_shards():
    a, b = ScoreStats(), ScoreStats(threshold=0.5)
    for score in (0.05, 0.5, 0.97):
        a.add(score)
    for score in (-1.2, 0.51):
        b.add(score)
    total = a + b
    assert (total.count, total.lowest, total.highest, total.threshold) == (5, -1.2, 0.97, 0.5)
    assert total.bins == {"-1.20": 1, "0.05": 1, "0.50": 2, "0.95": 1}
    assert total.mean == pytest.approx((0.05 + 0.5 + 0.97 - 1.2 + 0.51) / 5)
    assert [score_bin(x) for x in (0.1, 0.15, 0.999, 1.0, -0.01)] == ["0.10", "0.15", "0.95", "1.00", "-0.05"]
