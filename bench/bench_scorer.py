"""A scorer stage against a bare HTTP loop on the same server: what the engine adds to a scorer's calls.

    python bench/bench_scorer.py [--records 2000] [--concurrency 64] [--kinds classify,yes_no]

A FakeLLM server (its own process) answers /classify with two probabilities and a chat request with
a one-token "Yes"/"No" answer and its logprobs, after a delay drawn uniformly from 0.2 to 0.6 s.
The engine runs one stage, ``function_params`` with a scorer of that kind (threshold 0.5), on
synthetic xLAM records (bench/generate.py); the bare loop then makes as many requests with the
same concurrency, sending the very bodies the engine sent (the server writes them down): over
httpx to /classify, or through ``litellm.acompletion`` with the same messages and logprobs for
yes_no. Each runs in its own process, whose CPU time (user + system) and peak RSS are read when
it ends. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_judge import run_measured  # noqa: E402  (a fresh process's stdout, CPU time and peak RSS)


def serve(
    port_queue: multiprocessing.Queue, first: multiprocessing.Value, last: multiprocessing.Value, bodies: str
) -> None:
    from funreason_refine.testing.fake_llm import FakeLLM, Reply

    rng = random.Random(0)
    written = open(bodies, "w", encoding="utf-8")

    def script(request):
        now = time.time()
        if request.model != "bare":
            written.write(json.dumps(request.body) + "\n")
            written.flush()
        if first.value == 0.0:
            first.value = now
        delay = rng.uniform(0.2, 0.6)
        last.value = max(last.value, now + delay)
        good = rng.random()
        if request.endpoint == "classify":
            return Reply(probs=[1 - good, good], delay=delay, prompt_tokens=200)
        return Reply.yes_no(1 - good, delay=delay, completion_tokens=1)

    with FakeLLM(script) as server:
        port_queue.put(server.api_base)
        while True:
            time.sleep(3600)


BARE = """
import asyncio, json, os, sys, time
print(time.time(), flush=True)
kind, api_base, concurrency, bodies = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sent = [json.loads(line) for line in open(bodies, encoding="utf-8")]
for body in sent:
    body["model"] = "bare"
if kind == "yes_no":
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm
    litellm.suppress_debug_info = True
else:
    import httpx
async def main():
    slots = asyncio.Semaphore(concurrency)
    client = None if kind == "yes_no" else httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=None))
    url = api_base.removesuffix("/v1") + "/classify"
    async def one(body):
        async with slots:
            if client is None:
                await litellm.acompletion(model="hosted_vllm/bare", api_base=api_base, max_retries=0, timeout=60,
                                          messages=body["messages"], logprobs=True, top_logprobs=5, max_tokens=20,
                                          extra_body={"chat_template_kwargs": body["chat_template_kwargs"]})
            else:
                response = await client.post(url, json=body)
                response.json()["data"][0]["probs"]
    start = time.perf_counter()
    await asyncio.gather(*(one(b) for b in sent))
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
summary = result.summary.as_dict()
print(json.dumps({"seconds": time.perf_counter() - start, "calls": summary["judge"]["calls"],
                  "outcomes": summary["outcomes"], "scores": summary["stages"]["function_params"]["scores"]["count"]}))
"""


def bench_kind(kind: str, data: Path, runs: Path, concurrency: int, shared: tuple) -> list[tuple]:
    api_base, first, last, bodies = shared
    out_dir = runs / f"scorer-{kind}"
    subprocess.run(["rm", "-rf", str(out_dir)], check=True)
    pipeline = runs / f"scorer-{kind}.toml"
    pipeline.write_text(
        f'[input]\npath = "{data}"\nformat = "xlam"\n[output]\ndir = "{out_dir}"\n'
        '[[stages]]\nname = "function_params"\n'
        f'scorer = {{kind = "{kind}", model = "hosted_vllm/scorer", api_base = "{api_base}", threshold = 0.5, '
        f"max_concurrency = {concurrency}, timeout = 60}}\n"
    )
    first.value = last.value = 0.0
    out, cpu, mb = run_measured(ENGINE, str(pipeline))
    engine = json.loads(out.strip().splitlines()[-1])
    engine_row = (f"refine run, one {kind} scorer stage", engine["seconds"], last.value - first.value, cpu, mb)
    first.value = last.value = 0.0
    out, bare_cpu, bare_mb = run_measured(BARE, kind, api_base, str(concurrency), bodies)
    bare_seconds = float(out.split()[-1])
    what = "litellm.acompletion with logprobs" if kind == "yes_no" else "httpx POST /classify"
    bare_row = (f"bare {what} loop, same bodies", bare_seconds, last.value - first.value, bare_cpu, bare_mb)
    print(f"{kind}: calls={engine['calls']} scores={engine['scores']} outcomes={engine['outcomes']}", file=sys.stderr)
    return [(engine["calls"], *engine_row), (engine["calls"], *bare_row)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--kinds", default="classify,yes_no")
    args = parser.parse_args()
    data = HERE / "data" / f"judge-{args.records}.jsonl"
    if not data.exists():
        subprocess.run([sys.executable, str(HERE / "generate.py"), str(args.records), str(data)], check=True)
    runs = HERE / "runs"
    runs.mkdir(exist_ok=True)
    rows = []
    for kind in args.kinds.split(","):
        queue: multiprocessing.Queue = multiprocessing.Queue()
        first, last = multiprocessing.Value("d", 0.0), multiprocessing.Value("d", 0.0)
        bodies = runs / f"scorer-{kind}-bodies.jsonl"
        server = multiprocessing.Process(target=serve, args=(queue, first, last, str(bodies)), daemon=True)
        server.start()
        try:
            rows += bench_kind(kind, data, runs, args.concurrency, (queue.get(timeout=30), first, last, str(bodies)))
        finally:
            server.terminate()
    ideal = args.concurrency / 0.4  # calls/s: concurrency over the mean delay
    print(f"records={args.records} concurrency={args.concurrency}, answers after 0.2-0.6 s (ideal {ideal:.0f} calls/s)")
    print(
        "| | process wall | serving (first request to last reply) | calls/s while serving | of ideal | "
        "CPU per call | peak RSS |"
    )
    print("|---|---|---|---|---|---|---|")
    for calls, name, wall, serving, cpu, mb in rows:
        rate = calls / serving
        print(
            f"| {name} | {wall:.1f} s | {serving:.1f} s | {rate:.1f} | {rate / ideal:.0%} | "
            f"{cpu / calls * 1000:.2f} ms | {mb:.0f} MiB |"
        )


if __name__ == "__main__":
    main()
