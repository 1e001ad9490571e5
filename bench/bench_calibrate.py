"""Time `refine calibrate` twice on the same golden set: the second run is answered from the caches.

python bench/bench_calibrate.py [--records 300] [--delay 0.2]

A golden set of synthetic xLAM records (bench/generate.py), labelled at random; three
candidates (rules only, the pipeline's judge, one --judge-model), the five built-in stages all
judged, max_concurrency 64, against a FakeLLM that answers True after ``--delay`` seconds.
Prints each run's wall time, the requests the server received and the cost per 1,000 records
calibrate reported (the same both times: cached answers count at what they cost when asked).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main(records: int, delay: float) -> None:
    from generate import make_pool, make_record

    from funreason_refine.calibrate.run import calibrate
    from funreason_refine.testing.fake_llm import FakeLLM, Reply

    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    rng = random.Random(0)
    pool = make_pool(rng)
    folder = Path(tempfile.mkdtemp(prefix="bench-calibrate-"))
    with (folder / "golden.jsonl").open("w") as fh:
        for i in range(records):
            label = {"outcome": rng.choice(["keep", "discard"])}
            fh.write(json.dumps({**make_record(rng, pool, i), "label": label}) + "\n")
    answer = Reply("<judge>True</judge>", delay=delay, prompt_tokens=900, completion_tokens=60)
    with FakeLLM(lambda r: answer) as server:
        (folder / "pipeline.toml").write_text(
            '[input]\npath = "x.jsonl"\n[output]\ndir = "run"\n'
            f'[judge]\nmodel = "openai/a"\napi_base = "{server.api_base}"\n'
            "max_concurrency = 64\nprices = {input_per_million = 0.5, output_per_million = 1.5}\n"
        )
        for attempt in ("first", "second"):
            asked = len(server.requests)
            start = time.perf_counter()
            report = calibrate(folder / "golden.jsonl", folder / "pipeline.toml", folder / "cal", ["openai/b"])
            took = time.perf_counter() - start
            cost = [c["usage"]["per_1000"]["cost_usd"] for c in report["candidates"]]
            print(
                f"{attempt} calibration of {records} records, 3 candidates: {took:.1f} s, "
                f"{len(server.requests) - asked} requests, USD per 1,000 records {cost}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--delay", type=float, default=0.2)
    args = parser.parse_args()
    main(args.records, args.delay)
