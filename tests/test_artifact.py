"""Artifact upload (v4 results API) against a stand-in that checks every request."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

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
