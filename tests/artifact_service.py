"""A local stand-in for the Actions results service and its blob store, checking every request.

It answers as the real service does (twirp JSON, a signed blob URL, an artifact id) and records
what it received; anything the real service would reject is answered with an error and noted in
`problems`, so tests fail on it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/twirp/github.actions.results.api.v1.ArtifactService/"
RUN_ID, JOB_ID = "run-backend-1", "job-backend-2"


def runtime_token(scope: str = f"Actions.Results:{RUN_ID}:{JOB_ID}") -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'scp': f'Actions.Example {scope}'})}.c2ln"


@dataclass
class Service:
    token: str = field(default_factory=runtime_token)
    fail_create: bool = False
    port: int = 0
    blobs: dict[str, bytes] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@contextmanager
def artifact_service(**options: Any) -> Iterator[Service]:
    service = Service(**options)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any] | None = None) -> None:
            data = json.dumps(body or {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def do_POST(self) -> None:
            raw = self._body()
            if self.headers.get("Authorization") != f"Bearer {service.token}":
                service.problems.append(f"bad Authorization on {self.path}")
                return self._reply(401, {"code": "unauthenticated"})
            if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                service.problems.append(f"not JSON: {self.path}")
                return self._reply(400)
            body = json.loads(raw)
            method = self.path.removeprefix(PREFIX)
            service.calls.append((method, body))
            ids = {"workflowRunBackendId": RUN_ID, "workflowJobRunBackendId": JOB_ID}
            if any(body.get(k) != v for k, v in ids.items()):
                service.problems.append(f"wrong backend ids in {method}: {body}")
                return self._reply(400)
            if method == "CreateArtifact":
                if service.fail_create:
                    return self._reply(500, {"code": "internal", "msg": "boom"})
                if body.get("version") != 7 or not body.get("name"):
                    service.problems.append(f"bad CreateArtifact body: {body}")
                    return self._reply(400)
                url = f"{service.url}blob/{body['name']}?sv=2023&sig=abc"
                return self._reply(200, {"ok": True, "signedUploadUrl": url})
            if method == "FinalizeArtifact":
                blob = service.blobs.get(body.get("name", ""))
                if blob is None:
                    service.problems.append("finalized before any upload")
                    return self._reply(400)
                if body.get("size") != str(len(blob)):
                    service.problems.append(f"size {body.get('size')} != {len(blob)}")
                if body.get("hash") != "sha256:" + hashlib.sha256(blob).hexdigest():
                    service.problems.append("hash does not match the uploaded bytes")
                return self._reply(200, {"ok": True, "artifactId": "4242"})
            service.problems.append(f"unknown method {method}")
            return self._reply(404)

        def do_PUT(self) -> None:
            data = self._body()
            path, _, query = self.path.partition("?")
            if not path.startswith("/blob/") or "sig=abc" not in query:
                service.problems.append(f"PUT to an unsigned URL {self.path}")
                return self._reply(403)
            if self.headers.get("x-ms-blob-type") != "BlockBlob":
                service.problems.append("PUT without x-ms-blob-type: BlockBlob")
                return self._reply(400)
            if "Authorization" in self.headers:
                service.problems.append("the runtime token was sent to the blob store")
            service.blobs[path.removeprefix("/blob/")] = data
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
