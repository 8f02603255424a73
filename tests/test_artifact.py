"""Artifact upload (v4 results API) against a stand-in that checks every request, and behind a
proxy that makes the stand-in fail now and then."""

from __future__ import annotations

import io
import random
import stat
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
from prompter.github.artifact import (
    ArtifactError,
    ArtifactMissing,
    backend_ids,
    download_artifact,
    upload_folder,
)
from prompter.github.unzip import Limits, UnzipError, unpack

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
    assert [method for method, _ in service.calls] == [
        "CreateArtifact",
        "FinalizeArtifact",
        "ListArtifacts",  # read back: an upload is reported only once the service holds it
        "GetSignedArtifactURL",
    ]
    # Staged blocks and their list, as the toolkit uploads (act accepts nothing else).
    assert service.blob_requests == ["PUT block", "PUT blocklist", "GET"]
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
            answer = httpx.request(method, target + self.path.lstrip("/"), content=body or None,
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

        def do_GET(self) -> None:
            self._forward("GET")

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
    assert [m for m, _ in service.calls] == [
        "CreateArtifact",
        "FinalizeArtifact",
        "ListArtifacts",
        "GetSignedArtifactURL",
    ]
    assert seen == [
        f"POST {PREFIX}CreateArtifact -> 503",
        f"POST {PREFIX}CreateArtifact -> 429",
        f"POST {PREFIX}CreateArtifact -> 200",
        "PUT /blob/up/prompter-report -> 502",
        "PUT /blob/up/prompter-report -> 201",
        "PUT /blob/up/prompter-report -> 201",
        f"POST {PREFIX}FinalizeArtifact -> 504",
        f"POST {PREFIX}FinalizeArtifact -> 200",
        f"POST {PREFIX}ListArtifacts -> 200",
        f"POST {PREFIX}GetSignedArtifactURL -> 200",
        "GET /blob/down/prompter-report -> 200",
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


# --- download, and the read-back that verifies an upload --------------------------------------


def test_another_job_downloads_what_one_uploaded(tmp_path: Path) -> None:
    folder = report_dir(tmp_path)
    with artifact_service() as service:
        upload_folder(folder, "prompter-fanout-p-a", service.env())
        got = download_artifact("prompter-fanout-p-a", tmp_path / "got", service.env("job-9"))
        with pytest.raises(ArtifactMissing, match="no artifact prompter-fanout-p-b"):
            download_artifact("prompter-fanout-p-b", tmp_path / "none", service.env("job-9"))
    assert service.problems == []
    assert got.artifact_id == "4242"
    assert sorted(got.files) == ["junit.xml", "logs/a.log", "state.json"]
    assert (tmp_path / "got" / "logs" / "a.log").read_bytes() == b"\x00binary\xff log"
    assert not (tmp_path / "none").exists()


def test_a_name_is_uploaded_once_per_run(tmp_path: Path) -> None:
    with artifact_service() as service:
        folder = report(tmp_path)
        upload_folder(folder, "r", service.env())
        with pytest.raises(ArtifactError, match="CreateArtifact answered HTTP 409"):
            upload_folder(folder, "r", service.env("job-9"))


def test_an_upload_the_service_does_not_hold_is_not_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """act answers a plain PUT (Put Blob) 200, stores nothing, and finalizes without checking:
    only reading the artifact back shows that it is empty."""

    def put_blob(client: Any, url: str, data: bytes) -> None:
        client.put(url, content=data, headers={"x-ms-blob-type": "BlockBlob"})

    monkeypatch.setattr(artifact, "_put_blocks", put_blob)
    with (
        artifact_service(act=True) as service,
        pytest.raises(ArtifactError, match="holds 0 other bytes, not the"),
    ):
        upload_folder(report(tmp_path), "r", service.env())
    assert service.blob_requests[0] == "PUT blob"


def test_the_mime_type_field_is_not_sent(tmp_path: Path) -> None:
    # act 0.2.89 refuses `mimeType` (protojson: unknown field); the stand-in checks every field.
    with artifact_service() as service:
        upload_folder(report(tmp_path), "r", service.env())
    create = next(body for method, body in service.calls if method == "CreateArtifact")
    assert "mimeType" not in create and service.problems == []


def test_large_uploads_go_in_several_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(artifact, "BLOCK_BYTES", 1000)
    folder = report(tmp_path)
    (folder / "big.bin").write_bytes(random.Random(1).randbytes(3500))
    with artifact_service() as service:
        uploaded = upload_folder(folder, "r", service.env())
        download_artifact("r", tmp_path / "got", service.env())
    assert service.problems == []
    assert service.blob_requests.count("PUT block") == -(-uploaded.size // 1000) >= 4
    assert (tmp_path / "got" / "big.bin").read_bytes() == (folder / "big.bin").read_bytes()


def hostile_zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return buffer.getvalue()


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("../escape.txt", b"x")], "not a path inside"),
        ([("a/../../escape.txt", b"x")], "not a path inside"),
        ([("/etc/escape.txt", b"x")], "not a relative path"),
        ([("a\\..\\escape.txt", b"x")], "not a relative path"),
        ([("c:/escape.txt", b"x")], "not a path inside"),
        ([(symlink_entry("link"), b"/etc/passwd")], "not a regular file"),
        ([("a.txt", b"x"), ("a.txt", b"y")], "listed twice"),
        ([("a", b"x"), ("a/b", b"y")], "both a file and a folder"),
        ([("bomb", b"\0" * (8 * 1024 * 1024))], "compressed too well"),
    ],
)
@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_unpacking_trusts_nothing_in_the_zip(
    tmp_path: Path, entries: list[tuple[Any, bytes]], message: str
) -> None:
    with pytest.raises(UnzipError, match=message):
        unpack(hostile_zip(entries), tmp_path / "out", Limits())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing beside the folder
    assert not any(p.is_symlink() for p in (tmp_path / "out").rglob("*"))


def test_unpacking_stops_at_the_size_and_count_limits(tmp_path: Path) -> None:
    data = hostile_zip([(f"f{i}", b"y" * 100) for i in range(5)])
    with pytest.raises(UnzipError, match="more than 300 bytes"):
        unpack(data, tmp_path / "a", Limits(max_bytes=300))
    with pytest.raises(UnzipError, match="more than 4 entries"):
        unpack(data, tmp_path / "b", Limits(max_files=4))
    with pytest.raises(UnzipError, match="not a zip file"):
        unpack(b"not a zip", tmp_path / "c", Limits())
    assert unpack(data, tmp_path / "d", Limits()) == ("f0", "f1", "f2", "f3", "f4")


def test_the_report_artifact_leaves_out_the_stores_lock_and_empty_journal(tmp_path: Path) -> None:
    from prompter.github.action import store_bookkeeping
    from prompter.github.artifact import zip_folder

    report = tmp_path / "report"
    (report / "logs").mkdir(parents=True)
    for name, text in [
        ("state.json", "{}"),
        ("state.json.lock", "123"),
        ("state.json.journal", ""),
        ("junit.xml", "<x/>"),
        ("logs/a.log", ""),  # an empty log is the task's, and stays
    ]:
        (report / name).write_text(text)
    names = zipfile.ZipFile(io.BytesIO(zip_folder(report, store_bookkeeping(report)))).namelist()
    assert names == ["junit.xml", "logs/a.log", "state.json"]
    # A journal with entries is part of the state: it travels.
    (report / "state.json.journal").write_text('{"k": 1}\n')
    names = zipfile.ZipFile(io.BytesIO(zip_folder(report, store_bookkeeping(report)))).namelist()
    assert names == ["junit.xml", "logs/a.log", "state.json", "state.json.journal"]
