"""Job artifacts both ways through the Actions results service (artifacts v4), as
actions/toolkit's `@actions/artifact` does it (there is no Python client).

Upload: CreateArtifact (twirp, JSON) -> the zip staged in blocks on the returned signed blob URL
(`comp=block`, then `comp=blocklist`, Azure's Put Block / Put Block List, as the toolkit's blob
client uploads) -> FinalizeArtifact with the size and sha256 -> read back (ListArtifacts,
GetSignedArtifactURL, GET) and compared: an upload is reported only once the service holds those
bytes. act's artifact server (0.2.89) takes blob data only as blocks (a plain PUT is answered 200
and stores nothing) and refuses fields it does not know, so only the fields both know are sent.

Download: ListArtifacts (filtered by name) -> GetSignedArtifactURL -> GET the signed URL -> the
zip unpacked by `unzip.py` (no path leaves the folder, regular files only, bounded sizes).

The backend ids come from the runtime token's `scp` claim. Like the toolkit, a request the
service answers "busy" or "unavailable" (429, 502, 503, 504), or whose connection drops, is
tried again after a pause; the blob store's 500 too (Azure: "retry the request"). A refused
connection, a timeout or the service's own 500 (twirp "internal") is not: it would only stretch
the wait, which the step pays for.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import time
import zipfile
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .unzip import Limits, UnzipError, unpack

SERVICE = "twirp/github.actions.results.api.v1.ArtifactService"
TIMEOUT_S = 60.0
RETRY_DELAYS_S = (1.0, 2.0, 4.0)  # pauses before the 2nd, 3rd and 4th try of a request
RETRY_STATUSES = frozenset({429, 502, 503, 504})
BLOB_RETRY_STATUSES = RETRY_STATUSES | {500}
BLOCK_BYTES = 8 * 1024 * 1024  # the toolkit's block size
# The version the toolkit's CreateArtifact sends (the service's artifact format).
ARTIFACT_VERSION = 7
DOWNLOAD_MAX_BYTES = 1024 * 1024 * 1024  # of a zip fetched: an artifact above it is refused


class ArtifactError(Exception):
    """One line: why the upload or download did not happen."""


class ArtifactMissing(ArtifactError):
    """No artifact of that name in this workflow run."""


@dataclass(frozen=True)
class Uploaded:
    artifact_id: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Downloaded:
    artifact_id: str
    size: int  # of the zip
    files: tuple[str, ...]  # as unpacked, relative to the folder


@dataclass(frozen=True)
class _Service:
    """Where the results service is and who this job is, from the runner's environment."""

    base: str
    token: str
    ids: dict[str, str]  # workflowRunBackendId, workflowJobRunBackendId

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None) -> _Service:
        env = os.environ if environ is None else environ
        token = env.get("ACTIONS_RUNTIME_TOKEN")
        base = env.get("ACTIONS_RESULTS_URL")
        if not token or not base:
            raise ArtifactError("ACTIONS_RUNTIME_TOKEN / ACTIONS_RESULTS_URL are not set")
        run_id, job_id = backend_ids(token)
        ids = {"workflowRunBackendId": run_id, "workflowJobRunBackendId": job_id}
        return cls(base, token, ids)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "User-Agent": "prompter-action"}


def backend_ids(token: str) -> tuple[str, str]:
    """(workflowRunBackendId, workflowJobRunBackendId) from the JWT's `scp` claim."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        scopes = str(claims["scp"]).split()
    except (IndexError, ValueError, KeyError, TypeError):
        raise ArtifactError("ACTIONS_RUNTIME_TOKEN is not a JWT with an `scp` claim") from None
    for scope in scopes:
        parts = scope.split(":")
        if parts[0] == "Actions.Results" and len(parts) == 3:
            return parts[1], parts[2]
    raise ArtifactError("ACTIONS_RUNTIME_TOKEN grants no Actions.Results scope")


def zip_folder(folder: Path, leave_out: Collection[Path] = ()) -> bytes:
    """The folder's files but `leave_out`, paths relative to it, in a stable order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
            if path not in leave_out:
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


# -- upload ------------------------------------------------------------------------------------


def upload_folder(
    folder: Path,
    name: str,
    environ: Mapping[str, str] | None = None,
    leave_out: Collection[Path] = (),
) -> Uploaded:
    """Upload `folder` (less the files in `leave_out`) as artifact `name` and check that the
    service holds it; raises ArtifactError with a one-line reason."""
    service = _Service.from_env(environ)
    try:
        data = zip_folder(folder, leave_out)
    except OSError as exc:
        raise ArtifactError(
            f"cannot read {exc.filename or folder}: {exc.strerror or exc}"
        ) from None
    uploaded: Uploaded = _guarded(lambda client: _upload(client, service, name, data))
    return uploaded


def _upload(client: Any, service: _Service, name: str, data: bytes) -> Uploaded:
    digest = hashlib.sha256(data).hexdigest()
    ids = {**service.ids, "name": name}
    created = _twirp(client, service, "CreateArtifact", {**ids, "version": ARTIFACT_VERSION})
    url = created.get("signedUploadUrl")
    if not isinstance(url, str) or not url:
        raise ArtifactError("CreateArtifact returned no signedUploadUrl")
    _put_blocks(client, url, data)
    finalize = {**ids, "size": str(len(data)), "hash": f"sha256:{digest}"}
    finalized = _twirp(client, service, "FinalizeArtifact", finalize)
    artifact_id = finalized.get("artifactId")
    if artifact_id is None:
        raise ArtifactError("FinalizeArtifact returned no artifactId")
    held = _fetch(client, service, name)
    if held.artifact_id != str(artifact_id) or hashlib.sha256(held.data).hexdigest() != digest:
        raise ArtifactError(
            f"artifact {name} was finalized but the service holds {len(held.data)} other "
            f"bytes, not the {len(data)} uploaded"
        )
    return Uploaded(str(artifact_id), len(data), digest)


def _block_ids(count: int) -> Iterator[str]:
    # Azure wants the ids of one blob base64, all of one length before encoding.
    for i in range(count):
        yield base64.b64encode(f"prompter-{i:08d}".encode()).decode()


def _put_blocks(client: Any, url: str, data: bytes) -> None:
    """The zip as staged blocks, in order (act appends them as they come), then the list."""
    join = "&" if "?" in url else "?"
    count = max(1, -(-len(data) // BLOCK_BYTES))
    ids = list(_block_ids(count))
    for i, block_id in enumerate(ids):
        chunk = data[i * BLOCK_BYTES : (i + 1) * BLOCK_BYTES]
        block_url = f"{url}{join}comp=block&blockid={quote(block_id, safe='')}"

        def send(block_url: str = block_url, chunk: bytes = chunk) -> Any:
            headers = {"Content-Type": "application/octet-stream"}
            return client.put(block_url, content=chunk, headers=headers)

        put = _retried(send, BLOB_RETRY_STATUSES)
        if put.status_code >= 300:
            raise ArtifactError(f"blob block upload answered HTTP {put.status_code}")
    listed = "".join(f"<Latest>{block_id}</Latest>" for block_id in ids)
    body = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{listed}</BlockList>'
    put = _retried(
        lambda: client.put(
            f"{url}{join}comp=blocklist",
            content=body.encode(),
            headers={
                "Content-Type": "application/xml",
                "x-ms-blob-content-type": "application/zip",
            },
        ),
        BLOB_RETRY_STATUSES,
    )
    if put.status_code >= 300:
        raise ArtifactError(f"blob block list answered HTTP {put.status_code}")


# -- download ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Held:
    artifact_id: str
    data: bytes


def download_artifact(
    name: str,
    folder: Path,
    environ: Mapping[str, str] | None = None,
    limits: Limits | None = None,
) -> Downloaded:
    """Artifact `name` of this workflow run, unpacked into `folder` (made; it must not exist).
    ArtifactMissing when the run has none of that name; ArtifactError otherwise."""
    service = _Service.from_env(environ)
    held = _guarded(lambda client: _fetch(client, service, name))
    try:
        files = unpack(held.data, folder, limits or Limits())
    except UnzipError as exc:
        raise ArtifactError(f"artifact {name}: {exc}") from None
    return Downloaded(held.artifact_id, len(held.data), files)


def _fetch(client: Any, service: _Service, name: str) -> _Held:
    listed = _twirp(
        client, service, "ListArtifacts", {**service.ids, "nameFilter": name}, needs_ok=False
    )
    artifacts = listed.get("artifacts") or ()  # protojson leaves an empty list out
    found = [a for a in artifacts if isinstance(a, dict) and a.get("name") == name]
    if not found:
        raise ArtifactMissing(f"no artifact {name} in this workflow run")
    latest = max(found, key=lambda a: (str(a.get("createdAt", "")), str(a.get("databaseId", ""))))
    signed = _twirp(
        client, service, "GetSignedArtifactURL", {**service.ids, "name": name}, needs_ok=False
    )
    url = signed.get("signedUrl")
    if not isinstance(url, str) or not url:
        raise ArtifactError("GetSignedArtifactURL returned no signedUrl")
    return _Held(str(latest.get("databaseId", "")), _get(client, url, name))


def _get(client: Any, url: str, name: str) -> bytes:
    """The blob at the signed URL, refused past DOWNLOAD_MAX_BYTES (never read whole first)."""

    @dataclass(frozen=True)
    class Got:
        status_code: int
        data: bytes = b""

    def fetch() -> Got:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                return Got(response.status_code)
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > DOWNLOAD_MAX_BYTES:
                    raise ArtifactError(f"artifact {name} is over {DOWNLOAD_MAX_BYTES} bytes")
                chunks.append(chunk)
            return Got(200, b"".join(chunks))

    got: Got = _retried(fetch, BLOB_RETRY_STATUSES)
    if got.status_code != 200:
        raise ArtifactError(f"artifact {name}: download answered HTTP {got.status_code}")
    return got.data


# -- requests ----------------------------------------------------------------------------------


def _guarded(work: Callable[[Any], Any]) -> Any:
    """`work(client)` with the transport's failures made an ArtifactError."""
    import httpx

    try:
        with httpx.Client(timeout=TIMEOUT_S) as client:
            return work(client)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ArtifactError(f"artifact service unreachable: {type(exc).__name__}: {exc}") from None


def _retried(send: Callable[[], Any], statuses: frozenset[int] = RETRY_STATUSES) -> Any:
    """`send()`'s response, tried again while it is a passing failure (see the docstring)."""
    import httpx

    dropped = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
    delays = RETRY_DELAYS_S
    for attempt in range(len(delays) + 1):
        last = attempt == len(delays)
        try:
            response = send()
        except dropped:
            if last:
                raise
        else:
            if last or response.status_code not in statuses:
                return response
        time.sleep(delays[attempt])
    raise AssertionError("unreachable")


def _twirp(
    client: Any, service: _Service, method: str, body: dict[str, Any], needs_ok: bool = True
) -> dict[str, Any]:
    """A twirp call; `needs_ok`: the answer must say `"ok": true` (Create, Finalize)."""
    url = f"{service.base.rstrip('/')}/{SERVICE}/{method}"
    response = _retried(lambda: client.post(url, json=body, headers=service.headers()))
    if response.status_code != 200:
        detail = " ".join(response.text.split())[:200]
        raise ArtifactError(f"{method} answered HTTP {response.status_code}: {detail}")
    try:
        answer = response.json()
    except ValueError:
        raise ArtifactError(f"{method} answered something that is not JSON") from None
    if not isinstance(answer, dict) or (needs_ok and answer.get("ok") is not True):
        raise ArtifactError(f"{method} did not answer ok")
    return answer


# -- delete ------------------------------------------------------------------------------------


def delete_artifact(name: str, environ: Mapping[str, str] | None = None) -> str:
    """Delete artifact `name` of this workflow run, as the toolkit's `deleteArtifact` does:
    ListArtifacts (by name), then DeleteArtifact with the newest one's own backend ids (the
    job that uploaded it, not this one). The deleted artifact's id; ArtifactMissing when the
    run has none of that name."""
    service = _Service.from_env(environ)
    deleted: str = _guarded(lambda client: _delete(client, service, name))
    return deleted


def replace_earlier(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """On a re-run (GITHUB_RUN_ATTEMPT > 1), delete the artifact `name` an earlier attempt
    left, so that the upload that follows can take the name (v4 names are unique in a
    workflow run and its artifacts survive re-runs): what upload-artifact's `overwrite: true`
    does. The deleted artifact's id, or None (a first attempt, or nothing to replace)."""
    env = os.environ if environ is None else environ
    if run_attempt(env) <= 1:
        return None
    try:
        return delete_artifact(name, env)
    except ArtifactMissing:
        return None


def run_attempt(environ: Mapping[str, str]) -> int:
    """Which attempt of the workflow run this is (GITHUB_RUN_ATTEMPT: 2 and on are re-runs)."""
    try:
        return max(1, int(environ.get("GITHUB_RUN_ATTEMPT") or "1"))
    except ValueError:
        return 1


def _delete(client: Any, service: _Service, name: str) -> str:
    listed = _twirp(
        client, service, "ListArtifacts", {**service.ids, "nameFilter": name}, needs_ok=False
    )
    artifacts = listed.get("artifacts") or ()
    found = [a for a in artifacts if isinstance(a, dict) and a.get("name") == name]
    if not found:
        raise ArtifactMissing(f"no artifact {name} in this workflow run")

    def number(artifact: dict[str, Any]) -> int:
        try:
            return int(str(artifact.get("databaseId", "0")))
        except ValueError:
            return 0

    newest = max(found, key=number)  # the toolkit's choice when a name is listed twice
    ids = {key: str(newest.get(key) or service.ids[key]) for key in service.ids}
    deleted = _twirp(client, service, "DeleteArtifact", {**ids, "name": name}, needs_ok=False)
    return str(deleted.get("artifactId", newest.get("databaseId", "")))
