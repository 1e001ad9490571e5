"""Judged throughput: the engine against a bare litellm.acompletion loop, same server, same run.

    python bench/bench_judge.py [--records 2000] [--concurrency 128]

A FakeLLM server (its own process, listen backlog 1024) answers every request with
<judge>True</judge> after a delay drawn uniformly from 0.5 to 1.5 s. The engine runs the five
built-in stages, all judged, on synthetic xLAM records (bench/generate.py); the bare loop makes
the same number of calls with the same concurrency, twice: sending the very messages the engine
sent (the server writes them down), which isolates what the engine adds; and sending a one-line
prompt per call, as issue 8 measured it (where prompt size shows as engine cost). Each runs in its
own process, whose CPU time (user + system) and peak RSS are read when it ends. Prints a Markdown
table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def serve(
    port_queue: multiprocessing.Queue,
    first_request: multiprocessing.Value,
    last_reply: multiprocessing.Value,
    prompts: str,
    arrivals: str,
) -> None:
    from funreason_refine.testing.fake_llm import FakeLLM, Reply

    rng = random.Random(0)
    written = open(prompts, "w", encoding="utf-8")  # the messages of every request, while the engine runs
    arrived = open(arrivals, "a", encoding="utf-8")  # "<model> <arrival time>" of every request (emptied between loops)

    def script(request):
        now = time.time()
        arrived.write(f"{request.model} {now}\n")
        arrived.flush()
        if request.model != "bare":
            written.write(json.dumps(request.messages) + "\n")
            written.flush()  # read by the bare loop's process, while this one still runs
        if first_request.value == 0.0:
            first_request.value = now
        delay = rng.uniform(0.5, 1.5)
        last_reply.value = max(last_reply.value, now + delay)
        return Reply(text="<judge>True</judge><reason>ok</reason>", delay=delay)

    with FakeLLM(script) as server:
        port_queue.put(server.api_base)
        while True:
            time.sleep(3600)


BARE = """
import asyncio, os, sys, time
print(time.time(), flush=True)
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
import litellm
litellm.suppress_debug_info = True
import json
api_base, calls, concurrency, prompts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sent = [json.loads(line) for line in open(prompts, encoding="utf-8")] if prompts != "-" else None
async def main():
    slots = asyncio.Semaphore(concurrency)
    first = []
    async def one(i):
        messages = sent[i % len(sent)] if sent else [{"role": "user", "content": f"Judge record {i}."}]
        async with slots:
            first.append(time.perf_counter())
            await litellm.acompletion(model="openai/bare", api_base=api_base, max_retries=0, timeout=60,
                                      messages=messages)
    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    print(time.perf_counter() - start)
asyncio.run(main())
"""

ENGINE = """
import json, sys, time
print(time.time(), flush=True)
start = time.perf_counter()
from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
result = run_pipeline(load_pipeline(sys.argv[1]))
print(json.dumps({"seconds": time.perf_counter() - start, "calls": result.summary.as_dict()["judge"]["calls"],
                  "outcomes": result.summary.as_dict()["outcomes"]}))
"""


def steady_rate(arrivals: Path, model: str) -> float:
    """Calls/s between the 10th and 90th percentile of the arrivals of ``model``'s requests."""
    times = sorted(float(line.split()[1]) for line in arrivals.read_text().splitlines() if line.split()[0] == model)
    low, high = len(times) // 10, 9 * len(times) // 10
    return (high - low) / (times[high] - times[low])


def run_measured(code: str, *args: str) -> tuple[str, float, float]:
    """(stdout, CPU seconds, peak RSS MiB) of a fresh Python process."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OPENAI_API_KEY": "sk-bench"},
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"benchmark process failed ({status})")
    return out, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=128)
    args = parser.parse_args()
    data = HERE / "data" / f"judge-{args.records}.jsonl"
    if not data.exists():
        subprocess.run([sys.executable, str(HERE / "generate.py"), str(args.records), str(data)], check=True)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    first_request = multiprocessing.Value("d", 0.0)
    last_reply = multiprocessing.Value("d", 0.0)
    runs = HERE / "runs"
    runs.mkdir(exist_ok=True)
    prompts = runs / f"judge-{args.records}-prompts.jsonl"
    arrivals = runs / f"judge-{args.records}-arrivals.txt"
    arrivals.write_text("")
    server = multiprocessing.Process(
        target=serve, args=(queue, first_request, last_reply, str(prompts), str(arrivals)), daemon=True
    )
    server.start()
    api_base = queue.get(timeout=30)
    try:
        out_dir = runs / f"judge-{args.records}"
        subprocess.run(["rm", "-rf", str(out_dir)], check=True)
        pipeline = runs / f"judge-{args.records}.toml"
        pipeline.write_text(
            f'[input]\npath = "{data}"\nformat = "xlam"\n[output]\ndir = "{out_dir}"\n'
            f'[judge]\nmodel = "openai/fake"\napi_base = "{api_base}"\nmax_concurrency = {args.concurrency}\n'
            f"timeout = 60\n"
        )
        out, engine_cpu, engine_mb = run_measured(ENGINE, str(pipeline))
        started, line = out.strip().splitlines()[-2:]
        engine = json.loads(line)
        engine_first = first_request.value - float(started)
        engine_serving = last_reply.value - first_request.value
        engine_steady = steady_rate(arrivals, "fake")
        calls = engine["calls"]
        bare, steady = {}, {}
        for name, sent in (("same prompts", str(prompts)), ("one-line prompts", "-")):
            first_request.value = last_reply.value = 0.0
            bare_out, bare_cpu, bare_mb = run_measured(BARE, api_base, str(calls), str(args.concurrency), sent)
            bare_started, bare_seconds = (float(x) for x in bare_out.split())
            bare[name] = (bare_seconds, last_reply.value - first_request.value, bare_cpu, bare_mb)
            steady[name] = steady_rate(arrivals, "bare")
            arrivals.write_text("")  # the next loop's arrivals only
        bare_first = first_request.value - bare_started
    finally:
        server.terminate()
    ideal = args.concurrency / 1.0  # calls/s: concurrency over the mean latency
    print(f"records={args.records} concurrency={args.concurrency} judge calls={calls} outcomes={engine['outcomes']}")
    print(
        "| | process wall | serving (first request to last reply) | calls/s while serving | of ideal | "
        "steady calls/s (10-90% of arrivals) | CPU per call | peak RSS |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = [("refine run (5 judged stages)", engine["seconds"], engine_serving, engine_steady, engine_cpu, engine_mb)]
    rows += [
        (f"bare litellm.acompletion loop, {name}", wall, serving, steady[name], cpu, mb)
        for name, (wall, serving, cpu, mb) in bare.items()
    ]
    for name, wall, serving, rate_steady, cpu, mb in rows:
        rate = calls / serving
        print(
            f"| {name} | {wall:.1f} s | {serving:.1f} s | {rate:.1f} | {rate / ideal:.0%} | {rate_steady:.1f} | "
            f"{cpu / calls * 1000:.2f} ms | {mb:.0f} MiB |"
        )
    for name, (_, serving, cpu, _) in bare.items():
        print(
            f"against the bare loop with {name}: calls/s {serving / engine_serving:.1%} "
            f"(steady {engine_steady / steady[name]:.1%}), CPU per call {engine_cpu / cpu:.2f}x"
        )
    print(
        f"first request at the server after process start (imports included): refine run {engine_first:.2f} s, "
        f"bare loop {bare_first:.2f} s"
    )


if __name__ == "__main__":
    main()
