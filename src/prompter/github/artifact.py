"""Upload a folder as a job artifact through the Actions results service (artifacts v4).

The same three calls as actions/toolkit's `@actions/artifact` (there is no Python client):
CreateArtifact (twirp, JSON) -> the zip PUT to the returned signed blob URL -> FinalizeArtifact
with the size and sha256. The backend ids come from the runtime token's `scp` claim.

Like the toolkit, a request the service answers "busy" or "unavailable" (429, 502, 503, 504), or
whose connection drops, is tried again after a pause; the blob store's 500 too (Azure: "retry
the request"). A refused connection, a timeout or the service's own 500 (twirp "internal") is
not: it would only stretch the wait, which the step pays for.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICE = "twirp/github.actions.results.api.v1.ArtifactService"
TIMEOUT_S = 60.0
RETRY_DELAYS_S = (1.0, 2.0, 4.0)  # pauses before the 2nd, 3rd and 4th try of a request
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class ArtifactError(Exception):
    """One line: why the upload did not happen."""


@dataclass(frozen=True)
class Uploaded:
    artifact_id: str
    size: int
    sha256: str


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


def zip_folder(folder: Path) -> bytes:
    """The folder's files, paths relative to it, in a stable order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def upload_folder(folder: Path, name: str, environ: Mapping[str, str] | None = None) -> Uploaded:
    """Upload `folder` as artifact `name`; raises ArtifactError with a one-line reason."""
    import httpx

    env = os.environ if environ is None else environ
    token = env.get("ACTIONS_RUNTIME_TOKEN")
    base = env.get("ACTIONS_RESULTS_URL")
    if not token or not base:
        raise ArtifactError("ACTIONS_RUNTIME_TOKEN / ACTIONS_RESULTS_URL are not set")
    run_id, job_id = backend_ids(token)
    try:
        data = zip_folder(folder)
    except OSError as exc:
        raise ArtifactError(
            f"cannot read {exc.filename or folder}: {exc.strerror or exc}"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    ids = {"workflowRunBackendId": run_id, "workflowJobRunBackendId": job_id, "name": name}
    headers = {"Authorization": f"Bearer {token}", "User-Agent": "prompter-action"}
    try:
        with httpx.Client(timeout=TIMEOUT_S, headers=headers) as client:
            created = _twirp(
                client,
                base,
                "CreateArtifact",
                {**ids, "version": 7, "mimeType": "application/zip"},
            )
            url = created.get("signedUploadUrl")
            if not isinstance(url, str) or not url:
                raise ArtifactError("CreateArtifact returned no signedUploadUrl")
            put = _retried(
                lambda: httpx.put(
                    url,
                    content=data,
                    headers={"x-ms-blob-type": "BlockBlob", "Content-Type": "application/zip"},
                    timeout=TIMEOUT_S,
                ),
                RETRY_STATUSES | {500},
            )
            if put.status_code >= 300:
                raise ArtifactError(f"blob upload answered HTTP {put.status_code}")
            finalized = _twirp(
                client,
                base,
                "FinalizeArtifact",
                {**ids, "size": str(len(data)), "hash": f"sha256:{digest}"},
            )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ArtifactError(f"artifact service unreachable: {type(exc).__name__}: {exc}") from None
    artifact_id = finalized.get("artifactId")
    if artifact_id is None:
        raise ArtifactError("FinalizeArtifact returned no artifactId")
    return Uploaded(str(artifact_id), len(data), digest)


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


def _twirp(client: Any, base: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    url = f"{base.rstrip('/')}/{SERVICE}/{method}"
    response = _retried(lambda: client.post(url, json=body))
    if response.status_code != 200:
        detail = " ".join(response.text.split())[:200]
        raise ArtifactError(f"{method} answered HTTP {response.status_code}: {detail}")
    try:
        answer = response.json()
    except ValueError:
        raise ArtifactError(f"{method} answered something that is not JSON") from None
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        raise ArtifactError(f"{method} did not answer ok")
    return answer
