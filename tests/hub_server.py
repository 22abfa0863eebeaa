"""A small Hugging Face Hub on 127.0.0.1, for tests that run huggingface_hub's real client.

It speaks the part of the hub API that ``huggingface_hub`` 2.x uses to look at and download a
model repo (read from its ``hf_api.py``, ``file_download.py`` and ``_snapshot_download.py``):

- ``GET /api/models/{repo}[/revision/{rev}]`` (``?blobs=true``): model info with ``sha`` and
  ``siblings`` (``rfilename``, ``size``, ``blobId``, ``lfs``);
- ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=&expand=``: the file listing, paginated
  with a ``Link: <...>; rel="next"`` header like the real hub;
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: the file, with ``X-Repo-Commit``, ``ETag`` (the git
  blob sha1, or the sha256 for LFS files, which also get ``X-Linked-Etag``/``X-Linked-Size``),
  ``Content-Length``, ``Accept-Ranges`` and ``Range`` requests (206);
- errors as the hub sends them: 404 with ``X-Error-Code: RepoNotFound``/``RevisionNotFound``/
  ``EntryNotFound``, which huggingface_hub turns into its typed exceptions.

Every request is logged (:attr:`FakeHub.log`), before it is answered, with the bytes of body the
answer carries, so a test can assert on exactly which files, and how many bytes, a client fetched. No Xet headers are sent, so the client
uses plain HTTP downloads. Use :func:`fake_hub` as a pytest fixture (import it into the test
module); it points ``HF_ENDPOINT`` at the server and the Hugging Face cache at a temporary folder.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".tiktoken", ".model")


@dataclass
class Request:
    method: str
    path: str
    status: int
    body_bytes: int = 0
    repo_file: Optional[str] = None  # "owner/name:path" for /resolve requests
    authorization: bool = False


@dataclass
class FakeRepo:
    repo_id: str
    files: Dict[str, bytes]
    commit: str = ""
    branches: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        digest = hashlib.sha1(self.repo_id.encode())
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + hashlib.sha1(self.files[path]).digest())
        self.commit = self.commit or digest.hexdigest()
        self.branches.setdefault("main", self.commit)

    @staticmethod
    def is_lfs(path: str) -> bool:
        return path.endswith(LFS_SUFFIXES)

    def blob_id(self, path: str) -> str:
        data = self.files[path]
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def etag(self, path: str) -> str:
        return hashlib.sha256(self.files[path]).hexdigest() if self.is_lfs(path) else self.blob_id(path)

    def entry(self, path: str) -> dict:
        """A tree entry as ``/api/models/.../tree`` returns it."""
        data = self.files[path]
        out = {"type": "file", "path": path, "size": len(data), "oid": self.blob_id(path)}
        if self.is_lfs(path):
            out["lfs"] = {"oid": self.etag(path), "size": len(data), "pointerSize": 134}
        return out

    def sibling(self, path: str) -> dict:
        """A sibling as ``/api/models/...?blobs=true`` returns it."""
        data = self.files[path]
        out = {"rfilename": path, "size": len(data), "blobId": self.blob_id(path)}
        if self.is_lfs(path):
            out["lfs"] = {"sha256": self.etag(path), "size": len(data), "pointerSize": 134}
        return out


class FakeHub:
    """``hub = FakeHub(); hub.add(repo_id, files); hub.start()``; ``hub.url`` for ``HF_ENDPOINT``."""

    PAGE = 20  # tree entries per page (the real hub pages at 1000; small here so the Large repo takes 2 pages)

    def __init__(self):
        self.repos: Dict[str, FakeRepo] = {}
        self.log: List[Request] = []
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- content ------------------------------------------------------------------------------
    def add(self, repo_id: str, files: Dict[str, bytes]) -> FakeRepo:
        """Publish (or replace: a new commit on ``main``) a repo with ``files`` (repo path -> bytes)."""
        repo = FakeRepo(repo_id, {k: (v.encode() if isinstance(v, str) else bytes(v)) for k, v in files.items()})
        self.repos[repo_id] = repo
        return repo

    def add_folder(self, repo_id: str, root: Path, prefix: str = "", files: Optional[Dict[str, bytes]] = None) -> FakeRepo:
        """Publish every file under ``root`` at ``prefix/`` (plus ``files``)."""
        merged = dict(files or {})
        for p in sorted(Path(root).rglob("*")):
            if p.is_file():
                merged[(prefix.strip("/") + "/" if prefix else "") + p.relative_to(root).as_posix()] = p.read_bytes()
        return self.add(repo_id, merged)

    # -- what was sent ------------------------------------------------------------------------
    def mark(self) -> int:
        return len(self.log)

    def since(self, mark: int = 0) -> List[Request]:
        with self._lock:
            return list(self.log[mark:])

    def downloads(self, mark: int = 0) -> Dict[str, int]:
        """``"owner/name:path"`` -> body bytes sent by ``GET .../resolve/...`` since ``mark``."""
        out: Dict[str, int] = {}
        for r in self.since(mark):
            if r.method == "GET" and r.repo_file and r.status in (200, 206):
                out[r.repo_file] = out.get(r.repo_file, 0) + r.body_bytes
        return out

    def file_bytes_sent(self, mark: int = 0) -> int:
        return sum(r.body_bytes for r in self.since(mark) if r.repo_file)

    # -- server -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "start() the hub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-hf-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: the hub keeps its own log
        pass

    def do_HEAD(self):
        self._route(head=True)

    def do_GET(self):
        self._route(head=False)

    # -- plumbing -------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: Optional[dict] = None, head: bool = False, repo_file=None):
        # logged before the response goes out: once the client has its answer, the log shows it
        with self.hub._lock:
            self.hub.log.append(Request(self.command, self.path, status, 0 if head else len(body), repo_file,
                                        "Authorization" in self.headers))
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, status: int, data, head: bool, headers: Optional[dict] = None):
        self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})}, head)

    def _error(self, status: int, code: str, message: str, head: bool, commit: Optional[str] = None, repo_file=None):
        headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(status, json.dumps({"error": message}).encode(), headers, head, repo_file)

    def _repo(self, owner: str, name: str, head: bool) -> Optional[FakeRepo]:
        repo = self.hub.repos.get(f"{owner}/{name}")
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found", head)
        return repo

    def _commit(self, repo: FakeRepo, revision: str, head: bool) -> Optional[str]:
        revision = unquote(revision)
        if revision in repo.branches:
            return repo.branches[revision]
        if revision == repo.commit:
            return revision
        self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
        return None

    # -- routes ---------------------------------------------------------------------------------
    def _route(self, head: bool):
        url = urlsplit(self.path)
        parts = url.path.split("/")[1:]  # still percent-encoded, so a quoted revision stays one segment
        query = parse_qs(url.query)
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo = self._repo(parts[2], parts[3], head)
            if repo is None:
                return
            rest = parts[4:]
            if not rest or rest[0] == "revision":
                commit = self._commit(repo, rest[1], head) if len(rest) >= 2 else repo.commit
                if commit is not None:
                    self._model_info(repo, commit, head)
                return
            if rest[0] == "tree" and len(rest) >= 2:
                commit = self._commit(repo, rest[1], head)
                if commit is not None:
                    self._tree(repo, unquote("/".join(rest[2:])), query, head)
                return
        if len(parts) >= 5 and parts[2] == "resolve":
            repo = self._repo(parts[0], parts[1], head)
            if repo is None:
                return
            commit = self._commit(repo, parts[3], head)
            if commit is not None:
                self._resolve(repo, commit, unquote("/".join(parts[4:])), head)
            return
        self._error(404, "NotFound", f"no route for {url.path}", head)

    def _model_info(self, repo: FakeRepo, commit: str, head: bool):
        data = {"id": repo.repo_id, "modelId": repo.repo_id, "sha": commit, "private": False, "gated": False,
                "disabled": False, "tags": [], "siblings": [repo.sibling(p) for p in sorted(repo.files)]}
        self._json(200, data, head)

    def _tree(self, repo: FakeRepo, folder: str, query: dict, head: bool):
        recursive = query.get("recursive", ["False"])[0].lower() == "true"
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        entries, dirs = [], set()
        for path in sorted(repo.files):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            if "/" in rest:
                parts = rest.split("/")
                for i in range(1, len(parts) if recursive else 2):
                    dirs.add(prefix + "/".join(parts[:i]))
                if not recursive:
                    continue
            entries.append(repo.entry(path))
        if not entries and not dirs:
            self._error(404, "EntryNotFound", f"{folder} does not exist", head, repo.commit)
            return
        entries += [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()} for d in sorted(dirs)]
        start = int(query.get("cursor", ["0"])[0])
        page = entries[start:start + FakeHub.PAGE]
        headers = {}
        if start + FakeHub.PAGE < len(entries):
            recursive_q = "true" if recursive else "false"
            nxt = f"{self.hub.url}{urlsplit(self.path).path}?recursive={recursive_q}&expand=false&cursor={start + FakeHub.PAGE}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        self._json(200, page, head, headers)

    def _resolve(self, repo: FakeRepo, commit: str, path: str, head: bool):
        key = f"{repo.repo_id}:{path}"
        if path not in repo.files:
            self._error(404, "EntryNotFound", f"{path} does not exist", head, commit, key)
            return
        data = repo.files[path]
        headers = {"X-Repo-Commit": commit, "ETag": f'"{repo.etag(path)}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if repo.is_lfs(path):
            headers.update({"X-Linked-Etag": f'"{repo.etag(path)}"', "X-Linked-Size": str(len(data))})
        status, body = 200, data
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes="):
            first, _, last = wanted[len("bytes="):].partition("-")
            begin = int(first or 0)
            end = int(last) if last else len(data) - 1
            body = data[begin:end + 1]
            status = 206
            headers["Content-Range"] = f"bytes {begin}-{begin + len(body) - 1}/{len(data)}"
        self._send(status, body, headers, head, key)


def resolve_url(hub: FakeHub, repo_id: str, path: str, revision: str = "main") -> str:
    return f"{hub.url}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A running :class:`FakeHub` with ``HF_ENDPOINT`` pointing at it and a private, empty HF cache.

    No token is read or sent: ``HF_TOKEN`` is unset and huggingface_hub's token file is pointed at
    a file that does not exist. ``HF_HUB_OFFLINE`` is unset.
    """
    from huggingface_hub import constants

    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "no-stored-tokens"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    try:
        yield hub
    finally:
        hub.stop()
