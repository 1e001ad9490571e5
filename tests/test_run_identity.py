"""A run folder knows what it was made from: an edited input and mixed configurations are never silent."""

from __future__ import annotations

import json
import os

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.errors import RunFolderError
from funreason_refine.summary import Summary
from tests.conftest import QUICKSTART, refine, write_jsonl, xlam_row


def weather(city):
    return [{"name": "get_weather", "arguments": {"city": city}}]


ROWS = [xlam_row(f"r{i}", f"What's the weather in city number {i}?", answers=weather(f"C{i}")) for i in range(12)]


def pipeline(tmp_path, rows=ROWS, extra=""):
    write_jsonl(tmp_path / "in.jsonl", rows)
    path = tmp_path / "p.toml"
    path.write_text(f'[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n{extra}')
    return path


def test_a_line_deleted_between_an_interrupted_run_and_its_resume_is_refused_naming_what_to_do(tmp_path):
    path = pipeline(tmp_path)
    refine("run", path, "--limit", "5")
    lines = (tmp_path / "in.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "in.jsonl").write_text("".join(lines[:3] + lines[4:]))  # the 4th record is gone
    refused = " ".join(refine("run", path, code=1).split())
    assert "the input" in refused and "in.jsonl changed since" in refused and "--fresh" in refused
    assert len((tmp_path / "run" / "kept.jsonl").read_text().splitlines()) == 5, "nothing was added to the folder"
    refine("run", path, "--fresh")
    kept = [json.loads(line)["id"] for line in (tmp_path / "run" / "kept.jsonl").read_text().splitlines()]
    assert kept == [f"r{i}" for i in range(12) if i != 3]


def test_an_edit_of_the_same_size_is_found_by_the_content_hash(tmp_path):
    path = pipeline(tmp_path)
    refine("run", path, "--limit", "5")
    text = (tmp_path / "in.jsonl").read_text()
    (tmp_path / "in.jsonl").write_text(text.replace("number 2?", "number 7?"))
    with pytest.raises(RunFolderError, match="its content is not what it was"):
        run_pipeline(load_pipeline(path))


def test_an_input_touched_or_grown_by_appended_records_resumes(tmp_path):
    path = pipeline(tmp_path, ROWS[:6])
    run_pipeline(load_pipeline(path), limit=4)
    os.utime(tmp_path / "in.jsonl", ns=(1, 1))  # the same bytes, another time: the same input
    run_pipeline(load_pipeline(path), limit=5)
    write_jsonl(tmp_path / "in.jsonl", ROWS)  # the same six records and six more after them
    result = run_pipeline(load_pipeline(path))
    assert result.resumed == 5 and result.summary.outcomes["kept"] == 12
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["input_files"]
    assert recorded[0]["bytes"] == (tmp_path / "in.jsonl").stat().st_size


def test_a_folder_whose_pipeline_file_moved_says_what_to_do_and_goes_on_with_the_file_where_it_is(tmp_path):
    # refine retry said only "/old/p.toml: pipeline file not found"; the same configuration run from the file's new
    # place left run.json naming the old one, so that refine retry kept failing.
    path = pipeline(tmp_path)
    refine("run", path, "--limit", "5")
    moved = tmp_path / "elsewhere" / "p.toml"
    moved.parent.mkdir()
    moved.write_text(path.read_text().replace('path = "in.jsonl"', f'path = "{tmp_path / "in.jsonl"}"'))
    path.unlink()
    run = tmp_path / "run"
    gone = " ".join(refine("retry", run, code=1).split())
    assert f"{run / 'run.json'} names the pipeline file {path}, which is not there" in gone
    assert f"`refine run PIPELINE --limit 5 --out {run} --accept-changes` (finished records stay" in gone
    assert gone.endswith(f"then `refine retry {run}`")
    refine("run", moved, "--limit", "5", "--out", run)  # the same configuration: no change to accept
    assert json.loads((run / "run.json").read_text())["pipeline"] == str(moved)
    assert "configurations" not in json.loads((run / "summary.json").read_text())
    refine("retry", run)


def test_accepted_configuration_changes_are_recorded_in_summary_json_and_shown(tmp_path):
    path = pipeline(tmp_path)
    first = run_pipeline(load_pipeline(path), limit=4).summary.config_hash
    path.write_text(path.read_text() + '[[stages]]\nname = "classification"\n[[stages]]\nname = "format"\n')
    shown = refine("run", path, "--accept-changes")
    summary = Summary.read(tmp_path / "run")
    assert summary.configurations == [
        {"config_hash": first, "records": 4},
        {"config_hash": summary.config_hash, "records": 8},
    ]
    assert "refined under 2 configurations" in " ".join(shown.split())
    report = refine("report", tmp_path / "run")
    assert "refined under 2 configurations" in " ".join(report.split())
    assert "2 configurations" in (tmp_path / "run" / "report.md").read_text()
    assert "refined under 2 configurations" in (tmp_path / "run" / "report.html").read_text()


def test_a_merge_of_shards_that_went_on_under_a_changed_configuration_says_so(tmp_path):
    path = pipeline(tmp_path)
    run = tmp_path / "sharded"
    refine("run", path, "--shard", "0/2", "--out", run)
    refine("run", path, "--shard", "1/2", "--out", run)
    path.write_text(path.read_text() + '[[stages]]\nname = "classification"\n')
    refine("run", path, "--shard", "1/2", "--out", run, "--accept-changes")
    refused = " ".join(refine("merge", run, code=1).split())
    assert "another pipeline configuration" in refused and "--fresh" in refused
    assert "--accept-changes" not in refused, "accepting the change would mix the configurations"
    refine("run", path, "--shard", "0/2", "--out", run, "--accept-changes")
    merged = " ".join(refine("merge", run).split())
    configurations = Summary.read(run).configurations
    assert configurations is not None and [c["shard"] for c in configurations] == ["0/2", "0/2", "1/2", "1/2"]
    assert sum(c["records"] for c in configurations) == 12
    assert "refined under 2 configurations" in merged


def test_the_quickstart_folder_records_its_input(tmp_path):
    run_pipeline(load_pipeline(QUICKSTART / "pipeline.toml", tmp_path / "run"))
    files = json.loads((tmp_path / "run" / "run.json").read_text())["input_files"]
    assert [os.path.basename(f["path"]) for f in files] == ["records.jsonl"] and len(files[0]["blake2b"]) == 32


def test_a_run_json_whose_input_files_were_edited_by_hand_is_named_not_a_traceback(tmp_path):
    path = pipeline(tmp_path)
    run_pipeline(load_pipeline(path), limit=2)
    run_file = tmp_path / "run" / "run.json"
    run_file.write_text(json.dumps({**json.loads(run_file.read_text()), "input_files": [{"path": 3}]}))
    refused = " ".join(refine("run", path, code=1).split())
    assert "run.json: input_files is not what this tool writes" in refused and "--fresh" in refused
