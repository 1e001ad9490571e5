"""What the input's identity in run.json costs: hashing the input when a run folder is made, and the
checks a resume makes.

    python bench/bench_input_identity.py 100 1000 [--repeats 5]

For each size in MB: writes a file of JSON lines (once, under bench/data/), then times, median of
``--repeats``, with the file in the page cache (a first read from disk is the disk's speed, not
this code's): ``FileIdentity.of`` (size, modification time and the BLAKE2b hash of every byte: what
a new run folder records), ``change`` on the unchanged file (size and time only: what every resume
of an untouched input pays), and ``change`` on the same file with one record appended (the first
``bytes`` hashed again: a resume of an input that grew). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from funreason_refine.run_identity import FileIdentity

DATA = Path(__file__).resolve().parent / "data"
LINE = b'{"id": "%d", "query": "Weather in Paris, item %d?", "tools": "[]", "answers": "[]", "cot": "x"}\n'


def make(megabytes: int) -> Path:
    path = DATA / f"identity-{megabytes}mb.jsonl"
    if not path.exists() or path.stat().st_size < megabytes << 20:
        DATA.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            i = 0
            while fh.tell() < megabytes << 20:
                fh.write(b"".join(LINE % (j, j) for j in range(i, i + 10_000)))
                i += 10_000
    return path


def median_seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(megabytes: int, repeats: int) -> str:
    path = make(megabytes)
    path.read_bytes()  # into the page cache
    recorded = median_seconds(lambda: FileIdentity.of(path), repeats)
    identity = FileIdentity.of(path)
    untouched = median_seconds(lambda: identity.change(path), repeats)
    grown = path.with_suffix(".grown.jsonl")
    shutil.copyfile(path, grown)
    with grown.open("ab") as fh:
        fh.write(LINE % (0, 0))
    grown_identity = identity.model_copy(update={"path": str(grown)})
    assert grown_identity.change(grown) is None, "an input that only grew goes on"
    appended = median_seconds(lambda: grown_identity.change(grown), repeats)
    grown.unlink()
    size = path.stat().st_size / (1 << 20)
    return f"| {size:,.0f} MB | {recorded:.3f} | {recorded / size * 100:.3f} | {untouched * 1e6:.0f} | {appended:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("megabytes", type=int, nargs="+")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("| input | recorded (s) | s per 100 MB | resume, input untouched (µs) | resume, input grew (s) |")
    print("|---|---|---|---|---|")
    for megabytes in args.megabytes:
        print(measure(megabytes, args.repeats))


if __name__ == "__main__":
    main()
