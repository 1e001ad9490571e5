"""A run reads none of the files its run folder writes (run_folder.own_file): an input there would be read back as
the run's own finished work, and --fresh would delete it. validate, run, retry and the engine all refuse it."""

import dataclasses
import shutil

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.errors import RunFolderError
from tests.conftest import QUICKSTART, refine, write_jsonl, xlam_row


def first_run(tmp_path):
    """The QA's case: a run into runs/a, then a pipeline whose input is runs/a/kept.jsonl, into runs/a again."""
    shutil.copy(QUICKSTART / "records.jsonl", tmp_path / "records.jsonl")
    (tmp_path / "a.toml").write_text(
        '[input]\npath = "records.jsonl"\nmax_record_bytes = 16384\n[output]\ndir = "runs/a"\n'
    )
    (tmp_path / "b.toml").write_text('[input]\npath = "runs/a/kept.jsonl"\n[output]\ndir = "runs/a"\n')
    refine("run", tmp_path / "a.toml")
    return tmp_path / "runs" / "a"


def test_an_input_that_is_its_run_folders_kept_file_is_refused_and_fresh_deletes_nothing(tmp_path):
    run = first_run(tmp_path)
    kept = (run / "kept.jsonl").read_bytes()
    assert kept.count(b"\n") == 32
    for args in (["validate"], ["run"], ["run", "--fresh"]):
        text = " ".join(refine(*args, tmp_path / "b.toml", code=1).split())
        assert f"[input] key 'path': {tmp_path / 'runs/a/kept.jsonl'} is one of the files a run writes" in text
        assert f"in its run folder {run}" in text
        assert "Copy the file out of the run folder and read the copy, or choose another [output] dir" in text
    assert (run / "kept.jsonl").read_bytes() == kept, "32 kept records still there"


def test_an_input_named_as_an_outcome_file_in_the_folder_it_runs_into_is_refused(tmp_path):
    run = first_run(tmp_path)
    shutil.copy(run / "kept.jsonl", tmp_path / "kept.jsonl")
    (tmp_path / "c.toml").write_text('[input]\npath = "kept.jsonl"\n[output]\ndir = "."\n')
    text = " ".join(refine("run", tmp_path / "c.toml", code=1).split())
    assert "accounting error" not in text and "one of the files a run writes in its run folder" in text
    assert not (tmp_path / "quarantined.jsonl").exists()


def test_the_input_given_on_the_command_line_and_files_in_shard_folders_are_refused(tmp_path):
    run = first_run(tmp_path)
    text = " ".join(refine("run", tmp_path / "a.toml", "--input", run / "summary.json", code=1).split())
    assert f"--input: {run / 'summary.json'} is one of the files a run writes in its run folder" in text
    shard = run.parent / "s" / "shards" / "0000-of-0002"
    shard.mkdir(parents=True)
    write_jsonl(shard.parent / "rows.jsonl", [xlam_row("r")])
    out = " ".join(
        refine(
            "run", tmp_path / "a.toml", "--input", shard.parent / "rows.jsonl", "--out", run.parent / "s", code=1
        ).split()
    )
    assert f"is in {run.parent / 's' / 'shards'}, which a run writes in its run folder" in out


def test_an_input_elsewhere_in_the_run_folder_is_read(tmp_path):
    run = first_run(tmp_path)
    shutil.copy(run / "kept.jsonl", run / "kept-copy.jsonl")
    copy = (run / "kept-copy.jsonl").read_bytes()
    refine("run", tmp_path / "a.toml", "--input", run / "kept-copy.jsonl", "--fresh")
    assert (run / "kept-copy.jsonl").read_bytes() == copy
    assert (run / "summary.json").is_file()


def test_the_engine_refuses_before_fresh_clears_the_folder(tmp_path):
    """A pipeline made in code (a shard, a self-refinement round) is checked where the folder is cleared."""
    run = first_run(tmp_path)
    kept = (run / "kept.jsonl").read_bytes()
    pipeline = load_pipeline(tmp_path / "a.toml")
    pipeline = dataclasses.replace(pipeline, input=pipeline.input.model_copy(update={"path": run / "kept.jsonl"}))
    with pytest.raises(RunFolderError, match="one of the files a run writes in its run folder"):
        run_pipeline(pipeline, fresh=True, workers=1)
    assert (run / "kept.jsonl").read_bytes() == kept
