"""What the reusable_prefix_tokens accounting costs a judged run: CPU per call of judge/prefix.py.

    python bench/bench_prefix_cost.py [--records 2000]

The calls of a judged run of the synthetic records (bench/generate.py) through the five built-in
stages are written down by a dry run (refine estimate's: the real policy and prompts, every judge
passing, nothing sent); each call's messages then go through ``PrefixCaches.reusable_tokens`` as
the client passes them after an answer, on one server, in the run's order. Prints the microseconds
a call, best of 5 passes, beside the CPU a call costs LiteLLM in bench_judge.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def calls_of(data: Path) -> list[list[dict[str, str]]]:
    from funreason_refine.config import load_pipeline
    from funreason_refine.estimate.dry import DryRunner, record_calls
    from funreason_refine.readers import InputStream
    from funreason_refine.record import Record

    runs = HERE / "runs"
    runs.mkdir(exist_ok=True)
    pipeline_file = runs / "prefix-cost.toml"
    pipeline_file.write_text(
        f'[input]\npath = "{data}"\nformat = "xlam"\n[output]\ndir = "{runs / "prefix-cost"}"\n'
        '[judge]\nmodel = "openai/fake"\napi_base = "http://127.0.0.1:9/v1"\n'
    )
    pipeline = load_pipeline(pipeline_file)
    stream = InputStream.open(pipeline.input)
    records = [r for r in stream.items() if isinstance(r, Record)]
    runner = DryRunner(protocol_retries=0, written_tokens=40)

    async def walk() -> list[list[dict[str, str]]]:
        out = []
        for record in records:
            out += [call.messages for call in (await record_calls(record, pipeline.stages, runner)).rules]
        return out

    return asyncio.run(walk())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    data = HERE / "data" / f"judge-{args.records}.jsonl"
    if not data.exists():
        subprocess.run([sys.executable, str(HERE / "generate.py"), str(args.records), str(data)], check=True)
    from funreason_refine.judge.prefix import PrefixCaches

    messages = calls_of(data)
    chars = sum(len(m["content"]) for call in messages for m in call) / len(messages)
    best = float("inf")
    for _ in range(5):
        caches = PrefixCaches()
        started = time.process_time()
        for call in messages:
            caches.reusable_tokens("openai/fake", "http://gpu-1:8000/v1", call, 700)
        best = min(best, time.process_time() - started)
    print(f"records={args.records} calls={len(messages)} prompt characters a call={chars:,.0f}")
    print(f"reusable_prefix_tokens accounting: {best / len(messages) * 1e6:.1f} us CPU a call (best of 5)")


if __name__ == "__main__":
    main()
