"""A run killed with SIGKILL leaves no worker process behind (refiners/pool.py: _end_with)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import QUICKSTART

REFINE = "import sys; from funreason_refine.cli import main; sys.argv = ['refine', *sys.argv[1:]]; main()"


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc (Linux)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_the_workers_of_a_run_killed_with_sigkill_end_with_it(tmp_path):
    # The quickstart 600 times over (over 8 MiB): two workers, running for some seconds.
    (tmp_path / "in.jsonl").write_bytes((QUICKSTART / "records.jsonl").read_bytes() * 600)
    (tmp_path / "p.toml").write_text('[input]\npath = "in.jsonl"\n[output]\ndir = "r"\n')
    proc = subprocess.Popen(
        [sys.executable, "-c", REFINE, "run", str(tmp_path / "p.toml"), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while time.monotonic() < deadline and not (tmp_path / "r" / "kept.jsonl").is_file():
        time.sleep(0.01)
    # The fork server and its two workers (and the resource tracker) are all there once records are written.
    while time.monotonic() < deadline and len(workers := descendants(proc.pid)) < 3:
        time.sleep(0.01)
    assert proc.poll() is None and len(workers) >= 3, "the run ended before it could be killed"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not [pid for pid in workers if alive(pid)], workers
