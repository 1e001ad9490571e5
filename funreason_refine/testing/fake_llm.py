"""An OpenAI-compatible chat server on 127.0.0.1 that answers from a script, for tests and benchmarks.

    with FakeLLM(lambda request: "<judge>True</judge>") as server:
        ... [judge] model = "openai/fake", api_base = server.api_base ...

The script gets a :class:`Request` (model, messages, the last user message as ``prompt``) and
returns the answer text, or a :class:`Reply` for a status code, headers, a delay or a raw body
(429 with Retry-After, 500, a truncated or garbage body, a dropped connection, an answer without
``usage``, a reasoning field, a finish_reason "length", a streamed answer when the request asks for one).
It answers in the shape of the API a request path names (testing/fake_shapes.py): OpenAI's chat completions,
Anthropic's messages (``anthropic/`` models with ``api_base`` set to the server's root) and Ollama's chat
(``ollama_chat/`` models); :func:`refusing` wraps a script to refuse a form of structured output. Every
request is recorded in ``server.requests``. Written on the standard library's HTTP server so that tests
exercise LiteLLM over real HTTP with nothing else to install.

It speaks what scorers ask too (docs/scorers.md): a chat request with ``logprobs`` gets
``choices[0].logprobs.content`` from the reply's ``logprobs`` (per answer token, its top
alternatives), and vLLM's pooling endpoints, ``/classify`` (``data[0].probs`` from the reply's
``probs``) and ``/pooling`` (``data[0].data`` from the reply's ``pooled``), served at the server's
root as vLLM serves them; ``request.endpoint`` says which was asked ("chat", "classify", "pooling").

Like a real server it can hold at most ``max_concurrency`` requests at a time (the others queue, as
vLLM queues beyond its batch), answer 429 with Retry-After over ``max_requests_per_minute`` (a token
bucket holding ``burst`` requests, as hosted APIs meter), refuse bodies over ``max_body_bytes`` with
nginx's 413 page (a proxy's body size limit in front of it), be killed mid-request (:meth:`FakeLLM.kill`:
the port closes and open connections drop) and be started again on the same ``port``. It also
serves the OpenAI Files and Batches endpoints (``server.batches``: testing/fake_batches.py), whose
lines the same script answers.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from funreason_refine.testing.fake_batches import Batches
from funreason_refine.testing.fake_shapes import TOO_LARGE, Reply, Shape, events, payload, refusing, shape_of

__all__ = ["TOO_LARGE", "FakeLLM", "Reply", "Request", "refusing"]


@dataclass
class Request:
    model: str
    messages: list[dict[str, Any]]
    body: dict[str, Any]
    headers: dict[str, str]
    endpoint: str = "chat"  # "chat", "classify" or "pooling"

    @property
    def prompt(self) -> str:
        """The last user message's text (Anthropic's content blocks joined)."""
        users = [m.get("content", "") for m in self.messages if m.get("role") == "user"]
        last = users[-1] if users else ""
        if isinstance(last, list):
            return "\n".join(b.get("text", "") for b in last if isinstance(b, dict))
        return last


Script = Callable[[Request], "str | Reply"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default 5 drops connection bursts at high concurrency
    killed = False

    def __init__(self, port: int, fake: FakeLLM):
        self.fake = fake
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.killed:  # a killed server's handlers fail on their closed sockets: expected, not news
            super().handle_error(request, client_address)


class _Bucket:
    """The server side of a rate limit: ``per_minute`` requests, at most ``burst`` at once."""

    def __init__(self, per_minute: float, burst: float | None):
        self.rate = per_minute / 60.0
        self.capacity = burst if burst is not None else max(self.rate, 1.0)
        self.level = self.capacity
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        """0 when the request may go, else the seconds until it could (for Retry-After)."""
        with self.lock:
            now = time.monotonic()
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.level >= 1.0:
                self.level -= 1.0
                return 0.0
            return (1.0 - self.level) / self.rate


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle's algorithm the body then waits for the
    # client's delayed ACK (40 ms here), which benchmarks would count as the judge's latency.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.fake._opened(self.connection)

    def finish(self) -> None:
        self.server.fake._closed(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._batches("GET", b"")

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("content-length", 0))
        raw = self.rfile.read(length)
        shape = shape_of(self.path)
        if shape is None:
            self._batches("POST", raw)
            return
        if fake.max_body_bytes is not None and length > fake.max_body_bytes:
            fake._count_too_large()
            self._send(TOO_LARGE)
            return
        body = json.loads(raw or b"{}")
        wait = fake._over_limit()
        if wait:
            self._send(Reply(status=429, text="rate limited", headers={"retry-after": str(math.ceil(wait))}))
            return
        if fake._slots is None:
            self._answer(body, shape)
            return
        with fake._slots:
            self._answer(body, shape)

    def _batches(self, method: str, body: bytes) -> None:
        url = urlsplit(self.path)
        status, answer = self.server.fake.batches.route(
            method, url.path, dict(parse_qsl(url.query)), self.headers, body
        )
        data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header(
            "content-type", "application/octet-stream" if isinstance(answer, bytes) else "application/json"
        )
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, body: dict[str, Any], shape: Shape) -> None:
        request = Request(
            model=body.get("model", ""),
            messages=body.get("messages", []),
            body=body,
            headers={k.lower(): v for k, v in self.headers.items()},
            endpoint=shape if shape in ("classify", "pooling") else "chat",
        )
        reply = self.server.fake._reply(request)
        if reply.delay:
            time.sleep(reply.delay)
        if self.server.killed:
            return
        streamed = body.get("stream") and shape == "openai" and reply.status == 200
        if streamed and reply.raw is None and not reply.drop:
            self._stream(reply, request.model, bool((body.get("stream_options") or {}).get("include_usage")))
        else:
            self._send(reply, request.model, shape, bool(body.get("logprobs")))

    def _stream(self, reply: Reply, model: str, include_usage: bool) -> None:
        """The answer as server-sent events, a word a chunk ``chunk_delay`` apart (usage last when asked for)."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for event in events(reply, model, include_usage):
            data = b"data: " + event + b"\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            if reply.chunk_delay:
                time.sleep(reply.chunk_delay)
        self.wfile.write(b"0\r\n\r\n")
        self.server.fake._count_served()

    def _send(self, reply: Reply, model: str = "", shape: Shape = "openai", logprobs: bool = False) -> None:
        if reply.drop:
            self.close_connection = True
            self.connection.close()
            return
        data = payload(reply, model, shape, logprobs)
        self.send_response(reply.status)
        headers = {"content-type": "application/json", **{k.lower(): v for k, v in reply.headers.items()}}
        headers["content-length"] = str(len(data))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        if reply.status == 200:
            self.server.fake._count_served()


class FakeLLM:
    def __init__(
        self,
        script: Script,
        port: int = 0,
        max_concurrency: int | None = None,
        max_requests_per_minute: float | None = None,
        burst: float | None = None,
        max_body_bytes: int | None = None,
    ):
        self.script = script
        self.max_body_bytes = max_body_bytes
        self.too_large = 0  # 413 answers sent over max_body_bytes
        self.requests: list[Request] = []
        self.served = 0  # 200 answers sent
        self.limited = 0  # 429 answers sent over max_requests_per_minute
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency) if max_concurrency else None
        self._bucket = _Bucket(max_requests_per_minute, burst) if max_requests_per_minute else None
        self._connections: set[socket.socket] = set()
        self.batches = Batches(self._batch_answer)
        self._server = _Server(port, self)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _reply(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
        answer = self.script(request)
        return answer if isinstance(answer, Reply) else Reply(text=answer)

    def _batch_answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A batch line's chat request answered by the script: (status, response body)."""
        request = Request(model=body.get("model", ""), messages=body.get("messages", []), body=body, headers={})
        reply = self._reply(request)
        return reply.status, json.loads(payload(reply, request.model, logprobs=bool(body.get("logprobs"))))

    def _over_limit(self) -> float:
        wait = self._bucket.take() if self._bucket is not None else 0.0
        if wait:
            with self._lock:
                self.limited += 1
        return wait

    def _count_too_large(self) -> None:
        with self._lock:
            self.too_large += 1

    def _count_served(self) -> None:
        with self._lock:
            self.served += 1

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def kill(self) -> None:
        """Die as a crashed server does: the port closes and every open connection drops, answered or not."""
        self._server.killed = True
        self._stop()

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        """Close the port and every connection a client kept open, so that no handler thread outlives the server
        (each would wait on its connection, and answer on it, until the client closed it)."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its client
