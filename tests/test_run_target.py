"""refine run --target-kept N (rules only): the input read only as far as it takes to keep N records, in one
process and in worker processes; short of N, exit 5 saying why; a killed run resumes to the same N."""

import json

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import RunInterrupted, run_pipeline
from funreason_refine.errors import RefineError
from funreason_refine.executors.layout import Shard
from funreason_refine.executors.shards import shard_part
from funreason_refine.summary import Summary
from funreason_refine.testing import registered
from tests.conftest import QUICKSTART, KillAfter, read_jsonl, refine, xlam_row

PIPELINE = QUICKSTART / "pipeline.toml"
FILES = ("kept", "discarded", "quarantined", "errors")


def lines(folder, name="kept"):
    path = folder / f"{name}.jsonl"
    return path.read_bytes().splitlines(keepends=True) if path.exists() else []


def indices(folder):
    return sorted(line["index"] for name in FILES for line in read_jsonl(folder / f"{name}.jsonl"))


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The quickstart refined without a target: what a target run must take its first N kept records from."""
    folder = tmp_path_factory.mktemp("full") / "run"
    run_pipeline(load_pipeline(PIPELINE, folder))
    assert len(lines(folder)) == 31
    return folder


def up_to(full, last):
    """The lines of each outcome file of the full run whose record comes at or before input record ``last``."""
    return {name: [x for x in lines(full, name) if json.loads(x)["index"] <= last] for name in FILES}


@pytest.mark.parametrize("workers", [1, 2])
def test_the_kept_records_are_exactly_the_first_n_the_full_run_keeps(tmp_path, full, workers):
    output = refine("run", PIPELINE, "--out", tmp_path / "run", "--target-kept", 10, "--workers", workers)
    folder = tmp_path / "run"
    assert lines(folder) == lines(full)[:10]
    last = json.loads(lines(full)[9])["index"]  # the input record that reached the target
    # Every record up to it has its outcome, as in the full run; none after it was written.
    assert {name: lines(folder, name) for name in FILES} == up_to(full, last)
    assert indices(folder) == list(range(last + 1))
    summary = Summary.read(folder)
    assert summary.target is not None and summary.target.model_dump() == {
        "kept": 10,
        "reached": True,
        "missing": 0,
        "stopped_by": "target",
        "stopped": f"10 kept records reached after {last + 1} input records",
    }
    assert (summary.complete, summary.stopped, summary.input.records) == (True, None, last + 1)
    assert summary.outcomes["kept"] == 10 and summary.timings.workers == workers
    assert f"target reached: 10 kept records in {folder / 'kept.jsonl'}, after {last + 1} input records" in output


def test_short_of_the_target_when_the_input_ends_it_says_how_many_are_missing_and_exits_5(tmp_path, full):
    output = refine("run", PIPELINE, "--out", tmp_path / "run", "--target-kept", 40, code=5)
    assert "short of the target: 9 of 40 missing: 31 kept records in" in output
    assert "the input ended after 60 records" in output and "refine a larger input into a new run folder" in output
    assert lines(tmp_path / "run") == lines(full)
    summary = Summary.read(tmp_path / "run")
    assert summary.target is not None
    assert (summary.target.reached, summary.target.missing, summary.target.stopped_by) == (False, 9, "input")
    assert (summary.complete, summary.input.records) == (True, 60)
    # Run again, it is as short: nothing is left to read, the same status.
    again = refine("run", PIPELINE, "--out", tmp_path / "run", "--target-kept", 40, code=5)
    assert "9 of 40 missing" in again


def test_with_limit_whichever_comes_first_stops_the_run(tmp_path, full):
    output = refine("run", PIPELINE, "--out", tmp_path / "short", "--target-kept", 10, "--limit", 8, code=5)
    assert "Stopped: --limit 8 reached. To go on, raise --limit (or leave it out)" in output
    short = Summary.read(tmp_path / "short")
    assert short.target is not None and short.target.stopped_by == "limit"
    assert short.target.missing == 10 - len(lines(tmp_path / "short"))
    assert indices(tmp_path / "short") == list(range(8))
    # Raised, the run goes on from there to the target, which comes before the new limit.
    refine("run", PIPELINE, "--out", tmp_path / "short", "--target-kept", 10, "--limit", 50)
    assert lines(tmp_path / "short") == lines(full)[:10]
    assert Summary.read(tmp_path / "short").input.limit == 50


@pytest.mark.parametrize("workers", [1, 2])
def test_a_killed_run_resumes_to_the_same_records_and_a_finished_one_does_nothing_more(tmp_path, workers):
    whole = run_pipeline(load_pipeline(PIPELINE, tmp_path / "whole"), target=12, workers=workers)
    with registered(KillAfter(5), "kill"), pytest.raises(RunInterrupted, match="interrupted after 5 records"):
        run_pipeline(load_pipeline(PIPELINE, tmp_path / "killed"), target=12, workers=workers)
    resumed = run_pipeline(load_pipeline(PIPELINE, tmp_path / "killed"), target=12, workers=workers)
    assert resumed.resumed == 5
    for name in FILES:
        assert lines(tmp_path / "killed", name) == lines(tmp_path / "whole", name)
    assert resumed.summary.target == whole.summary.target and resumed.summary.target.reached
    assert resumed.summary.outcomes == whole.summary.outcomes
    assert resumed.summary.input.records == whole.summary.input.records
    again = run_pipeline(load_pipeline(PIPELINE, tmp_path / "killed"), target=12, workers=workers)
    assert (again.resumed, again.summary.timings.records_this_run) == (whole.summary.input.records, 0)
    assert again.summary.target == whole.summary.target
    for name in FILES:
        assert lines(tmp_path / "killed", name) == lines(tmp_path / "whole", name)


def test_a_bigger_target_reads_on_from_where_the_smaller_one_stopped(tmp_path):
    run_pipeline(load_pipeline(PIPELINE, tmp_path / "grown"), target=5)
    run_pipeline(load_pipeline(PIPELINE, tmp_path / "grown"), target=20)
    run_pipeline(load_pipeline(PIPELINE, tmp_path / "direct"), target=20)
    for name in FILES:
        assert lines(tmp_path / "grown", name) == lines(tmp_path / "direct", name)


def test_a_target_below_what_the_folder_already_keeps_is_refused_and_the_folder_left_as_it_was(tmp_path):
    run_pipeline(load_pipeline(PIPELINE, tmp_path / "run"), target=10)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").glob("*.json*")}
    output = refine("run", PIPELINE, "--out", tmp_path / "run", "--target-kept", 4, code=1)
    assert "already holds 10 kept records, more than --target-kept 4" in " ".join(output.split())
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").glob("*.json*")} == before
    refine("run", PIPELINE, "--out", tmp_path / "run", "--target-kept", 4, "--fresh")
    assert len(lines(tmp_path / "run")) == 4


@pytest.mark.parametrize(
    "options, conflict",
    [
        (["--shard", "0/2"], "--target-kept does not go with --shard"),
        (["--executor", "ray", "--shards", "2"], "--target-kept does not go with --executor ray"),
    ],
)
def test_a_target_over_the_whole_input_is_refused_with_shards(tmp_path, options, conflict):
    output = refine("run", PIPELINE, "--out", tmp_path / "run", "--target-kept", 3, *options, code=2)
    assert conflict in output and "a target is over the whole input" in " ".join(output.split())
    assert not (tmp_path / "run").exists()


def test_the_engine_refuses_a_target_for_a_part_of_the_input(tmp_path):
    loaded = load_pipeline(PIPELINE, tmp_path / "run")
    part = shard_part(loaded, Shard.parse("0/2"))
    with pytest.raises(RefineError, match="does not go with a shard"):
        run_pipeline(loaded, part=part, target=3)


def test_retry_of_a_target_run_redoes_its_errors_and_reads_no_further(tmp_pipeline, flaky_stage):
    path, folder = tmp_pipeline([xlam_row(f"r{i}") for i in range(10)], stages='[[stages]]\nname = "flaky"\n')
    flaky_stage.add("r1")
    output = refine("run", path, "--target-kept", 3, code=3)  # records in errors.jsonl: status 3 before 5
    assert "target reached: 3 kept records" in output and "errors.jsonl" in output
    assert [line["id"] for line in read_jsonl(folder / "errors.jsonl")] == ["r1"]
    flaky_stage.clear()
    refine("retry", folder)
    assert [line["id"] for line in read_jsonl(folder / "kept.jsonl")] == ["r0", "r2", "r3", "r1"]
    assert indices(folder) == list(range(4)), "the rest of the input is left unread, as the target left it"


def test_retry_of_a_run_short_of_its_target_keeps_the_target_and_goes_on_towards_it(tmp_pipeline, flaky_stage):
    path, folder = tmp_pipeline([xlam_row(f"r{i}") for i in range(10)], stages='[[stages]]\nname = "flaky"\n')
    flaky_stage.add("r1")
    refine("run", path, "--target-kept", 5, "--limit", 4, code=3)  # short of 5 at --limit 4, r1 in errors.jsonl
    flaky_stage.clear()
    output = refine("retry", folder, code=5)
    assert [line["id"] for line in read_jsonl(folder / "kept.jsonl")] == ["r0", "r2", "r3", "r1"]
    assert indices(folder) == list(range(4)) and "short of the target: 1 of 5 missing" in output
    summary = Summary.read(folder)
    assert summary.target is not None and (summary.target.missing, summary.target.stopped_by) == (1, "limit")


def test_the_report_says_what_the_target_came_to(tmp_path):
    refine("run", PIPELINE, "--out", tmp_path / "reached", "--target-kept", 5)
    refine("run", PIPELINE, "--out", tmp_path / "short", "--target-kept", 40, code=5)
    for name, said in (
        ("reached", "5 kept records asked for (--target-kept): reached."),
        ("short", "40 kept records asked for (--target-kept): 9 missing."),
    ):
        refine("report", tmp_path / name)
        markdown = (tmp_path / name / "report.md").read_text(encoding="utf-8")
        html = (tmp_path / name / "report.html").read_text(encoding="utf-8")
        assert f"**Target:** {said}" in markdown and f'<span data-key="target">{said}' in html, name
    refine("run", PIPELINE, "--out", tmp_path / "plain")
    refine("report", tmp_path / "plain")
    assert "Target" not in (tmp_path / "plain" / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "indices, prefix",
    [([], True), ([0], True), ([1], False), (list(range(8)), True), (list(range(9)), True), ([*range(8), 9], False)],
)
def test_the_check_that_every_record_before_the_target_has_an_outcome(indices, prefix):
    from funreason_refine.run_folder import IndexSet

    done = IndexSet()
    for index in indices:
        done.add(index)
    assert done.is_prefix() is prefix
