"""The report shows the judge servers of summary.json (judge.endpoints) in the terminal, report.md and report.html."""

import io
import json

from click.testing import CliRunner
from rich.console import Console

from funreason_refine.cli import main
from funreason_refine.config import load_pipeline
from funreason_refine.console import report_tables
from funreason_refine.engine import run_pipeline
from funreason_refine.report.build import build_report
from funreason_refine.report.data import load_run
from tests.conftest import QUICKSTART
from tests.report.test_report import Numbers

SERVERS = {
    "openai/qwq-32b": [
        {
            "api_base": "http://gpu-1:8000/v1",
            "calls": 2113,
            "errors": 0,
            "rate_limited": 0,
            "latency_p50_s": 0.98,
            "latency_p95_s": 1.43,
            "out_of_rotation_s": 0.0,
            "times_out_of_rotation": 0,
            "in_rotation": True,
        },
        {
            "api_base": "http://gpu-2:8000/v1",
            "calls": 741,
            "errors": 37,
            "rate_limited": 4,
            "latency_p50_s": 1.02,
            "latency_p95_s": 1.51,
            "out_of_rotation_s": 62.25,
            "times_out_of_rotation": 2,
            "in_rotation": True,
        },
    ]
}


def test_report_lists_each_judge_server_with_calls_errors_latency_and_time_out_of_rotation(tmp_path):
    run_dir = tmp_path / "run"
    run_pipeline(load_pipeline(QUICKSTART / "pipeline.toml", run_dir))
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["judge"].update(model="openai/qwq-32b", endpoints=SERVERS)
    summary_path.write_text(json.dumps(summary))

    result = CliRunner().invoke(main, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "Judge servers" in result.output
    wide = Console(width=200, file=io.StringIO())
    for table in report_tables(build_report(load_run(run_dir))):
        wide.print(table)
    terminal = next(line for line in wide.file.getvalue().splitlines() if "http://gpu-2:8000/v1" in line)
    assert all(cell in terminal for cell in ("741", "37", "1.02 s", "1.51 s", "62.2 s (2x)"))

    md = (run_dir / "report.md").read_text()
    assert "### Judge servers" in md
    assert "| openai/qwq-32b | http://gpu-2:8000/v1 | 741 | 37 | 4 | 1.02 s | 1.51 s | 62.2 s (2x) |" in md
    assert "| openai/qwq-32b | http://gpu-1:8000/v1 | 2113 | 0 | 0 | 0.98 s | 1.43 s | - |" in md

    parser = Numbers()
    parser.feed((run_dir / "report.html").read_text())
    assert parser.values["servers.openai/qwq-32b.http://gpu-1:8000/v1.calls"] == "2113"
    assert parser.values["servers.openai/qwq-32b.http://gpu-2:8000/v1.errors"] == "37"


def test_a_report_without_judge_servers_has_no_servers_table(tmp_path):
    run_dir = tmp_path / "run"
    run_pipeline(load_pipeline(QUICKSTART / "pipeline.toml", run_dir))
    result = CliRunner().invoke(main, ["report", str(run_dir)])
    assert result.exit_code == 0 and "Judge servers" not in result.output
    assert "Judge servers" not in (run_dir / "report.md").read_text()
    assert "Judge servers" not in (run_dir / "report.html").read_text()
