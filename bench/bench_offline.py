"""Offline pipeline throughput and peak memory against a plain json load + dump of the same file.

    python bench/bench_offline.py 60000 600000

For each size: generates the data (once, cached in bench/data/), then runs in separate
processes (so peak RSS is per run): the baseline (json.loads + json.dumps of every line to a
file) and `refine run` with the five built-in stages. Peak memory is the summed RSS of the
process and its workers, sampled every 100 ms. Prints a Markdown table.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RUNS = HERE / "runs"

BASELINE = """
import json, sys
with open(sys.argv[1], encoding="utf-8") as src, open(sys.argv[2], "w", encoding="utf-8") as dst:
    for line in src:
        dst.write(json.dumps(json.loads(line)) + "\\n")
"""

REFINE = """
import sys
from funreason_refine.cli import main
sys.argv = ["refine", "run", sys.argv[1], "--out", sys.argv[2]]
main()
"""


def _tree_rss_kib(root: int) -> int:
    """Summed RSS of a process and its descendants (workers included), walking /proc children lists."""
    total, frontier = 0, [root]
    while frontier:
        pid = frontier.pop()
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    frontier.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total


def measure(code: str, *args: str) -> tuple[float, float]:
    """(wall seconds, peak summed RSS in MiB of the process tree) of a fresh Python running ``code``."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kib(proc.pid))
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark process failed with status {proc.returncode}")
    return seconds, peak / 1024


def main(sizes: list[int]) -> None:
    rows = []
    for n in sizes:
        data = DATA / f"{n}.jsonl"
        if not data.exists():
            subprocess.run([sys.executable, str(HERE / "generate.py"), str(n), str(data)], check=True)
        pipeline = RUNS / f"{n}.toml"
        out = RUNS / f"run-{n}"
        RUNS.mkdir(exist_ok=True)
        subprocess.run(["rm", "-rf", str(out)], check=True)
        pipeline.write_text(f'[input]\npath = "{data}"\nformat = "xlam"\n[output]\ndir = "{out}"\n')
        base_s, base_mb = measure(BASELINE, str(data), str(RUNS / "baseline.jsonl"))
        run_s, run_mb = measure(REFINE, str(pipeline), str(out))
        size_mb = data.stat().st_size / 2**20
        rows.append(f"| {n:,} | {size_mb:,.0f} MiB | {base_s:.1f} s | {run_s:.1f} s | {n / run_s:,.0f} | "
                    f"{run_s / base_s:.2f}x | {base_mb:.0f} MiB | {run_mb:.0f} MiB |")
    print("| records | file | json load+dump | refine run | records/s | ratio | peak RSS baseline | peak RSS refine |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [60000])
