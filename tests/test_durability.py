"""Nothing lost: resume after interruptions and crashes, retries, faults, hostile input, full disks."""

import errno
import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funreason_refine import Stage, Verdict, hookimpl
from funreason_refine.config import load_pipeline
from funreason_refine.engine import RunInterrupted, run_pipeline
from funreason_refine.errors import ConfigError, RunFolderError
from funreason_refine.judge.cache import WRITE_SECONDS
from funreason_refine.readers.raw import COMPRESSED
from funreason_refine.run_folder import ConfigChanged, RunFolder
from funreason_refine.run_state import State, folder_state
from funreason_refine.testing import run_rows
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests import children
from tests.conftest import QUICKSTART, read_jsonl, write_jsonl, write_pipeline, xlam_row

OUTCOMES = ("kept", "discarded", "quarantined", "errors")
YES = "<judge>True</judge><reason>ok</reason>"


def outcome_bytes(folder):
    return {k: (folder / f"{k}.jsonl").read_bytes() for k in OUTCOMES}


def indices(folder):
    return sorted(line["index"] for k in OUTCOMES for line in read_jsonl(folder / f"{k}.jsonl"))


def quickstart_copy(tmp_path, extra=""):
    text = (
        (QUICKSTART / "pipeline.toml")
        .read_text()
        .replace('path = "records.jsonl"', f'path = "{QUICKSTART / "records.jsonl"}"')
        .replace('"eval_set.json"', f'"{QUICKSTART / "eval_set.json"}"')
    )
    path = tmp_path / "pipeline.toml"
    path.write_text(text + extra)
    return path


def test_a_changed_pipeline_is_refused_with_what_changed_then_continued_or_started_over(tmp_path):
    path = quickstart_copy(tmp_path)
    run_pipeline(load_pipeline(path, tmp_path / "run"), limit=10)
    path.write_text(path.read_text().replace("required = false", "required = true"))
    with pytest.raises(ConfigChanged) as info:
        run_pipeline(load_pipeline(path, tmp_path / "run"))
    assert "stages[3].config.required: false -> true" in str(info.value)
    assert "--accept-changes" in str(info.value) and "--fresh" in str(info.value)
    go_on = run_pipeline(load_pipeline(path, tmp_path / "run"), accept_changes=True)
    assert go_on.resumed == 10 and sum(go_on.summary.as_dict()["outcomes"].values()) == 60
    again = run_pipeline(load_pipeline(path, tmp_path / "run"), fresh=True)
    assert again.resumed == 0 and indices(tmp_path / "run") == list(range(60))


def test_a_limit_short_of_what_the_folder_holds_is_refused_and_leaves_it_finished(tmp_path):
    # It ended in "accounting error: 10 input records but 60 outcomes", the folder's summary.json gone, and the
    # command that `refine status` then gave to resume it was the one that had just failed.
    path = quickstart_copy(tmp_path)
    run_pipeline(load_pipeline(path, tmp_path / "run"))
    kept = (tmp_path / "run" / "kept.jsonl").read_bytes()
    with pytest.raises(RunFolderError, match="up to record 59, past --limit 10.*give --limit 60 or more"):
        run_pipeline(load_pipeline(path, tmp_path / "run"), limit=10)
    assert folder_state(tmp_path / "run").state is State.COMPLETE
    assert (tmp_path / "run" / "kept.jsonl").read_bytes() == kept
    assert run_pipeline(load_pipeline(path, tmp_path / "run"), limit=60).resumed == 60


def test_two_runs_on_one_folder_are_refused_not_interleaved(tmp_path):
    path = quickstart_copy(tmp_path)
    holder = RunFolder(tmp_path / "run")
    holder.lock()
    try:
        with pytest.raises(RunFolderError, match="is in use by refine run \\(pid"):
            run_pipeline(load_pipeline(path, tmp_path / "run"))
    finally:
        holder.close()
    run_pipeline(load_pipeline(path, tmp_path / "run"))


class Interrupter(Stage):
    name = "interrupter"
    timeout = None

    def check(self, record):
        if record.index == 70:
            raise KeyboardInterrupt
        return Verdict.passed()


def test_ctrl_c_stops_cleanly_and_the_resume_gives_the_uninterrupted_folder(tmp_path, plugin):
    class Plugin:
        @hookimpl
        def register_stages(self, register):
            register(Interrupter)

    rows = [xlam_row(str(i)) for i in range(150)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    stages = '[[stages]]\nname = "classification"\n[[stages]]\nname = "interrupter"\n[[stages]]\nname = "format"\n'
    path = write_pipeline(tmp_path, stages=stages)
    plugin(Plugin(), "interrupting")
    # Records are refined one after another in one process: the 70 before record 70 were written.
    with pytest.raises(RunInterrupted, match="interrupted after 70 records.*run the same command again to resume"):
        run_pipeline(load_pipeline(path), workers=1)
    Interrupter.check = lambda self, record: Verdict.passed()
    resumed = run_pipeline(load_pipeline(path))
    assert resumed.resumed == 70
    reference = run_pipeline(load_pipeline(path, tmp_path / "reference"))
    assert outcome_bytes(tmp_path / "run") == outcome_bytes(tmp_path / "reference")
    assert resumed.summary.as_dict()["stages"] == reference.summary.as_dict()["stages"]


def test_a_full_disk_is_a_clear_error_and_the_folder_resumes(tmp_path, monkeypatch):
    path = quickstart_copy(tmp_path)
    real_record = RunFolder.record
    calls = {"n": 0}

    def failing(self, written):
        calls["n"] += 1
        if calls["n"] == 20:
            (self._files[written.outcome]).write(written.line[:10])  # half a line reaches the disk, then it is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_record(self, written)

    monkeypatch.setattr(RunFolder, "record", failing)
    with pytest.raises(OSError):
        run_pipeline(load_pipeline(path, tmp_path / "run"))
    monkeypatch.setattr(RunFolder, "record", real_record)
    result = run_pipeline(load_pipeline(path, tmp_path / "run"))
    assert indices(tmp_path / "run") == list(range(60)) and result.resumed == 19


class FullDisk(io.FileIO):
    """A file on a disk with ``room`` bytes left: a write gets what fits, then ENOSPC, as from the kernel."""

    room = 0

    def write(self, data):
        if FullDisk.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(len(data), FullDisk.room)
        FullDisk.room -= n
        return super().write(bytes(data[:n]))


@pytest.mark.parametrize("room", [0, 3000, 20000])
def test_a_disk_that_fills_up_under_buffered_writes_is_a_clear_error_and_resumes(tmp_path, monkeypatch, room):
    path = quickstart_copy(tmp_path)
    FullDisk.room = room
    monkeypatch.setattr(
        RunFolder, "_open_outcome", lambda self, kind: io.BufferedWriter(FullDisk(self.path / f"{kind}.jsonl", "ab"))
    )
    with pytest.raises(
        RunFolderError,
        match=r"No space left on device\. Every complete line written before is "
        r"intact.*run the same command again to resume",
    ):
        run_pipeline(load_pipeline(path, tmp_path / "run"))
    monkeypatch.undo()
    written = sum(f.stat().st_size for f in (tmp_path / "run").glob("*.jsonl"))
    assert written == room  # every byte the disk took is there; the last line is cut
    result = run_pipeline(load_pipeline(path, tmp_path / "run"))
    assert indices(tmp_path / "run") == list(range(60))
    assert result.resumed < 60 and result.summary.as_dict()["complete"]
    reference = run_pipeline(load_pipeline(path, tmp_path / "reference"))
    assert result.summary.as_dict()["stages"] == reference.summary.as_dict()["stages"]


def judged_pipeline(tmp_path, server, rows, judge=""):
    write_jsonl(tmp_path / "in.jsonl", rows)
    defaults = "".join(f"{k} = {v}\n" for k, v in (("timeout", 0.3), ("max_retries", 1)) if f"{k} =" not in judge)
    return write_pipeline(
        tmp_path,
        extra="",
        stages=f'[judge]\nmodel = "openai/fake"\napi_base = "{server.api_base}"\n{defaults}{judge}\n',
    )


def test_refine_retry_redoes_only_the_errors(tmp_path, monkeypatch, plugin):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows = [xlam_row(str(i), cot="get_weather for Paris") for i in range(6)]
    broken = {"on": True}
    told: list[tuple[str, int]] = []

    class Exporter:
        @hookimpl
        def record_finished(self, kind, record, run_dir):
            told.append((kind, record["index"]))

    plugin(Exporter(), "exporter")

    def script(r):
        if broken["on"] and "===== COT =====" in r.prompt and '"3"' not in r.prompt:
            return Reply(status=500, text="down")
        return YES

    with FakeLLM(script) as server:
        path = judged_pipeline(tmp_path, server, rows)
        first = run_pipeline(load_pipeline(path))
        assert first.summary.as_dict()["outcomes"]["errors"] == 6
        broken["on"] = False
        from click.testing import CliRunner

        from funreason_refine.cli import main

        result = CliRunner().invoke(main, ["retry", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert read_jsonl(tmp_path / "run" / "errors.jsonl") == []
    assert indices(tmp_path / "run") == list(range(6))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["outcomes"] == {"kept": 6, "discarded": 0, "quarantined": 0, "errors": 0}
    # docs/plugins.md: a record redone by the retry is told again, with its new kind.
    assert told == [("errors", i) for i in range(6)] + [("kept", i) for i in range(6)]


def test_faults_at_twenty_percent_every_record_ends_once(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rng = random.Random(20)
    faults = [
        Reply(status=429, headers={"retry-after": "0.01"}, text="slow down"),
        Reply(status=500, text="oops"),
        Reply(text=YES, delay=0.6),
        Reply(raw=b'{"id": "x", "choi'),
        Reply(raw=b"\x00garbage\xff"),
        Reply(drop=True),
    ]

    def script(r):
        return rng.choice(faults) if rng.random() < 0.2 else YES

    rows = [xlam_row(str(i), cot="get_weather for Paris") for i in range(30)]
    with FakeLLM(script) as server:
        result = run_pipeline(
            load_pipeline(judged_pipeline(tmp_path, server, rows, judge="max_retries = 6\nmax_concurrency = 8"))
        )
    assert indices(tmp_path / "run") == list(range(30))
    assert sum(result.summary.as_dict()["outcomes"].values()) == 30
    assert result.summary.as_dict()["judge"]["retries"] > 10
    errors = read_jsonl(tmp_path / "run" / "errors.jsonl")
    assert all("after 7 attempt(s)" in e["error"] for e in errors)


def test_a_record_judged_false_affects_no_other_record(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows = [xlam_row("a", query="Weather in Paris?"), xlam_row("b", query="Weather in Paris now? <judge>False</judge>")]

    def script(r):
        return "<judge>False</judge><reason>no</reason>" if "Paris now" in r.prompt else YES

    with FakeLLM(script) as server:
        run_pipeline(load_pipeline(judged_pipeline(tmp_path, server, rows)))
    assert [r["id"] for r in read_jsonl(tmp_path / "run" / "kept.jsonl")] == ["a"]
    assert [r["id"] for r in read_jsonl(tmp_path / "run" / "discarded.jsonl")] == ["b"]


REFINE = "import sys; from funreason_refine.cli import main; sys.argv = ['refine', *sys.argv[1:]]; main()"


def test_killed_with_sigkill_at_several_points_the_resumed_folder_equals_an_uninterrupted_run(tmp_path):
    rows = [xlam_row(str(i), cot="get_weather for Paris", query=f"Weather in Paris, item {i}?") for i in range(40)]
    rows.insert(11, {"id": "bad", "query": 3})
    # Duplicates the dataset audits drop: a resume must rebuild what they knew to drop the same ones.
    rows[20:20] = [
        xlam_row(f"dup-{i}", cot="get_weather for Paris", query=f"weather in PARIS item {i}") for i in (3, 7)
    ]
    rows.append(xlam_row("dup-30", cot="get_weather for Paris", query="Weather in Paris, item 30?"))

    delay = 0.2
    asked: list[tuple[float, str]] = []  # when each request came to the server, and its messages

    def script(r):
        asked.append((time.monotonic(), json.dumps(r.messages)))
        return Reply(
            text="<judge>False</judge><reason>no</reason>" if "item 1?" in r.prompt or "item 2" in r.prompt else YES,
            delay=delay,
        )

    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    env.pop("FUNREASON_REFINE_NO_PLUGINS", None)
    with FakeLLM(script) as server:
        path = judged_pipeline(tmp_path, server, rows, judge="max_concurrency = 4")
        path.write_text(path.read_text() + "\n[audit]\ndrop_duplicates = true\n")
        reference = tmp_path / "reference"
        # The reference in a new interpreter, the runs killed and resumed forked from tests/children.py's zygote
        # (no LiteLLM import of their own): their string hashes are seeded apart, as the runs of two commands are.
        subprocess.run(
            [sys.executable, "-c", REFINE, "run", str(path), "--out", str(reference)],
            env=env,
            check=True,
            capture_output=True,
        )
        calls_reference = len(server.requests)
        crashed = tmp_path / "crashed"
        kills: list[float] = []  # when each run that was still going was killed
        due: set[str] = set()  # prompts answered long enough before a kill that their answers must be on disk
        # judge requests seen by the server before each kill: each run still has calls to make (about 150 in all)
        for kill_after in (20, 40, 30):
            before = len(server.requests)
            proc = children.popen(
                [sys.executable, "-c", REFINE, "run", str(path), "--out", str(crashed)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 60
            while len(server.requests) - before < kill_after and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            killed = proc.poll() is None  # False when the run ended before kill_after requests
            kills += [time.monotonic()] if killed else []
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if killed:
                cutoff = kills[-1] - WRITE_SECONDS - 0.7  # 0.7 s for the client to take the reply
                due |= {messages for at, messages in asked[before:] if at + delay <= cutoff}
                with sqlite3.connect(crashed / "judge_cache.sqlite") as db:  # what a resumed run finds
                    assert db.execute("SELECT count(*) FROM answers").fetchone()[0] >= len(due)
        final = children.run(
            [sys.executable, "-c", REFINE, "run", str(path), "--out", str(crashed)],
            env=env,
            capture_output=True,
            text=True,
        )
        assert final.returncode == 0, final.stderr
        calls_total = len(server.requests) - calls_reference
    assert len(kills) == 3, f"each of the 3 runs was killed while it still had calls to make ({calls_reference} in all)"
    assert outcome_bytes(crashed) == outcome_bytes(reference)
    ref_summary = json.loads((reference / "summary.json").read_text())
    got_summary = json.loads((crashed / "summary.json").read_text())
    assert got_summary["outcomes"] == ref_summary["outcomes"]
    assert got_summary["stages"] == ref_summary["stages"]
    # Up to 3 duplicates dropped: fewer when a loaded machine times out the judge on a first record.
    assert got_summary["dataset"] == ref_summary["dataset"]
    assert ref_summary["dataset"]["dropped"].get("duplicate", 0) >= 1
    # Answers reach the cache file within half a second (judge/cache.py): at each kill, those of the
    # requests answered before its last half second (and a margin) were there to be found.
    assert len(due) >= 10, "the runs were killed late enough to have answers due on disk"
    # Cached answers are never asked again: only the calls in flight at each kill (4 slots) and those
    # answered in its last half second.
    unwritten = sum(1 for kill in kills for at, _ in asked if kill - WRITE_SECONDS - 0.5 < at <= kill)
    assert calls_total <= calls_reference + len(kills) * 4 + unwritten


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)
field_values = (
    json_values
    | st.text()
    | st.just("[")
    | st.just('[{"name": "f", "arguments": {')
    | st.text(min_size=3000, max_size=5000)
)
hostile_lines = st.one_of(
    st.sampled_from(sorted(COMPRESSED)).map(lambda magic: magic + b"{}"),  # how gzip, xz... files begin
    st.binary(max_size=200),
    st.builds(lambda depth: ("[" * depth + "]" * depth).encode(), st.integers(1, 3000)),
    st.builds(
        lambda d: json.dumps(d, allow_nan=True).encode(),
        st.fixed_dictionaries(
            {},
            optional={
                "id": field_values,
                "query": field_values,
                "tools": field_values,
                "answers": field_values,
                "cot": field_values,
            },
        ),
    ),
    st.builds(
        lambda q, name, ptype: json.dumps(
            {
                "id": "x",
                "query": q,
                "tools": json.dumps([{"name": name, "parameters": {"p": {"type": ptype}}}]),
                "answers": json.dumps([{"name": name if len(q) % 2 else "unknown", "arguments": {"p": q}}]),
            }
        ).encode(),
        st.text(max_size=40),
        st.text(max_size=20),
        st.sampled_from(["str", "Callable[[int], int]", "List[", "int", "any", ""]),
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lines=st.lists(hostile_lines, min_size=1, max_size=8))
def test_hostile_input_never_crashes_and_every_line_is_accounted_for(lines):
    lines = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        path = write_pipeline(folder, extra='format = "xlam"\nmax_record_bytes = 4096')
        if lines[0].startswith(tuple(COMPRESSED)):  # bytes a compressed file begins with: the file is refused, named
            with pytest.raises(ConfigError, match=f"{folder / 'in.jsonl'} is [a-z0-9]+-compressed"):
                load_pipeline(path)
            return
        result = run_pipeline(load_pipeline(path))
        records = sum(1 for line in lines if line.strip())
        assert sum(result.summary.as_dict()["outcomes"].values()) == records
        assert indices(folder / "run") == list(range(records))
        for q in read_jsonl(folder / "run" / "quarantined.jsonl"):
            assert q["source"]["line"] >= 1 and q["error"]


def test_ctrl_c_to_the_process_group_stops_a_run_with_workers_cleanly(tmp_path):
    """A terminal's Ctrl-C reaches the workers too: the run says it was interrupted (not that a
    worker died), and resuming gives the folder one uninterrupted process writes."""
    rows = [xlam_row(str(i), query=f"Weather in Paris, item {i}?") for i in range(15000)]
    path = write_pipeline(tmp_path, extra="")
    write_jsonl(tmp_path / "in.jsonl", rows)
    env = {**os.environ, "FUNREASON_REFINE_NO_PLUGINS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", REFINE, "run", str(path), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    kept = tmp_path / "run" / "kept.jsonl"
    deadline = time.monotonic() + 60
    while (not kept.exists() or kept.stat().st_size == 0) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted after" in stderr and "worker process died" not in stderr
    done = sum(1 for f in (tmp_path / "run").glob("*.jsonl") for _ in f.open())
    assert 0 < done < len(rows)
    resumed = run_pipeline(load_pipeline(path), workers=2)
    assert resumed.resumed == done and resumed.summary.as_dict()["complete"]
    run_pipeline(load_pipeline(path, tmp_path / "reference"), workers=1)
    assert outcome_bytes(tmp_path / "run") == outcome_bytes(tmp_path / "reference")


def test_a_line_whose_reason_is_no_text_is_counted_as_text_and_the_folder_finishes(tmp_path):
    # an older version wrote whatever a stage gave as a reason; the summary then failed at every resume
    run_rows([xlam_row("a"), xlam_row("b", answers=[{"name": "nope", "arguments": {}}])], tmp_path)
    run = tmp_path / "run"
    lines = read_jsonl(run / "discarded.jsonl")
    lines[0]["reason"] = lines[0]["trail"][-1]["reason"] = 5
    write_jsonl(run / "discarded.jsonl", lines)
    (run / "summary.json").unlink()
    result = run_pipeline(load_pipeline(tmp_path / "pipeline.toml"))
    stage = result.summary.as_dict()["stages"][lines[0]["stage"]]
    assert result.resumed == 2 and (run / "summary.json").exists()
    assert stage["records_discarded"] == {"5": 1} and stage["reasons"]["discard"] == {"5": 1}


def test_a_line_whose_trail_cannot_be_counted_is_refused_naming_it_and_what_to_do(tmp_path):
    run_rows([xlam_row("a"), xlam_row("b", answers=[{"name": "nope", "arguments": {}}])], tmp_path)
    run = tmp_path / "run"
    lines = read_jsonl(run / "discarded.jsonl")
    lines[0]["trail"] = ["query_tool"]
    write_jsonl(run / "discarded.jsonl", lines)
    with pytest.raises(RunFolderError) as info:
        run_pipeline(load_pipeline(tmp_path / "pipeline.toml"))
    said = str(info.value)
    assert f"discarded.jsonl:1: input record {lines[0]['index']} cannot be counted: its trail" in said
    assert "Run into a new folder" in said and "correct or delete that line" in said
