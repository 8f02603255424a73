"""A local stand-in for the Actions results service and its blob store, checking every request.

It answers as the real service does (twirp JSON, signed blob URLs, artifact ids) and records
what it received; anything the real service or act's artifact server (0.2.89, which the
container tests run) would reject is answered with an error and noted in `problems`, so tests
fail on it:

- twirp: the runtime token as Bearer, JSON, the backend ids of the token, no field the
  service's protobuf lacks (act refuses unknown fields such as `mimeType`);
- CreateArtifact: version 7, a name not taken in this run (v4 artifacts are immutable: 409);
- the blob: staged blocks (`comp=block&blockid=…`, ids base64 of one length) then the block
  list (`comp=blocklist`, Azure's XML), never the runtime token; a plain PUT (Azure's Put
  Blob) is accepted as Azure does, unless `act=True`: act answers it 200 and stores nothing;
- FinalizeArtifact: after the upload, with the size and sha256 of the bytes committed;
- ListArtifacts (`nameFilter`), GetSignedArtifactURL, then a GET of the signed URL: the
  artifacts of the whole run, finalized ones only, as any job of the run sees them;
- DeleteArtifact: with the backend ids of the job that uploaded it (the toolkit's
  `deleteArtifact` sends those of the listed artifact, not its own), the name then free again
  (what upload-artifact's `overwrite: true` relies on); no such artifact: 404. Artifacts
  outlive a job's attempt: a re-run's jobs (new job backend ids) see them all.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote

PREFIX = "/twirp/github.actions.results.api.v1.ArtifactService/"
RUN_ID, JOB_ID = "run-backend-1", "job-backend-2"
FIRST_ID = 4242
IDS = ("workflowRunBackendId", "workflowJobRunBackendId")
# The request fields of the service's protobuf (act's artifact.proto), in JSON's spelling.
FIELDS = {
    "CreateArtifact": {*IDS, "name", "expiresAt", "version"},
    "FinalizeArtifact": {*IDS, "name", "size", "hash"},
    "ListArtifacts": {*IDS, "nameFilter", "idFilter"},
    "GetSignedArtifactURL": {*IDS, "name"},
    "DeleteArtifact": {*IDS, "name"},
}


def runtime_token(scope: str = f"Actions.Results:{RUN_ID}:{JOB_ID}") -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'scp': f'Actions.Example {scope}'})}.c2ln"


@dataclass
class Artifact:
    name: str
    job: str
    artifact_id: int
    data: bytes = b""
    finalized: bool = False
    created_at: float = field(default_factory=time.time)


@dataclass
class Service:
    token: str = field(default_factory=runtime_token)
    fail_create: bool = False
    act: bool = False  # a plain PUT is answered 200 and stored nowhere, as act 0.2.89 does
    port: int = 0
    blobs: dict[str, bytes] = field(default_factory=dict)  # committed, by artifact name
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    staged: dict[str, dict[str, bytes]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    blob_requests: list[str] = field(default_factory=list)  # "PUT block", "GET", …
    problems: list[str] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> job backend id
    deleted: list[Artifact] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tokens[self.token] = JOB_ID

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def token_for(self, job: str) -> str:
        """The runtime token of another job of the same workflow run."""
        token = runtime_token(f"Actions.Results:{RUN_ID}:{job}")
        self.tokens[token] = job
        return token

    def env(self, job: str = JOB_ID) -> dict[str, str]:
        token = self.token if job == JOB_ID else self.token_for(job)
        return {"ACTIONS_RUNTIME_TOKEN": token, "ACTIONS_RESULTS_URL": self.url}

    def signed(self, kind: str, name: str) -> str:
        sig = hashlib.sha256(f"{kind}/{name}".encode()).hexdigest()[:16]
        return f"{self.url}blob/{kind}/{quote(name, safe='')}?sv=2023&sig={sig}"

    def check_signed(self, kind: str, name: str, query: dict[str, list[str]]) -> bool:
        sig = hashlib.sha256(f"{kind}/{name}".encode()).hexdigest()[:16]
        return query.get("sig") == [sig]


@contextmanager
def artifact_service(**options: Any) -> Iterator[Service]:
    service = Service(**options)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(service))
    service.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()


def _handler(service: Service) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

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

        def _raw(self, status: int, data: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def do_POST(self) -> None:
            raw = self._body()
            job = service.tokens.get((self.headers.get("Authorization") or "")[7:])
            if not (self.headers.get("Authorization") or "").startswith("Bearer ") or job is None:
                service.problems.append(f"bad Authorization on {self.path}")
                return self._reply(401, {"code": "unauthenticated"})
            if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                service.problems.append(f"not JSON: {self.path}")
                return self._reply(400)
            body = json.loads(raw)
            method = self.path.removeprefix(PREFIX)
            service.calls.append((method, body))
            if method not in FIELDS:
                service.problems.append(f"unknown method {method}")
                return self._reply(404)
            unknown = set(body) - FIELDS[method]
            if unknown:  # act: protojson's `unknown field "mimeType"`, a 500
                service.problems.append(f"unknown fields in {method}: {sorted(unknown)}")
                return self._reply(500, {"code": "internal", "msg": "unknown field"})
            owner = job
            if method == "DeleteArtifact":  # the ids of the job that uploaded it
                held = service.artifacts.get(body.get("name", ""))
                owner = held.job if held is not None and held.finalized else job
            if body.get(IDS[0]) != RUN_ID or body.get(IDS[1]) != owner:
                service.problems.append(f"wrong backend ids in {method}: {body}")
                return self._reply(400)
            with lock:
                return getattr(self, "_" + method)(body, job)

        def _CreateArtifact(self, body: dict[str, Any], job: str) -> None:
            if service.fail_create:
                return self._reply(500, {"code": "internal", "msg": "boom"})
            name = body.get("name")
            if body.get("version") != 7 or not name:
                service.problems.append(f"bad CreateArtifact body: {body}")
                return self._reply(400)
            held = service.artifacts.get(name)
            if held is not None and held.finalized:
                return self._reply(409, {"code": "already_exists", "msg": "artifact exists"})
            number = (
                held.artifact_id
                if held
                else FIRST_ID + len(service.artifacts) + len(service.deleted)
            )
            service.artifacts[name] = Artifact(name, job, number)
            service.staged[name] = {}
            if service.act:  # act makes an empty file, appended to by each block
                service.blobs[name] = b""
            return self._reply(200, {"ok": True, "signedUploadUrl": service.signed("up", name)})

        def _FinalizeArtifact(self, body: dict[str, Any], job: str) -> None:
            artifact = service.artifacts.get(body.get("name", ""))
            blob = service.blobs.get(body.get("name", ""))
            if artifact is None or blob is None or artifact.job != job:
                service.problems.append("finalized before any upload")
                return self._reply(400)
            if service.act:  # act checks neither size nor hash
                artifact.data, artifact.finalized = blob, True
                return self._reply(200, {"ok": True, "artifactId": str(artifact.artifact_id)})
            if body.get("size") != str(len(blob)):
                service.problems.append(f"size {body.get('size')} != {len(blob)}")
                return self._reply(400, {"code": "invalid_argument", "msg": "size"})
            if body.get("hash") != "sha256:" + hashlib.sha256(blob).hexdigest():
                service.problems.append("hash does not match the uploaded bytes")
                return self._reply(400, {"code": "invalid_argument", "msg": "hash"})
            artifact.data, artifact.finalized = blob, True
            return self._reply(200, {"ok": True, "artifactId": str(artifact.artifact_id)})

        def _ListArtifacts(self, body: dict[str, Any], job: str) -> None:
            wanted = body.get("nameFilter")
            if wanted is not None and not isinstance(wanted, str):  # StringValue: a string
                service.problems.append(f"nameFilter is not a string: {wanted!r}")
                return self._reply(400)
            listed = [
                {
                    "workflowRunBackendId": RUN_ID,
                    "workflowJobRunBackendId": a.job,
                    "databaseId": str(a.artifact_id),
                    "name": a.name,
                    "size": str(len(a.data)),
                    "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(a.created_at)),
                }
                for a in service.artifacts.values()
                if a.finalized and wanted in (None, a.name)
            ]
            return self._reply(200, {"artifacts": listed} if listed else {})

        def _GetSignedArtifactURL(self, body: dict[str, Any], job: str) -> None:
            name = body.get("name", "")
            artifact = service.artifacts.get(name)
            if artifact is None or not artifact.finalized:
                return self._reply(404, {"code": "not_found", "msg": "artifact not found"})
            return self._reply(200, {"signedUrl": service.signed("down", name)})

        def _DeleteArtifact(self, body: dict[str, Any], job: str) -> None:
            name = body.get("name", "")
            artifact = service.artifacts.get(name)
            if artifact is None or not artifact.finalized:
                return self._reply(404, {"code": "not_found", "msg": "artifact not found"})
            del service.artifacts[name]
            service.blobs.pop(name, None)
            service.staged.pop(name, None)
            service.deleted.append(artifact)
            return self._reply(200, {"ok": True, "artifactId": str(artifact.artifact_id)})

        def _blob(self, kind: str) -> tuple[str, dict[str, list[str]]] | None:
            path, _, query = self.path.partition("?")
            name = path.removeprefix(f"/blob/{kind}/")
            parsed = parse_qs(query)
            name = unquote(name)
            if not path.startswith(f"/blob/{kind}/") or not service.check_signed(
                kind, name, parsed
            ):
                service.problems.append(f"{self.command} to an unsigned URL {self.path}")
                return None
            if "Authorization" in self.headers:
                service.problems.append("the runtime token was sent to the blob store")
            return name, parsed

        def do_PUT(self) -> None:
            data = self._body()
            found = self._blob("up")
            if found is None:
                return self._raw(403)
            name, query = found
            with lock:
                return self._put(name, query, data)

        def _put(self, name: str, query: dict[str, list[str]], data: bytes) -> None:
            comp = query.get("comp", [""])[0]
            staged = service.staged.setdefault(name, {})
            service.blob_requests.append(f"PUT {comp or 'blob'}")
            if comp == "block":
                block_id = query.get("blockid", [""])[0]
                try:
                    raw_id = base64.b64decode(block_id, validate=True)
                except binascii.Error:
                    raw_id = b""
                lengths = {len(base64.b64decode(b)) for b in staged} | {len(raw_id)}
                if not raw_id or len(raw_id) > 64 or len(lengths) > 1:
                    service.problems.append(f"bad block id {block_id!r}")
                    return self._raw(400)
                staged[block_id] = data
                return self._raw(201)
            if comp == "blocklist":
                listed = re.findall(rb"<(?:Latest|Uncommitted)>([^<]*)</", data)
                if not data.startswith(b"<?xml") or not listed:
                    service.problems.append(f"bad block list {data[:200]!r}")
                    return self._raw(400)
                missing = [b for b in listed if b.decode() not in staged]
                if missing:
                    service.problems.append(f"block list names unstaged blocks {missing}")
                    return self._raw(400)
                service.blobs[name] = b"".join(staged[b.decode()] for b in listed)
                return self._raw(201)
            if comp:
                service.problems.append(f"unknown comp={comp}")
                return self._raw(400)
            if service.act:  # act 0.2.89: no `comp`, nothing written, 200 all the same
                return self._raw(200)
            if self.headers.get("x-ms-blob-type") != "BlockBlob":
                service.problems.append("PUT without x-ms-blob-type: BlockBlob")
                return self._raw(400)
            service.blobs[name] = data
            return self._raw(201)

        def do_GET(self) -> None:
            found = self._blob("down")
            if found is None:
                return self._raw(403)
            service.blob_requests.append("GET")
            artifact = service.artifacts.get(found[0])
            if artifact is None or not artifact.finalized:
                return self._raw(404)
            return self._raw(200, artifact.data)

    return Handler
