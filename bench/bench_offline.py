"""Offline pipeline throughput and peak memory against a plain json load + dump of the same file.

    python bench/bench_offline.py 60000 600000 [--repeats 5]

For each size: generates the data (once, cached in bench/data/), then runs in separate
processes (so peak RSS is per run), alternately, ``--repeats`` times: the baseline (json.loads +
json.dumps of every line to a file) and `refine run` with the five built-in stages, into a fresh
run folder each time. Peak memory is the summed RSS of the process and its workers, sampled
every 100 ms. Prints a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RUNS = HERE / "runs"
# As installed by pip, modules have their bytecode cached; a PYTHONDONTWRITEBYTECODE inherited
# from a sandbox would make every run compile the package from source again (0.25 s here).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

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
    """(wall seconds, peak summed RSS in MiB of the process tree) of a fresh Python running ``code``.

    The end is taken when the process exits (``wait``), not at the next memory sample; memory is
    sampled every 100 ms by a thread.
    """
    os.sync()  # the previous run's written pages go to disk now, not while this one is timed
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL, env=ENV)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.1):
            peak = max(peak, _tree_rss_kib(proc.pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    returncode = proc.wait()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if returncode != 0:
        raise SystemExit(f"benchmark process failed with status {returncode}")
    return seconds, peak / 1024


def main(sizes: list[int], repeats: int) -> None:
    rows = []
    for n in sizes:
        data = DATA / f"{n}.jsonl"
        if not data.exists():
            subprocess.run([sys.executable, str(HERE / "generate.py"), str(n), str(data)], check=True)
        pipeline = RUNS / f"{n}.toml"
        out = RUNS / f"run-{n}"
        RUNS.mkdir(exist_ok=True)
        pipeline.write_text(f'[input]\npath = "{data}"\nformat = "xlam"\n[output]\ndir = "{out}"\n')
        # Interleaved pairs: a shared machine's speed drifts by 10-20% over minutes, and the ratio
        # of a baseline and a refine run taken back to back is steadier than either time alone.
        pairs = []
        for _ in range(repeats):
            subprocess.run(["rm", "-rf", str(out)], check=True)
            base = measure(BASELINE, str(data), str(RUNS / "baseline.jsonl"))
            run = measure(REFINE, str(pipeline), str(out))
            pairs.append((base, run))
            print(
                f"{n:,}: baseline {base[0]:.2f} s, refine {run[0]:.2f} s, ratio {run[0] / base[0]:.2f}x",
                file=sys.stderr,
            )
        base_s = statistics.median(b[0] for b, _ in pairs)
        run_s = statistics.median(r[0] for _, r in pairs)
        ratio = statistics.median(r[0] / b[0] for b, r in pairs)
        base_mb = max(b[1] for b, _ in pairs)
        run_mb = max(r[1] for _, r in pairs)
        size_mb = data.stat().st_size / 2**20
        rows.append(
            f"| {n:,} | {size_mb:,.0f} MiB | {base_s:.2f} s | {run_s:.2f} s | {n / run_s:,.0f} | "
            f"{ratio:.2f}x | {base_mb:.0f} MiB | {run_mb:.0f} MiB |"
        )
    print(f"median of {repeats} interleaved pairs; ratio: median of the per-pair ratios; peak RSS: the highest")
    print("| records | file | json load+dump | refine run | records/s | ratio | peak RSS baseline | peak RSS refine |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[60000], help="numbers of records (default 60000)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved baseline/refine pairs per size")
    args = parser.parse_args()
    main(args.sizes, args.repeats)
