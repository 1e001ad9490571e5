"""Prompt tokens a server's prefix cache can reuse: the built-in prompts against the layout before issue 16.

    python bench/bench_prefix.py [--records 2000] [--concurrency 64]

Runs the five built-in stages, all judged, on synthetic xLAM records (bench/generate.py) against a
FakeLLM that answers <judge>True</judge> at once and reports as prompt tokens the tiktoken
cl100k_base count of the prompt in a ChatML template; once with today's prompts, once with the
prompts of before (bench/prompts_before_issue16, through stage_specs_dir). For each run it prints,
per stage, the share of prompt tokens that ``summary.json`` counts as ``reusable_prefix_tokens``
(the engine's model: blocks of 64 characters, judge/prefix.py), and the same share worked out
exactly on tokens from the server's request log, in vLLM's terms: blocks of 16 tokens chained by
hash, with an LRU of 16,384 blocks and with an unbounded cache.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import OrderedDict, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARKERS = {  # stage of a prompt, in both layouts
    "classification": ("Decide whether the reference answer",),
    "query_tool": ("The user query can be solved",),
    "cot": ("===== COT =====",),
    "function_params": ("checking the function calls",),
    "format": ("checking the format",),
}


def stage_of(prompt: str) -> str:
    return next(s for s, markers in MARKERS.items() if any(m in prompt for m in markers))


def chatml(messages: list[dict]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"


def exact_shares(log: list[tuple[str, list[int]]], capacity: int | None, block: int = 16) -> dict[str, float]:
    """Per stage, the share of prompt tokens in leading 16-token blocks a server has seen (vLLM's rule)."""
    seen: OrderedDict[int, None] = OrderedDict()
    reused: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for stage, tokens in log:
        parent, hit = 0, True
        for start in range(0, len(tokens) - block + 1, block):
            parent = hash((parent, tuple(tokens[start : start + block])))
            if hit and parent in seen:
                reused[stage] += block
                seen.move_to_end(parent)
            else:
                hit = False
                seen[parent] = None
        while capacity is not None and len(seen) > capacity:
            seen.popitem(last=False)
        total[stage] += len(tokens)
    shares = {s: reused[s] / total[s] for s in total}
    shares["all"] = sum(reused.values()) / sum(total.values())
    return shares


def run(records: Path, runs: Path, name: str, concurrency: int, specs: Path | None) -> tuple[dict, list]:
    from funreason_refine.config import load_pipeline
    from funreason_refine.engine import run_pipeline
    from funreason_refine.judge.library import load_litellm
    from funreason_refine.testing.fake_llm import FakeLLM, Reply

    litellm = load_litellm()  # its tiktoken files ship with it: nothing is downloaded
    log: list[tuple[str, list[int]]] = []
    lock = threading.Lock()

    def script(request):
        tokens = litellm.encode(model="gpt-4", text=chatml(request.messages))
        with lock:
            log.append((stage_of(request.prompt), tokens))
        return Reply("<judge>True</judge><reason>ok</reason>", prompt_tokens=len(tokens), completion_tokens=8)

    out_dir = runs / f"prefix-{name}"
    subprocess.run(["rm", "-rf", str(out_dir)], check=True)
    with FakeLLM(script) as server:
        pipeline = runs / f"prefix-{name}.toml"
        top = f'stage_specs_dir = "{specs}"\n' if specs else ""
        pipeline.write_text(
            f'{top}[input]\npath = "{records}"\nformat = "xlam"\n[output]\ndir = "{out_dir}"\n'
            f'[judge]\nmodel = "openai/fake"\napi_base = "{server.api_base}"\nmax_concurrency = {concurrency}\n'
        )
        started = time.perf_counter()
        summary = run_pipeline(load_pipeline(pipeline)).summary.as_dict()
        print(f"{name}: {summary['judge']['calls']} calls in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return summary["judge"], log


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    data = HERE / "data" / f"judge-{args.records}.jsonl"
    if not data.exists():
        subprocess.run([sys.executable, str(HERE / "generate.py"), str(args.records), str(data)], check=True)
    runs = HERE / "runs"
    runs.mkdir(exist_ok=True)
    results = {
        "before (one user message, each stage's instructions first)": run(
            data, runs, "before", args.concurrency, HERE / "prompts_before_issue16"
        ),
        "now (system message, record, then the stage's question)": run(data, runs, "now", args.concurrency, None),
    }
    stages = [*MARKERS, "all"]
    print(f"records={args.records} concurrency={args.concurrency}")
    print("| layout | measure | " + " | ".join(stages) + " |")
    print("|---|---|" + "---|" * len(stages))
    for layout, (judge, log) in results.items():
        per_stage = {
            s: (u["reusable_prefix_tokens"], u["prompt_tokens"], u["calls"]) for s, u in judge["per_stage"].items()
        }
        per_stage["all"] = (judge["reusable_prefix_tokens"], judge["prompt_tokens"], judge["calls"])
        rows = {
            "prompt tokens per call": [f"{per_stage[s][1] / per_stage[s][2]:.0f}" for s in stages],
            "summary.json (64-char blocks, LRU 16,384)": [f"{per_stage[s][0] / per_stage[s][1]:.1%}" for s in stages],
            "exact: 16-token blocks, LRU 16,384": _row(exact_shares(log, 16_384), stages),
            "exact: 16-token blocks, unbounded": _row(exact_shares(log, None), stages),
        }
        for measure, cells in rows.items():
            print(f"| {layout} | {measure} | " + " | ".join(cells) + " |")
    print(json.dumps({k: v[0]["per_stage"] for k, v in results.items()}), file=sys.stderr)


def _row(shares: dict[str, float], stages: list[str]) -> list[str]:
    return [f"{shares.get(s, 0.0):.1%}" for s in stages]


if __name__ == "__main__":
    main()
