"""The Ray executor against one process: rules only, 60,000 records, 4 shards on a 2-CPU local Ray.

    python bench/bench_ray.py [N] [--repeats 3]

For each repeat, in fresh processes and run folders, alternately: `refine run` (one process and
its default worker processes, 2 here) and a driver that starts a local Ray (2 CPUs, no
dashboard) and runs `run_on_ray` with 4 shards (each a Ray task on one CPU, then the merge).
The driver times its phases: importing Ray, starting it, the shards, the merge. Prints a
Markdown table of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RUNS = HERE / "runs"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as bench_offline.py

ONE_PROCESS = """
import sys
from funreason_refine.cli import main
sys.argv = ["refine", "run", sys.argv[1], "--out", sys.argv[2]]
main()
"""

ON_RAY = """
import json, sys, time
t0 = time.perf_counter()
import ray
t1 = time.perf_counter()
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
t2 = time.perf_counter()
from funreason_refine.config import load_pipeline
from funreason_refine.executors.ray import run_on_ray
result = run_on_ray(load_pipeline(sys.argv[1], sys.argv[2]), 4)
t3 = time.perf_counter()
ray.shutdown()
merge = result.summary.as_dict()["timings"]["merge_seconds"]
print(json.dumps({"import": t1 - t0, "init": t2 - t1, "shards": t3 - t2 - merge, "merge": merge}))
"""


def timed(code: str, *args: str) -> tuple[float, str]:
    os.sync()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=ENV)
    if done.returncode != 0:
        raise SystemExit(f"benchmark process failed with status {done.returncode}: {done.stderr[-2000:]}")
    return time.perf_counter() - start, done.stdout


def main(n: int, repeats: int) -> None:
    data = DATA / f"{n}.jsonl"
    if not data.exists():
        subprocess.run([sys.executable, str(HERE / "generate.py"), str(n), str(data)], check=True)
    RUNS.mkdir(exist_ok=True)
    pipeline = RUNS / f"ray-{n}.toml"
    pipeline.write_text(f'[input]\npath = "{data}"\nformat = "xlam"\n')
    one, ray, phases = [], [], []
    for _ in range(repeats):
        subprocess.run(["rm", "-rf", str(RUNS / "ray-one"), str(RUNS / "ray-sharded")], check=True)
        one.append(timed(ONE_PROCESS, str(pipeline), str(RUNS / "ray-one"))[0])
        seconds, out = timed(ON_RAY, str(pipeline), str(RUNS / "ray-sharded"))
        ray.append(seconds)
        phases.append(json.loads(out.strip().splitlines()[-1]))
        same = all(
            (RUNS / "ray-one" / f).read_bytes() == (RUNS / "ray-sharded" / f).read_bytes()
            for f in ("kept.jsonl", "discarded.jsonl", "quarantined.jsonl", "errors.jsonl")
        )
        print(f"one process {one[-1]:.2f} s, Ray {ray[-1]:.2f} s {phases[-1]}, same bytes: {same}", file=sys.stderr)
    med = {k: statistics.median(p[k] for p in phases) for k in phases[0]}
    print(f"{n:,} records, median of {repeats} interleaved pairs")
    print("| one process (2 workers) | Ray, 4 shards | overhead | import ray | start Ray | shards | merge |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {statistics.median(one):.2f} s | {statistics.median(ray):.2f} s | "
        f"{statistics.median(r / o for r, o in zip(ray, one, strict=True)):.2f}x | {med['import']:.2f} s | "
        f"{med['init']:.2f} s | {med['shards']:.2f} s | {med['merge']:.2f} s |"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", nargs="?", type=int, default=60000, help="records (default 60000)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved pairs")
    args = parser.parse_args()
    main(args.n, args.repeats)
