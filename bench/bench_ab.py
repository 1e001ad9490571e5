"""CPU time of `refine run` on two source trees, alternately: what a change costs, on a noisy machine.

    git archive OLD_COMMIT | tar -x -C /tmp/old
    python bench/bench_ab.py /tmp/old . [--records 60000] [--pairs 5] [--workers 1] [--pipeline-extra TEXT]
                             [--new-extra TEXT]

Each run is a fresh process with the tree first on PYTHONPATH (an editable install of either tree
is overridden by it), into a fresh run folder. CPU is user + system time. With ``--workers 1`` (the
default) all work is in the run's own process, measured exactly (resource.getrusage
RUSAGE_CHILDREN around the run). With more workers, which are children of a fork server and so
not counted there, the CPU of every process of the run's tree is sampled from /proc every 20 ms and
the last sample of each is summed (a process's last 20 ms are missed). Wall time is printed too.
The runs' outcome files are compared byte for byte with ``--same``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REFINE = "import sys; from funreason_refine.cli import main; sys.argv = ['refine', *sys.argv[1:]]; main()"


def _tree(root: int) -> list[int]:
    """The process and its descendants, from /proc children lists."""
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        found.append(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    frontier.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return found


def _cpu(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _sampled_cpu(proc: subprocess.Popen[bytes]) -> float:
    last: dict[int, float] = {}
    while proc.poll() is None:
        for pid in _tree(proc.pid)[1:]:  # the run's own time comes from getrusage
            seconds = _cpu(pid)
            if seconds is not None:
                last[pid] = seconds
        time.sleep(0.02)
    return sum(last.values())


def run(tree: Path, pipeline: Path, out: Path, workers: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one `refine run`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(tree.resolve())
    subprocess.run(["rm", "-rf", str(out)], check=True)
    os.sync()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    cmd = [sys.executable, "-c", REFINE, "run", str(pipeline), "--out", str(out), "--workers", str(workers)]
    # cwd away from the repository: python -c puts the working directory before PYTHONPATH
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, cwd=out.parent)
    others = _sampled_cpu(proc) if workers > 1 else 0.0
    if proc.wait() != 0:
        raise SystemExit(f"refine run failed with status {proc.returncode}")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime + others, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path, help="source tree of the code before the change")
    parser.add_argument("new", type=Path, help="source tree of the code after the change")
    parser.add_argument("--records", type=int, default=60000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pipeline-extra", default="", help="TOML appended to the pipeline file of both runs")
    parser.add_argument("--new-extra", default="", help="TOML appended to the new tree's pipeline file only")
    parser.add_argument("--same", action="store_true", help="check that both write the same outcome files")
    args = parser.parse_args()
    data = HERE / "data" / f"{args.records}.jsonl"
    if not data.exists():
        subprocess.run([sys.executable, str(HERE / "generate.py"), str(args.records), str(data)], check=True)
    runs = HERE / "runs"
    runs.mkdir(exist_ok=True)
    pipeline = runs / f"ab-{args.records}.toml"
    pipeline.write_text(f'[input]\npath = "{data}"\nformat = "xlam"\n{args.pipeline_extra}\n')
    new_pipeline = runs / f"ab-{args.records}-new.toml"
    new_pipeline.write_text(pipeline.read_text() + args.new_extra + "\n")
    pairs = []
    for i in range(args.pairs):
        old = run(args.old, pipeline, runs / "ab-old", args.workers)
        new = run(args.new, new_pipeline, runs / "ab-new", args.workers)
        pairs.append((old, new))
        print(
            f"pair {i + 1}: old {old[0]:.2f} s CPU ({old[1]:.2f} s wall), new {new[0]:.2f} s CPU "
            f"({new[1]:.2f} s wall), CPU ratio {new[0] / old[0]:.3f}",
            file=sys.stderr,
        )
        if args.same:
            for name in ("kept.jsonl", "discarded.jsonl", "quarantined.jsonl", "errors.jsonl"):
                a, b = (runs / "ab-old" / name).read_bytes(), (runs / "ab-new" / name).read_bytes()
                if a != b:
                    raise SystemExit(f"{name} differs between the trees")
    cpu_old = statistics.median(o[0] for o, _ in pairs)
    cpu_new = statistics.median(n[0] for _, n in pairs)
    ratio = statistics.median(n[0] / o[0] for o, n in pairs)
    wall = statistics.median(n[1] / o[1] for o, n in pairs)
    print(f"{args.records:,} records, --workers {args.workers}, {args.pairs} pairs (medians):")
    print("| CPU old | CPU new | CPU new - old | CPU ratio (median of pairs) | wall ratio (median of pairs) |")
    print("|---|---|---|---|---|")
    print(f"| {cpu_old:.2f} s | {cpu_new:.2f} s | {cpu_new - cpu_old:+.2f} s | {ratio:.3f} | {wall:.3f} |")


if __name__ == "__main__":
    main()
