"""What the terminal shows is the text itself: square brackets are not taken for rich markup, messages are
wrapped, never cut."""

import io

from click.testing import CliRunner
from rich.console import Console

from funreason_refine.audit.counts import MISSING
from funreason_refine.cli import main
from funreason_refine.console import audit_panels, top_reasons
from funreason_refine.report.dataset import dataset_tables
from funreason_refine.summary import StageCounts, Summary
from funreason_refine.testing import run_rows
from tests.conftest import xlam_row


def shown(*renderables, width=70):
    screen = io.StringIO()
    console = Console(file=screen, width=width, force_terminal=False)
    for renderable in renderables:
        console.print(renderable)
    return " ".join(screen.getvalue().split())


def test_the_dataset_audits_name_the_audit_table_and_the_call_mix_warnings_are_whole(tmp_path):
    run_rows([xlam_row("one")], tmp_path, stages_toml='[[stages]]\nname = "classification"\n')
    dataset = Summary.read(tmp_path / "run").dataset
    wide = shown(*dataset_tables(dataset), width=200)
    assert "not looked for ([audit] near_duplicates = true)" in wide
    assert "no [audit] eval_sets" in wide
    text = shown(dataset_tables(dataset)[-1], width=60)  # the warnings, wrapped in a narrow terminal
    for kind in ("no_call", "parallel", "several_functions"):
        assert " ".join(MISSING[kind].split()) in text, kind
    assert "does not learn to make them; add records whose answer calls a function more than once" in text


def test_an_audited_trail_shows_calls_in_brackets_and_whole_messages():
    message = "the judge wants [get_weather(city='Paris')] and not [get_time()]: " + "why " * 60 + "the end"
    record = {
        "index": 3,
        "id": "r[1]",
        "stage": "function_params",
        "reason": "wrong_value",
        "message": message,
        "query": "Weather in [Paris]?",
        "tools": [],
        "answer": [{"name": "get_weather", "arguments": {"city": "Rome"}}],
        "trail": [{"stage": "function_params", "verdict": "discard", "reason": "wrong_value", "message": message}],
        "source": {"line": 4},
    }
    text = shown(*audit_panels(record), width=100)
    assert "id r[1]" in text and "Weather in [Paris]?" in text
    assert text.count("[get_weather(city='Paris')]") == 2, "in the panel and in the trail"
    assert text.count("why the end") == 2, "the trail's message is not cut at 160 characters"


def test_paths_with_brackets_are_printed_as_they_are(tmp_path):
    run_rows([xlam_row("one")], tmp_path)
    out = tmp_path / "train[red].jsonl"
    result = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--format", "openai", "-o", str(out)])
    assert result.exit_code == 0 and f"wrote 1 records to {out}" in " ".join(result.output.split())
    status = CliRunner().invoke(main, ["status", str(tmp_path / "run")])
    assert f"{tmp_path / 'run'}: complete" in status.output


def test_top_reasons_say_which_were_truncations_and_regenerations_not_discards():
    counts = StageCounts(
        discarded=2,
        truncated=5,
        regenerated=1,
        reasons={"discard": {"wrong_type": 2}, "truncate": {"wrong_type": 5}, "regenerate": {"missing_param": 1}},
    )
    assert top_reasons(counts) == "wrong_type (truncated) 5, wrong_type 2, missing_param (regenerated) 1"
    assert top_reasons(StageCounts()) == "-"
