"""An OpenAI-compatible chat server on 127.0.0.1 that answers from a script, for tests and benchmarks.

    with FakeLLM(lambda request: "<judge>True</judge>") as server:
        ... [judge] model = "openai/fake", api_base = server.api_base ...

The script gets a :class:`Request` (model, messages, the last user message as ``prompt``) and
returns the answer text, or a :class:`Reply` for a status code, headers, a delay or a raw body
(429 with Retry-After, 500, a truncated or garbage body, a dropped connection). Every request
is recorded in ``server.requests``. Written on the standard library's HTTP server so that tests
exercise LiteLLM over real HTTP with nothing else to install.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    model: str
    messages: list[dict[str, Any]]
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def prompt(self) -> str:
        users = [m.get("content", "") for m in self.messages if m.get("role") == "user"]
        return users[-1] if users else ""


@dataclass
class Reply:
    text: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None  # sent as the body as it is (garbage, truncated JSON)
    drop: bool = False  # close the connection without answering
    prompt_tokens: int = 10
    completion_tokens: int = 5


Script = Callable[[Request], "str | Reply"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default 5 drops connection bursts at high concurrency


class FakeLLM:
    def __init__(self, script: Script):
        self.script = script
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                request = Request(
                    model=body.get("model", ""),
                    messages=body.get("messages", []),
                    body=body,
                    headers={k.lower(): v for k, v in self.headers.items()},
                )
                with outer._lock:
                    outer.requests.append(request)
                answer = outer.script(request)
                reply = answer if isinstance(answer, Reply) else Reply(text=answer)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                if reply.raw is not None:
                    payload = reply.raw
                elif reply.status == 200:
                    payload = json.dumps(
                        {
                            "id": "chatcmpl-fake",
                            "object": "chat.completion",
                            "created": int(time.time()),
                            "model": request.model,
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": reply.text},
                                }
                            ],
                            "usage": {
                                "prompt_tokens": reply.prompt_tokens,
                                "completion_tokens": reply.completion_tokens,
                                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                            },
                        }
                    ).encode()
                else:
                    payload = json.dumps(
                        {
                            "error": {
                                "message": reply.text or f"status {reply.status}",
                                "type": "fake",
                                "code": reply.status,
                            }
                        }
                    ).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
