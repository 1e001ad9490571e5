"""refine run --target-kept N on a judged pipeline: records refined concurrently, written in input order, the run
stopped at the N-th kept one; the calls of the records in flight past it counted and cached."""

import re
import time

import pytest

from funreason_refine.config import load_pipeline
from funreason_refine.engine import RunInterrupted, run_pipeline
from funreason_refine.judge.cache import spent
from funreason_refine.summary import Summary
from funreason_refine.testing import registered
from funreason_refine.testing.fake_llm import FakeLLM, Reply
from tests.conftest import KillAfter, read_jsonl, refine
from tests.judge.test_judged_runs import YES, forecast_row, pipeline

PRICES = "prices = {input_per_million = 1000.0, output_per_million = 2000.0}"
PER_CALL = (10 * 1000 + 5 * 2000) / 1e6  # the fake server's usage (10 + 5 tokens) at PRICES
NO = "<judge>False</judge><reason>the tools cannot answer it</reason>"
ROWS = [forecast_row(f"r{days}", days=days) for days in range(1, 13)]
SLOW = 1.5  # seconds the first record's answer takes: every other record is answered meanwhile


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def script(request, slow=SLOW):
    """r2 and r5 are discarded, the others kept; r1's answer comes last."""
    days = int(re.search(r"Oslo, (\d+) days", request.prompt).group(1))
    if days in (2, 5):
        return NO
    return Reply(YES, delay=slow) if days == 1 else YES


def judged(tmp_path, server, judge="max_concurrency = 4", top=""):
    stages = '[[stages]]\nname = "query_tool"\n'
    return pipeline(tmp_path, ROWS, server, judge=f"{judge}\n{PRICES}\n", stages=stages, top=top)


def run(path, **options):
    return run_pipeline(load_pipeline(path), **options)


def ids(folder, name="kept"):
    path = folder / f"{name}.jsonl"
    return [line["id"] for line in read_jsonl(path)] if path.exists() else []


def test_the_first_n_kept_in_input_order_and_every_paid_call_counted(tmp_path):
    with FakeLLM(script) as server:
        path = judged(tmp_path, server)
        output = refine("run", path, "--target-kept", 3)
        asked = len(server.requests)
        folder = tmp_path / "run"
        assert ids(folder) == ["r1", "r3", "r4"] and ids(folder, "discarded") == ["r2"]
        assert [ids(folder, name) for name in ("quarantined", "errors")] == [[], []]
        assert "target reached: 3 kept records in" in output and "after 4 input records" in output
        summary = Summary.read(folder)
        assert summary.target is not None and summary.target.reached and summary.input.records == 4
        # r1 held the writing back while r5 ... r12 were judged: their calls were paid, and are counted.
        assert asked == 12 == summary.judge.calls
        assert summary.judge.cost_usd == pytest.approx(12 * PER_CALL) == spent(folder)
        # A bigger target reads r5 on again: their answers come from the cache, nothing is paid twice.
        refine("run", path, "--target-kept", 5)
        assert ids(folder) == ["r1", "r3", "r4", "r6", "r7"] and ids(folder, "discarded") == ["r2", "r5"]
        assert len(server.requests) == 12
        grown = Summary.read(folder)
        assert (grown.judge.cost_usd, grown.judge.cached >= 3, grown.input.records) == (0.0, True, 7)


def test_max_cost_before_the_target_stops_the_run_short_with_exit_5(tmp_path):
    with FakeLLM(lambda r: script(r, slow=0)) as server:
        path = judged(tmp_path, server, judge="max_concurrency = 1", top="max_cost = 0.05")
        output = refine("run", path, "--target-kept", 10, code=5)
    kept = ids(tmp_path / "run")
    assert 0 < len(kept) < 10
    summary = Summary.read(tmp_path / "run")
    assert summary.target is not None and summary.target.stopped_by == "max_cost"
    assert summary.target.missing == 10 - len(kept) and not summary.complete
    flat = " ".join(output.split())
    assert f"short of the target: {10 - len(kept)} of 10 missing: {len(kept)} kept records in" in flat
    assert "Stopped: max_cost of $0.05 reached" in flat and "To go on, raise max_cost" in flat


def test_a_killed_judged_run_resumes_to_the_same_bytes_paying_nothing_twice(tmp_path):
    with FakeLLM(script) as server:
        refine("run", judged(tmp_path / "whole", server), "--target-kept", 3)
    with FakeLLM(script) as server:
        path = judged(tmp_path / "killed", server)
        with registered(KillAfter(2), "kill"), pytest.raises(RunInterrupted, match="interrupted after 2 records"):
            run(path, target=3)
        asked = len(server.requests)
        refine("run", path, "--target-kept", 3)
        assert len(server.requests) == asked == 12, "the records in flight when it was killed were paid once"
    for name in ("kept", "discarded", "quarantined", "errors"):  # the same bytes, but for the input each names
        whole, killed = ((tmp_path / f / "run" / f"{name}.jsonl").read_text() for f in ("whole", "killed"))
        assert killed.replace(str(tmp_path / "killed"), "DIR") == whole.replace(str(tmp_path / "whole"), "DIR")
    assert ids(tmp_path / "killed" / "run") == ["r1", "r3", "r4"]


def test_calls_cancelled_in_flight_when_the_target_is_reached_are_said_not_counted(tmp_path):
    def slow_after_r3(request):
        days = int(re.search(r"Oslo, (\d+) days", request.prompt).group(1))
        return Reply(YES, delay=2.0) if days > 3 else YES

    with FakeLLM(slow_after_r3) as server:
        path = judged(tmp_path, server)
        refine("run", path, "--target-kept", 2)
        time.sleep(2.5)  # the server notes a request as it answers it: the cancelled ones, once their delay is over
        asked = len(server.requests)
    summary = Summary.read(tmp_path / "run")
    cancelled = [note for note in summary.judge.notes if "in flight when the target" in note]
    assert ids(tmp_path / "run") == ["r1", "r2"] and summary.judge.calls < asked
    assert cancelled, summary.judge.notes
    # Every request the server took and never answered was in flight (a call may also be cut off before its
    # request reached the server), and no more than max_concurrency calls are ever in flight.
    in_flight = int(cancelled[0].split(" judge call(s)")[0])
    assert asked - summary.judge.calls <= in_flight <= 4 and asked > summary.judge.calls


def test_a_target_with_batch_jobs_is_refused_before_anything_is_paid(tmp_path):
    with FakeLLM(script) as server:
        path = judged(tmp_path, server, judge="max_concurrency = 4\nbatch = true")
        output = refine("run", path, "--target-kept", 3, code=1)
        assert server.requests == [] and server.batches.created == 0
    assert "--target-kept does not go with batch = true" in " ".join(output.split())
