"""Time `refine report` (and `refine audit --json`) on a 60,000-record run folder.

python bench/bench_offline.py 60000      # makes bench/runs/run-60000
python bench/bench_report.py [RUN_DIR]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from funreason_refine.cli import main; sys.argv = ['refine', *sys.argv[1:]]; main()",
            *args,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    run_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs" / "run-60000"
    if not (run_dir / "summary.json").exists():
        raise SystemExit(f"{run_dir} is not a run folder: run bench/bench_offline.py 60000 first")
    lines = sum(
        1 for name in ("kept", "discarded", "quarantined", "errors") for _ in (run_dir / f"{name}.jsonl").open()
    )
    size = sum((run_dir / f"{n}.jsonl").stat().st_size for n in ("kept", "discarded", "quarantined", "errors"))
    report = min(timed("report", str(run_dir)) for _ in range(3))
    audit = min(timed("audit", str(run_dir), "--json", "--limit", "20") for _ in range(3))
    print(f"run folder: {lines:,} records, {size / 2**20:.0f} MiB")
    print(f"| refine report (terminal + report.md + report.html) | {report:.1f} s |")
    print(f"| refine audit --json --limit 20 | {audit:.2f} s |")


if __name__ == "__main__":
    main()
