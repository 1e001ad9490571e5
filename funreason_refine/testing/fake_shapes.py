"""What the fake server answers, and the body each API wraps it in: OpenAI's chat completions (vLLM,
llama-cpp-python, gpt-oss's ``reasoning`` field; ``logprobs`` when asked), Anthropic's messages (thinking
blocks), Ollama's chat, and vLLM's pooling endpoints ``/classify`` and ``/pooling`` (scorers).

A :class:`Reply`'s ``reasoning`` goes where each API puts a reasoning model's thinking; its
``finish_reason = "length"`` is each API's word for an answer the token limit cut off.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Shape = Literal["openai", "anthropic", "ollama", "classify", "pooling"]
PATHS: dict[str, Shape] = {
    "/chat/completions": "openai",
    "/v1/messages": "anthropic",
    "/api/chat": "ollama",
    "/classify": "classify",
    "/pooling": "pooling",
}


def shape_of(path: str) -> Shape | None:
    """The API a request path belongs to (None: the Files and Batches API)."""
    path = path.split("?", 1)[0].rstrip("/")
    return next((shape for end, shape in PATHS.items() if path.endswith(end)), None)


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
    usage: bool = True  # False: the answer has no "usage" (some servers and proxies leave it out)
    reasoning: str | None = None  # a reasoning model's thinking, where the API puts it
    reasoning_field: str = "reasoning_content"  # OpenAI shape: vLLM's field; "reasoning" for gpt-oss and newer vLLM
    finish_reason: str = "stop"  # "length": cut off by the token limit
    # A chat answer's tokens, each with its top alternatives and their probabilities (not logs), sent as
    # choices[0].logprobs when the request asks for logprobs; None: the server sends none.
    logprobs: list[tuple[str, dict[str, float]]] | None = None
    probs: list[float] | None = None  # /classify: the class probabilities (None: [0.5, 0.5])
    pooled: list[float] | list[list[float]] | None = None  # /pooling: the pooled output (None: [0.0])
    chunk_delay: float = 0.0  # a streamed answer (the request asks stream = true): seconds between its chunks

    @classmethod
    def yes_no(cls, p_yes: float, first: str = "Yes", second: str = "No", **fields: Any) -> Reply:
        """A one-token answer ``first`` (or ``second`` when p_yes < 0.5) with both among its alternatives;
        ``fields`` are the reply's other fields (a delay, a text)."""
        said = first if p_yes >= 0.5 else second
        fields.setdefault("text", said)
        return cls(logprobs=[(said, {first: p_yes, second: 1 - p_yes})], **fields)


def payload(reply: Reply, model: str, shape: Shape = "openai", logprobs: bool = False) -> bytes:
    """The body of the answer; ``logprobs``: the request asked for them."""
    if reply.raw is not None:
        return reply.raw
    if reply.status != 200:
        error = {"message": reply.text or f"status {reply.status}", "type": "fake", "code": reply.status}
        return json.dumps({"error": error}).encode()
    if shape in ("classify", "pooling"):
        return json.dumps(_pooling(reply, model, shape)).encode()
    body = BODIES[shape](reply, model)
    if shape == "openai" and logprobs and reply.logprobs is not None:
        body["choices"][0]["logprobs"] = _token_logprobs(reply.logprobs)
    return json.dumps(body).encode()


def _log(p: float) -> float:
    return math.log(p) if p > 0 else -9999.0


def _token_logprobs(tokens: list[tuple[str, dict[str, float]]]) -> dict[str, Any]:
    """OpenAI's ``choices[0].logprobs``: per answer token its logprob and its top alternatives."""
    content = []
    for token, alternatives in tokens:
        top = [
            {"token": t, "logprob": _log(p), "bytes": list(t.encode())}
            for t, p in sorted(alternatives.items(), key=lambda kv: -kv[1])
        ]
        own = alternatives.get(token, 1.0)
        content.append({"token": token, "logprob": _log(own), "bytes": list(token.encode()), "top_logprobs": top})
    return {"content": content}


def _pooling(reply: Reply, model: str, shape: Shape) -> dict[str, Any]:
    """vLLM's /classify or /pooling response (vllm/entrypoints/pooling/*/protocol.py)."""
    if shape == "classify":
        probs = reply.probs if reply.probs is not None else [0.5, 0.5]
        best = max(range(len(probs)), key=probs.__getitem__) if probs else 0
        row: dict[str, Any] = {"index": 0, "label": f"LABEL_{best}", "probs": probs, "num_classes": len(probs)}
        kind = "classify"
    else:
        row = {"index": 0, "object": "pooling", "data": reply.pooled if reply.pooled is not None else [0.0]}
        kind = "pool"
    body = {"id": f"{kind}-fake", "object": "list", "created": int(time.time()), "model": model, "data": [row]}
    if reply.usage:
        body["usage"] = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": 0,
            "total_tokens": reply.prompt_tokens,
        }
    return body


def _openai(reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.reasoning is not None:
        message[reply.reasoning_field] = reply.reasoning
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": reply.finish_reason, "message": message}],
    }
    if reply.usage:
        body["usage"] = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }
    return body


def _anthropic(reply: Reply, model: str) -> dict[str, Any]:
    thinking = [{"type": "thinking", "thinking": reply.reasoning, "signature": "fake"}] if reply.reasoning else []
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [*thinking, {"type": "text", "text": reply.text}],
        "stop_reason": "max_tokens" if reply.finish_reason == "length" else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": reply.prompt_tokens, "output_tokens": reply.completion_tokens},
    }


def _ollama(reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.reasoning is not None:
        message["thinking"] = reply.reasoning
    return {
        "model": model,
        "created_at": "2025-01-01T00:00:00Z",
        "message": message,
        "done": True,
        "done_reason": reply.finish_reason,
        "prompt_eval_count": reply.prompt_tokens,
        "eval_count": reply.completion_tokens,
    }


def events(reply: Reply, model: str, include_usage: bool) -> list[bytes]:
    """The chunks of a streamed OpenAI answer: its role, its reasoning, its words, its finish, its usage (when
    asked for), [DONE]."""
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return json.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).encode()

    out = [chunk({"role": "assistant", "content": ""})]
    if reply.reasoning:
        out.append(chunk({reply.reasoning_field: reply.reasoning}))
    out += [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(reply.text.split(" "))]
    out.append(chunk({}, reply.finish_reason))
    if include_usage and reply.usage:
        usage = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }
        out.append(json.dumps({**base, "choices": [], "usage": usage}).encode())
    return [*out, b"[DONE]"]


BODIES: dict[str, Callable[[Reply, str], dict[str, Any]]] = {
    "openai": _openai,
    "anthropic": _anthropic,
    "ollama": _ollama,
}

TOO_LARGE = Reply(
    status=413,
    headers={"content-type": "text/html"},
    raw=b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request "
    b"Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
)
"""What nginx answers a request body over its client_max_body_size."""


def refusing(
    script: Callable[[Any], str | Reply], form: str = "json_schema", status: int = 500
) -> Callable[[Any], str | Reply]:
    """``script``, behind a server that answers every request asking for structured output in ``form`` (a
    ``response_format`` type, or "ollama" for Ollama's ``format``) with ``status``, as llama-cpp-python's
    server answers the ``json_schema`` form with HTTP 500."""

    def refused(request: Any) -> str | Reply:
        asked = request.body.get("response_format") or {}
        if "format" in request.body if form == "ollama" else isinstance(asked, dict) and asked.get("type") == form:
            return Reply(status=status, text=f"response_format type {form!r} is not supported")
        return script(request)

    return refused
