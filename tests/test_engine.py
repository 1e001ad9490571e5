import pytest

from funreason_refine.config import ConfiguredStage, load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.errors import RunFolderError
from funreason_refine.record import FunctionCall, Verdict
from funreason_refine.refine import refine_record, run_sync
from funreason_refine.stages.base import Stage
from funreason_refine.stages.cot import Cot
from funreason_refine.stages.function_params import FunctionParams
from funreason_refine.testing import make_record
from tests.conftest import read_jsonl, xlam_row

FORECAST = {"name": "get_forecast", "parameters": {"city": {"type": "str"}, "days": {"type": "int"}}}
WEATHER = {"name": "get_weather", "parameters": {"city": {"type": "str"}}}


def staged(*stages, on_fail="regenerate", max_attempts=3):
    return [
        ConfiguredStage(name=s.name, stage=s, plugin="tests", on_fail=on_fail, max_attempts=max_attempts)
        for s in stages
    ]


def refine(record, stages):
    return run_sync(refine_record(record, stages))


class SwitchToForecast(Stage):
    """Regenerates every get_weather answer into a get_forecast answer."""

    name = "switch"

    def check(self, record):
        if record.calls and record.calls[0].name == "get_weather":
            new = [FunctionCall(name="get_forecast", arguments={"city": "Paris", "days": 1})]
            return Verdict.regenerate(record.model_copy(update={"answer": new}), "switched", "to forecast")
        return Verdict.passed()


class AlwaysRegenerate(Stage):
    name = "restless"

    def check(self, record):
        return Verdict.regenerate(record.model_copy(update={"cot": (record.cot or "") + "x"}), "again", "once more")


class Explodes(Stage):
    name = "explodes"

    def check(self, record):
        raise KeyError("boom")


class ReturnsGarbage(Stage):
    name = "garbage"

    def check(self, record):
        return "pass"


def test_repair_is_rechecked_and_the_trail_records_both_attempts():
    record = make_record(
        tools=[FORECAST], answers=[{"name": "get_forecast", "arguments": {"city": "Rome", "days": "2"}}]
    )
    outcome = refine(record, staged(FunctionParams()))
    assert outcome.kind == "kept"
    assert outcome.record.calls[0].arguments == {"city": "Rome", "days": 2}
    assert [(s.verdict, s.reason, s.attempt) for s in outcome.record.trail] == [
        ("regenerate", "coerced_type", 1),
        ("pass", None, 2),
    ]


def test_cot_is_rechecked_when_a_later_stage_changes_the_answer():
    record = make_record(tools=[WEATHER, FORECAST], cot="The user asks for Paris: get_weather.")
    outcome = refine(record, staged(Cot(), SwitchToForecast()))
    assert (outcome.kind, outcome.stage, outcome.reason) == ("discarded", "cot", "cot_misses_function")
    assert [s.stage for s in outcome.record.trail] == ["cot", "switch", "cot"]


def test_regeneration_is_bounded_by_max_attempts():
    outcome = refine(make_record(), staged(AlwaysRegenerate(), max_attempts=2))
    assert (outcome.kind, outcome.reason) == ("discarded", "again")
    assert "after 2 regeneration(s)" in outcome.message
    assert [s.attempt for s in outcome.record.trail] == [1, 2, 3]


def test_on_fail_discard_turns_a_repair_into_a_discard():
    record = make_record(
        tools=[FORECAST], answers=[{"name": "get_forecast", "arguments": {"city": "Rome", "days": "2"}}]
    )
    outcome = refine(record, staged(FunctionParams(), on_fail="discard"))
    assert (outcome.kind, outcome.reason) == ("discarded", "coerced_type")


@pytest.mark.parametrize("stage, words", [(Explodes(), "raised KeyError"), (ReturnsGarbage(), "not a Verdict")])
def test_a_broken_stage_sends_the_record_to_errors_naming_the_plugin(stage, words):
    outcome = refine(make_record(), staged(stage))
    assert outcome.kind == "errors"
    assert words in outcome.message and "plugin tests" in outcome.message


def test_a_stage_cannot_move_a_record():
    class Mover(Stage):
        name = "mover"

        def check(self, record):
            return Verdict(action="pass", record=record.model_copy(update={"index": 99}))

    assert refine(make_record(index=3), staged(Mover())).record.index == 3


# --- whole runs ---

ROWS = [
    xlam_row("a", cot="get_weather for Paris"),
    b"{broken",
    xlam_row("b", answers=[{"name": "nope", "arguments": {}}]),
    xlam_row("c", answers="[]"),
    xlam_row("d", tools=[FORECAST], answers=[{"name": "get_forecast", "arguments": {"city": "X", "days": "4"}}]),
    {"id": "e", "query": 3, "tools": "[]", "answers": "[]"},
] * 5


def run(pipeline, **kw):
    return run_pipeline(load_pipeline(pipeline), **kw)


def outputs(folder):
    return {name: (folder / f"{name}.jsonl").read_bytes() for name in ("kept", "discarded", "quarantined", "errors")}


def test_every_input_record_ends_in_exactly_one_file(tmp_pipeline):
    pipeline, folder = tmp_pipeline(ROWS)
    summary = run(pipeline).summary
    indices = sorted(
        line["index"]
        for name in ("kept", "discarded", "quarantined", "errors")
        for line in read_jsonl(folder / f"{name}.jsonl")
    )
    assert indices == list(range(len(ROWS)))
    assert summary["outcomes"] == {"kept": 15, "discarded": 5, "quarantined": 10, "errors": 0}
    assert summary["input"]["records"] == 30
    assert summary["stages"]["query_tool"]["records_discarded"] == {"unknown_function": 5}
    assert summary["stages"]["function_params"]["regenerated"] == 5


def test_resume_after_a_partial_run_gives_the_same_folder(tmp_pipeline, tmp_path):
    pipeline, folder = tmp_pipeline(ROWS)
    whole = run(pipeline)
    expected = outputs(folder)
    for name in expected:
        (folder / f"{name}.jsonl").unlink()
    run(pipeline, limit=7)
    result = run(pipeline)
    assert result.resumed == 7
    assert outputs(folder) == expected
    assert result.summary["outcomes"] == whole.summary["outcomes"]
    assert result.summary["stages"] == whole.summary["stages"]


def test_a_second_run_on_a_finished_folder_redoes_nothing(tmp_pipeline):
    pipeline, folder = tmp_pipeline(ROWS)
    run(pipeline)
    again = run(pipeline)
    assert again.resumed == len(ROWS)
    assert again.summary["timings"]["records_this_run"] == 0


def test_a_line_cut_short_by_a_crash_is_dropped_and_redone(tmp_pipeline):
    pipeline, folder = tmp_pipeline(ROWS)
    run(pipeline)
    expected = outputs(folder)
    kept = folder / "kept.jsonl"
    lines = kept.read_bytes().splitlines(keepends=True)
    kept.write_bytes(b"".join(lines[:-1]) + lines[-1][:25])
    run(pipeline)
    assert outputs(folder) == expected


def test_a_folder_with_a_record_twice_is_refused(tmp_pipeline):
    pipeline, folder = tmp_pipeline(ROWS)
    run(pipeline)
    kept = folder / "kept.jsonl"
    kept.write_bytes(kept.read_bytes() + kept.read_bytes().splitlines(keepends=True)[0])
    with pytest.raises(RunFolderError, match="recorded twice"):
        run(pipeline)


def test_an_unwritable_run_folder_is_a_clear_error(tmp_pipeline, tmp_path):
    pipeline, _ = tmp_pipeline(ROWS)
    (tmp_path / "run").write_text("a file where the folder should be")
    with pytest.raises(RunFolderError, match="cannot write the run folder"):
        run(pipeline)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_write_the_same_bytes_as_one_process(tmp_path, monkeypatch, method):
    from funreason_refine import engine
    from tests.conftest import QUICKSTART

    monkeypatch.setattr(engine, "_start_method", lambda: method)
    pipeline = QUICKSTART / "pipeline.toml"
    one = run_pipeline(load_pipeline(pipeline, tmp_path / "one"), workers=1)
    two = run_pipeline(load_pipeline(pipeline, tmp_path / "two"), workers=2)
    assert (two.workers, two.start_method) == (2, method)
    assert outputs(tmp_path / "one") == outputs(tmp_path / "two")
    assert one.summary["stages"] == two.summary["stages"]


def test_workers_are_forked_only_while_no_other_thread_runs(monkeypatch):
    import threading

    from funreason_refine import engine

    monkeypatch.setattr(engine.sys, "platform", "linux")
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert engine._start_method() == "fork"
    monkeypatch.setattr(engine.sys, "platform", "darwin")  # system libraries there are not fork-safe
    assert engine._start_method() == "spawn"
    monkeypatch.setattr(engine.sys, "platform", "linux")
    monkeypatch.setattr(threading, "active_count", lambda: 2)  # e.g. a progress display's refresh thread
    assert engine._start_method() == "spawn"


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_stage_registered_in_code_runs_in_forked_workers_and_is_a_clear_error_in_spawned_ones(
    tmp_path, monkeypatch, method
):
    from funreason_refine import engine, hookimpl
    from funreason_refine.errors import RefineError
    from funreason_refine.plugin_manager import get_plugin_manager
    from tests.conftest import write_jsonl, write_pipeline

    class InCode:
        @hookimpl
        def register_stages(self, register):
            register(AlwaysRegenerate)

    monkeypatch.setattr(engine, "_start_method", lambda: method)
    pm = get_plugin_manager()
    pm.register(InCode(), name="in_code")
    try:
        write_jsonl(tmp_path / "in.jsonl", [xlam_row(str(i)) for i in range(600)])
        pipeline = load_pipeline(write_pipeline(tmp_path, stages='[[stages]]\nname = "restless"\n'))
        if method == "spawn":
            with pytest.raises(RefineError, match="install the plugin or use --workers 1"):
                run_pipeline(pipeline, workers=2)
        else:
            two = run_pipeline(pipeline, workers=2)
            one = run_pipeline(load_pipeline(pipeline.path, tmp_path / "one"), workers=1)
            assert two.summary["outcomes"] == one.summary["outcomes"]
            assert outputs(pipeline.output_dir) == outputs(tmp_path / "one")
    finally:
        pm.unregister(name="in_code")


class Witness(Stage):
    """Records what it saw of the trail, and returns a copy (as stages do)."""

    name = "witness"
    seen: list = []

    def check(self, record):
        Witness.seen.append([(s.stage, s.verdict) for s in record.trail])
        return Verdict(action="pass", record=record.model_copy(update={"target": "t"}))


@pytest.mark.parametrize("owned", [False, True])
def test_a_stage_sees_the_verdicts_before_its_own_and_an_unowned_input_stays_as_it_was(owned):
    Witness.seen = []
    stages = [
        ConfiguredStage("cot", Cot(), "builtin", "discard", 3),
        ConfiguredStage("witness", Witness(), "t", "discard", 3),
    ]
    record = make_record(cot="Call get_weather for Paris.")
    outcome = run_sync(refine_record(record, stages, owned=owned))
    assert Witness.seen == [[("cot", "pass")]]
    assert [(s.stage, s.verdict) for s in outcome.record.trail] == [("cot", "pass"), ("witness", "pass")]
    assert outcome.record.target == "t"
    assert record.trail == ([] if not owned else outcome.record.trail)
    again = run_sync(refine_record(outcome.record, stages))  # a finished record starts a fresh trail
    assert [(s.stage, s.verdict) for s in again.record.trail] == [("cot", "pass"), ("witness", "pass")]
