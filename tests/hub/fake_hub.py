"""A small stand-in for the Hugging Face Hub's HTTP API, on 127.0.0.1, for the tests.

It answers what huggingface_hub's HfApi and HfFileSystem ask of the Hub for dataset repositories
(checked against huggingface_hub's source: hf_api.py, hf_file_system.py, _commit_api.py):

- ``GET /api/datasets/{repo}[/revision/{rev}]``: repository info, with ``sha``, the commit;
- ``GET /api/datasets/{repo}/tree/{rev}[/{path}]?recursive=``: a folder's listing (one page);
- ``POST /api/datasets/{repo}/paths-info/{rev}``: the entries at some paths;
- ``HEAD`` and ``GET /datasets/{repo}/resolve/{rev}/{path}``: a file, whole or a byte range;
- ``POST /api/repos/create``, ``POST /api/validate-yaml``, ``POST /api/datasets/{repo}/preupload/{rev}``
  and ``POST /api/datasets/{repo}/commit/{rev}`` (files sent inline, as "regular" uploads; a
  ``parentCommit`` that the branch is no longer at is refused, 412, as the Hub does).

Errors carry the Hub's ``X-Error-Code`` header, which huggingface_hub turns into its own exceptions.
Every request is logged (method, path, range, authorization) for the tests to look at.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    """A dataset repository: commits (each the whole tree: path -> bytes) and branches pointing at them."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    private: bool = False
    gated: bool = False

    def commit(self, files: dict[str, bytes], branch: str = "main", keep: bool = False) -> str:
        """A new commit on ``branch``: ``files`` replace the tree (or, with ``keep``, are added to it)."""
        tree = {**self.commits[self.refs[branch]], **files} if keep and branch in self.refs else dict(files)
        sha = hashlib.sha1(f"{len(self.history)}:{sorted(tree.items())!r}".encode()).hexdigest()
        self.commits[sha] = tree
        self.refs[branch] = sha
        self.history.append(sha)
        return sha

    def tree(self, rev: str) -> dict[str, bytes] | None:
        sha = self.refs.get(rev, rev)
        return self.commits.get(sha)


class FakeHub:
    """The server and its repositories; ``url`` is what HF_ENDPOINT is set to."""

    def __init__(self, token: str = "hf_test_token") -> None:
        self.repos: dict[str, Repo] = {}
        self.token = token
        self.log: list[dict[str, str | None]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def reset(self) -> None:
        self.repos.clear()
        self.log.clear()

    def dataset(self, repo_id: str, files: dict[str, bytes] | None = None, **flags: bool) -> Repo:
        repo = self.repos[repo_id] = Repo(**flags)
        repo.commit(files or {})
        return repo

    def requests(self, kind: str = "") -> list[dict[str, str | None]]:
        return [r for r in self.log if kind in (r["path"] or "")]


def _entry(path: str, data: bytes | None) -> dict[str, object]:
    if data is None:
        return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}
    return {"type": "file", "oid": git_blob_sha(data), "size": len(data), "path": path}


def _listing(tree: dict[str, bytes], folder: str, recursive: bool) -> list[dict[str, object]]:
    prefix = folder + "/" if folder else ""
    files = {p: d for p, d in tree.items() if p.startswith(prefix)}
    out: dict[str, bytes | None] = {}
    for path, data in files.items():
        rest = path[len(prefix) :].split("/")
        for depth in range(1, len(rest)):
            if recursive or depth == 1:
                out.setdefault(prefix + "/".join(rest[:depth]), None)
        if recursive or len(rest) == 1:
            out[path] = data
    return [_entry(p, d) for p, d in sorted(out.items())]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        # --- plumbing ---------------------------------------------------------------

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, value: object, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(value).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _error(self, status: int, code: str, message: str) -> None:
            self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _record(self) -> tuple[str, dict[str, list[str]]]:
            parts = urlsplit(self.path)
            hub.log.append(
                {
                    "method": self.command,
                    "path": unquote(parts.path),
                    "range": self.headers.get("Range"),
                    "authorization": self.headers.get("Authorization"),
                }
            )
            return parts.path, parse_qs(parts.query)

        def _repo(self, repo_id: str, reading_files: bool = False) -> Repo | None:
            repo = hub.repos.get(repo_id)
            authorized = self.headers.get("Authorization") == f"Bearer {hub.token}"
            if repo is None or (repo.private and not authorized):
                self._error(404 if repo is None else 401, "RepoNotFound", "Repository not found")
                return None
            if repo.gated and reading_files and not authorized:
                self._error(403, "GatedRepo", "Access to this dataset is restricted")
                return None
            return repo

        def _tree(self, repo: Repo, rev: str) -> dict[str, bytes] | None:
            tree = repo.tree(unquote(rev))
            if tree is None:
                self._error(404, "RevisionNotFound", "Invalid rev id")
            return tree

        # --- reading ----------------------------------------------------------------

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path, query = self._record()
            parts = path.split("/")
            if path.startswith("/datasets/") and len(parts) > 6 and parts[4] == "resolve":
                return self._resolve(f"{parts[2]}/{parts[3]}", parts[5], unquote("/".join(parts[6:])))
            if path.startswith("/api/datasets/") and len(parts) >= 5:
                repo_id = f"{parts[3]}/{parts[4]}"
                if len(parts) == 5 or parts[5] == "revision":
                    return self._info(repo_id, unquote(parts[6]) if len(parts) > 6 else "main")
                if parts[5] == "tree":
                    folder = unquote("/".join(parts[7:]))
                    return self._list(
                        repo_id, parts[6], folder, query.get("recursive", [""])[0].lower() in ("true", "1")
                    )
            self._error(404, "NotFound", f"no route {path}")

        def _info(self, repo_id: str, rev: str) -> None:
            repo = self._repo(repo_id)
            tree = self._tree(repo, rev) if repo else None
            if repo is None or tree is None:
                return
            sha = repo.refs.get(rev, rev)
            siblings = [{"rfilename": p} for p in sorted(tree)]
            info = {"id": repo_id, "sha": sha, "private": repo.private, "gated": repo.gated, "siblings": siblings}
            self._json(200, info)

        def _list(self, repo_id: str, rev: str, folder: str, recursive: bool) -> None:
            repo = self._repo(repo_id)
            tree = self._tree(repo, rev) if repo else None
            if repo is None or tree is None:
                return
            entries = _listing(tree, folder, recursive)
            if folder and not entries:
                return self._error(404, "EntryNotFound", f"{folder} does not exist")
            self._json(200, entries)

        def _resolve(self, repo_id: str, rev: str, file: str) -> None:
            repo = self._repo(repo_id, reading_files=True)
            tree = self._tree(repo, rev) if repo else None
            if repo is None or tree is None:
                return
            if file not in tree:
                return self._error(404, "EntryNotFound", f"{file} does not exist")
            data = tree[file]
            headers = {"ETag": f'"{git_blob_sha(data)}"', "X-Repo-Commit": repo.refs.get(rev, rev)}
            headers["Accept-Ranges"] = "bytes"
            wanted = self.headers.get("Range")
            if wanted and self.command == "GET":
                first, _, last = wanted.removeprefix("bytes=").partition("-")
                start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                return self._send(206, data[start : end + 1], headers)
            self._send(200, data, headers)

        # --- writing ----------------------------------------------------------------

        def do_POST(self) -> None:
            path, _ = self._record()
            body = self._body()
            parts = path.split("/")
            if path == "/api/repos/create":
                return self._create(json.loads(body))
            if path == "/api/validate-yaml":
                return self._json(200, {"errors": [], "warnings": []})
            if path.startswith("/api/datasets/") and len(parts) >= 7:
                repo_id, action, rev = f"{parts[3]}/{parts[4]}", parts[5], unquote(parts[6])
                if action == "paths-info":
                    return self._paths_info(repo_id, rev, body)
                if action == "preupload":
                    return self._preupload(repo_id, rev, json.loads(body))
                if action == "commit":
                    return self._commit(repo_id, rev, body)
            self._error(404, "NotFound", f"no route {path}")

        def _authorized_writer(self) -> bool:
            if self.headers.get("Authorization") != f"Bearer {hub.token}":
                self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
                return False
            return True

        def _create(self, payload: dict[str, object]) -> None:
            if not self._authorized_writer():
                return
            repo_id = f"{payload['organization']}/{payload['name']}"
            if repo_id in hub.repos:  # the Hub says where the existing repository is (create_repo reads it)
                message = "You already created this dataset repo"
                url = f"{hub.url}/datasets/{repo_id}"
                return self._json(409, {"error": message, "url": url}, {"X-Error-Message": message})
            hub.dataset(repo_id, private=payload.get("visibility") == "private")
            self._json(200, {"url": f"{hub.url}/datasets/{repo_id}", "name": repo_id})

        def _paths_info(self, repo_id: str, rev: str, body: bytes) -> None:
            repo = self._repo(repo_id)
            tree = self._tree(repo, rev) if repo else None
            if repo is None or tree is None:
                return
            wanted = parse_qs(body.decode()).get("paths", [])
            folders = {"/".join(p.split("/")[:i]) for p in tree for i in range(1, p.count("/") + 1)}
            found = [_entry(p, tree.get(p)) for p in wanted if p in tree or p in folders]
            self._json(200, found)

        def _preupload(self, repo_id: str, rev: str, payload: dict[str, list[dict[str, object]]]) -> None:
            repo = self._repo(repo_id)
            if repo is None or not self._authorized_writer():
                return
            tree = repo.tree(rev) or {}
            files = [
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_sha(tree[str(f["path"])]) if f["path"] in tree else None,
                }
                for f in payload["files"]
            ]
            self._json(200, {"files": files})

        def _commit(self, repo_id: str, rev: str, body: bytes) -> None:
            repo = self._repo(repo_id)
            if repo is None or not self._authorized_writer():
                return
            tree = dict(repo.tree(rev) or {})
            for line in body.splitlines():
                item = json.loads(line)
                parent = item["value"].get("parentCommit") if item["key"] == "header" else None
                if parent is not None and parent != repo.refs.get(rev):
                    return self._error(412, "PreconditionFailed", "A commit has happened since. Please refresh")
                if item["key"] == "file":
                    tree[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    tree.pop(item["value"]["path"], None)
            sha = repo.commit(tree, branch=rev)
            self._json(200, {"commitUrl": f"{hub.url}/datasets/{repo_id}/commit/{sha}", "commitOid": sha})

    return Handler
