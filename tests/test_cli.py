import json
import shutil
import time

import polars as pl
import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from tests.conftest import QUICKSTART, read_jsonl, write_jsonl, xlam_row

# Every reason code the built-in stages can give, by stage; the quickstart sample must show them all.
REASONS = {
    "classification": {"malformed_answer", "empty_answer"},
    "query_tool": {"unconvertible_type", "invalid_tool_schema", "duplicate_tool_name", "unknown_function"},
    "cot": {"empty_cot", "unclosed_think", "cot_misses_function", "cot_names_other_function"},
    "function_params": {"missing_required", "unknown_parameter", "wrong_type", "not_in_enum", "invalid_value"},
    "format": {"unrenderable_call", "round_trip_mismatch"},
}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_quickstart_run_writes_the_run_folder_and_covers_every_reason_code(tmp_path):
    result = invoke("run", QUICKSTART / "pipeline.toml", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "run"
    assert sorted(p.name for p in folder.iterdir()) == [
        "discarded.jsonl",
        "errors.jsonl",
        "kept.jsonl",
        "quarantined.jsonl",
        "run.json",
        "run.lock",
        "summary.json",
    ]
    summary = json.loads((folder / "summary.json").read_text())
    for stage, reasons in REASONS.items():
        assert set(summary["stages"][stage]["records_discarded"]) == reasons, stage
    passes = {r for s in summary["stages"].values() for r in s["reasons"].get("pass", {})}
    assert {"no_call", "text_answer", "no_cot", "wrapped_think"} <= passes
    assert summary["stages"]["function_params"]["reasons"]["regenerate"] == {"coerced_type": 2}
    quarantined = read_jsonl(folder / "quarantined.jsonl")
    assert {q["field"] for q in quarantined} == {None, "query"}
    assert any("not valid UTF-8" in q["error"] for q in quarantined)
    assert any("max_record_bytes" in q["error"] for q in quarantined)
    kept = read_jsonl(folder / "kept.jsonl")
    assert all(k["target"] for k in kept)
    assert sum(summary["outcomes"].values()) == summary["input"]["records"] == 60
    conversations = {r["id"]: r for r in kept + read_jsonl(folder / "discarded.jsonl") if r["id"].startswith("conv-")}
    assert len(conversations["conv-oslo"]["messages"]) == 9  # kept whole: its four assistant turns all pass
    cut = conversations["conv-cut-at-turn-1"]  # function_params on_fail = "truncate": cut before turn 2
    assert "stage" not in cut and [m["role"] for m in cut["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert [(t["stage"], t["reason"], t["turn"]) for t in cut["trail"] if t["verdict"] == "discard"] == [
        ("function_params", "invalid_value", 2)
    ]
    missing = conversations["conv-missing-result"]
    assert (missing["stage"], missing["reason"]) == ("conversation", "missing_result") and "c2" in missing["message"]
    assert "Verdicts per stage" in result.output and "kept" in result.output
    discarded = {d["id"]: d for d in read_jsonl(folder / "discarded.jsonl") if d["stage"] == "dataset"}
    assert {i: d["reason"] for i, d in discarded.items()} == {
        "dup-of-ok-weather": "duplicate",
        "contaminated": "contaminated",
    }
    assert discarded["dup-of-ok-weather"]["message"] == "same query and answer as record 0, which is kept"
    near = [e for e in summary["dataset"]["duplicates"]["examples"] if e["kind"] == "near"]
    assert [(e["id"], e["of"], e["dropped"]) for e in near] == [("near-dup-of-ok-search", 7, False)]
    assert summary["dataset"]["call_mix"]["missing"] == [] and "Call mix of the kept set" in result.output


def test_run_limit_and_resume_message(tmp_path):
    pipeline = QUICKSTART / "pipeline.toml"
    assert invoke("run", pipeline, "--out", tmp_path / "r", "--limit", 10).exit_code == 0
    again = invoke("run", pipeline, "--out", tmp_path / "r")
    assert "resumed: 10 records were already done" in again.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["input"]["records"] == 60


def test_output_dir_of_the_pipeline_is_relative_to_the_pipeline_file(tmp_path, monkeypatch):
    shutil.copytree(QUICKSTART, tmp_path / "qs", ignore=shutil.ignore_patterns("runs"))
    monkeypatch.chdir(tmp_path)
    assert invoke("run", "qs/pipeline.toml").exit_code == 0
    assert (tmp_path / "qs" / "runs" / "quickstart" / "kept.jsonl").exists()


def test_validate_ok_and_problems(tmp_path):
    ok = invoke("validate", QUICKSTART / "pipeline.toml")
    assert ok.exit_code == 0 and "6 stages" in ok.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[input]\npath = "nowhere.jsonl"\n[output]\ndir = "r"\n[[stages]]\nname = "cott"\n')
    result = CliRunner().invoke(main, ["validate", str(bad)])
    assert result.exit_code == 1
    assert "2 problem(s)" in result.output
    assert "did you mean 'cot'?" in result.output and "nowhere.jsonl not found" in result.output
    assert "Traceback" not in result.output


def test_debug_variable_brings_the_traceback_back(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNREASON_REFINE_DEBUG", "1")
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "none.toml")])
    assert result.exit_code == 1 and type(result.exception).__name__ == "ConfigError"


def test_input_problems_are_one_line_errors(tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"prompt": "x"}) + "\n")
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[output]\ndir = "r"\n')
    result = CliRunner().invoke(main, ["run", str(tmp_path / "p.toml")])
    assert result.exit_code == 1
    assert "error: cannot tell the format" in result.output and "Traceback" not in result.output


def test_the_format_is_looked_for_in_the_first_records_only(tmp_path, monkeypatch):
    """Records that say no format before the first that does are quarantined, up to readers.DETECT_RECORDS: an
    input none of whose first records says one is refused, naming the first."""
    monkeypatch.setattr("funreason_refine.readers.DETECT_RECORDS", 3)
    write_jsonl(tmp_path / "in.jsonl", [{"prompt": "x"}, "{bad", {}, xlam_row("a")])
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[output]\ndir = "r"\n')
    result = CliRunner().invoke(main, ["run", str(tmp_path / "p.toml")])
    assert result.exit_code == 1
    assert "none of its first 3 records has the keys of a format (the record at line 1 has keys [prompt])" in (
        " ".join(result.output.split())
    )
    monkeypatch.setattr("funreason_refine.readers.DETECT_RECORDS", 4)
    assert invoke("run", tmp_path / "p.toml").exit_code == 0
    assert [q["source"]["line"] for q in read_jsonl(tmp_path / "r" / "quarantined.jsonl")] == [1, 2, 3]


def test_stages_lists_the_five_with_plugin_and_description():
    result = invoke("stages")
    assert result.exit_code == 0
    for name in REASONS:
        assert name in result.output
    assert "funreason_refine" in result.output and "text_answers" in result.output


def test_plugins_lists_the_builtin_plugin():
    result = invoke("plugins")
    assert result.exit_code == 0 and "register_stages" in result.output


def test_help_and_validate_do_not_import_heavy_libraries():
    import subprocess
    import sys

    def imported(args, modules):
        code = (
            f"import sys; from click.testing import CliRunner; from funreason_refine.cli import main; "
            f"r = CliRunner().invoke(main, {args!r}); assert r.exit_code == 0, r.output; "
            f"print(sorted(m for m in {modules!r} if m in sys.modules))"
        )
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    assert imported(["--help"], ("litellm", "polars", "jsonschema")) == "[]"
    assert imported(["validate", str(QUICKSTART / "pipeline.toml")], ("litellm", "polars", "jsonschema_rs")) == "[]"


def test_each_command_is_loaded_from_the_module_the_group_names():
    import importlib

    import click

    from funreason_refine.cli.app import COMMAND_MODULES

    for module in set(COMMAND_MODULES.values()):
        importlib.import_module(f"funreason_refine.cli.{module}")
    loaded = {name: c.callback.__module__.rsplit(".", 1)[1] for name, c in main.commands.items() if c.callback}
    assert loaded == COMMAND_MODULES  # a command added to a module is named in COMMAND_MODULES, and lazily found
    assert main.list_commands(click.Context(main)) == sorted(COMMAND_MODULES)


# A rules-only run of one record needs none of these: other commands, the judge's and the scorers' code and
# settings, the judges' prompt specs, worker pools, shards, the Hub, the chat and BFCL readers, the JSON array
# reader, the eval sets.
NOT_FOR_A_RULES_ONLY_RUN = (
    "funreason_refine.specs",
    "funreason_refine.cli.cost",
    "funreason_refine.cli.distributed",
    "funreason_refine.cli.hub",
    "funreason_refine.cli.listings",
    "funreason_refine.cli.reports",
    "funreason_refine.cli.selfrefine",
    "funreason_refine.cli.trust",
    "funreason_refine.judge.settings",
    "funreason_refine.judge.scorer_settings",
    "funreason_refine.judge.stage_models",
    "funreason_refine.refiners.judged",
    "funreason_refine.refiners.pool",
    "funreason_refine.executors.shards",
    "funreason_refine.readers.bfcl",
    "funreason_refine.readers.openai_chat",
    "funreason_refine.readers.sharegpt",
    "funreason_refine.readers.json_array",
    "funreason_refine.readers.parts",
    "funreason_refine.audit.evalsets",
    "funreason_refine.hub.reader",
    "funreason_refine.report.build",
    "litellm",
)


def test_a_rules_only_run_of_one_record_imports_only_what_it_uses(tmp_path):
    import subprocess
    import sys

    (tmp_path / "one.jsonl").write_text(json.dumps(xlam_row("a")) + "\n")
    (tmp_path / "p.toml").write_text('[input]\npath = "one.jsonl"\n[output]\ndir = "r"\n')
    code = (
        "import sys; from click.testing import CliRunner; from funreason_refine.cli import main; "
        f"r = CliRunner().invoke(main, ['run', {str(tmp_path / 'p.toml')!r}]); assert r.exit_code == 0, r.output; "
        "print('\\n'.join(sorted(sys.modules)))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    imported = set(run.stdout.split())
    assert "funreason_refine.cli.run" in imported and (tmp_path / "r" / "summary.json").is_file()
    assert sorted(m for m in NOT_FOR_A_RULES_ONLY_RUN if m in imported) == []
    assert sorted(m for m in imported if m.startswith("funreason_refine.judge")) == []  # no judge code at all


def test_bad_records_in_json_array_input(tmp_path):
    rows = [xlam_row("a"), {"id": "b"}, xlam_row("c")]
    (tmp_path / "in.json").write_text(json.dumps(rows, indent=1))
    (tmp_path / "p.toml").write_text('[input]\npath = "in.json"\n[output]\ndir = "r"\n')
    assert invoke("run", tmp_path / "p.toml").exit_code == 0
    (q,) = read_jsonl(tmp_path / "r" / "quarantined.jsonl")
    assert (q["source"]["line"], q["field"]) == (8, "query")


def test_a_json_array_input_is_read_past_its_bad_elements_and_arrays_joined_by_cat(tmp_path):
    """cat a.json b.json: the records of both; a malformed or oversized element and text after an array are
    quarantined one item each, naming their line, and the reading goes on."""
    big = xlam_row("big", query="x" * 3000)
    text = (
        f"[{json.dumps(xlam_row('a'))},\n{{bad}},\n{json.dumps(big)},\n{json.dumps(xlam_row('b'))}]\n"
        f"[{json.dumps(xlam_row('c'))}]\ngarbage\n"
    )
    (tmp_path / "in.json").write_text(text)
    (tmp_path / "p.toml").write_text('[input]\npath = "in.json"\nmax_record_bytes = 1024\n[output]\ndir = "r"\n')
    assert invoke("run", tmp_path / "p.toml").exit_code == 0
    quarantined = read_jsonl(tmp_path / "r" / "quarantined.jsonl")
    assert [q["source"]["line"] for q in quarantined] == [2, 3, 6]
    assert "not JSON" in quarantined[0]["error"] and "over the limit of 1024" in quarantined[1]["error"]
    assert "text after the JSON array" in quarantined[2]["error"]
    assert sorted(r["id"] for r in read_jsonl(tmp_path / "r" / "kept.jsonl")) == ["a", "b", "c"]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["complete"] is True and summary["input"]["records"] == 6


def test_a_json_array_input_cut_off_is_an_incomplete_run_that_says_how_much_was_not_read(tmp_path):
    tail = json.dumps(xlam_row("c"))[:40]
    (tmp_path / "in.json").write_text(f"[{json.dumps(xlam_row('a'))},\n{json.dumps(xlam_row('b'))},\n{tail}")
    (tmp_path / "p.toml").write_text('[input]\npath = "in.json"\n[output]\ndir = "r"\n')
    result = CliRunner().invoke(main, ["run", str(tmp_path / "p.toml")])
    assert result.exit_code == 1, result.output
    assert "input not read to the end" in result.output and f"the last {len(tail)} bytes" in result.output
    # The unread tail is no record: it is in no outcome file, and a resume reads on from it.
    assert not (tmp_path / "r" / "quarantined.jsonl").exists() or read_jsonl(tmp_path / "r" / "quarantined.jsonl") == []
    assert len(read_jsonl(tmp_path / "r" / "kept.jsonl")) == 2
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["complete"] is False and "in.json:3: an array element" in summary["stopped"]
    assert summary["input"]["records"] is None and summary["outcomes"]["quarantined"] == 0
    again = CliRunner().invoke(main, ["run", str(tmp_path / "p.toml")])  # the same cut-off file: the same stop
    assert again.exit_code == 1 and "input not read to the end" in again.output


def test_a_target_short_because_the_input_could_not_be_read_on_says_so(tmp_path):
    rows = [json.dumps(xlam_row(r)) for r in "abc"]
    (tmp_path / "in.json").write_text("[" + ",\n".join(rows)[:-20])
    (tmp_path / "p.toml").write_text('[input]\npath = "in.json"\n[output]\ndir = "r"\n')
    result = CliRunner().invoke(main, ["run", str(tmp_path / "p.toml"), "--target-kept", "5"])
    assert "complete or fix the input file" in result.output and "refine a larger input" not in result.output
    target = json.loads((tmp_path / "r" / "summary.json").read_text())["target"]
    assert (target["stopped_by"], target["missing"]) == ("unread", 3) and "in.json:3" in target["stopped"]


@pytest.mark.parametrize("cut", ["inside", "between"])
def test_a_cut_off_json_array_completed_later_is_read_on_where_it_stopped(tmp_path, cut):
    rows = [json.dumps(xlam_row(r)) for r in "abcd"]
    whole = "[" + ",\n".join(rows) + "]\n"
    stop = whole.index(rows[2]) + 30 if cut == "inside" else whole.index(rows[2])
    (tmp_path / "in.json").write_text(whole[:stop])
    (tmp_path / "p.toml").write_text('[input]\npath = "in.json"\n[output]\ndir = "r"\n')
    assert CliRunner().invoke(main, ["run", str(tmp_path / "p.toml")]).exit_code == 1
    (tmp_path / "in.json").write_text(whole)  # the rest of the file arrives (it only grew)
    result = CliRunner().invoke(main, ["run", str(tmp_path / "p.toml")])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_jsonl(tmp_path / "r" / "kept.jsonl")] == list("abcd")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["complete"] is True and summary["input"]["records"] == 4


@pytest.mark.parametrize(
    "name, content", [("in.json", "[]\n"), ("in.json", ""), ("in.jsonl", "\n  \n"), ("in.parquet", None)]
)
def test_an_input_without_records_is_a_complete_run_of_none(tmp_path, name, content):
    if content is None:
        pl.DataFrame({"id": [], "query": []}, schema={"id": pl.String, "query": pl.String}).write_parquet(
            tmp_path / name
        )
    else:
        (tmp_path / name).write_text(content)
    (tmp_path / "p.toml").write_text(f'[input]\npath = "{name}"\n[output]\ndir = "r"\n')
    result = invoke("run", tmp_path / "p.toml")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["complete"] is True and summary["input"]["records"] == 0


@pytest.mark.parametrize("first", ["{}", '{"foo": 1}', "{bad", "[1]"])
def test_a_first_record_in_no_format_is_quarantined_and_the_format_is_found_after_it(tmp_path, first):
    write_jsonl(tmp_path / "in.jsonl", [first, xlam_row("a"), first])
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[output]\ndir = "r"\n')
    assert invoke("run", tmp_path / "p.toml").exit_code == 0
    q1, q3 = read_jsonl(tmp_path / "r" / "quarantined.jsonl")
    assert (q1["source"]["line"], q3["source"]["line"]) == (1, 3) and q1["error"] == q3["error"]
    assert [r["id"] for r in read_jsonl(tmp_path / "r" / "kept.jsonl")] == ["a"]


def test_a_chat_whose_messages_are_not_a_list_is_quarantined_saying_so(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"messages": "hello"}, xlam_row("a"), {"conversations": {"a": 1}}])
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[output]\ndir = "r"\n')
    assert invoke("run", tmp_path / "p.toml").exit_code == 0
    q1, q3 = read_jsonl(tmp_path / "r" / "quarantined.jsonl")
    assert (q1["field"], q1["error"]) == ("messages", "messages: must be a list of chat messages, got str")
    assert (q3["field"], q3["error"]) == ("conversations", "conversations: must be a list of chat messages, got dict")


def test_the_progress_display_shows_outcome_counts():
    import io

    from rich.console import Console

    from funreason_refine.console import RunDisplay

    screen = io.StringIO()
    with RunDisplay(Console(file=screen, force_terminal=True, width=120), 1000, "in.jsonl") as progress:
        progress.on_bytes(500)
        progress.on_outcome("kept")
        progress.on_outcome("discarded")
    assert "1 kept" in screen.getvalue() and "1 discarded" in screen.getvalue() and "50%" in screen.getvalue()


def test_the_progress_bar_over_limit_records_counts_those_done_before_a_resume_from_the_start(tmp_path):
    # The records done before were told to the display only once the run returned: a run resumed with --limit 10
    # after 8 showed 0%, then 10%, 20%, then jumped to 100%.
    import io

    from rich.console import Console

    from funreason_refine.config import load_pipeline
    from funreason_refine.console import RunDisplay
    from funreason_refine.engine import run_pipeline
    from tests.conftest import QUICKSTART

    pipeline = QUICKSTART / "pipeline.toml"
    run_pipeline(load_pipeline(pipeline, tmp_path / "run"), limit=8)
    screen = io.StringIO()
    display = RunDisplay(Console(file=screen, force_terminal=True, width=200), 1000, "in.jsonl", limit=10)
    with display as progress:  # left without display.finished(): the bar as the run itself left it
        run_pipeline(load_pipeline(pipeline, tmp_path / "run"), limit=10, progress=progress)
    shown = screen.getvalue().rsplit("\r", 1)[-1]
    assert "100%" in shown, shown


def test_the_progress_bar_of_a_run_that_reached_its_target_before_the_input_ended_is_full():
    import io

    from rich.console import Console

    from funreason_refine.console import RunDisplay

    for enough, shown in ((True, "100%"), (False, "30%")):
        screen = io.StringIO()
        display = RunDisplay(Console(file=screen, force_terminal=True, width=120), 1000, "in.jsonl")
        with display as progress:
            progress.on_bytes(300)
            progress.on_outcome("kept")
            display.finished(0, enough=enough)
        last = screen.getvalue().rsplit("\r", 1)[-1]
        assert shown in last, (enough, last)


def test_the_progress_display_shows_batches_while_no_record_finishes():
    import io

    from rich.console import Console

    from funreason_refine.console import RunDisplay

    screen = io.StringIO()
    stats = {"calls": 0, "in_flight": 0, "cached": 0, "tokens": 0, "cost_usd": 0.0}
    batches = {"submitted": 1, "in_progress": 1, "done": 0}
    with RunDisplay(Console(file=screen, force_terminal=True, width=200), 1000, "in.jsonl") as progress:
        progress.on_judge({**stats, "batches": batches})
        deadline = time.monotonic() + 5  # the live display redraws ten times a second
        while "1 in progress" not in screen.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "batches 1 submitted, 1 in progress, 0 done" in screen.getvalue(), "shown before any record is written"


def test_the_progress_display_shows_judge_calls_in_flight_while_no_record_finishes():
    import io

    from rich.console import Console

    from funreason_refine.console import RunDisplay

    screen = io.StringIO()
    with RunDisplay(Console(file=screen, force_terminal=True, width=250), 1000, "in.jsonl") as progress:
        progress.on_judge({"calls": 0, "in_flight": 1, "cached": 0, "tokens": 0, "cost_usd": 0.0})
        deadline = time.monotonic() + 5  # the live display redraws ten times a second
        while "in flight" not in screen.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "judge 0 calls answered, 1 in flight, 0 cached" in screen.getvalue(), "shown from the first call on"


def test_listings_piped_to_another_program_keep_each_row_on_one_line():
    for command, words in (("plugins", "funreason-refine (built-in)"), ("stages", "classification")):
        result = invoke(command)
        assert result.exit_code == 0
        row = next(line for line in result.output.splitlines() if words in line)
        assert "register_stages" in row if command == "plugins" else "Is the reference answer" in row


def test_stages_and_plugins_as_json():
    stages = json.loads(invoke("stages", "--json").output)
    cot = next(s for s in stages if s["name"] == "cot")
    assert (cot["plugin"], cot["order"], cot["on_fail"]) == ("funreason_refine.stages.builtin", 30, "discard")
    assert cot["keys"]["required"]["default"] is False and "missing_cot" in cot["keys"]["required"]["description"]
    plugins = json.loads(invoke("plugins", "--json").output)
    assert {"name": "funreason_refine.stages.builtin", "hooks": ["register_stages"]}.items() <= plugins[0].items()


def test_a_run_with_records_in_errors_exits_3_and_says_to_retry(tmp_path, plugin):
    from funreason_refine import Stage, hookimpl

    class Broken(Stage):
        name = "broken"

        def check(self, record):
            raise RuntimeError("no disk")

    class Plugin:
        @hookimpl
        def register_stages(self, register):
            register(Broken)

    plugin(Plugin(), "broken_plugin")
    write_jsonl(tmp_path / "in.jsonl", [xlam_row("a")])
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[[stages]]\nname = "broken"\n')
    result = invoke("run", tmp_path / "p.toml")
    assert result.exit_code == 3
    assert "1 record(s) in" in result.output and f"refine retry {tmp_path / 'runs' / 'p'}" in result.output


def test_with_a_limit_the_progress_bar_counts_records_against_the_limit():
    import io

    from rich.console import Console

    from funreason_refine.console import RunDisplay

    screen = io.StringIO()
    display = RunDisplay(Console(file=screen, force_terminal=True, width=120), 10_000_000, "in.jsonl", limit=4)
    with display as progress:
        progress.on_bytes(2000)  # the first 4 records of a 10 MB file: 0.02% of its bytes
        progress.on_outcome("kept")
        progress.on_outcome("discarded")
        time.sleep(0.15)
        progress.on_outcome("kept")
    assert "75%" in screen.getvalue(), "3 of 4 records, whatever the file's size"
    resumed = io.StringIO()
    display = RunDisplay(Console(file=resumed, force_terminal=True, width=120), 10_000_000, "in.jsonl", limit=4)
    with display as progress:
        progress.on_outcome("kept")
        display.finished(resumed=3)  # three of the first four were done by an earlier run
    assert "100%" in resumed.getvalue()


def test_a_run_with_a_limit_ends_its_bar_at_100_percent(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from funreason_refine.cli import running

    screen = io.StringIO()
    monkeypatch.setattr(running, "err", Console(file=screen, force_terminal=True, width=160))
    result = invoke("run", QUICKSTART / "pipeline.toml", "--out", tmp_path / "r", "--limit", "7")
    assert result.exit_code == 0, result.output
    last = screen.getvalue().rsplit("\r", 1)[-1]
    assert "100%" in last, "7 of 7 records (7 of the file's 60 lines are 11% of its bytes)"
