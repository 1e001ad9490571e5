"""Time `refine review` on a 60,000-record run folder: start-up, the record list, a record, a decision.

python bench/bench_offline.py 60000      # makes bench/runs/run-60000
python bench/bench_review.py [RUN_DIR]

Start-up is the whole `refine review` process until it prints its address (best of 3). The
rest is measured in process against the same server over HTTP: the list of records the page
loads first (its size and time), 200 random records, and 50 decisions (each fsynced), which
are written to a copy of overrides.jsonl and removed afterwards.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def startup(run_dir: Path) -> float:
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", "from funreason_refine.cli import main; main()", "review", str(run_dir), "--no-browser"],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen = b""
    while not re.search(rb"http://127\.0\.0\.1:\d+/", seen):
        select.select([process.stdout], [], [], 1)
        seen += os.read(process.stdout.fileno(), 4096)
    elapsed = time.perf_counter() - start
    process.terminate()
    process.wait()
    return elapsed


def call(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[float, bytes]:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request(method, path, body, {"Host": f"127.0.0.1:{port}", **(headers or {})})
    payload = conn.getresponse().read()
    conn.close()
    return time.perf_counter() - start, payload


def main() -> None:
    from funreason_refine.overrides import OVERRIDES
    from funreason_refine.review.server import ReviewServer

    run_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs" / "run-60000"
    if not (run_dir / "summary.json").exists():
        raise SystemExit(f"{run_dir} is not a run folder: run bench/bench_offline.py 60000 first")
    overrides = run_dir / OVERRIDES
    if overrides.exists():
        raise SystemExit(f"{overrides} exists: this benchmark writes decisions, give a run folder without a review")
    best = min(startup(run_dir) for _ in range(3))
    print(f"refine review start-up (process, until the address is printed): {best:.2f} s")
    start = time.perf_counter()
    server = ReviewServer(run_dir).start()
    print(f"index of the run folder in process: {time.perf_counter() - start:.2f} s")
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    try:
        took, items = call(port, "GET", "/api/items")
        listed = json.loads(items)["items"]
        print(f"record list: {len(listed):,} records, {len(items) / 2**20:.1f} MiB JSON, {took * 1000:.0f} ms")
        rng = random.Random(0)
        sample = rng.sample(listed, 200)
        record_ms = [call(port, "GET", f"/api/record?index={i['index']}")[0] * 1000 for i in sample]
        print(f"one record: median {statistics.median(record_ms):.1f} ms, max {max(record_ms):.1f} ms (200 records)")
        headers = {"Content-Type": "application/json", "X-Review-Token": server.state.token}
        bodies = [json.dumps({"index": i["index"], "decision": "wrong"}).encode() for i in sample[:50]]
        decide_ms = [call(port, "POST", "/api/decision", body, headers)[0] * 1000 for body in bodies]
        print(f"one decision (fsync): median {statistics.median(decide_ms):.1f} ms, max {max(decide_ms):.1f} ms (50)")
    finally:
        server.stop()
        overrides.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
