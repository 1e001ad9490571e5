"""refine estimate's peak memory and time on a growing input: flat memory (it streams), time linear.

    python bench/bench_estimate_memory.py 10000 50000 200000 [--sample 1000]

Synthetic xLAM records (bench/generate.py) through the five built-in stages, all judged by
"openai/gpt-4o-mini" (priced from LiteLLM's cost map; nothing is sent). Each size is estimated in a
process of its own with `--output-tokens 40`; the peak is that process's maximum resident set size,
imports included. With --sample N, the estimate on a sample of N is also run on each input, and its
total cost set against the whole input's. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = """
import json, os, resource, sys, time
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
from funreason_refine.config import load_pipeline
from funreason_refine.estimate import estimate
sample = int(sys.argv[2]) if len(sys.argv) > 2 else None
started = time.perf_counter()
result = estimate(load_pipeline(sys.argv[1]), sample=sample, output_tokens=40)
rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": time.perf_counter() - started, "rss_kib": rss_kib,
                  "cost": result.total.cost_usd.low, "calls": result.total.calls.low}))
"""


def measure(pipeline: Path, sample: int | None) -> dict:
    args = [sys.executable, "-c", CHILD, str(pipeline), *([str(sample)] if sample else [])]
    done = subprocess.run(args, capture_output=True, text=True, env={"OPENAI_API_KEY": "sk-bench", "PATH": ""})
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", type=int, nargs="+")
    parser.add_argument("--sample", type=int)
    args = parser.parse_args()
    runs = HERE / "runs"
    runs.mkdir(exist_ok=True)
    print("| records | estimate | peak RSS | time | calls (low) | cost (low) |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        data = HERE / "data" / f"judge-{size}.jsonl"
        if not data.exists():
            subprocess.run([sys.executable, str(HERE / "generate.py"), str(size), str(data)], check=True)
        pipeline = runs / f"estimate-memory-{size}.toml"
        pipeline.write_text(
            f'[input]\npath = "{data}"\nformat = "xlam"\n[output]\ndir = "{runs / f"estimate-memory-{size}"}"\n'
            '[judge]\nmodel = "openai/gpt-4o-mini"\n'
        )
        whole = measure(pipeline, None)
        rows = [("whole input", whole)]
        if args.sample:
            rows.append((f"--sample {args.sample}", measure(pipeline, args.sample)))
        for name, m in rows:
            off = f" ({m['cost'] / whole['cost'] - 1:+.2%})" if m is not whole else ""
            print(
                f"| {size:,} | {name} | {m['rss_kib'] / 1024:.0f} MiB | {m['seconds']:.1f} s | {m['calls']:,.0f} | "
                f"${m['cost']:.4f}{off} |",
                flush=True,
            )


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"(bench took {time.perf_counter() - started:.0f} s)")
