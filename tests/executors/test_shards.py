"""Shards any scheduler can run: each refines its part of the input; merged, they are one process's run."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.readers import InputStream
from funreason_refine.readers.parts import split_input
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.conftest import QUICKSTART, refine, write_jsonl, xlam_row

OUTCOMES = ("kept", "discarded", "quarantined", "errors")
YES = "<judge>True</judge><reason>ok</reason>"
REFINE = "import sys; from funreason_refine.cli import main; sys.argv = ['refine', *sys.argv[1:]]; main()"


def outcome_bytes(folder):
    return {k: (folder / f"{k}.jsonl").read_bytes() for k in OUTCOMES}


def quickstart_input(tmp_path, container):
    """The quickstart records (every reason code, unreadable lines, a record over the size limit) as
    JSONL, as a JSON array of the lines that parse, or as Parquet of those whose fields are all strings."""
    lines = (QUICKSTART / "records.jsonl").read_bytes().split(b"\n")
    if container == "jsonl":
        path = tmp_path / "in.jsonl"
        path.write_bytes(b"\n".join(lines[:20] + [b"", b"   "] + lines[20:]))  # blank lines count no record
        return path
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            continue
    if container == "json":
        path = tmp_path / "in.json"
        path.write_text(json.dumps(parsed, indent=1))
        return path
    path = tmp_path / "in.parquet"
    rows = [r for r in parsed if isinstance(r, dict) and all(isinstance(v, str) for v in r.values())]
    pl.from_dicts(rows).write_parquet(path, row_group_size=4)
    return path


def pipeline_file(tmp_path, input_path, extra=""):
    text = (QUICKSTART / "pipeline.toml").read_text().replace('path = "records.jsonl"', f'path = "{input_path.name}"')
    path = tmp_path / "pipeline.toml"
    path.write_text(extra + text)
    (tmp_path / "eval_set.json").write_bytes((QUICKSTART / "eval_set.json").read_bytes())  # the quickstart's [audit]
    return path


@pytest.mark.parametrize("container", ["jsonl", "json", "parquet"])
def test_three_shards_run_apart_then_merged_are_byte_for_byte_the_one_process_run(tmp_path, container):
    path = pipeline_file(tmp_path, quickstart_input(tmp_path, container))
    refine("run", path, "--out", tmp_path / "one")
    for i in (2, 0, 1):  # any order, as a scheduler runs them
        assert f"shard {i}/3 complete" in refine("run", path, "--shard", f"{i}/3", "--out", tmp_path / "sharded")
    refine("merge", tmp_path / "sharded")
    assert outcome_bytes(tmp_path / "sharded") == outcome_bytes(tmp_path / "one")
    one, merged = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("one", "sharded"))
    assert merged["outcomes"] == one["outcomes"] and merged["stages"] == one["stages"]
    assert merged["dataset"] == one["dataset"] and merged["dataset"]["dropped"]  # audited once, at the merge
    assert [s["records"] for s in merged["shards"]] == [
        json.loads((tmp_path / f"sharded/shards/000{i}-of-0003/shard.json").read_text())["part"]["records"]
        for i in range(3)
    ]
    assert sum(s["records"] for s in merged["shards"]) == one["input"]["records"]


def test_shards_that_each_read_one_format_merge_to_the_formats_of_the_one_process_run(tmp_path):
    # A shard listed its input's formats only when it met more than one: xLAM rows in shard 0 and chats in shard 1
    # merged to a summary without input.formats, where one process lists both. A split into one kept "shard".
    xlam = xlam_row("x", cot="get_weather for Paris")
    chat = {"id": "c", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    write_jsonl(tmp_path / "in.jsonl", [xlam] * 4 + [chat] * 9)
    assert split_input(tmp_path / "in.jsonl", 1, 2, 16384).first_index == 4  # xLAM rows, then chats
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n')
    refine("run", tmp_path / "p.toml", "--out", tmp_path / "one")
    for i in (0, 1):
        refine("run", tmp_path / "p.toml", "--shard", f"{i}/2", "--out", tmp_path / "two")
    refine("run", tmp_path / "p.toml", "--shard", "0/1", "--out", tmp_path / "whole")
    for folder in ("two", "whole"):
        refine("merge", tmp_path / folder)
    one, two, whole = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("one", "two", "whole"))
    assert one["input"]["formats"] == ["xlam", "openai"]
    assert two["input"] == whole["input"] == one["input"]
    assert "shard" not in whole and "shard" not in two


def test_status_says_whether_complete_shards_are_merged_as_they_are_now(tmp_path):
    # With every shard complete it said "3 of 3 shards complete" whether the merge had run, was killed half-way or
    # was out of date: only `refine report` then said that the folder was not merged.
    path = pipeline_file(tmp_path, quickstart_input(tmp_path, "jsonl"))
    run = tmp_path / "sharded"
    for i in range(3):
        refine("run", path, "--shard", f"{i}/3", "--out", run)
    assert f"not merged yet: run `refine merge {run}` first" in " ".join(refine("status", run).split())
    refine("merge", run)
    assert f"merged into {run}: its summary.json" in " ".join(refine("status", run).split())
    (run / "summary.json").unlink()  # what a merge killed half-way leaves (it removes it first)
    assert f"not merged yet: run `refine merge {run}` first" in " ".join(refine("status", run).split())


def test_jsonl_shards_read_only_their_own_bytes_and_number_records_as_the_whole_file(tmp_path):
    rows = [json.dumps(xlam_row(f"r{i}", query="q" * (i % 7) * 40)).encode() for i in range(40)]
    rows[9] = b"   "  # a blank line: no record, but a line
    rows[23] = b"x" * 3000  # over the size limit: a record (quarantined)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    whole = InputStream(path, "xlam", max_record_bytes=2048)
    expected = [(index, line) for index, line, _, _ in whole.raw_items()]
    seen, covered = [], []
    for i in range(4):
        part = split_input(path, i, 4, 2048)
        read = []
        stream = InputStream(path, "xlam", max_record_bytes=2048)
        seen += [(index, line) for index, line, _, _ in stream.raw_items(on_bytes=read.append, part=part)]
        assert sum(read) == part.end - part.start  # its own bytes, not one more
        assert stream.count == part.records
        covered.append((part.start, part.end))
    assert seen == expected
    assert covered[0][0] == 0 and covered[-1][1] == path.stat().st_size
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:], strict=False))
    assert all(path.read_bytes()[start - 1 : start] == b"\n" for start, _ in covered[1:])


def judged_pipeline(tmp_path, server, rows, judge="", retries=0):
    write_jsonl(tmp_path / "in.jsonl", rows)
    path = tmp_path / "pipeline.toml"
    path.write_text(
        f'[input]\npath = "in.jsonl"\n[output]\ndir = "run"\n[judge]\nmodel = "openai/fake-judge"\n'
        f'api_base = "{server.api_base}"\ntimeout = 2\nmax_retries = {retries}\n{judge}\n'
    )
    return path


def judged_rows(n):
    return [xlam_row(str(i), cot="get_weather for Paris", query=f"Weather in Paris, item {i}?") for i in range(n)]


def rejecting(request):
    no = "<judge>False</judge><reason>no</reason>"
    return Reply(text=no if "item 1?" in request.prompt or "item 2" in request.prompt else YES)


def test_judged_shards_merged_equal_the_one_process_run_and_add_up_its_judge_calls(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeLLM(rejecting) as server:
        path = judged_pipeline(tmp_path, server, judged_rows(30))
        refine("run", path, "--out", tmp_path / "one")
        for i in range(3):
            refine("run", path, "--shard", f"{i}/3")
        merged_output = refine("merge", tmp_path / "run")
    assert "merged 3 shards" in merged_output
    assert outcome_bytes(tmp_path / "run") == outcome_bytes(tmp_path / "one")
    one, merged = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("one", "run"))
    # Every question is asked or answered from the cache, by one process as by the shards; which of the
    # two depends on timing (two records asking the same prompt at once both ask it) and on the cache
    # each shard has of its own.
    asked = [s["judge"]["calls"] + s["judge"]["cached"] for s in (one, merged)]
    assert asked[0] == asked[1] > 0
    assert merged["stages"] == one["stages"]
    [server_row] = merged["judge"]["endpoints"]["openai/fake-judge"]  # each shard's calls to it, added up
    assert server_row["api_base"] == server.api_base and server_row["calls"] == merged["judge"]["calls"]
    assert (tmp_path / "run/shards/0001-of-0003/judge_cache.sqlite").exists()  # each shard asks and caches alone


def test_a_killed_shard_is_refused_by_merge_then_resumes_and_the_merge_equals_one_process(tmp_path):
    # The quickstart records 300 times over: a shard takes about a second, long enough to be killed mid-run.
    (tmp_path / "in.jsonl").write_bytes((QUICKSTART / "records.jsonl").read_bytes() * 300)
    path = pipeline_file(tmp_path, tmp_path / "in.jsonl")
    run = tmp_path / "run"
    for i in (0, 2):
        refine("run", path, "--shard", f"{i}/3", "--out", run)
    shard = run / "shards/0001-of-0003"
    proc = subprocess.Popen(
        [sys.executable, "-c", REFINE, "run", path, "--shard", "1/3", "--out", run, "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (shard.is_dir() and _lines(shard) >= 100):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done, records = _lines(shard), json.loads((shard / "shard.json").read_text())["part"]["records"]
    assert 100 <= done < records
    refused = CliRunner().invoke(main, ["merge", str(run)])
    assert refused.exit_code == 1
    assert f"1 of 3 shards of {run} are not complete: 1/3 ({done} of {records} records done)" in refused.output
    assert f"`refine run {path} --shard 1/3 --out {run}`" in refused.output
    status = refine("status", run)
    assert "interrupted" in status and f"{done}/{records}" in status and "2 of 3 shards complete" in status
    assert "1 interrupted (no process is writing it): run it again to resume" in " ".join(status.split())
    for command in (["report"], ["audit"], ["export", "--format", "funreason", "-o", tmp_path / "x.jsonl"]):
        message = CliRunner().invoke(main, [command[0], str(run), *map(str, command[1:])]).output
        assert f"not merged yet: run `refine merge {run}` first" in message
    resumed = refine("run", path, "--shard", "1/3", "--out", run)
    assert f"resumed: {done} records were already done" in resumed
    refine("merge", run)
    refine("run", path, "--out", tmp_path / "one")
    assert outcome_bytes(run) == outcome_bytes(tmp_path / "one")
    assert "Funnel" in refine("report", run)


def _lines(folder):
    return sum((folder / f"{k}.jsonl").read_bytes().count(b"\n") for k in OUTCOMES if (folder / f"{k}.jsonl").exists())


def test_retry_of_a_sharded_run_redoes_each_shards_errors_then_merges_to_the_healthy_run(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    down = {"yes": True}

    def flaky(request):
        if down["yes"] and ("item 4?" in request.prompt or "item 17?" in request.prompt):
            return Reply(status=500)
        return YES

    with FakeLLM(flaky) as server:
        path = judged_pipeline(tmp_path, server, judged_rows(24))
        for i, code in ((0, 3), (1, 0), (2, 3)):  # records 4 and 17 fail in shards 0 and 2
            refine("run", path, "--shard", f"{i}/3", code=code)
        failed = refine("merge", tmp_path / "run", code=3)
        assert f"Fix the cause, then run `refine retry {tmp_path / 'run'}`" in failed
        assert "errors" in refine("status", tmp_path / "run")
        down["yes"] = False
        retried = refine("retry", tmp_path / "run")
        assert "merged 3 shards" in retried
        refine("run", path, "--out", tmp_path / "one")
    assert (tmp_path / "run/errors.jsonl").read_bytes() == b""
    assert outcome_bytes(tmp_path / "run") == outcome_bytes(tmp_path / "one")  # merged in input order


def test_retry_after_accept_changes_finds_the_same_input_by_a_relative_or_an_absolute_path(tmp_path, monkeypatch):
    """Paths are compared as the files they resolve to; messages name only flags their command takes."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.chdir(tmp_path)
    with FakeLLM(lambda r: Reply(status=500) if "item 2?" in r.prompt else YES) as down, FakeLLM(lambda r: YES) as up:
        judged_pipeline(tmp_path, down, judged_rows(6))
        refine("run", "pipeline.toml", "--workers", "1", code=3)
        # The server moved, the input is named by its absolute path: neither is a change of configuration.
        moved = Path("pipeline.toml").read_text().replace(down.api_base, up.api_base)
        Path("pipeline.toml").write_text(moved.replace('path = "in.jsonl"', f'path = "{tmp_path / "in.jsonl"}"'))
        refine("run", "pipeline.toml", code=3)  # nothing left to do but its errors
        # A change that is one (the judge's temperature): refused, then accepted.
        Path("pipeline.toml").write_text(Path("pipeline.toml").read_text() + "temperature = 0.1\n")
        refine("validate", "pipeline.toml", "--judge-model", "openai/other")
        changed = refine("run", "pipeline.toml", code=1)
        assert "temperature: 0.0 -> 0.1" in changed and "input" not in changed
        assert "refine run PIPELINE --fresh" in changed
        refine("run", "pipeline.toml", "--accept-changes", code=3)
        refine("retry", "run", "--workers", "1")
        said = refine("retry", str(tmp_path / "run")).splitlines()
        assert said[0].startswith("model: openai/fake-judge at http") and said[1].startswith("resumed")
    assert Path("run/errors.jsonl").read_bytes() == b"" and len(read_lines("run/kept.jsonl")) == 6


def read_lines(path):
    return Path(path).read_bytes().splitlines()


def test_shards_of_two_configurations_or_two_splits_and_one_process_runs_do_not_mix(tmp_path):
    path = pipeline_file(tmp_path, quickstart_input(tmp_path, "jsonl"))
    run, one = tmp_path / "run", tmp_path / "one"
    refine("run", path, "--shard", "0/2", "--out", run)
    path.write_text(path.read_text().replace("required = false", "required = true"))
    refine("run", path, "--shard", "1/2", "--out", run)
    refused = refine("merge", run, code=1)
    assert "shard(s) 1/2 of" in refused and "another pipeline configuration than shard 0/2" in refused
    assert "holds the shards of a split into 2" in refine("run", path, "--shard", "0/3", "--out", run, code=1)
    assert "holds a sharded run" in refine("run", path, "--out", run, code=1)
    refine("run", path, "--out", one)
    assert "holds a one-process run" in refine("run", path, "--shard", "0/2", "--out", one, code=1)
    assert "not a sharded run folder" in refine("retry", one, "--shard", "0/2", code=1)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shards", "4"], "--shards and --address go with --executor ray"),
        (["--executor", "ray"], "--executor ray needs --shards N"),
        (["--executor", "ray", "--shards", "2", "--shard", "0/2"], "--shard does not go with --executor ray"),
        (["--shard", "0/2", "--limit", "5"], "--limit takes the first N records of the whole input"),
        (["--shard", "2/2"], "shards of 2 are numbered 0 to 1"),
        (["--shard", "two"], "is not I/N"),
    ],
)
def test_shard_options_that_do_not_go_together_are_usage_errors(tmp_path, args, message):
    path = pipeline_file(tmp_path, quickstart_input(tmp_path, "jsonl"))
    result = CliRunner().invoke(main, ["run", str(path), *args])
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_ray_task_waits_for_its_shards_lock_to_lapse_then_runs_it(tmp_path, monkeypatch):
    """A task Ray runs again after its node died may find the dead node's lock (NFS): it waits, then resumes."""
    import threading

    from funreason_refine.executors import ray as ray_executor
    from funreason_refine.run_folder import FolderInUse, RunFolder

    path = pipeline_file(tmp_path, quickstart_input(tmp_path, "jsonl"))
    monkeypatch.setattr(ray_executor, "LOCK_POLL_SECONDS", 0.05)
    holder = RunFolder(tmp_path / "run/shards/0001-of-0002")
    holder.lock()
    task = (str(path), str(tmp_path / "run"), str(tmp_path), None, None, False, 1, 2)
    monkeypatch.setattr(ray_executor, "LOCK_WAIT_SECONDS", 0.2)
    with pytest.raises(FolderInUse, match="is in use by refine run"):
        ray_executor.shard_task(*task)
    monkeypatch.setattr(ray_executor, "LOCK_WAIT_SECONDS", 30)
    threading.Timer(0.3, holder.close).start()
    assert ray_executor.shard_task(*task) == {"shard": "1/2", "stopped": None, "errors": 0}
    assert json.loads((tmp_path / "run/shards/0001-of-0002/shard.json").read_text())["complete"]


def test_a_ray_cluster_that_cannot_be_reached_is_said_with_what_to_do(tmp_path, monkeypatch):
    """Ray's ConnectionError (no cluster at --address) came out as a traceback."""
    from types import SimpleNamespace

    from funreason_refine.executors import ray as ray_executor

    def init(address, log_to_driver):
        raise ConnectionError(f"Failed to connect to Ray cluster at {address}.")

    fake_ray = SimpleNamespace(is_initialized=lambda: False, init=init)
    monkeypatch.setattr(ray_executor, "_import_ray", lambda: fake_ray)
    path = pipeline_file(tmp_path, quickstart_input(tmp_path, "jsonl"))
    command = ["run", str(path), "--executor", "ray", "--shards", "2", "--address", "10.0.0.9:6379"]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    said = " ".join(result.output.split())
    assert "cannot reach the Ray cluster at --address 10.0.0.9:6379: Failed to connect" in said
    assert "ray start --head" in said and "leave --address out" in said and "No shard was run" in said


def test_a_ray_task_that_failed_is_said_with_what_it_met(tmp_path):
    """A task that raised KeyError('tools') was said as "1/2: 'tools'": the exception's type is said too."""
    from types import SimpleNamespace

    from funreason_refine.errors import InputError
    from funreason_refine.executors import ray as ray_executor
    from funreason_refine.executors.layout import Shard
    from funreason_refine.executors.progress import Watcher

    class RayTaskError(Exception):
        def __init__(self, cause):
            super().__init__(f"ray_executor.shard_task() failed, traceback ... {cause!r}")
            self.cause = cause

    causes = {"a": RayTaskError(KeyError("tools")), "b": RayTaskError(InputError("input file not found: in.jsonl"))}

    def get(ref):
        raise causes[ref]

    fake_ray = SimpleNamespace(
        wait=lambda refs, num_returns, timeout: (refs[:1], refs[1:]),
        get=get,
        exceptions=SimpleNamespace(RayError=RayTaskError),
    )
    pending = {"a": Shard(0, 2), "b": Shard(1, 2)}
    failures, stops, outages = ray_executor._wait(fake_ray, pending, Watcher(tmp_path, 2), None)
    assert failures == ["0/2: KeyError: 'tools'", "1/2: input file not found: in.jsonl"] and stops == outages == []


def test_shards_stopped_by_max_cost_on_ray_say_to_raise_it_not_that_they_failed(tmp_path, monkeypatch):
    """A shard that max_cost stopped was said to have failed, with "fix the cause"; it says what stopped it and
    to raise max_cost, which holds per shard."""
    from types import SimpleNamespace

    from funreason_refine.executors import ray as ray_executor

    stopped = "max_cost of $0.05 reached ($0.2400 spent)"
    fake_ray = SimpleNamespace(
        is_initialized=lambda: True,  # a Ray this process already joined: neither started nor shut down here
        remote=lambda **options: lambda task: SimpleNamespace(remote=lambda *args: args[-2]),
        wait=lambda refs, num_returns, timeout: (refs, []),
        get=lambda number: {"shard": f"{number}/2", "stopped": stopped if number else None, "errors": 0},
        exceptions=SimpleNamespace(RayError=RuntimeError),
    )
    monkeypatch.setattr(ray_executor, "_import_ray", lambda: fake_ray)
    path = pipeline_file(tmp_path, quickstart_input(tmp_path, "jsonl"))
    result = CliRunner().invoke(main, ["run", str(path), "--executor", "ray", "--shards", "2"])
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "failed" not in said and "fix the cause" not in said, said
    assert f"1 shard(s) stopped before the end of their part, so nothing was merged: 1/2: stopped: {stopped}" in said
    assert "Raise max_cost" in said and "max_cost holds per shard" in said


def test_a_judge_outage_stops_a_shard_cleanly_and_the_shard_resumes_once_the_judge_is_back(tmp_path, monkeypatch):
    import threading

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    answer = Reply(text=YES, delay=0.02)

    def dies_after_30(request):
        if len(server.requests) == 30:
            threading.Thread(target=server.kill, daemon=True).start()  # and never comes back
        return answer

    with FakeLLM(dies_after_30) as server:
        path = judged_pipeline(tmp_path, server, judged_rows(16), "outage_timeout = 1\nmax_concurrency = 2", 2)
        stopped = CliRunner().invoke(main, ["run", str(path), "--shard", "0/2"])
    assert stopped.exit_code == 4 and "no server answered" in stopped.output, stopped.output
    shard = tmp_path / "run/shards/0000-of-0002"
    assert not json.loads((shard / "shard.json").read_text())["complete"]
    assert (shard / "errors.jsonl").read_bytes() == b""  # records in flight are redone, not errors
    done = len(read_lines(shard / "kept.jsonl"))
    assert 0 < done < 9
    assert "0/2 (" in refine("merge", tmp_path / "run", code=1)
    with FakeLLM(lambda r: answer) as back:  # the judge is back, on another port: not a new pipeline
        path.write_text(path.read_text().replace(server.api_base, back.api_base))
        assert f"resumed: {done} records" in refine("run", path, "--shard", "0/2")
        refine("run", path, "--shard", "1/2")
        refine("merge", tmp_path / "run")
        refine("run", path, "--out", tmp_path / "one")
    assert outcome_bytes(tmp_path / "run") == outcome_bytes(tmp_path / "one")


def test_the_dataset_audits_run_once_at_the_merge_and_drop_duplicates_across_shards(tmp_path):
    rows = [xlam_row(f"r{i}", f"What is the weather in city number {i}?") for i in range(6)]
    rows.append(xlam_row("dup-of-r0", "what is the weather in CITY number 0?"))  # in the last shard
    write_jsonl(tmp_path / "in.jsonl", rows)
    (tmp_path / "pipeline.toml").write_text(
        '[input]\npath = "in.jsonl"\n[audit]\ndrop_duplicates = true\n[[stages]]\nname = "function_params"\n'
    )
    refine("run", tmp_path / "pipeline.toml", "--out", tmp_path / "one")
    for i in range(2):
        refine("run", tmp_path / "pipeline.toml", "--shard", f"{i}/2", "--out", tmp_path / "sharded")
        shard = json.loads((tmp_path / f"sharded/shards/000{i}-of-0002/summary.json").read_text())
        assert "dataset" not in shard and shard["outcomes"]["discarded"] == 0  # a shard does not audit
    refine("merge", tmp_path / "sharded")
    assert outcome_bytes(tmp_path / "sharded") == outcome_bytes(tmp_path / "one")
    one, merged = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("one", "sharded"))
    assert merged["dataset"] == one["dataset"] and merged["dataset"]["dropped"] == {"duplicate": 1}
    assert merged["stages"]["dataset"] == one["stages"]["dataset"]
    [dropped] = [json.loads(line) for line in (tmp_path / "sharded/discarded.jsonl").read_text().splitlines()]
    assert (dropped["id"], dropped["audit"]["duplicate_of"]) == ("dup-of-r0", 0)


def test_merge_names_an_eval_set_that_is_gone(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [xlam_row("a"), xlam_row("b", "Weather in Oslo?")])
    write_jsonl(tmp_path / "eval.jsonl", [xlam_row("e", "Something else entirely, a question from an eval set")])
    (tmp_path / "pipeline.toml").write_text('[input]\npath = "in.jsonl"\n[audit]\neval_sets = ["eval.jsonl"]\n')
    refine("run", tmp_path / "pipeline.toml", "--shard", "0/1", "--out", tmp_path / "sharded")
    (tmp_path / "eval.jsonl").unlink()
    output = refine("merge", tmp_path / "sharded", code=1)
    assert "eval.jsonl" in output and "run refine merge where the pipeline's files are" in output


def test_ctrl_c_during_merge_says_the_shards_are_untouched_and_to_merge_again(tmp_path, monkeypatch):
    # Only click's "Aborted!" said so, and the exit status was 1.
    import funreason_refine.executors.merge as merging

    def interrupted(run_dir):
        raise KeyboardInterrupt

    monkeypatch.setattr(merging, "merge_run", interrupted)
    said = CliRunner().invoke(main, ["merge", str(tmp_path / "run")])
    assert said.exit_code == 130, said.output
    assert "Aborted!" not in said.output
    stopped = f"the merge of {tmp_path / 'run'} was interrupted before it finished; the shards are as they were"
    assert stopped in said.output
    assert f"run `refine merge {tmp_path / 'run'}` again" in said.output
