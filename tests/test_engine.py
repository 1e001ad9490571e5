import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.errors import ConfigError, RunFolderError
from funreason_refine.record import Verdict
from funreason_refine.refine import refine_record
from funreason_refine.stages.base import PipelineStage, Stage
from funreason_refine.stages.cot import Cot
from funreason_refine.testing import make_record
from tests.conftest import read_jsonl, xlam_row
from tests.test_refine import FORECAST, AlwaysRegenerate

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
    summary = run(pipeline).summary.as_dict()
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
    assert result.summary.as_dict()["outcomes"] == whole.summary.as_dict()["outcomes"]
    assert result.summary.as_dict()["stages"] == whole.summary.as_dict()["stages"]


def test_a_second_run_on_a_finished_folder_redoes_nothing(tmp_pipeline):
    pipeline, folder = tmp_pipeline(ROWS)
    run(pipeline)
    again = run(pipeline)
    assert again.resumed == len(ROWS)
    assert again.summary.as_dict()["timings"]["records_this_run"] == 0


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
    with pytest.raises(ConfigError, match="run is a file, not a folder: choose another \\[output\\] dir"):
        run(pipeline)


def test_worker_processes_write_the_same_bytes_as_one_process(tmp_path):
    from funreason_refine.refiners.pool import start_method
    from tests.conftest import QUICKSTART

    pipeline = QUICKSTART / "pipeline.toml"
    one = run_pipeline(load_pipeline(pipeline, tmp_path / "one"), workers=1)
    two = run_pipeline(load_pipeline(pipeline, tmp_path / "two"), workers=2)
    assert (one.workers, one.start_method) == (1, None)
    assert (two.workers, two.start_method) == (2, start_method())
    assert outputs(tmp_path / "one") == outputs(tmp_path / "two")
    # summary.json too, but for its timings: the input's formats (the quickstart mixes xLAM rows and chats) were
    # those the main process read itself, none with workers
    apart_from_timings = [{k: v for k, v in r.summary.as_dict().items() if k != "timings"} for r in (one, two)]
    assert apart_from_timings[0] == apart_from_timings[1]
    assert two.summary.input.formats == ["xlam", "openai"]


def test_workers_that_cannot_load_the_pipeline_say_so_not_that_a_worker_died(tmp_path):
    # Workers load the pipeline from its file when they start; one changed since the run loaded it failed their
    # start, which read as "a worker process died (out of memory?)".
    from funreason_refine.errors import RefineError
    from tests.conftest import QUICKSTART

    path = tmp_path / "pipeline.toml"
    text = (QUICKSTART / "pipeline.toml").read_text()
    path.write_text(text.replace('"records.jsonl"', f'"{QUICKSTART}/records.jsonl"'))
    (tmp_path / "eval_set.json").write_bytes((QUICKSTART / "eval_set.json").read_bytes())
    loaded = load_pipeline(path, tmp_path / "run")
    path.write_text(path.read_text().replace('name = "format"', 'name = "formatt"'))  # edited as the run starts
    with pytest.raises(RefineError) as raised:
        run_pipeline(loaded, workers=2)
    said = str(raised.value)
    assert "out of memory" not in said and "could not load the pipeline" in said and "'formatt'" in said, said
    assert "changed since the run started" in said


def test_workers_start_the_same_way_whatever_threads_run(monkeypatch):
    import threading

    from funreason_refine.refiners.pool import start_method

    before = start_method()
    thread = threading.Thread(target=threading.Event().wait, args=(1,), daemon=True)
    thread.start()  # say, a progress display's refresh thread
    assert start_method() == before == "forkserver"  # on Linux (and macOS); spawn where there is no fork server


def test_a_stage_registered_in_code_is_refused_in_workers_and_runs_in_one_process(tmp_path):
    from funreason_refine import hookimpl
    from funreason_refine.errors import RefineError
    from funreason_refine.plugin_manager import get_plugin_manager
    from tests.conftest import write_jsonl, write_pipeline

    class InCode:
        @hookimpl
        def register_stages(self, register):
            register(AlwaysRegenerate)

    pm = get_plugin_manager()
    pm.register(InCode(), name="in_code")
    try:
        # over 8 MiB: several workers by default, but not for a stage workers would not have
        write_jsonl(tmp_path / "in.jsonl", [xlam_row(str(i), query="x" * 9000) for i in range(1000)])
        pipeline = load_pipeline(write_pipeline(tmp_path, stages='[[stages]]\nname = "restless"\n'))
        with pytest.raises(RefineError, match=r"restless \(plugin in_code\) were registered in code.*--workers 1"):
            run_pipeline(pipeline, workers=2)
        result = run_pipeline(pipeline)
        assert result.workers == 1
        assert result.summary.as_dict()["outcomes"]["discarded"] == 1000  # every record regenerated past max_attempts
    finally:
        pm.unregister(name="in_code")


class Witness(Stage):
    """Records what it saw of the trail, and returns a copy (as stages do)."""

    name = "witness"
    seen: list = []

    def check(self, record):
        Witness.seen.append([(s.stage, s.verdict) for s in record.trail])
        return Verdict(action="pass", record=record.model_copy(update={"target": "t"}))


def test_a_stage_sees_the_verdicts_before_its_own_and_the_input_record_stays_as_it_was():
    Witness.seen = []
    stages = [
        PipelineStage(Cot(), "builtin", "discard", 3),
        PipelineStage(Witness(), "t", "discard", 3),
    ]
    record = make_record(cot="Call get_weather for Paris.")
    finished = refine_record(record, stages)
    assert Witness.seen == [[("cot", "pass")]]
    assert [(s.stage, s.verdict) for s in finished.record.trail] == [("cot", "pass"), ("witness", "pass")]
    assert finished.record.target == "t"
    assert record.trail == [] and record.target is None
    again = refine_record(finished.record, stages)  # a finished record starts a fresh trail
    assert [(s.stage, s.verdict) for s in again.record.trail] == [("cot", "pass"), ("witness", "pass")]
