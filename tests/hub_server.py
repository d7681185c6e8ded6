"""A tiny in-memory Hugging Face Hub for offline tests: the part of the Hub HTTP API that huggingface_hub 2.4 uses
to create a repo, upload a folder in one commit and download files (and that transformers' `from_pretrained` asks
for).

Start it with `HubServer()` (a `ThreadingHTTPServer` on a free local port, served from a daemon thread) and point
clients at `server.url` with `HF_ENDPOINT` (set before huggingface_hub is imported) or `HfApi(endpoint=...)`.

Endpoints (repo ids are `namespace/name`; model repos only):

- `POST /api/repos/create`: creates the repo with one empty commit on `main`; 409 (with its `url`) if it exists.
- `POST /api/validate-yaml`: checks a README's metadata block (a YAML mapping; `model-index` results need
  `task.type`, `dataset.type`, `dataset.name`, metrics with `type` and `value`); 400 with `errors` otherwise.
- `POST /api/models/{repo}/branch/{branch}`: creates `branch` at `main`'s head; 409 if it exists.
- `POST /api/models/{repo}/preupload/{rev}`: every file `"uploadMode": "regular"`, so its content comes inline in the
  commit (base64) and no LFS or Xet transfer is ever started.
- `POST /api/models/{repo}/commit/{rev}`: NDJSON `header`, `file` (base64) and `deletedFile` lines; a new commit.
- `GET /api/models/{repo}[/revision/{rev}]`: model info (`id`, `sha`, `private`, `siblings`).
- `GET /api/models/{repo}/tree/{rev}[/{path}]`: the files under `path`.
- `HEAD`/`GET /{repo}/resolve/{rev}/{path}`: the file, with `ETag`, `X-Repo-Commit` and `Content-Length`.

Errors carry `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`) as the real Hub does, which
huggingface_hub turns into its typed errors. No `X-Xet-*` header is ever sent, so downloads never go through Xet.
Every request is recorded in `server.requests` as `(method, path)`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import yaml


class Repo:
    """Commits as full snapshots: `commits[sha]` maps each path to its bytes; `branches` maps names to shas."""

    def __init__(self, repo_id: str, private: bool):
        self.repo_id = repo_id
        self.private = private
        self.commits: dict[str, dict[str, bytes]] = {}
        self.branches: dict[str, str] = {}
        self.commit_messages: dict[str, str] = {}
        self.add_commit("main", {}, "initial commit")

    def add_commit(self, branch: str, files: dict[str, bytes], message: str) -> str:
        parent = self.branches.get(branch, "")
        digest = hashlib.sha1(f"{self.repo_id}\n{parent}\n{len(self.commits)}\n{message}".encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + files[path])
        sha = digest.hexdigest()
        self.commits[sha] = files
        self.commit_messages[sha] = message
        self.branches[branch] = sha
        return sha

    def resolve(self, revision: str) -> str | None:
        """A branch name or a full commit sha -> commit sha (None when unknown)."""
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None


class HubServer(ThreadingHTTPServer):
    """The in-memory Hub; `url` is its endpoint. Use as a context manager, or call `close()`."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.validated_cards: list[str] = []
        self.lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> "HubServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    server: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # quiet: the request log is `server.requests`
        pass

    # ---- dispatch

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        self.server.requests.append((method, path))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
        parts = [unquote(p) for p in path.strip("/").split("/")]
        with self.server.lock:
            try:
                self._route(method, parts, body)
            except _HubError as error:
                self._send_json(error.status, {"error": error.message, **error.extra}, {"X-Error-Code": error.code}
                                if error.code else {}, head=method == "HEAD")

    def _route(self, method: str, parts: list[str], body: bytes) -> None:
        if method == "POST" and parts == ["api", "repos", "create"]:
            return self._create_repo(json.loads(body))
        if method == "POST" and parts == ["api", "validate-yaml"]:
            return self._validate_yaml(json.loads(body)["content"])
        if len(parts) >= 4 and parts[:2] == ["api", "models"]:
            repo = self._repo("/".join(parts[2:4]))
            action, rest = (parts[4], parts[5:]) if len(parts) > 4 else (None, [])
            if method == "POST" and action == "preupload":
                return self._preupload(json.loads(body))
            if method == "POST" and action == "commit":
                return self._commit(repo, "/".join(rest), body)
            if method == "POST" and action == "branch":
                return self._create_branch(repo, "/".join(rest))
            if method == "GET" and action in (None, "revision"):
                return self._model_info(repo, "/".join(rest) or "main")
            if method == "GET" and action == "tree":
                return self._tree(repo, rest[0] if rest else "main", "/".join(rest[1:]))
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("HEAD", "GET"):
            repo = self._repo("/".join(parts[:2]))
            return self._resolve(repo, parts[3], "/".join(parts[4:]), head=method == "HEAD")
        raise _HubError(404, f"no route for {method} /{'/'.join(parts)}")

    # ---- endpoints

    def _create_repo(self, payload: dict) -> None:
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        if repo_id in self.server.repos:
            # The real Hub names the existing repo's URL, which `create_repo(exist_ok=True)` returns.
            raise _HubError(409, "You already created this model repo", extra={"url": f"{self.server.url}/{repo_id}"})
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.server.repos[repo_id] = Repo(repo_id, private)
        self._send_json(200, {"url": f"{self.server.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def _validate_yaml(self, content: str) -> None:
        self.server.validated_cards.append(content)
        errors = _metadata_errors(content)
        self._send_json(400 if errors else 200, {"errors": [{"message": e} for e in errors], "warnings": []})

    def _create_branch(self, repo: Repo, branch: str) -> None:
        if branch in repo.branches:
            raise _HubError(409, f"Branch {branch} already exists")
        repo.branches[branch] = repo.branches["main"]
        self._send_json(200, {})

    def _preupload(self, payload: dict) -> None:
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                 for f in payload["files"]]
        self._send_json(200, {"files": files, "commitOid": None})

    def _commit(self, repo: Repo, revision: str, body: bytes) -> None:
        if revision not in repo.branches:
            raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        files = dict(repo.commits[repo.branches[revision]])
        message = ""
        for line in body.splitlines():
            entry = json.loads(line)
            key, value = entry["key"], entry["value"]
            if key == "header":
                message = value["summary"]
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            else:  # lfsFile, deletedFolder, ...: never asked for by this server's answers
                raise _HubError(400, f"unsupported commit operation {key!r}")
        sha = repo.add_commit(revision, files, message)
        self._send_json(200, {"commitUrl": f"{self.server.url}/{repo.repo_id}/commit/{sha}", "commitOid": sha,
                              "success": True})

    def _model_info(self, repo: Repo, revision: str) -> None:
        sha = self._sha(repo, revision)
        self._send_json(200, {"id": repo.repo_id, "modelId": repo.repo_id, "sha": sha, "private": repo.private,
                              "siblings": [{"rfilename": p} for p in sorted(repo.commits[sha])], "tags": []})

    def _tree(self, repo: Repo, revision: str, folder: str) -> None:
        files = repo.commits[self._sha(repo, revision)]
        prefix = f"{folder}/" if folder else ""
        entries = [{"type": "file", "path": p, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                   for p, data in sorted(files.items()) if p.startswith(prefix)]
        if folder and not entries:
            raise _HubError(404, f"{folder} does not exist", "EntryNotFound")
        self._send_json(200, entries)

    def _resolve(self, repo: Repo, revision: str, path: str, head: bool) -> None:
        sha = self._sha(repo, revision)
        files = repo.commits[sha]
        if path not in files:
            raise _HubError(404, f"Entry not found: {path}", "EntryNotFound")
        data = files[path]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("X-Repo-Commit", sha)
        self.end_headers()
        if not head:
            self.wfile.write(data)

    # ---- helpers

    def _repo(self, repo_id: str) -> Repo:
        if repo_id not in self.server.repos:
            raise _HubError(404, "Repository not found", "RepoNotFound")
        return self.server.repos[repo_id]

    def _sha(self, repo: Repo, revision: str) -> str:
        sha = repo.resolve(revision)
        if sha is None:
            raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return sha

    def _send_json(self, status: int, payload, headers: dict[str, str] | None = None, head: bool = False) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(data)


def _metadata_errors(content: str) -> list[str]:
    """What the Hub would reject in a README's metadata (the subset of its checks that cards here exercise)."""
    if not content.startswith("---\n") or "\n---\n" not in content[4:]:
        return ["README.md has no metadata block"]
    try:
        metadata = yaml.safe_load(content[4:content.index("\n---\n", 4)])
    except yaml.YAMLError as error:
        return [f"metadata is not YAML: {error}"]
    if not isinstance(metadata, dict):
        return ["metadata must be a YAML mapping"]
    errors = [f"`{key}` must be a string" for key in ("library_name", "license", "pipeline_tag")
              if key in metadata and not isinstance(metadata[key], str)]
    if not all(isinstance(tag, str) for tag in metadata.get("tags", [])):
        errors.append("`tags` must be strings")
    for model in metadata.get("model-index", []):
        for result in model.get("results", []):
            if not isinstance(result.get("task", {}).get("type"), str):
                errors.append("model-index result without `task.type`")
            if not {"type", "name"} <= set(result.get("dataset", {})):
                errors.append("model-index result without `dataset.type` and `dataset.name`")
            if not result.get("metrics") or any({"type", "value"} - set(m) for m in result["metrics"]):
                errors.append("model-index metrics need `type` and `value`")
    return errors


class _HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}
