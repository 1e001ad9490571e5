"""--input: the pipeline's [input] path given on the command line, and kept by the run folder."""

import json

from funreason_refine.cli.running import load_run_pipeline
from tests.conftest import read_jsonl, refine, write_jsonl, write_pipeline, xlam_row

STAGES = '[[stages]]\nname = "format"\n'


def two_inputs(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [xlam_row(f"file{i}") for i in range(2)])
    write_jsonl(tmp_path / "other.jsonl", [xlam_row(f"given{i}") for i in range(5)])
    return write_pipeline(tmp_path, stages=STAGES)


def kept_ids(folder):
    return [line["id"] for line in read_jsonl(folder / "kept.jsonl")]


def test_the_input_given_replaces_the_pipelines_and_is_recorded_in_run_json(tmp_path):
    pipeline = two_inputs(tmp_path)
    refine("run", pipeline, "--input", tmp_path / "other.jsonl")
    run = tmp_path / "run"
    assert kept_ids(run) == [f"given{i}" for i in range(5)]
    run_file = json.loads((run / "run.json").read_text())
    assert run_file["input"] == str(tmp_path / "other.jsonl")
    assert [f["path"] for f in run_file["input_files"]] == [str(tmp_path / "other.jsonl")]


def test_a_relative_input_starts_at_the_current_folder_not_the_pipelines(tmp_path, monkeypatch):
    pipeline = two_inputs(tmp_path)
    elsewhere = tmp_path / "data"
    elsewhere.mkdir()
    write_jsonl(elsewhere / "other.jsonl", [xlam_row("here")])
    monkeypatch.chdir(elsewhere)
    refine("run", pipeline, "--input", "other.jsonl")
    assert kept_ids(tmp_path / "run") == ["here"]


def test_a_resume_without_the_input_it_was_started_on_is_refused_naming_it(tmp_path):
    pipeline = two_inputs(tmp_path)
    given = tmp_path / "other.jsonl"
    refine("run", pipeline, "--input", given, "--limit", "2")
    output = refine("run", pipeline, code=1)
    assert f"--input {given}" in output and "input given on the command line" in output
    refine("run", pipeline, "--input", given)  # given again: it resumes
    assert kept_ids(tmp_path / "run") == [f"given{i}" for i in range(5)]


def test_worker_processes_read_the_input_given(tmp_path):
    pipeline = two_inputs(tmp_path)
    refine("run", pipeline, "--input", tmp_path / "other.jsonl", "--workers", "2")
    assert kept_ids(tmp_path / "run") == [f"given{i}" for i in range(5)]


def test_retry_redoes_its_errors_from_the_recorded_input(tmp_path, flaky_stage):
    flaky_stage.add("given3")
    write_jsonl(tmp_path / "in.jsonl", [xlam_row(f"file{i}") for i in range(2)])
    write_jsonl(tmp_path / "other.jsonl", [xlam_row(f"given{i}") for i in range(5)])
    pipeline = write_pipeline(tmp_path, stages='[[stages]]\nname = "flaky"\n')
    refine("run", pipeline, "--input", tmp_path / "other.jsonl", code=3)
    run = tmp_path / "run"
    assert load_run_pipeline(run, run, None).input.path == tmp_path / "other.jsonl"
    flaky_stage.clear()
    refine("retry", run)
    assert sorted(kept_ids(run)) == [f"given{i}" for i in range(5)]
    assert read_jsonl(run / "errors.jsonl") == []


def test_validate_and_estimate_name_a_missing_input(tmp_path):
    pipeline = two_inputs(tmp_path)
    for command in ("validate", "estimate"):
        output = " ".join(refine(command, pipeline, "--input", tmp_path / "missing.jsonl", code=1).split())
        # the path came from the command line, not from the file's [input] path (nor from its folder)
        assert f"--input: file {tmp_path / 'missing.jsonl'} not found (relative paths start at the current folder)" in (
            output
        )
