"""A run folder that is not a finished run (being written, interrupted, a line cut short) is said to be
one, the same way, by export, report, audit, review and status; export never leaves a partial file."""

import json

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.run_folder import RunFolder
from funreason_refine.run_state import State, folder_state
from funreason_refine.testing import run_rows
from tests.conftest import read_jsonl, xlam_row

ROWS = [
    xlam_row("paris"),
    xlam_row("rome", query="Weather in Rome?", answers=[{"name": "get_weather", "arguments": {"city": "Rome"}}]),
    xlam_row("oslo", query="Weather in Oslo?", answers=[{"name": "get_weather", "arguments": {"city": "Oslo"}}]),
    xlam_row("bad", answers=[{"name": "get_time", "arguments": {}}]),  # discarded: no such tool
]
READERS = {
    "export": ["--format", "openai", "-o"],
    "report": [],
    "audit": [],
    "review": ["--no-browser", "--port", "0"],
}


@pytest.fixture
def run_dir(tmp_path):
    run_rows(ROWS, tmp_path)
    return tmp_path / "run"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def refused_by_every_reader(run_dir, out, expected):
    """Each command that reads a run folder refuses it with the same description, in one line, no traceback."""
    for command, options in READERS.items():
        args = [command, run_dir, *options, *([out] if command == "export" else [])]
        result = invoke(*args)
        assert result.exit_code == 1, (command, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (command, result.exception)
        text = " ".join(result.output.split())
        assert text.startswith(f"error: cannot {command} {run_dir}: "), (command, text)
        assert expected in text, (command, text)
        assert "Traceback" not in text
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*")), "no output file, no temporary file"


def test_a_kept_file_whose_last_line_was_cut_by_a_kill_is_refused_by_all_four(run_dir, tmp_path):
    with (run_dir / "kept.jsonl").open("a") as fh:
        fh.write('{"index": 9, "id": "half-writ')  # what a kill leaves
    state = folder_state(run_dir)
    assert (state.state, state.torn) == (State.TORN, f"{run_dir / 'kept.jsonl'}:4")
    refused_by_every_reader(
        run_dir, tmp_path / "train.jsonl", f"the last line of {run_dir / 'kept.jsonl'}:4 is cut short"
    )
    text = " ".join(invoke("export", run_dir, "--format", "openai", "-o", tmp_path / "t.jsonl").output.split())
    resume = f"Run `refine run {tmp_path / 'pipeline.toml'} --out {run_dir}` again to finish it"
    assert f"{resume} (it resumes; it drops the line cut short" in text
    assert "or export the records it has finished so far with --allow-partial" in text


def test_allow_partial_exports_the_whole_lines_and_says_how_many(run_dir, tmp_path):
    with (run_dir / "kept.jsonl").open("a") as fh:
        fh.write('{"index": 9, "id": "half-writ')
    out = tmp_path / "train.jsonl"
    result = invoke("export", run_dir, "--format", "openai", "-o", out, "--allow-partial")
    assert result.exit_code == 0, result.output
    assert [r["messages"][0]["content"] for r in read_jsonl(out)][:1] == ["What's the weather in Paris?"]
    assert len(read_jsonl(out)) == 3, "the whole lines only"
    text = " ".join(result.output.split())
    assert (
        "warning: the last line of" in text
        and "Exported 3 record(s) of the 4 input record(s) the run had finished" in text
    )


def test_a_folder_without_summary_is_an_interrupted_run_for_all_four(run_dir, tmp_path):
    # What a resumed run that is killed leaves: it removed summary.json when it opened the folder.
    folder = RunFolder(run_dir)
    folder.lock()
    folder.open()
    folder.close()
    assert not (run_dir / "summary.json").exists()
    state = folder_state(run_dir)
    assert state.state is State.INTERRUPTED and "refine run (pid" in (state.holder or "")
    refused_by_every_reader(run_dir, tmp_path / "train.jsonl", "is an interrupted run: it has no summary.json")
    out = tmp_path / "train.jsonl"
    partial = invoke("export", run_dir, "--format", "openai", "-o", out, "--allow-partial")
    assert partial.exit_code == 0 and len(read_jsonl(out)) == 3
    assert "is an interrupted run" in " ".join(partial.output.split())
    audit = invoke("audit", run_dir, "--allow-partial", "--json")
    assert audit.exit_code == 0 and [json.loads(line)["id"] for line in audit.stdout.splitlines()] == ["bad"]
    assert "what follows is only what it has finished so far" in " ".join(audit.stderr.split())


def test_a_folder_locked_by_a_live_run_is_being_written(run_dir, tmp_path):
    holder = RunFolder(run_dir)
    holder.lock()
    try:
        state = folder_state(run_dir)
        assert state.state is State.RUNNING and state.holder.startswith("refine run (pid")
        refused_by_every_reader(run_dir, tmp_path / "train.jsonl", "is being written by refine run (pid")
        status = invoke("status", run_dir)
        assert "is being written by refine run (pid" in " ".join(status.output.split())
    finally:
        holder.close()
    assert folder_state(run_dir).state is State.COMPLETE, "the lock file stays; its process is gone"


def test_status_of_a_one_process_folder(run_dir):
    assert " ".join(invoke("status", run_dir).output.split()) == f"{run_dir}: complete, 4 records finished"
    (run_dir / "summary.json").unlink()
    text = " ".join(invoke("status", run_dir).output.split())
    assert "is an interrupted run" in text and "4 records finished so far. Run `refine run" in text


def test_status_of_a_finished_folder_says_which_records_wait_for_a_retry(run_dir):
    # It said "complete, 4 records finished" of a run whose records were in errors.jsonl, with no verdict.
    kept = (run_dir / "kept.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "kept.jsonl").write_text("".join(kept[1:]))
    (run_dir / "errors.jsonl").write_text(kept[0])
    text = " ".join(invoke("status", run_dir).output.split())
    assert text.startswith(f"{run_dir}: complete, 4 records finished; of these, 1 is in {run_dir / 'errors.jsonl'}")
    assert text.endswith(f"fix the cause, then run `refine retry {run_dir}`")


@pytest.mark.parametrize("reading", [["--limit", "2"], ["--target-kept", "1"], ["--limit", "3", "--target-kept", "2"]])
def test_status_of_a_complete_run_says_how_far_it_was_asked_to_read(run_dir, tmp_path, reading):
    # "complete, 2 records finished" read as a whole input refined.
    assert invoke("run", tmp_path / "pipeline.toml", "--fresh", *reading).exit_code in (0, 5)
    text = " ".join(invoke("status", run_dir).output.split())
    asked = " and ".join(f"{option} {n}" for option, n in zip(reading[::2], reading[1::2], strict=True))
    assert text.startswith(f"{run_dir}: complete to {asked}, "), text


@pytest.mark.parametrize("reading", [["--limit", "2"], ["--target-kept", "1"], ["--limit", "3", "--target-kept", "2"]])
def test_the_command_that_resumes_an_interrupted_run_reads_as_far_as_it_was_started_to(run_dir, tmp_path, reading):
    # Resumed without its --limit or --target-kept, it would refine the whole input (with a paid judge).
    pipeline = tmp_path / "pipeline.toml"
    assert invoke("run", pipeline, "--fresh", *reading).exit_code in (0, 5)
    (run_dir / "summary.json").unlink()
    resume = f"`refine run {pipeline} {' '.join(reading)} --out {run_dir}`"
    for command in ("status", "report", "export"):
        extra = ["--format", "openai", "-o", tmp_path / "t.jsonl"] if command == "export" else []
        text = " ".join(invoke(command, run_dir, *extra).output.split())
        assert f"Run {resume} again to finish it" in text, (command, text)


def test_a_damaged_line_in_the_middle_is_named_and_nothing_is_written(run_dir, tmp_path):
    lines = (run_dir / "kept.jsonl").read_text().split("\n")
    lines[1] = lines[1][:40]  # a line cut in the middle of the file: not something a crash leaves
    (run_dir / "kept.jsonl").write_text("\n".join(lines))
    out = tmp_path / "train.jsonl"
    out.write_text("the previous export\n")
    result = invoke("export", run_dir, "--format", "openai", "-o", out)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{run_dir / 'kept.jsonl'}:2 is not a line `refine run` wrote" in " ".join(result.output.split())
    assert out.read_text() == "the previous export\n", "the previous export is left as it was"
    assert not list(tmp_path.glob(".train.jsonl*"))
    report = invoke("report", run_dir)
    assert report.exit_code == 1 and f"{run_dir / 'kept.jsonl'}:2 is not a line" in " ".join(report.output.split())


def test_a_resumed_run_that_finishes_is_complete_again(tmp_path):
    run_rows(ROWS, tmp_path)
    run_dir = tmp_path / "run"
    (run_dir / "summary.json").unlink()
    run_rows(ROWS, tmp_path)
    assert folder_state(run_dir).state is State.COMPLETE
    assert invoke("export", run_dir, "--format", "openai", "-o", tmp_path / "t.jsonl").exit_code == 0


def test_status_tells_a_killed_shard_from_a_running_one(tmp_path):
    from funreason_refine.executors.layout import Shard
    from funreason_refine.executors.progress import Watcher

    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n')
    for shard in ("0/2", "1/2"):
        assert invoke("run", tmp_path / "p.toml", "--shard", shard).exit_code == 0
    folder = Shard(1, 2).folder(tmp_path / "run")
    marker = json.loads((folder / "shard.json").read_text())
    (folder / "shard.json").write_text(json.dumps({**marker, "complete": False}))  # as a shard is while it runs
    holder = RunFolder(folder)
    holder.lock()
    try:
        assert [s.state for s in Watcher(tmp_path / "run").states()] == ["complete", "running"]
        assert "running" in invoke("status", tmp_path / "run").output
    finally:
        holder.close()  # what a kill does to the lock: its process is gone
    assert [s.state for s in Watcher(tmp_path / "run").states()] == ["complete", "interrupted"]
    text = " ".join(invoke("status", tmp_path / "run").output.split())
    assert "interrupted" in text and "1 interrupted (no process is writing it): run it again to resume" in text


def stopped_by_max_cost(tmp_path, server, max_cost, *runs):
    """A judged run of ROWS that max_cost stops part-way ($0.15 a judge call: FakeLLM's 10 + 5 tokens; about
    four calls a record); ``runs``: the arguments of each `refine run` after the pipeline."""
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "p.toml").write_text(f'''max_cost = {max_cost}
[input]
path = "in.jsonl"
[output]
dir = "run"
[judge]
model = "openai/fake"
api_base = "{server.api_base}"
max_concurrency = 1
prices = {{input_per_million = 10000.0, output_per_million = 10000.0}}
''')
    for args in runs or [[]]:
        result = invoke("run", tmp_path / "p.toml", *args)
        assert result.exit_code in (0, 5) and f"max_cost of ${max_cost} reached" in result.output, result.output
    return tmp_path / "run"


@pytest.mark.parametrize("target", [[], ["--target-kept", "3"]])
def test_a_run_max_cost_stopped_is_said_stopped_by_status_report_and_export(tmp_path, monkeypatch, target):
    from funreason_refine.testing.fake_llm import FakeLLM

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeLLM(lambda r: "<judge>True</judge><reason>ok</reason>") as server:
        run_dir = stopped_by_max_cost(tmp_path, server, 1.5, target)
    finished = sum(len(read_jsonl(f)) for f in run_dir.glob("*.jsonl"))
    assert 0 < finished < len(ROWS)
    status = " ".join(invoke("status", run_dir).output.split())
    assert status.startswith(f"{run_dir}: stopped: max_cost of $1.5 reached"), status
    assert f"{finished} records finished, the rest of its input not read" in status
    command = f"refine run {tmp_path / 'p.toml'}{' --target-kept 3' if target else ''} --out {run_dir}"
    assert (
        f"Raise max_cost (it counts what the folder spent in all its runs) and run `{command}` again to go on" in status
    )
    report = invoke("report", run_dir)
    said = " ".join(report.output.split())
    assert report.exit_code == 0 and "is a run that stopped before the end of its input: max_cost of $1.5" in said
    exported = invoke("export", run_dir, "--format", "openai", "-o", tmp_path / "t.jsonl")
    said = " ".join(exported.output.split())
    assert exported.exit_code == 0, "a warning, not a refusal"
    assert "warning:" in said and "stopped before the end of its input: max_cost of $1.5 reached" in said


def test_status_says_a_shard_max_cost_stopped_is_stopped_not_interrupted(tmp_path, monkeypatch):
    from funreason_refine.executors.progress import Watcher
    from funreason_refine.testing.fake_llm import FakeLLM

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeLLM(lambda r: "<judge>True</judge><reason>ok</reason>") as server:
        run_dir = stopped_by_max_cost(tmp_path, server, 0.6, ["--shard", "0/2"], ["--shard", "1/2"])
    assert [s.state for s in Watcher(run_dir).states()] == ["stopped", "stopped"]
    text = " ".join(invoke("status", run_dir).output.split())
    assert "interrupted" not in text
    assert "2 stopped (0/2: max_cost of $0.6 reached" in text and "). Raise max_cost" in text
