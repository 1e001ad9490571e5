"""[input] path = "hf://datasets/...": read through the Hub's file system, pinned to one commit per run folder."""

import json
import sys

import polars as pl
import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.errors import InputError
from funreason_refine.readers import InputStream
from funreason_refine.readers.parts import split_input
from tests.conftest import QUICKSTART, read_jsonl, refine, write_jsonl
from tests.hub.conftest import jsonl, xlam_rows

OUTCOMES = ("kept", "discarded", "quarantined", "errors")


def pipeline(tmp_path, url, extra="", stages='[[stages]]\nname = "format"\n'):
    path = tmp_path / "pipeline.toml"
    path.write_text(f'[input]\npath = "{url}"\n{extra}\n[output]\ndir = "run"\n{stages}', encoding="utf-8")
    return path


def ids(folder, outcome="kept"):
    return [line["id"] for line in read_jsonl(folder / f"{outcome}.jsonl")]


def data_requests(hub):
    """The requests for the dataset's files and API (not huggingface_hub's own, such as its agent registry)."""
    return [r for r in hub.log if "/org/ds" in r["path"]]


def test_a_glob_of_jsonl_files_is_read_in_name_order_and_the_commit_is_recorded(tmp_path, hub):
    rows = xlam_rows("r", 6)
    repo = hub.dataset("org/ds", {"data/b.jsonl": jsonl(*rows[3:]), "data/a.jsonl": jsonl(*rows[:3]), "x.md": b""})
    refine("run", pipeline(tmp_path, "hf://datasets/org/ds/data/*.jsonl"))
    run = tmp_path / "run"
    assert ids(run) == [f"r{i}" for i in range(6)]
    commit = repo.refs["main"]
    recorded = json.loads((run / "run.json").read_text())["config"]["input"]
    assert recorded["path"] == "hf://datasets/org/ds/data/*.jsonl" and recorded["commit"] == commit
    summary = json.loads((run / "summary.json").read_text())
    assert summary["input"]["path"] == f"hf://datasets/org/ds@{commit}/data/*.jsonl"
    # Lines are numbered on across the files, as if they were one.
    assert [line["source"]["line"] for line in read_jsonl(run / "kept.jsonl")] == [1, 2, 3, 4, 5, 6]
    assert read_jsonl(run / "kept.jsonl")[0]["source"]["file"] == f"hf://datasets/org/ds@{commit}/data/*.jsonl"
    # Every file was read at the commit, in ranges (HfFileSystem's ranged GETs), never at "main".
    reads = [r for r in data_requests(hub) if "/resolve/" in r["path"]]
    assert reads and all(f"/resolve/{commit}/data/" in r["path"] and r["range"] for r in reads)


def test_a_resumed_run_reads_the_commit_it_started_on_though_the_branch_moved(tmp_path, hub):
    repo = hub.dataset("org/ds", {"train.jsonl": jsonl(*xlam_rows("old", 5))})
    first = repo.refs["main"]
    path = pipeline(tmp_path, "hf://datasets/org/ds/train.jsonl")
    refine("run", path, "--limit", "2")
    repo.commit({"train.jsonl": jsonl(*xlam_rows("new", 8))})
    hub.log.clear()
    output = refine("run", path)
    assert "resumed: 2 records" in output
    assert ids(tmp_path / "run") == [f"old{i}" for i in range(5)]
    assert all(repo.refs["main"] not in r["path"] for r in data_requests(hub))
    assert not any(r["path"].endswith("/org/ds") for r in data_requests(hub))  # the revision was not asked again
    # A new run folder reads the branch as it is now.
    refine("run", path, "--out", tmp_path / "again")
    assert ids(tmp_path / "again") == [f"new{i}" for i in range(8)]
    assert json.loads((tmp_path / "again/run.json").read_text())["config"]["input"]["commit"] != first


def test_worker_processes_read_the_pinned_commit(tmp_path, hub):
    repo = hub.dataset("org/ds", {"train.jsonl": jsonl(*xlam_rows("old", 6))})
    path = pipeline(tmp_path, "hf://datasets/org/ds/train.jsonl")
    refine("run", path, "--limit", "1")
    repo.commit({"train.jsonl": jsonl(*xlam_rows("new", 6))})
    refine("run", path, "--workers", "2")
    assert ids(tmp_path / "run") == [f"old{i}" for i in range(6)]


def quickstart_files(container):
    """The quickstart sample (every reason code, unreadable lines) as two files of one container."""
    lines = (QUICKSTART / "records.jsonl").read_bytes().split(b"\n")
    if container == "jsonl":
        # the first file ends without a newline: its last line still ends there
        return {"data/part-0.jsonl": b"\n".join(lines[:25]), "data/part-1.jsonl": b"\n".join(lines[25:])}
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            continue
    if container == "json":
        return {f"data/part-{i}.json": json.dumps(parsed[i * 30 : (i + 1) * 30], indent=1).encode() for i in (0, 1)}
    rows = [r for r in parsed if isinstance(r, dict) and all(isinstance(v, str) for v in r.values())]
    files = {}
    for i in (0, 1):
        buffer = __import__("io").BytesIO()
        pl.from_dicts(rows[i * 25 : (i + 1) * 25]).write_parquet(buffer, row_group_size=4)
        files[f"data/part-{i}.parquet"] = buffer.getvalue()
    return files


@pytest.mark.parametrize("container", ["jsonl", "json", "parquet"])
def test_shards_split_the_hub_files_as_local_ones_and_merge_to_the_one_process_run(tmp_path, hub, container):
    repo = hub.dataset("org/ds", quickstart_files(container))
    text = (QUICKSTART / "pipeline.toml").read_text()
    text = text.replace('path = "records.jsonl"', 'path = "hf://datasets/org/ds/data/part-*"')
    (tmp_path / "pipeline.toml").write_text(text)
    (tmp_path / "eval_set.json").write_bytes((QUICKSTART / "eval_set.json").read_bytes())
    path = tmp_path / "pipeline.toml"
    refine("run", path, "--out", tmp_path / "one")
    refine("run", path, "--shard", "1/3", "--out", tmp_path / "sharded")
    repo.commit({"data/part-0.jsonl": b"{}\n"})  # the dataset moves on between the shards
    for i in (0, 2):
        refine("run", path, "--shard", f"{i}/3", "--out", tmp_path / "sharded")
    refine("merge", tmp_path / "sharded")
    for outcome in OUTCOMES:
        one, merged = (tmp_path / "one" / f"{outcome}.jsonl", tmp_path / "sharded" / f"{outcome}.jsonl")
        assert merged.read_bytes() == one.read_bytes(), outcome
    summary = json.loads((tmp_path / "one/summary.json").read_text())
    assert summary["outcomes"]["kept"] > 10 and summary["outcomes"]["quarantined"] >= 1


def test_jsonl_parts_of_joined_files_cover_the_input_once(tmp_path, hub):
    rows = xlam_rows("r", 40)
    hub.dataset("org/ds", {f"d/{i}.jsonl": jsonl(*rows[i * 10 : (i + 1) * 10]) for i in range(4)})
    loaded = load_pipeline(pipeline(tmp_path, "hf://datasets/org/ds/d/*.jsonl"))
    whole = [(index, line) for index, line, _, _ in InputStream.open(loaded.input).raw_items()]
    seen, read_bytes = [], 0
    for i in range(3):
        part = split_input(loaded.input.path, i, 3, loaded.input.max_record_bytes)
        read = []
        stream = InputStream.open(loaded.input)
        seen += [(index, line) for index, line, _, _ in stream.raw_items(on_bytes=read.append, part=part)]
        assert sum(read) == part.end - part.start
        read_bytes += sum(read)
    assert seen == whole and len(whole) == 40
    assert read_bytes == loaded.input.path.stat().st_size


def test_bfcl_questions_on_the_hub_take_their_answers_from_possible_answer_beside_them(tmp_path, hub):
    bfcl = QUICKSTART.parent.parent / "tests" / "data" / "bfcl"
    name = "BFCL_v4_simple_python.json"
    hub.dataset(
        "org/ds",
        {name: (bfcl / name).read_bytes(), f"possible_answer/{name}": (bfcl / "possible_answer" / name).read_bytes()},
    )
    refine("run", pipeline(tmp_path, f"hf://datasets/org/ds/{name}", 'format = "bfcl"', stages=""))
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["input"]["format"] == "bfcl" and summary["outcomes"]["kept"] > 0


def test_a_private_dataset_is_read_with_the_token_of_the_environment_which_never_reaches_the_run_folder(
    tmp_path, hub, monkeypatch
):
    hub.dataset("org/ds", {"train.jsonl": jsonl(*xlam_rows("r", 3))}, private=True)
    path = pipeline(tmp_path, "hf://datasets/org/ds/train.jsonl")
    output = refine("run", path, code=1)
    assert "error: the dataset org/ds was not found" in output and "set HF_TOKEN" in output
    monkeypatch.setenv("HF_TOKEN", hub.token)
    refine("run", path)
    assert ids(tmp_path / "run") == ["r0", "r1", "r2"]
    assert all(r["authorization"] == f"Bearer {hub.token}" for r in data_requests(hub)[-3:])
    for file in (tmp_path / "run").iterdir():
        assert hub.token not in file.read_text(errors="replace"), file.name


@pytest.mark.parametrize(
    ("url", "flags", "message"),
    [
        ("hf://datasets/org/nope/train.jsonl", {}, "the dataset org/nope was not found on http://127.0.0.1"),
        ("hf://datasets/org/ds@v9/train.jsonl", {}, "the dataset org/ds has no revision 'v9'"),
        ("hf://datasets/org/ds/*.parquet", {}, "no file of hf://datasets/org/ds/*.parquet matches"),
        ("hf://datasets/org/ds/train.jsonl", {"gated": True}, "the dataset org/ds is gated: accept its conditions at"),
        ("hf://models/org/ds/train.jsonl", {}, "only dataset repositories can be read"),
        ("hf://datasets/org/d s/train.jsonl", {}, "'org/d s' is not a dataset name: write ORG/NAME"),  # a traceback
    ],
)
def test_an_input_that_cannot_be_read_is_a_one_line_error_saying_what_to_do(tmp_path, hub, url, flags, message):
    hub.dataset("org/ds", {"train.jsonl": jsonl(*xlam_rows("r", 2))}, **flags)
    output = refine("run", pipeline(tmp_path, url), code=1)
    assert message in output
    assert "Traceback" not in output and len(output.strip().splitlines()) <= 2


def test_without_the_hub_extra_the_error_says_how_to_install_it(tmp_path, hub, monkeypatch):
    hub.dataset("org/ds", {"train.jsonl": jsonl(*xlam_rows("r", 2))})
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    output = refine("run", pipeline(tmp_path, "hf://datasets/org/ds/train.jsonl"), code=1)
    assert "pip install 'funreason-refine[hub]'" in output


def test_a_revision_in_the_path_is_resolved_and_written_back_as_the_commit(tmp_path, hub):
    repo = hub.dataset("org/ds", {"train.jsonl": jsonl(*xlam_rows("a", 2))})
    tagged = repo.refs["main"]
    repo.refs["v1"] = tagged
    repo.commit({"train.jsonl": jsonl(*xlam_rows("b", 2))})
    loaded = load_pipeline(pipeline(tmp_path, "hf://datasets/org/ds@v1/train.jsonl"))
    assert loaded.input.path.commit == tagged
    assert loaded.config["input"]["path"] == "hf://datasets/org/ds@v1/train.jsonl"
    assert str(loaded.input.path) == f"hf://datasets/org/ds@{tagged}/train.jsonl"
    with pytest.raises(InputError, match="no file of"):
        load_pipeline(pipeline(tmp_path, "hf://datasets/org/ds@v1/missing.jsonl"))


def test_a_retry_redoes_its_records_from_the_commit_the_run_read(tmp_path, hub, flaky_stage):
    flaky_stage.add("old2")
    repo = hub.dataset("org/ds", {"train.jsonl": jsonl(*xlam_rows("old", 4))})
    refine("run", pipeline(tmp_path, "hf://datasets/org/ds/train.jsonl", stages='[[stages]]\nname = "flaky"\n'), code=3)
    repo.commit({"train.jsonl": jsonl(*xlam_rows("new", 4))})
    flaky_stage.clear()
    refine("retry", tmp_path / "run")
    assert sorted(ids(tmp_path / "run")) == [f"old{i}" for i in range(4)]


def test_a_hub_input_given_on_the_command_line_is_read_and_pinned(tmp_path, hub):
    repo = hub.dataset("org/ds", {"train.jsonl": jsonl(*xlam_rows("hub", 3))})
    write_jsonl(tmp_path / "local.jsonl", xlam_rows("local", 2))
    path = pipeline(tmp_path, "local.jsonl")
    refine("run", path, "--input", "hf://datasets/org/ds/train.jsonl")
    run = tmp_path / "run"
    assert ids(run) == ["hub0", "hub1", "hub2"]
    run_file = json.loads((run / "run.json").read_text())
    assert run_file["input"] == "hf://datasets/org/ds/train.jsonl"
    assert run_file["config"]["input"]["commit"] == repo.refs["main"]


def test_a_compressed_file_on_the_hub_is_refused_as_a_local_one_is(tmp_path, hub):
    # train.jsonl.gz was read as lines of garbage: every "record" quarantined, or the format not told.
    import gzip

    repo = hub.dataset("org/ds", {"data/train.jsonl.gz": gzip.compress(jsonl(*xlam_rows("r", 20)))})
    for extra in ("", 'format = "xlam"'):
        output = refine("run", pipeline(tmp_path, "hf://datasets/org/ds/data/*.gz", extra), code=1)
        commit = repo.refs["main"]
        assert f"hf://datasets/org/ds@{commit}/data/train.jsonl.gz is gzip-compressed" in " ".join(output.split())
        assert f"hf download org/ds data/train.jsonl.gz --repo-type dataset --revision {commit}" in " ".join(
            output.split()
        )
        assert not (tmp_path / "run" / "quarantined.jsonl").exists()


def test_a_folder_of_compressed_files_on_the_hub_is_refused_saying_so(tmp_path, hub):
    # It said "no file of hf://datasets/org/ds/data matches" of a folder whose page lists train.jsonl.gz.
    import gzip

    repo = hub.dataset("org/ds", {"data/train.jsonl.gz": gzip.compress(jsonl(*xlam_rows("r", 3))), "README.md": b"x"})
    output = " ".join(refine("run", pipeline(tmp_path, "hf://datasets/org/ds/data"), code=1).split())
    assert f"hf://datasets/org/ds@{repo.refs['main']}/data/train.jsonl.gz is gzip-compressed" in output
    assert "hf download org/ds data/train.jsonl.gz" in output and not (tmp_path / "run").exists()


def test_the_hubs_parquet_conversion_is_read_at_refs_convert_parquet_as_the_hub_writes_it(tmp_path, hub):
    import io

    repo = hub.dataset("org/ds", {"train.jsonl": jsonl(*xlam_rows("r", 5))})
    rows = [{k: v if isinstance(v, str) else json.dumps(v) for k, v in row.items()} for row in xlam_rows("p", 4)]
    buffer = io.BytesIO()
    pl.from_dicts(rows).write_parquet(buffer)
    commit = repo.commit({"default/train/0000.parquet": buffer.getvalue()}, branch="refs/convert/parquet")
    refine(
        "run",
        pipeline(tmp_path, "hf://datasets/org/ds@refs/convert/parquet/default/train/*.parquet", 'format = "xlam"'),
    )
    assert ids(tmp_path / "run") == ["p0", "p1", "p2", "p3"]
    assert json.loads((tmp_path / "run/run.json").read_text())["config"]["input"]["commit"] == commit


def test_a_resume_whose_commit_the_dataset_no_longer_has_says_so_and_what_to_do(tmp_path, hub):
    from huggingface_hub import HfFileSystem

    # History squashed (or force-pushed) since the run: it said "no revision None: write a branch ... after '@';
    # run the same command again", none of which was so.
    repo = hub.dataset("org/ds", {"train.jsonl": jsonl(*xlam_rows("old", 5))})
    first = repo.refs["main"]
    path = pipeline(tmp_path, "hf://datasets/org/ds/train.jsonl")
    refine("run", path, "--limit", "2")
    repo.commit({"train.jsonl": jsonl(*xlam_rows("new", 3))})
    del repo.commits[first]
    HfFileSystem.clear_instance_cache()  # as a new process finds it: its listing too is gone
    output = " ".join(refine("run", path, code=1).split())
    assert f"the dataset org/ds no longer has commit {first}, which this run folder reads" in output
    assert "give a new --out" in output and "None" not in output and "run the same command again" not in output
    refine("run", path, "--out", tmp_path / "now")
    assert ids(tmp_path / "now") == ["new0", "new1", "new2"]


def test_a_folder_that_takes_a_test_split_beside_the_train_split_says_so(tmp_path, hub):
    # A Hub dataset's data/ folder holds its splits: its test split was read as records to train on, without a word.
    rows = xlam_rows("r", 6)
    files = {
        "data/train-00000-of-00002.jsonl": jsonl(*rows[:2]),
        "data/train-00001-of-00002.jsonl": jsonl(*rows[2:4]),
        "data/test-00000-of-00001.jsonl": jsonl(*rows[4:]),
    }
    hub.dataset("org/ds", files)
    said = "hf://datasets/org/ds/data matches 3 files, of which 1 named as a held-out split (test, validation)"
    for command in ("validate", "run"):
        output = " ".join(refine(command, pipeline(tmp_path, "hf://datasets/org/ds/data")).split())
        assert said in output and "data/test-00000-of-00001.jsonl. If they are not meant" in output
    assert "held-out" not in refine(
        "run", pipeline(tmp_path, "hf://datasets/org/ds/data/train-*"), "--out", tmp_path / "again"
    )
