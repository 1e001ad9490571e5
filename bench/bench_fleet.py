"""Judged throughput over a fleet of judge servers, and what killing one of them costs.

    python bench/bench_fleet.py [--records 2000] [--servers 4] [--slots 32] [--shards 1]

Each FakeLLM server runs in its own process, holds at most --slots requests at a time (the
rest queue, as vLLM queues beyond its batch) and answers <judge>True</judge> after a delay drawn
uniformly from 0.5 to 1.5 s: its ideal is slots / 1.0 s calls a second. `refine run` takes the
synthetic xLAM records of bench/generate.py through the five built-in stages, all judged, with
one [[judge.endpoints]] table per server (max_concurrency = --slots), twice:

1. all servers up the whole run: calls/s from the first request to the last reply, against the
   sum of the servers' ideals;
2. the same run into a fresh folder, one server killed (SIGKILL) once a third of the calls are
   answered: calls/s from the kill to the last reply against the survivors' ideal; nothing lost
   (no record in errors.jsonl) and the outcome files byte for byte those of run 1;
3. for reference, what this machine's CPUs allow: the same run against ONE server holding all
   the slots (servers x slots), as bench/bench_judge.py measures it.

With ``--shards N`` each run is N processes of ``refine run PIPELINE --shard I/N`` side by side (what
a Slurm array or the Ray executor runs), merged by ``refine merge`` when all are done: one engine
process is one event loop on one core, and at 128 calls in flight it is the limit on this
machine (run 3 shows it). Their CPU is counted as the engine's.

Answers are counted at the servers (each copies its count of 200 replies into shared memory
every 50 ms), so neither side's imports count. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTCOMES = ("kept", "discarded", "quarantined", "errors")


def serve(port_queue: multiprocessing.Queue, served, first, slots: int, seed: int) -> None:
    from funreason_refine.testing.fake_llm import FakeLLM, Reply

    rng = random.Random(seed)
    lock = threading.Lock()

    def script(request):
        if first.value == 0.0:
            first.value = time.time()
        with lock:
            delay = rng.uniform(0.5, 1.5)
        return Reply(text="<judge>True</judge><reason>ok</reason>", delay=delay)

    with FakeLLM(script, max_concurrency=slots) as server:
        port_queue.put(server.api_base)
        while True:
            served.value = server.served
            time.sleep(0.05)


ENGINE = """
import json, sys, time
start = time.perf_counter()
from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
result = run_pipeline(load_pipeline(sys.argv[1]))
judge = result.summary.judge
print(json.dumps({"seconds": time.perf_counter() - start, "calls": judge.calls,
                  "retries": judge.retries, "outcomes": result.summary.outcomes}))
"""

SHARDS = """
import json, subprocess, sys, time
start = time.perf_counter()
path, shards = sys.argv[1], int(sys.argv[2])
refine = [sys.executable, "-c", "from funreason_refine.cli import main; main()"]
runs = [subprocess.Popen([*refine, "run", path, "--shard", f"{i}/{shards}"], stdout=subprocess.DEVNULL)
        for i in range(shards)]
failed = [run.wait() for run in runs]
if any(failed) or subprocess.run([*refine, "merge", sys.argv[3]], stdout=subprocess.DEVNULL).returncode:
    sys.exit(f"a shard or the merge failed (shards: {failed})")
summary = json.load(open(sys.argv[3] + "/summary.json"))
print(json.dumps({"seconds": time.perf_counter() - start, "calls": summary["judge"]["calls"],
                  "retries": summary["judge"]["retries"], "outcomes": summary["outcomes"]}))
"""


class Fleet:
    def __init__(self, servers: int, slots: int):
        self.served = [multiprocessing.Value("d", 0.0) for _ in range(servers)]
        self.first = [multiprocessing.Value("d", 0.0) for _ in range(servers)]
        queue: multiprocessing.Queue = multiprocessing.Queue()
        self.procs = []
        self.api_bases = []
        for i in range(servers):
            proc = multiprocessing.Process(
                target=serve, args=(queue, self.served[i], self.first[i], slots, i), daemon=True
            )
            proc.start()
            self.procs.append(proc)
            self.api_bases.append(queue.get(timeout=60))

    def total(self) -> float:
        return sum(v.value for v in self.served)

    def first_request(self) -> float:
        return min(v.value for v in self.first if v.value)

    def kill(self, i: int) -> None:
        os.kill(self.procs[i].pid, signal.SIGKILL)  # reaped by close(), so that its CPU is not the engine's

    def close(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()


def pipeline(data: Path, out_dir: Path, api_bases: list[str], slots: int) -> Path:
    subprocess.run(["rm", "-rf", str(out_dir)], check=True)
    path = out_dir.with_suffix(".toml")
    tables = "".join(f'[[judge.endpoints]]\napi_base = "{url}"\nmax_concurrency = {slots}\n' for url in api_bases)
    path.write_text(
        f'[input]\npath = "{data}"\nformat = "xlam"\n[output]\ndir = "{out_dir}"\n'
        f'[judge]\nmodel = "openai/fake"\ntimeout = 60\n{tables}'
    )
    return path


def run_engine(path: Path, fleet: Fleet, kill_at: float | None, shards: int) -> dict:
    """Run the engine in its own process (or its shards, in theirs) while sampling the servers' counts every 0.1 s."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    code = [ENGINE, str(path)] if shards == 1 else [SHARDS, str(path), str(shards), str(path.with_suffix(""))]
    proc = subprocess.Popen(
        [sys.executable, "-c", *code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OPENAI_API_KEY": "sk-bench"},
    )
    samples: list[tuple[float, float]] = []
    killed: tuple[float, float] | None = None
    while proc.poll() is None:
        now, total = time.time(), fleet.total()
        samples.append((now, total))
        if kill_at is not None and killed is None and total >= kill_at:
            fleet.kill(1)
            killed = (time.time(), fleet.total())
        time.sleep(0.1)
    out = proc.stdout.read()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the engine is the only child reaped meanwhile
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"refine run failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    final = fleet.total()
    last = next(t for t, n in samples if n >= final) if samples and samples[-1][1] >= final else time.time()
    result.update(first=fleet.first_request(), last=last, served=final, killed=killed, cpu=cpu)
    return result


def scenario(data: Path, out_dir: Path, servers: int, slots: int, shards: int, kill_at: float | None = None) -> dict:
    """One run against fresh servers; adds the servers' CPU seconds (reaped when they close)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    fleet = Fleet(servers, slots)
    try:
        # Each shard may fill every server: a server queues what is over its slots (as vLLM does), and
        # a shard that finishes first leaves the whole of each server to the others (with a share of
        # the slots each, the last shard to finish would run on its share alone).
        result = run_engine(pipeline(data, out_dir, fleet.api_bases, slots), fleet, kill_at, shards)
    finally:
        fleet.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["servers_cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime) - result["cpu"]
    return result


def busy(r: dict) -> str:
    """The share of the machine's cores that the engine and the servers kept busy over the whole run."""
    span = r["last"] - r["first"]
    return f"{(r['cpu'] + r['servers_cpu']) / (span * (os.cpu_count() or 1)):.0%}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--slots", type=int, default=32)
    parser.add_argument("--shards", type=int, default=1)
    args = parser.parse_args()
    data = HERE / "data" / f"judge-{args.records}.jsonl"
    if not data.exists():
        subprocess.run([sys.executable, str(HERE / "generate.py"), str(args.records), str(data)], check=True)
    runs = HERE / "runs"
    runs.mkdir(exist_ok=True)
    ideal = args.servers * args.slots / 1.0  # calls/s: slots over the mean latency, summed
    survivors = (args.servers - 1) * args.slots / 1.0

    whole = scenario(data, runs / "fleet-all", args.servers, args.slots, args.shards)
    cut = scenario(data, runs / "fleet-kill", args.servers, args.slots, args.shards, kill_at=whole["served"] / 3)
    one = scenario(data, runs / "fleet-one", 1, args.servers * args.slots, args.shards)

    same = all(
        (runs / "fleet-all" / f"{k}.jsonl").read_bytes() == (runs / "fleet-kill" / f"{k}.jsonl").read_bytes()
        for k in OUTCOMES
    )
    print(
        f"records={args.records} servers={args.servers} x {args.slots} slots, latency U(0.5, 1.5) s, "
        f"engine processes: {args.shards}"
    )
    print(f"judge calls={whole['calls']} outcomes={whole['outcomes']}")
    print(
        "| run | calls/s (measured span) | ideal | of ideal | errors.jsonl | retries | engine CPU per call | "
        "cores busy (engine + servers) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, r in (
        (f"{args.servers} servers, none killed", whole),
        (f"reference: 1 server, {args.servers * args.slots} slots", one),
    ):
        span = r["last"] - r["first"]
        rate = r["served"] / span
        print(
            f"| {name} | {rate:.1f} (first request to last reply, {span:.1f} s) | "
            f"{ideal:.0f} | {rate / ideal:.0%} | {r['outcomes']['errors']} | {r['retries']} | "
            f"{r['cpu'] / r['calls'] * 1000:.2f} ms | {busy(r)} |"
        )
    kill_time, kill_count = cut["killed"]
    before = kill_count / (kill_time - cut["first"])
    after_span = cut["last"] - kill_time
    after = (cut["served"] - kill_count) / after_span
    print(
        f"| server 2 killed at {kill_count / cut['served']:.0%} of the answers: before the kill | "
        f"{before:.1f} ({kill_time - cut['first']:.1f} s) | {ideal:.0f} | {before / ideal:.0%} | | | | |"
    )
    print(
        f"| ... from the kill to the last reply | {after:.1f} ({after_span:.1f} s) | {survivors:.0f} | "
        f"{after / survivors:.0%} | {cut['outcomes']['errors']} | {cut['retries']} | "
        f"{cut['cpu'] / cut['calls'] * 1000:.2f} ms | {busy(cut)} (whole run) |"
    )
    print(f"judge calls: {whole['calls']} and {cut['calls']}; outcome files byte-identical: {same}")


if __name__ == "__main__":
    main()
