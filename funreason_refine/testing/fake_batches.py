"""The OpenAI Files and Batches endpoints of :class:`~funreason_refine.testing.fake_llm.FakeLLM`.

Upload a JSONL file (``POST /v1/files``, multipart), create a batch over it (``POST /v1/batches``,
with metadata), retrieve it (``GET /v1/batches/{id}``), list batches newest first
(``GET /v1/batches?limit=&after=``), cancel one, and read a file's content
(``GET /v1/files/{id}/content``). A batch moves on each time it is retrieved: validating, then
in_progress, then (unless ``hold`` is set) completed: its lines are answered then, by the server's
script, each as a chat request; an answer with a status other than 200 goes to the error file.
``expire_after = n`` lets the next batch answer n lines and end ``expired``; ``end_next`` ends the next batch
as it says (``{"status": "failed", "errors": {...}}``) without answering a line; ``edit_next`` rewrites the
next batch's output rows (a provider's duplicated or stray lines).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any


@dataclass
class Batches:
    """What the fake server holds of files and batches; tests read and steer it."""

    answer: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # id -> (purpose, content)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    hold: bool = False  # batches stay in_progress while set
    expire_after: int | None = None  # the next batch to finish answers this many lines, then expires
    end_next: dict[str, Any] | None = None  # the next batch to finish ends so (status, errors), answering nothing
    edit_next: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None  # its output rows, rewritten
    created: int = 0  # batch creations, ever
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def route(self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes) -> tuple[int, Any]:
        """(status, JSON-ready payload or raw bytes) for a request under /v1/files or /v1/batches."""
        parts = [p for p in path.split("/") if p][1:]  # without "v1"
        with self._lock:
            if method == "POST" and parts == ["files"]:
                return 200, self._upload(headers.get("content-type", ""), body)
            if method == "POST" and parts == ["batches"]:
                return 200, self._create(json.loads(body or b"{}"))
            if method == "GET" and parts == ["batches"]:
                return 200, self._list(int(query.get("limit", 20)), query.get("after"))
            if method == "GET" and len(parts) == 2 and parts[0] == "batches" and parts[1] in self.batches:
                return 200, self._retrieve(parts[1])
            if method == "POST" and len(parts) == 3 and parts[2] == "cancel" and parts[1] in self.batches:
                return 200, self._cancel(parts[1])
            if method == "GET" and len(parts) == 3 and parts[2] == "content" and parts[1] in self.files:
                return 200, self.files[parts[1]][1]
        return 404, {"error": {"message": f"no such object: {path}", "type": "invalid_request_error"}}

    def _upload(self, content_type: str, body: bytes) -> dict[str, Any]:
        form = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        fields = {part.get_param("name", header="content-disposition"): part for part in form.iter_parts()}
        purpose = str(fields["purpose"].get_content()).strip()
        file_part = fields["file"]
        content = file_part.get_payload(decode=True)
        assert isinstance(content, bytes), "a file part of the upload"
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = (purpose, content)
        return _file(file_id, purpose, content, file_part.get_filename() or "upload.jsonl")

    def _create(self, request: dict[str, Any]) -> dict[str, Any]:
        self.created += 1
        batch_id = f"batch_{self.created}"
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": request.get("endpoint", "/v1/chat/completions"),
            "errors": None,
            "input_file_id": request["input_file_id"],
            "completion_window": request.get("completion_window", "24h"),
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(time.time()) + self.created,  # strictly newer than the one before
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": request.get("metadata") or {},
        }
        return self.batches[batch_id]

    def _list(self, limit: int, after: str | None) -> dict[str, Any]:
        newest = sorted(self.batches.values(), key=lambda b: b["created_at"], reverse=True)
        if after is not None:
            ids = [b["id"] for b in newest]
            newest = newest[ids.index(after) + 1 :] if after in ids else []
        page = newest[:limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(newest) > limit,
        }

    def _retrieve(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        if batch["status"] == "validating":
            batch["status"] = "in_progress"
        elif batch["status"] == "in_progress" and not self.hold:
            self._finish(batch)
        return batch

    def _cancel(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        if batch["status"] in ("validating", "in_progress"):
            batch["status"] = "cancelled"
        return batch

    def _finish(self, batch: dict[str, Any]) -> None:
        lines = [json.loads(x) for x in self.files[batch["input_file_id"]][1].splitlines() if x.strip()]
        if self.end_next is not None:
            batch.update(self.end_next, request_counts={"total": len(lines), "completed": 0, "failed": 0})
            self.end_next = None
            return
        limit, self.expire_after = self.expire_after, None
        edit, self.edit_next = self.edit_next or (lambda rows: rows), None
        done, failed = [], []
        for number, line in enumerate(lines):
            if limit is not None and number >= limit:
                break
            status, body = self.answer(line["body"])
            row = {"id": f"batch_req_{number}", "custom_id": line["custom_id"]}
            if status == 200:
                done.append({**row, "response": {"status_code": 200, "body": body}, "error": None})
            else:
                failed.append({**row, "response": {"status_code": status, "body": body}, "error": None})
        batch["output_file_id"] = self._store(edit(done))
        batch["error_file_id"] = self._store(failed)
        batch["request_counts"] = {"total": len(lines), "completed": len(done), "failed": len(failed)}
        batch["status"] = "expired" if limit is not None else "completed"

    def _store(self, rows: list[dict[str, Any]]) -> str | None:
        if not rows:
            return None
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = ("batch_output", "".join(json.dumps(r) + "\n" for r in rows).encode())
        return file_id


def _file(file_id: str, purpose: str, content: bytes, name: str) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": len(content),
        "created_at": int(time.time()),
        "filename": name,
        "purpose": purpose,
        "status": "processed",
    }
