"""A stand-in for the GitLab REST API (v4) on loopback: the calls the example .gitlab-ci.yml makes, for one
project, with its notes, issues and the merge requests of commits kept in memory for the test to read."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.loopback_servers import serving

PROJECT = "41"
TOKEN = "glpat-test-token"
BOT_ID = 7


@dataclass
class GitLab:
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)   # merge request iid -> notes
    issues: list[dict[str, Any]] = field(default_factory=list)
    commit_merge_requests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    next_id: int = 5000

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        self.requests.append((method, path))
        if path == "/api/v4/user" and method == "GET":
            return 200, {"id": BOT_ID, "username": "project_41_bot"}
        prefix = f"/api/v4/projects/{PROJECT}"
        if not path.startswith(prefix):
            return 404, {"message": "404 Project Not Found"}
        path = path.removeprefix(prefix)
        if match := re.fullmatch(r"/merge_requests/(\d+)/notes", path):
            notes = self.notes.setdefault(int(match.group(1)), [])
            if method == "GET":
                per_page = min(int(query.get("per_page", "20")), 100)
                page = int(query.get("page", "1"))
                return 200, notes[(page - 1) * per_page: page * per_page]
            note = {"id": self.new_id(), "author": {"id": BOT_ID}, "body": body["body"]}
            notes.append(note)
            return 201, note
        if (match := re.fullmatch(r"/merge_requests/(\d+)/notes/(\d+)", path)) and method == "PUT":
            note = next(n for n in self.notes[int(match.group(1))] if n["id"] == int(match.group(2)))
            if note["author"]["id"] != BOT_ID:
                return 403, {"message": "403 Forbidden"}
            note["body"] = body["body"]
            return 200, note
        if path == "/issues" and method == "GET":
            found = [i for i in self.issues if query.get("labels") in i["labels"]
                     and i["state"] == query.get("state", i["state"])]
            return 200, found
        if path == "/issues" and method == "POST":
            issue = {"iid": len(self.issues) + 1, "title": body["title"], "labels": body["labels"].split(","),
                     "description": body["description"], "state": "opened", "notes": []}
            self.issues.append(issue)
            return 201, issue
        if (match := re.fullmatch(r"/issues/(\d+)", path)) and method == "PUT":
            issue = self.issues[int(match.group(1)) - 1]
            if body.get("state_event") == "close":
                issue["state"] = "closed"
            if "description" in body:
                issue["description"] = body["description"]
            return 200, issue
        if (match := re.fullmatch(r"/issues/(\d+)/notes", path)) and method == "POST":
            self.issues[int(match.group(1)) - 1]["notes"].append(body["body"])
            return 201, {"id": self.new_id()}
        if (match := re.fullmatch(r"/repository/commits/(\w+)/merge_requests", path)) and method == "GET":
            return 200, self.commit_merge_requests.get(match.group(1), [])
        return 404, {"message": f"404 not served by the fake: {method} {path}"}


@contextmanager
def serve(gitlab: GitLab) -> Iterator[str]:
    """Serve `gitlab` on a free loopback port for the `with` block; yields its CI_API_V4_URL."""

    class Handler(BaseHTTPRequestHandler):
        def handle_one(self, method: str) -> None:
            if self.headers.get("PRIVATE-TOKEN") != TOKEN:
                status, answer = 401, {"message": "401 Unauthorized"}
            else:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                status, answer = gitlab.answer(method, url.path, query, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self.handle_one("GET")

        def do_POST(self) -> None:
            self.handle_one("POST")

        def do_PUT(self) -> None:
            self.handle_one("PUT")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(HTTPServer(("127.0.0.1", 0), Handler)) as url:
        yield f"{url}/api/v4"
