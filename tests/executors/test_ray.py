"""The Ray executor: shards as Ray tasks on a local Ray (2 CPUs), a worker killed mid-task, the merged run."""

import json
import os
import re
import signal

import pytest
from click.testing import CliRunner

from funreason_refine.cli import main
from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from funreason_refine.executors import ray as ray_executor
from tests.conftest import QUICKSTART
from tests.executors.test_shards import outcome_bytes, pipeline_file

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    """One Ray for the module: starting one takes seconds. Its workers inherit this environment."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_four_shards_on_ray_with_a_worker_killed_mid_task_equal_the_one_process_run(tmp_path, local_ray, monkeypatch):
    # The quickstart records (every outcome) 300 times over: about a second of work per shard.
    (tmp_path / "in.jsonl").write_bytes((QUICKSTART / "records.jsonl").read_bytes() * 300)
    path = pipeline_file(tmp_path, tmp_path / "in.jsonl")
    monkeypatch.setattr(ray_executor, "POLL_SECONDS", 0.02)
    killed = []

    def kill_shard_1_once(states):
        """Kill the Ray worker running shard 1 when it has written some records (its pid is in its lock)."""
        state = states[1]
        done = sum(state.done.values())
        if not killed and not state.complete and done >= 200:
            pid = int(re.search(r"pid (\d+)", (state.folder / "run.lock").read_text())[1])
            os.kill(pid, signal.SIGKILL)
            killed.append(done)

    result = ray_executor.run_on_ray(load_pipeline(path, tmp_path / "run"), 4, on_progress=kill_shard_1_once)
    one = run_pipeline(load_pipeline(path, tmp_path / "one"))
    shard_1 = json.loads((tmp_path / "run/shards/0001-of-0004/summary.json").read_text())
    assert killed and killed[0] < shard_1["input"]["records"]
    assert shard_1["timings"]["resumed_records"] >= killed[0]  # Ray ran the task again, and it resumed the shard
    assert outcome_bytes(tmp_path / "run") == outcome_bytes(tmp_path / "one")
    assert (
        result.summary.as_dict()["outcomes"] == one.summary.as_dict()["outcomes"]
        and result.summary.stages == one.summary.stages
    )
    # Run again: every shard is complete, so no task runs; the merge is written again.
    command = ["run", str(path), "--out", str(tmp_path / "run"), "--executor", "ray", "--shards", "4"]
    again = CliRunner().invoke(main, command)
    assert again.exit_code == 0 and "merged 4 shards" in again.output, again.output
    assert json.loads((tmp_path / "run/shards/0001-of-0004/summary.json").read_text()) == shard_1
    assert outcome_bytes(tmp_path / "run") == outcome_bytes(tmp_path / "one")
