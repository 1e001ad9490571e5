"""A run that is refused changes nothing in its folder; what a folder says of its input does not
depend on where it was run from (run_folder.check_config / record_config, run_identity.check_input)."""

import json

from tests.conftest import QUICKSTART, read_jsonl, refine, write_jsonl, xlam_row
from tests.executors.test_shards import pipeline_file, quickstart_input


def folder_files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.suffix in (".json", ".jsonl")}


def test_a_run_refused_after_its_configuration_was_accepted_leaves_run_json_as_it_was(tmp_path):
    path = pipeline_file(tmp_path, quickstart_input(tmp_path, "jsonl"))
    run = tmp_path / "run"
    refine("run", path, "--out", run)
    before = folder_files(run)
    changed = tmp_path / "changed.toml"
    changed.write_text(path.read_text().replace("required = false", "required = true"))
    refused = refine("run", changed, "--out", run, "--accept-changes", "--target-kept", "3", code=1)
    assert "already holds" in refused
    assert folder_files(run) == before
    refine("run", path, "--out", run)  # the pipeline that made the folder still goes on in it


def test_a_run_refused_for_another_input_leaves_run_json_as_it_was(tmp_path):
    path = pipeline_file(tmp_path, quickstart_input(tmp_path, "jsonl"))
    run = tmp_path / "run"
    refine("run", path, "--out", run, "--limit", "5")
    before = folder_files(run)
    other = write_jsonl(tmp_path / "other.jsonl", [xlam_row(f"o{i}") for i in range(8)])
    refused = " ".join(refine("run", path, "--out", run, "--input", other, "--accept-changes", code=1).split())
    started = (tmp_path / "in.jsonl").resolve()
    assert f"{run} was started on {started}, and this run reads {other}, which is not that file" in refused
    assert folder_files(run) == before
    refine("run", path, "--out", run)


def test_a_refused_shard_run_leaves_the_shards_mark_as_it_was(tmp_path):
    path = pipeline_file(tmp_path, quickstart_input(tmp_path, "jsonl"))
    run = tmp_path / "run"
    for i in (0, 1):
        refine("run", path, "--shard", f"{i}/2", "--out", run)
    refine("merge", run)
    marker = run / "shards" / "0000-of-0002" / "shard.json"
    before = marker.read_bytes()
    assert json.loads(before)["complete"] is True
    changed = tmp_path / "changed.toml"
    changed.write_text(path.read_text().replace("required = false", "required = true"))
    assert "another pipeline configuration" in refine("run", changed, "--shard", "0/2", "--out", run, code=1)
    assert marker.read_bytes() == before
    refine("report", run)  # the merged folder still reads: no shard changed since the merge


def jsonl_pipeline(tmp_path, lines):
    (tmp_path / "in.jsonl").write_text(lines)
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[output]\ndir = "r"\n')
    return tmp_path / "p.toml"


def test_a_jsonl_last_line_cut_short_is_left_unread_and_read_once_it_is_whole(tmp_path):
    rows = [json.dumps(xlam_row(r)) for r in "abc"]
    path = jsonl_pipeline(tmp_path, rows[0] + "\n" + rows[1] + "\n" + rows[2][:25])  # still being written
    stopped = " ".join(refine("run", path, code=1).split())
    assert "input not read to the end" in stopped and "line 3, the file's last, ends before its JSON does" in stopped
    assert not (tmp_path / "r" / "quarantined.jsonl").read_text()
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["complete"] is False and "in.jsonl:3" in summary["stopped"]
    (tmp_path / "in.jsonl").write_text("\n".join(rows) + "\n")  # the writer finishes the line
    assert "resumed: 2 records were already done" in refine("run", path)
    assert [r["id"] for r in read_jsonl(tmp_path / "r" / "kept.jsonl")] == list("abc")


def test_a_jsonl_last_line_that_is_not_json_for_another_reason_is_quarantined(tmp_path):
    rows = [json.dumps(xlam_row(r)) for r in "ab"]
    path = jsonl_pipeline(tmp_path, rows[0] + "\n" + rows[1] + "\n" + '{"id": "c", oops}')  # no newline after it
    refine("run", path)
    (bad,) = read_jsonl(tmp_path / "r" / "quarantined.jsonl")
    assert bad["source"]["line"] == 3 and "not JSON" in bad["error"]


def test_a_jsonl_input_whose_last_line_had_no_newline_grows_by_whole_lines(tmp_path):
    rows = [json.dumps(xlam_row(r)) for r in "abc"]
    path = jsonl_pipeline(tmp_path, rows[0] + "\n" + rows[1])  # a whole last line, no newline after it
    refine("run", path)
    (tmp_path / "in.jsonl").write_text("\n".join(rows) + "\n")
    refine("run", path)
    assert [r["id"] for r in read_jsonl(tmp_path / "r" / "kept.jsonl")] == list("abc")


def test_records_name_their_input_the_same_whatever_folder_the_run_is_resumed_from(tmp_path, monkeypatch):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "records.jsonl").write_bytes((QUICKSTART / "records.jsonl").read_bytes())
    (folder / "p.toml").write_text('[input]\npath = "records.jsonl"\n[output]\ndir = "r"\n')
    monkeypatch.chdir(folder)
    refine("run", "p.toml", "--limit", "20")
    monkeypatch.chdir(tmp_path)
    refine("run", "work/p.toml")
    names = ("kept", "discarded", "quarantined")
    lines = [line for name in names for line in read_jsonl(folder / "r" / f"{name}.jsonl")]
    assert len(lines) > 20 and {line["source"]["file"] for line in lines} == {"records.jsonl"}


def test_the_commands_a_refusal_offers_give_the_input_the_folder_was_started_with(tmp_path):
    path = pipeline_file(tmp_path, quickstart_input(tmp_path, "jsonl"))
    other = write_jsonl(tmp_path / "other.jsonl", [xlam_row(f"o{i}") for i in range(8)])
    run, sharded = tmp_path / "run", tmp_path / "sharded"
    refine("run", path, "--out", run, "--input", other)
    (run / "summary.json").unlink()  # as a run killed before its end leaves it
    refused = " ".join(refine("report", run, code=1).split())
    assert f"Run `refine run {path.resolve()} --input {other} --out {run}` again to finish it" in refused
    refine("run", path, "--shard", "0/2", "--out", sharded, "--input", other)
    refused = " ".join(refine("merge", sharded, code=1).split())
    assert f"`refine run {path.resolve()} --input {other} --shard 1/2 --out {sharded}`" in refused


def test_a_shard_folder_holding_another_shards_part_is_named_as_such(tmp_path):
    import shutil

    path = pipeline_file(tmp_path, quickstart_input(tmp_path, "jsonl"))
    run = tmp_path / "run"
    for i in (0, 1):
        refine("run", path, "--shard", f"{i}/2", "--out", run)
    shutil.rmtree(run / "shards" / "0001-of-0002")
    shutil.copytree(run / "shards" / "0000-of-0002", run / "shards" / "0001-of-0002")
    refused = " ".join(refine("merge", run, code=1).split())
    assert "the folder of shard 1/2" in refused and "holds the part of shard 0/2" in refused
    assert "another version of the input" not in refused


def test_a_pipeline_without_classification_discards_unreadable_answers_and_counts_them_apart(tmp_path):
    (tmp_path / "in.jsonl").write_bytes((QUICKSTART / "records.jsonl").read_bytes())
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[output]\ndir = "r"\n[[stages]]\nname = "format"\n')
    refine("run", tmp_path / "p.toml")
    kept = read_jsonl(tmp_path / "r" / "kept.jsonl")
    assert kept and all(r["answer"] is not None and r["target"] for r in kept)
    dropped = [r for r in read_jsonl(tmp_path / "r" / "discarded.jsonl") if r["stage"] == "input"]
    assert [r["id"] for r in dropped] == ["malformed-answer-json", "malformed-answer-no-name"]
    assert {r["reason"] for r in dropped} == {"malformed_answer"}
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["stages"]["input"]["records_discarded"] == {"malformed_answer": 2}
    refine("export", tmp_path / "r", "--format", "funreason", "-o", tmp_path / "train.jsonl")
    assert "input" in refine("report", tmp_path / "r")


def test_a_shard_started_over_is_marked_incomplete_before_its_folder_is_cleared(tmp_path, monkeypatch):
    from funreason_refine import engine

    path = pipeline_file(tmp_path, quickstart_input(tmp_path, "jsonl"))
    run = tmp_path / "run"
    refine("run", path, "--shard", "0/2", "--out", run)
    marker = run / "shards" / "0000-of-0002" / "shard.json"
    assert json.loads(marker.read_text())["complete"] is True

    def stopped(*args):
        raise KeyboardInterrupt  # Ctrl-C while the input is hashed, after the folder was cleared

    monkeypatch.setattr(engine, "check_input", stopped)
    assert "Aborted" in refine("run", path, "--shard", "0/2", "--out", run, "--fresh", code=1)
    assert json.loads(marker.read_text())["complete"] is False
    assert not (run / "shards" / "0000-of-0002" / "kept.jsonl").exists()


def test_the_input_is_named_as_the_pipeline_reaches_it(tmp_path):
    from funreason_refine.config import load_pipeline

    real = tmp_path / "elsewhere"
    real.mkdir()
    write_jsonl(real / "in.jsonl", [xlam_row("a")])
    (tmp_path / "data").symlink_to(real)  # a folder linked in: named as the pipeline reaches it
    write_jsonl(tmp_path / "..odd.jsonl", [xlam_row("b")])  # a name that starts with two dots is inside
    names = {}
    for given in ("data/in.jsonl", "..odd.jsonl", str(real / "in.jsonl"), "../outside.jsonl"):
        if given.startswith("../"):
            write_jsonl(tmp_path.parent / "outside.jsonl", [xlam_row("c")])
        (tmp_path / "p.toml").write_text(f'[input]\npath = "{given}"\n')
        names[given] = load_pipeline(tmp_path / "p.toml").input_name
    assert names == {
        "data/in.jsonl": "data/in.jsonl",
        "..odd.jsonl": "..odd.jsonl",
        str(real / "in.jsonl"): "elsewhere/in.jsonl",
        "../outside.jsonl": str(tmp_path.parent / "outside.jsonl"),
    }
