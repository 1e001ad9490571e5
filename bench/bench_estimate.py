"""refine estimate against the judged run it predicts: calls, tokens, cost and wall time, on FakeLLM.

    python bench/bench_estimate.py [--records 3000] [--concurrency 64] [--corrected N]

Synthetic xLAM records (bench/generate.py) through the five built-in stages, all judged by
"openai/gpt-4o-mini" (priced from LiteLLM's cost map) served by a FakeLLM in its own process. The
judge thinks first: a <think> block of 0-80 words, drawn from the prompt's hash, then
<judge>True</judge>; at query_tool it answers False for one record in ten (by hash), so the run
discards what the rules pass. With ``--corrected N``, the function_params judge answers False for one
record in N (by hash) with corrected calls (NewFC: the answer's first integer argument plus one), which
the run checks again at every earlier stage: the estimate's repairs line predicts those calls. Each answer
comes after 0.2-0.6 s and reports usage as OpenAI counts it (3 tokens a message, its role and content, 3 for
the reply; LiteLLM's tokenizer for the model).

In a fresh run folder: `refine estimate --output-tokens 40 --json` (a guess, nothing sent), then
`refine estimate --probe 10 --json` (10 real calls per stage, kept in the answer cache), then
`refine run`, whose summary.json is set against both. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = "openai/gpt-4o-mini"
WORDS = "the user asks for this tool so the call takes these arguments from the query".split()


def _draw(text: str, salt: str) -> int:
    return int(hashlib.sha256((salt + text).encode()).hexdigest()[:8], 16)


def corrected(prompt: str) -> str | None:
    """The ANSWER section's calls with their first integer argument plus one; None when it has none."""
    answer = prompt.split("===== ANSWER =====\n", 1)[-1].split("\n===== END", 1)[0]
    found = re.search(r"=(\d+)", answer)
    if found is None:
        return None
    return f"{answer[: found.start(1)]}{int(found.group(1)) + 1}{answer[found.end(1) :]}"


def serve(port_queue: multiprocessing.Queue, corrects: int) -> None:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    from funreason_refine.testing.fake_llm import FakeLLM, Reply

    def tokens(text: str) -> int:
        return len(litellm.encode(model="gpt-4o-mini", text=text))

    def script(request):
        prompt = request.prompt
        think = " ".join(WORDS[i % len(WORDS)] for i in range(_draw(prompt, "think") % 81))
        rejected = "Question (query and tools)" in prompt and _draw(prompt, "verdict") % 10 == 0
        text = f"<think>{think}</think><judge>{not rejected}</judge><reason>checked</reason>"
        fixed = corrected(prompt) if "Question (function calls)" in prompt else None
        if corrects and fixed is not None and _draw(prompt, "fix") % corrects == 0:
            text = f"<think>{think}</think><judge>False</judge><reason>off by one</reason><NewFC>{fixed}</NewFC>"
        usage = 3 + sum(3 + tokens(m["role"]) + tokens(m["content"]) for m in request.messages)
        delay = 0.2 + (_draw(prompt, "delay") % 1000) / 2500
        return Reply(text, prompt_tokens=usage, completion_tokens=tokens(text), delay=delay)

    with FakeLLM(script) as server:
        port_queue.put(server.api_base)
        while True:
            time.sleep(3600)


def refine(*args: str) -> str:
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "COLUMNS": "200"}
    code = "import sys; from funreason_refine.cli import main; sys.argv = ['refine', *sys.argv[1:]]; main()"
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"refine {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--corrected", type=int, default=0, help="function_params corrects one record in N (0: none)")
    args = parser.parse_args()
    data = HERE / "data" / f"judge-{args.records}.jsonl"
    if not data.exists():
        subprocess.run([sys.executable, str(HERE / "generate.py"), str(args.records), str(data)], check=True)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(queue, args.corrected), daemon=True)
    server.start()
    api_base = queue.get(timeout=60)
    try:
        runs = HERE / "runs"
        runs.mkdir(exist_ok=True)
        out_dir = runs / f"estimate-{args.records}-{args.corrected}"
        subprocess.run(["rm", "-rf", str(out_dir)], check=True)
        pipeline = runs / f"estimate-{args.records}.toml"
        pipeline.write_text(
            f'[input]\npath = "{data}"\nformat = "xlam"\n[output]\ndir = "{out_dir}"\n'
            f'[judge]\nmodel = "{MODEL}"\napi_base = "{api_base}"\nmax_concurrency = {args.concurrency}\ntimeout = 60\n'
        )
        guess = json.loads(refine("estimate", str(pipeline), "--output-tokens", "40", "--json"))
        probed = json.loads(refine("estimate", str(pipeline), "--probe", "10", "--json"))
        started = time.perf_counter()
        refine("run", str(pipeline))
        wall = time.perf_counter() - started
    finally:
        server.terminate()
    summary = json.loads((out_dir / "summary.json").read_text())
    report(args, summary, wall, {"--output-tokens 40": guess, "--probe 10": probed})


def report(args: argparse.Namespace, summary: dict, wall: float, estimates: dict[str, dict]) -> None:
    judge = summary["judge"]
    print(f"records={args.records} concurrency={args.concurrency} corrected={args.corrected} "
          f"outcomes={summary['outcomes']}")  # fmt: skip
    print("| | calls (+ cached) | input tokens | output tokens | cost | wall time |")
    print("|---|---|---|---|---|---|")
    for name, figures in estimates.items():
        total = figures["total"]

        def span(key: str, fmt: str, total: dict = total) -> str:
            return f"{fmt.format(total[key]['low'])} - {fmt.format(total[key]['high'])}"

        print(
            f"| estimate {name} | {span('calls', '{:,.0f}')} (+ {total['cached_calls']['low']:,.0f}) | "
            f"{span('input_tokens', '{:,.0f}')} | {span('output_tokens', '{:,.0f}')} | {span('cost_usd', '${:.4f}')} | "
            f"{span('seconds', '{:.0f} s')} |"
        )
    print(
        f"| refine run (summary.json) | {judge['calls']:,} (+ {judge['cached']:,}) | {judge['prompt_tokens']:,} | "
        f"{judge['completion_tokens']:,} | ${judge['cost_usd']:.4f} | {wall:.0f} s (process), "
        f"{summary['timings']['seconds']:.0f} s (run) |"
    )
    print("per stage, calls: estimate --probe 10 low - high | run (+ cached)")
    for stage, figures in estimates["--probe 10"]["stages"].items():
        run = judge["per_stage"].get(stage, {"calls": 0, "cached": 0})
        calls = figures["calls"]
        print(f"  {stage}: {calls['low']:,.0f} - {calls['high']:,.0f} | {run['calls']:,} (+ {run['cached']})")
    for line in estimates["--probe 10"]["assumptions"] + estimates["--probe 10"]["notes"]:
        print(f"  assumed/note: {line}")
    for name, figures in estimates.items():
        low = figures["total"]
        added = [(r["calls"], r["cost_usd"]) for r in figures["repairs"]]
        calls, cost = low["calls"]["low"] + sum(a[0] for a in added), low["cost_usd"]["low"] + sum(a[1] for a in added)
        print(f"  estimate {name}: low + repairs = {calls:,.0f} calls, ${cost:.4f}; repairs: {figures['repairs']}")
    regenerated = summary["stages"]["function_params"]["regenerated"]
    print(f"  run: function_params regenerated {regenerated}")


if __name__ == "__main__":
    main()
