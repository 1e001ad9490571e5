"""refine report on a reviewed run: reviewed counts and the measured precision of each stage's discards."""

from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.overrides import OverrideLog, decision_for
from funreason_refine.testing import run_rows
from funreason_refine.testing.fake_llm import FakeLLM
from tests.conftest import read_jsonl, xlam_row
from tests.report.test_report import Numbers


def decide(run_dir, kind, rid, decision):
    line = next(r for r in read_jsonl(run_dir / f"{kind}.jsonl") if r["id"] == rid)
    OverrideLog(run_dir).append(decision_for(line, kind, decision))


def test_report_shows_reviewed_counts_and_precision_per_stage(run_dir):
    decide(run_dir, "discarded", "no-days", "wrong")
    decide(run_dir, "discarded", "unknown-param", "right")
    decide(run_dir, "discarded", "hostile", "right")
    decide(run_dir, "kept", "ok-rome", "wrong")
    decide(run_dir, "kept", "ok-paris", "right")
    decide(run_dir, "kept", "repaired", "wrong")
    decide(run_dir, "kept", "repaired", "none")  # withdrawn
    result = CliRunner().invoke(main, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "Reviewed by a person" in result.output
    numbers = Numbers()
    numbers.feed((run_dir / "report.html").read_text())
    got = numbers.values
    assert (got["review.function_params.rules.reviewed"], got["review.function_params.rules.precision"]) == (
        "2",
        "50.0%",
    )
    assert (got["review.query_tool.rules.reviewed"], got["review.query_tool.rules.precision"]) == ("1", "100.0%")
    assert (got["review.kept.reviewed"], got["review.kept.precision"]) == ("2", "50.0%")
    markdown = (run_dir / "report.md").read_text()
    assert "| discarded at function_params | rules | 2 | 2 | 1 | 1 | 50.0% |" in markdown
    assert "| kept |  | 3 | 2 | 1 | 1 | 50.0% |" in markdown


def test_the_precision_of_a_judge_is_told_apart_from_the_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")

    def script(request):
        return "<judge>False</judge><reason>no city</reason>" if "Weather?" in request.prompt else "<judge>True</judge>"

    rows = [xlam_row("a"), xlam_row("b", query="Weather?"), xlam_row("c", query="Weather now?")]
    rows.append(xlam_row("d", answers=[{"name": "get_time", "arguments": {}}]))  # the rules discard it, same stage
    with FakeLLM(script) as server:
        judge = f'[judge]\nmodel = "openai/fake"\napi_base = "{server.api_base}"\nmax_retries = 0\n'
        out = run_rows(rows, tmp_path / "judged", stages_toml='[[stages]]\nname = "query_tool"\n' + judge)
    assert [r["id"] for r in out["discarded"]] == ["b", "d"]
    run_dir = tmp_path / "judged" / "run"
    decide(run_dir, "discarded", "b", "wrong")
    decide(run_dir, "discarded", "d", "right")
    result = CliRunner().invoke(main, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    numbers = Numbers()
    numbers.feed((run_dir / "report.html").read_text())
    assert numbers.values["review.query_tool.openai/fake.precision"] == "0.0%"
    markdown = (run_dir / "report.md").read_text()  # each decider's own discards, not the stage's two
    assert "| discarded at query_tool | openai/fake | 1 | 1 | 0 | 1 | 0.0% |" in markdown
    assert "| discarded at query_tool | rules | 1 | 1 | 1 | 0 | 100.0% |" in markdown
