"""Servers of the tests' own on 127.0.0.1: plain HTTP, a Hub, and the app on a free port."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server:
    """Serves `files` with HTTP Range support; `cut_next` sends only half of the next response."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_next = False
        self.chunk_delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_next:
                    server.cut_next = False
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.close()
                    return
                for start in range(0, len(body), 1 << 16):  # 64 KB at a time, `chunk_delay` s apart
                    self.wfile.write(body[start:start + (1 << 16)])
                    self.wfile.flush()
                    time.sleep(server.chunk_delay)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"


class HubServer:
    """The Hugging Face Hub's API for model repos, on 127.0.0.1. Downloads: the calls
    `snapshot_download` makes (repo info at a revision, the recursive tree, HEAD and GET of each
    file at its commit), answered with exactly what was stored, and the Hub's error codes for
    unknown repos and revisions. Uploads: the calls `create_repo`, `create_branch` and
    `upload_folder` make (repo creation, 409 when it exists; preupload, answering "regular" for
    every file; README metadata validation; the NDJSON commit, stored as a new commit on its
    branch). `add(repo, files)` stores a commit directly."""

    def __init__(self):
        self.repos: dict[str, dict[str, dict[str, bytes]]] = {}  # repo -> commit -> files
        self.refs: dict[str, dict[str, str]] = {}  # repo -> branch -> commit
        self.private: dict[str, bool] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.answer(body=False)

            def do_GET(self):
                self.answer(body=True)

            def do_POST(self):
                import base64
                import json
                from urllib.parse import unquote, urlparse

                path = unquote(urlparse(self.path).path)
                server.requests.append(f"POST {path}")
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = path.strip("/").split("/")
                if parts == ["api", "repos", "create"]:
                    payload = json.loads(raw)
                    repo = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
                    if repo in server.repos:
                        return self.reply(409, {"error": "You already created this model repo", "url": f"{server.url}/{repo}"})
                    server.repos[repo], server.refs[repo] = {}, {}
                    server.private[repo] = bool(payload.get("private"))
                    return self.reply(200, {"url": f"{server.url}/{repo}"})
                if parts == ["api", "validate-yaml"]:
                    return self.reply(200, {"warnings": [], "errors": []})
                if parts[:2] == ["api", "models"] and len(parts) >= 6:
                    repo, action, revision = "/".join(parts[2:4]), parts[4], "/".join(parts[5:])
                    if repo not in server.repos:
                        return self.error(repo, revision)
                    if action == "preupload":
                        files = json.loads(raw)["files"]
                        return self.reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                          for f in files]})
                    if action == "branch":
                        if revision in server.refs[repo]:
                            return self.reply(409, {"error": "Reference already exists"})
                        server.refs[repo][revision] = server.refs[repo].get("main") or server.add(repo, {})
                        return self.reply(200, {})
                    if action == "commit":
                        items = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
                        parent = server.refs[repo].get(revision)
                        files = dict(server.repos[repo][parent]) if parent else {}
                        for item in items:
                            if item["key"] == "file":
                                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                        commit = server.add(repo, files, branch=revision)
                        return self.reply(200, {"commitUrl": f"{server.url}/{repo}/commit/{commit}", "commitOid": commit})
                self.send_error(404)

            def reply(self, status: int, payload):
                import json

                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def answer(self, body: bool):
                import json
                from urllib.parse import unquote, urlparse

                path = unquote(urlparse(self.path).path)
                server.requests.append(f"{self.command} {path}")
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
                    repo, kind, revision = "/".join(parts[2:4]), parts[4], parts[5]
                    commit = server.resolve(repo, revision)
                    if commit is None:
                        return self.error(repo, revision)
                    files = server.repos[repo][commit]
                    if kind == "revision":
                        info = {"id": repo, "modelId": repo, "sha": commit, "private": False,
                                "siblings": [{"rfilename": name} for name in files]}
                    else:
                        info = [{"type": "file", "path": name, "size": len(data), "oid": server.oid(data)}
                                for name, data in files.items()]
                    return self.send(json.dumps(info).encode(), "application/json", body, commit)
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, revision, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                    commit = server.resolve(repo, revision)
                    if commit is None or name not in server.repos[repo][commit]:
                        return self.error(repo, revision, entry=commit is not None)
                    data = server.repos[repo][commit][name]
                    return self.send(data, "application/octet-stream", body, commit, etag=server.oid(data))
                self.send_error(404)

            def send(self, data: bytes, kind: str, body: bool, commit: str, etag: str | None = None):
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Repo-Commit", commit)
                if etag:
                    self.send_header("ETag", f'"{etag}"')
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def error(self, repo: str, revision: str, entry: bool = False):
                code = "EntryNotFound" if entry else ("RevisionNotFound" if repo in server.repos else "RepoNotFound")
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", f"{code}: {repo}@{revision}")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    @staticmethod
    def oid(data: bytes) -> str:
        import hashlib

        return hashlib.sha1(data).hexdigest()

    def add(self, repo: str, files: dict[str, bytes], branch: str = "main") -> str:
        import hashlib

        commit = hashlib.sha1(repo.encode() + b"".join(sorted(self.oid(d).encode() for d in files.values()))
                              + str(len(self.repos.get(repo, {}))).encode()).hexdigest()
        self.repos.setdefault(repo, {})[commit] = dict(files)
        self.refs.setdefault(repo, {})[branch] = commit
        return commit

    def resolve(self, repo: str, revision: str) -> str | None:
        if repo not in self.repos:
            return None
        return self.refs[repo].get(revision) or (revision if revision in self.repos[repo] else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(checkpoints, tmp_path, max_pixels: int = 1_000_000, auth: list[tuple[str, str]] | None = None,
           training=None, **serving):
    """The app (app.py) serving `checkpoints` on a free port, behind `auth` logins if given, with
    the Train tab of `training` (a TrainingService) if given: (the app, its URL). `serving`:
    fields of ServingSettings."""
    from img2img.app.glue import launch_options
    from img2img.app.page import build_app
    from img2img.io.limits import Limits
    from img2img.service.serving import ServingSettings

    port = free_port()
    settings = ServingSettings(**serving)
    app = build_app(checkpoints, device="cpu", limits=Limits(max_pixels=max_pixels), serving=settings,
                               training=training)
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
               max_file_size=f"{settings.max_upload_mb}mb", **launch_options(auth or []))
    return app, f"http://127.0.0.1:{port}/"


def cpu_rate(seconds: float) -> float:
    """This process's CPU use (cores busy) over the next `seconds`: an app served in-process."""
    start, wall = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    return (time.process_time() - start) / (time.perf_counter() - wall)


def cancel_when_busy(job, what: str = "the work") -> None:
    """Cancel a gradio_client job once its event runs and keeps this process busy (a cancel
    during the upload would be the client's own), then wait for the process to go idle: under
    0.15 of a core within 5 s."""
    from gradio_client.utils import Status

    deadline = time.monotonic() + 60
    # Running: PROCESSING, or PROGRESS where the event reports progress.
    while job.status().code not in (Status.PROCESSING, Status.PROGRESS) or cpu_rate(0.5) < 0.3:
        assert time.monotonic() < deadline and not job.done()
    job.cancel()
    cancelled = time.monotonic()
    while cpu_rate(0.5) > 0.15:
        assert time.monotonic() - cancelled < 5, f"{what}: still busy 5 s after the cancel"


def wait_for(what: str, ready, timeout_s: float = 90.0, every_s: float = 0.1):
    """`ready()`'s first true value, asked every `every_s`; an AssertionError naming `what` after
    `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")
