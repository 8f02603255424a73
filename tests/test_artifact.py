"""Artifact upload (v4 results API) against a stand-in that checks every request, and behind a
proxy that makes the stand-in fail now and then."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from prompter.github import artifact
from prompter.github.artifact import ArtifactError, backend_ids, upload_folder

from .artifact_service import JOB_ID, RUN_ID, artifact_service, runtime_token


def report_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "report"
    (folder / "logs").mkdir(parents=True)
    (folder / "state.json").write_text('{"version": 1}')
    (folder / "junit.xml").write_text("<testsuites/>")
    (folder / "logs" / "a.log").write_bytes(b"\x00binary\xff log")
    return folder


def test_backend_ids_come_from_the_scp_claim() -> None:
    assert backend_ids(runtime_token()) == (RUN_ID, JOB_ID)
    with pytest.raises(ArtifactError, match=r"no Actions\.Results scope"):
        backend_ids(runtime_token(scope="Actions.Other:x:y"))
    with pytest.raises(ArtifactError, match="not a JWT"):
        backend_ids("not-a-token")


def test_upload_creates_puts_and_finalizes(tmp_path: Path) -> None:
    folder = report_dir(tmp_path)
    with artifact_service() as service:
        env = {"ACTIONS_RUNTIME_TOKEN": service.token, "ACTIONS_RESULTS_URL": service.url}
        uploaded = upload_folder(folder, "prompter-report", env)
    assert service.problems == []
    assert [method for method, _ in service.calls] == ["CreateArtifact", "FinalizeArtifact"]
    assert uploaded.artifact_id == "4242"
    blob = service.blobs["prompter-report"]
    assert uploaded.size == len(blob)
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        assert sorted(archive.namelist()) == ["junit.xml", "logs/a.log", "state.json"]
        assert archive.read("logs/a.log") == b"\x00binary\xff log"


def test_service_errors_are_one_line(tmp_path: Path) -> None:
    with artifact_service(fail_create=True) as service:
        env = {"ACTIONS_RUNTIME_TOKEN": service.token, "ACTIONS_RESULTS_URL": service.url}
        with pytest.raises(ArtifactError, match="CreateArtifact answered HTTP 500"):
            upload_folder(report_dir(tmp_path), "r", env)


def test_missing_environment_and_unreachable_service(tmp_path: Path) -> None:
    folder = report_dir(tmp_path)
    with pytest.raises(ArtifactError, match="not set"):
        upload_folder(folder, "r", {})
    env = {"ACTIONS_RUNTIME_TOKEN": runtime_token(), "ACTIONS_RESULTS_URL": "http://127.0.0.1:9/"}
    with pytest.raises(ArtifactError, match="unreachable"):
        upload_folder(folder, "r", env)


# --- a flaky artifact service -------------------------------------------------------------


@contextmanager
def flaky_proxy(target: str, failures: dict[str, list[int]]) -> Iterator[tuple[str, list[str]]]:
    """An HTTP proxy in front of the stand-in: requests whose path starts with a key of
    `failures` are answered with the next status of its list (while there is one); the rest go
    to `target`, and the signed upload URL it returns points back here. Yields the proxy's URL
    and the log of what it answered."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _forward(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            for prefix, statuses in failures.items():
                if self.path.startswith(prefix) and statuses:
                    status = statuses.pop(0)
                    seen.append(f"{method} {self.path.split('?')[0]} -> {status}")
                    self.send_response(status)
                    data = b'{"code":"unavailable","msg":"try again"}'
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in {"host", "content-length"}
            }
            answer = httpx.request(method, target + self.path.lstrip("/"), content=body,
                                   headers=headers)  # fmt: skip
            data = answer.content.replace(target.encode(), proxy_url.encode())
            seen.append(f"{method} {self.path.split('?')[0]} -> {answer.status_code}")
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("Content-Type", "text/plain"))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self._forward("POST")

        def do_PUT(self) -> None:
            self._forward("PUT")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    proxy_url = f"http://127.0.0.1:{server.server_address[1]}/"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield proxy_url, seen
    finally:
        server.shutdown()
        server.server_close()


def report(tmp_path: Path) -> Path:
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "junit.xml").write_text("<testsuites/>")
    return folder


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifact, "RETRY_DELAYS_S", (0.01, 0.02, 0.04), raising=False)


PREFIX = "/twirp/github.actions.results.api.v1.ArtifactService/"


@pytest.mark.usefixtures("quick_retries")
def test_transient_service_errors_are_retried(tmp_path: Path) -> None:
    # actions/toolkit retries 429/5xx and dropped connections; one 503 lost the artifact.
    failures = {PREFIX + "CreateArtifact": [503, 429], "/blob/": [502], PREFIX + "Finalize": [504]}
    with artifact_service() as service, flaky_proxy(service.url, failures) as (url, seen):
        env = {"ACTIONS_RUNTIME_TOKEN": service.token, "ACTIONS_RESULTS_URL": url}
        uploaded = upload_folder(report(tmp_path), "prompter-report", env)
    assert service.problems == []
    assert uploaded.artifact_id == "4242"
    assert [m for m, _ in service.calls] == ["CreateArtifact", "FinalizeArtifact"]
    assert seen == [
        f"POST {PREFIX}CreateArtifact -> 503",
        f"POST {PREFIX}CreateArtifact -> 429",
        f"POST {PREFIX}CreateArtifact -> 200",
        "PUT /blob/prompter-report -> 502",
        "PUT /blob/prompter-report -> 201",
        f"POST {PREFIX}FinalizeArtifact -> 504",
        f"POST {PREFIX}FinalizeArtifact -> 200",
    ]


@pytest.mark.usefixtures("quick_retries")
def test_a_service_that_stays_down_gives_up_with_one_line(tmp_path: Path) -> None:
    failures = {PREFIX + "CreateArtifact": [503] * 10}
    with artifact_service() as service, flaky_proxy(service.url, failures) as (url, seen):
        env = {"ACTIONS_RUNTIME_TOKEN": service.token, "ACTIONS_RESULTS_URL": url}
        with pytest.raises(ArtifactError, match=r"CreateArtifact answered HTTP 503") as caught:
            upload_folder(report(tmp_path), "r", env)
    assert "\n" not in str(caught.value)
    assert len(failures[PREFIX + "CreateArtifact"]) == 10 - 4  # tried four times
    assert len(seen) == 4


@pytest.mark.usefixtures("quick_retries")
def test_a_conflict_is_not_retried(tmp_path: Path) -> None:
    # 409: the name is taken in this workflow run (v4 artifacts are immutable): say so at once.
    failures = {PREFIX + "CreateArtifact": [409, 409]}
    with artifact_service() as service, flaky_proxy(service.url, failures) as (url, _):
        env = {"ACTIONS_RUNTIME_TOKEN": service.token, "ACTIONS_RESULTS_URL": url}
        with pytest.raises(ArtifactError, match="HTTP 409"):
            upload_folder(report(tmp_path), "r", env)
    assert failures[PREFIX + "CreateArtifact"] == [409]


def test_a_malformed_results_url_is_an_artifact_error(tmp_path: Path) -> None:
    # httpx.InvalidURL is no httpx.HTTPError: it escaped as a traceback and ended the step.
    env = {"ACTIONS_RUNTIME_TOKEN": runtime_token(), "ACTIONS_RESULTS_URL": "http://[::1"}
    with pytest.raises(ArtifactError, match="unreachable: InvalidURL"):
        upload_folder(report(tmp_path), "r", env)
