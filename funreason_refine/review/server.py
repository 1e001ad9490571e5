"""`refine review`: a local HTTP server for the review page, on 127.0.0.1 only.

The standard library's server is enough for one person on one machine; it needs no dependency.
Writes are refused unless they come from the page itself: the Host must be this server (no DNS
rebinding), an Origin if sent must be this server, the body must be JSON (a cross-site form
cannot send that without a CORS preflight, which is never granted) and it must carry the
per-server token that only the page knows. The only file written is RUN_DIR/overrides.jsonl.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from funreason_refine.errors import RefineError
from funreason_refine.jsonl import escaped_surrogates
from funreason_refine.overrides import OVERRIDES, Decision, OverrideLog, decision_for, read_decisions
from funreason_refine.report.data import shown
from funreason_refine.review.index import DEFAULT_KEPT_SAMPLE, RunIndex
from funreason_refine.review.page import render_page
from funreason_refine.review.view import record_view
from funreason_refine.run_state import readable_state

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024


class ReviewState:
    """The run being reviewed and the decisions made so far; shared by the request threads."""

    def __init__(self, run_dir: Path, kept_sample: int = DEFAULT_KEPT_SAMPLE, allow_partial: bool = False):
        """``allow_partial``: review the records of a run that is not finished (run_state.py) instead of refusing."""
        self.run_dir = Path(run_dir)
        self.folder = readable_state(self.run_dir, "review", allow_partial, offer_partial=True)
        read = read_decisions(self.run_dir)
        self.bad = read.bad
        self.decisions: dict[int, Decision] = dict(read.latest)
        self.index = RunIndex(self.run_dir, kept_sample, also=set(self.decisions))
        self.log = OverrideLog(self.run_dir)
        self.token = secrets.token_urlsafe(24)
        self._lock = threading.Lock()

    def _current(self) -> tuple[dict[str, Any], int]:
        """Decisions on the records' present verdicts, and how many no longer apply (the run was redone)."""
        out, stale = {}, 0
        for index, d in self.decisions.items():
            found = self.index.line(index)
            if found is not None and d.applies_to(*found):
                out[str(index)] = d.model_dump()
            else:
                stale += 1
        return out, stale

    def items(self) -> dict[str, Any]:
        with self._lock:
            decisions, stale = self._current()
        notes = []
        if stale:
            notes.append(f"{stale} earlier decision(s) were made on verdicts the run no longer has; they are ignored.")
        notes += [
            f"{OVERRIDES} line {b.line}: {b.problem}; "
            + ("ignored." if b.torn else "export and report refuse this run until the line is fixed or deleted.")
            for b in self.bad
        ]
        return {
            "run_dir": str(self.run_dir),
            "items": shown([i.public() for i in self.index.items]),
            "decisions": decisions,
            "notes": notes,
        }

    def decide(self, payload: Any) -> Decision:
        """Record a decision durably; ValueError (shown to the page) when the request is not one."""
        if not isinstance(payload, dict) or set(payload) - {"index", "decision", "note"}:
            raise ValueError('send {"index": N, "decision": "right" | "wrong" | "none", "note": "..."}')
        index = payload.get("index")
        found = self.index.line(index) if isinstance(index, int) and not isinstance(index, bool) else None
        if found is None:
            raise LookupError(f"record {index!r} is not a kept or discarded record of this run")
        try:
            note = payload.get("note") or ""  # a lone surrogate (JSON.stringify writes one) kept as its escape
            decision = decision_for(
                *found, payload.get("decision", ""), escaped_surrogates(note) if isinstance(note, str) else note
            )
        except ValidationError as exc:
            raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
        with self._lock:
            self.log.append(decision)  # on disk before the page is told it is saved
            if decision.decision == "none":
                self.decisions.pop(decision.index, None)
            else:
                self.decisions[decision.index] = decision
        return decision


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ReviewState


class Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "refine-review"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one person on one machine: no access log

    # --- checks -------------------------------------------------------------------------

    def _origins(self) -> set[str]:
        port = self.server.server_address[1]
        return {f"{HOST}:{port}", f"localhost:{port}"}

    def _host_ok(self) -> bool:
        return self.headers.get("Host", "") in self._origins()

    def _write_refusal(self) -> str | None:
        """Why a write is refused, or None."""
        origin = self.headers.get("Origin")
        if origin is not None and origin.removeprefix("http://") not in self._origins():
            return "cross-origin write refused"
        if self.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return "cross-site write refused"
        if self.headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
            return "send JSON (Content-Type: application/json)"
        if not secrets.compare_digest(self.headers.get("X-Review-Token", ""), self.server.state.token):
            return "missing or wrong X-Review-Token (reload the page)"
        return None

    # --- responses ----------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, nonce: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        script = f"'nonce-{nonce}'" if nonce else "'none'"
        self.send_header(
            "Content-Security-Policy",
            f"default-src 'none'; script-src {script}; style-src {script}; connect-src 'self'; img-src 'none'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        )
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        # ASCII: records may hold lone surrogates; "<", ">" and "&" escaped as well, so the
        # answer reads as data even if something opens it as HTML.
        text = json.dumps(payload, ensure_ascii=True)
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        self._send(status, text.encode(), "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    # --- routes -------------------------------------------------------------------------

    def do_GET(self) -> None:
        try:
            self._get()
        except RefineError as exc:  # a line of the run folder that cannot be read
            self._error(500, str(exc))

    def _get(self) -> None:
        if not self._host_ok():
            return self._error(403, "unknown Host: open the page at the address `refine review` printed")
        url = urlsplit(self.path)
        state = self.server.state
        if url.path == "/":
            nonce = secrets.token_urlsafe(16)
            return self._send(200, render_page(state.token, nonce).encode(), "text/html; charset=utf-8", nonce)
        if url.path == "/api/items":
            return self._json(200, state.items())
        if url.path == "/api/record":
            values = parse_qs(url.query).get("index", [""])
            found = state.index.line(int(values[0])) if values[0].isascii() and values[0].isdigit() else None
            if found is None:
                return self._error(404, f"no kept or discarded record {values[0]!r} in this run")
            return self._json(200, shown(record_view(*found)))
        return self._error(404, "not found")

    def do_POST(self) -> None:
        if not self._host_ok():
            return self._error(403, "unknown Host: open the page at the address `refine review` printed")
        refusal = self._write_refusal()
        if refusal:
            return self._error(403, refusal)
        if urlsplit(self.path).path != "/api/decision":
            return self._error(404, "not found")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._error(413, f"request over {MAX_BODY} bytes")
        try:
            saved = self.server.state.decide(json.loads(self.rfile.read(length) or b"null"))
        except LookupError as exc:
            return self._error(404, str(exc))
        except ValueError as exc:  # also bad JSON
            return self._error(400, str(exc))
        except RefineError as exc:
            return self._error(500, str(exc))
        return self._json(200, {"saved": saved.model_dump()})


class ReviewServer:
    """The review of one run folder, served on 127.0.0.1 (``port`` 0: any free port)."""

    def __init__(
        self, run_dir: Path, port: int = 0, kept_sample: int = DEFAULT_KEPT_SAMPLE, allow_partial: bool = False
    ):
        state = ReviewState(run_dir, kept_sample, allow_partial)
        try:
            self._server = _Server((HOST, port), Handler)
        except OSError as exc:
            raise RefineError(
                f"cannot serve on {HOST}:{port}: {exc.strerror or exc}; choose another --port (0: any free port)"
            ) from None
        self._server.state = state
        self.state = state

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}/"

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def start(self) -> ReviewServer:
        """Serve from a background thread (tests)."""
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
