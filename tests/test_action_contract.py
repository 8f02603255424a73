"""`prompter-action` run exactly as GitHub's runner runs a container action's entrypoint.

The environment, the file-command files and the workspace are what the runner provides
(actions/runner: every input as INPUT_<NAME>, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files);
stdout is read with a model of the runner's command parser (runner_model.py).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from junitparser import JUnitXml

from .action_step import TASKS, run_step, workspace
from .artifact_service import artifact_service

SECRET = "sk-ant-api03-CONTRACT-SECRET-0123456789"
INJECTED = "::error::injected by the agent"


HOSTILE_PLAN = {
    "bad": [{"print": f"{INJECTED}\n::set-env name=EVIL::1\n::add-mask::x\n##[error]old style\n"}]
}


def test_a_failing_run_as_the_runner_sees_it(tmp_path: Path) -> None:
    ws = workspace(tmp_path, TASKS, HOSTILE_PLAN)
    with artifact_service() as service:
        step = run_step(
            tmp_path,
            ws,
            {"workflow": "prompter.toml", "anthropic_api_key": SECRET},
            ACTIONS_RUNTIME_TOKEN=service.token,
            ACTIONS_RESULTS_URL=service.url,
        )
    assert step.code == 1, step.stdout + step.stderr
    assert "Traceback" not in step.stderr
    # Outputs, with workspace-relative paths.
    o = step.outputs
    assert (o["status"], o["passed"], o["failed"], o["skipped"]) == ("failed", "1", "1", "1")
    assert o["junit_path"] == ".prompter/junit.xml"
    assert o["summary_path"] == ".prompter/summary.md"
    assert o["state_path"] == ".prompter/state.json"
    assert o["artifact_id"] == "4242" and o["total_cost_usd"] == "0.0000"
    assert service.problems == []
    # The secret is masked first and never printed otherwise.
    assert step.of("add-mask")[0].data == SECRET
    assert step.stdout.count(SECRET) == 1
    # Nothing the agent or the verify command printed became a command.
    assert not step.of("set-env")
    # Only what prompter masked: the key, and the runner's token (held from the start).
    assert sorted(c.data for c in step.of("add-mask")) == sorted([SECRET, service.token])
    assert all("injected" not in c.data for c in step.of("error"))
    assert all("from verify" not in c.data for c in step.of("warning"))
    assert INJECTED in step.stdout  # shown, as text, inside a fenced group
    # One group per task that ran, opened when it finished.
    groups = [c.data for c in step.of("group")]
    assert sorted(groups) == ["bad: failed", "good: passed"]
    assert len(step.of("endgroup")) == 2
    # Annotations: the failure at its task's line, the skipped task with its root cause.
    (error,) = step.of("error")
    assert error.properties == {
        "file": "prompter.toml",
        "line": "12",
        "title": "prompter: task bad failed",
    }
    assert error.data.startswith("verify_command exited 3 (expected 0)\n")
    assert "tail line" in error.data
    (warning,) = step.of("warning")
    assert "1 task skipped (dependency `bad` failed): after" in warning.data
    # The step summary is the report, within the limit.
    report = (ws / ".prompter" / "summary.md").read_text("utf-8")
    assert step.summary == report and 0 < len(step.summary.encode()) <= 1024 * 1024
    # The JUnit file the output names reads back with the right counts.
    suite = next(iter(JUnitXml.fromfile(str(ws / o["junit_path"]))))
    assert (suite.tests, suite.failures, suite.skipped) == (3, 1, 1)


def test_fail_on_task_failure_false_passes_the_step(tmp_path: Path) -> None:
    ws = workspace(tmp_path, TASKS, {})
    step = run_step(tmp_path, ws, {"fail_on_task_failure": "false", "upload_artifact": "false"})
    assert step.code == 0
    assert step.outputs["status"] == "failed"
    assert step.outputs["artifact_id"] == ""  # not asked to upload: no warning about it
    assert [c.properties["title"] for c in step.of("warning")] == ["prompter: tasks skipped"]
    assert "fail_on_task_failure is false, so this step passes" in step.stdout


def test_without_the_artifact_service_a_warning_and_the_files_stay(tmp_path: Path) -> None:
    ws = workspace(tmp_path, TASKS[:1], {})
    step = run_step(tmp_path, ws, {})
    assert step.code == 0
    assert step.outputs["status"] == "passed" and step.outputs["artifact_id"] == ""
    (warning,) = step.of("warning")
    assert warning.data.startswith("report artifact not uploaded (ACTIONS_RUNTIME_TOKEN")
    assert (ws / ".prompter" / "state.json").exists()


def test_the_host_action_defers_the_upload_to_its_next_step(tmp_path: Path) -> None:
    """PROMPTER_DEFER_UPLOAD (host/action.yml sets it): no upload, no warning about the
    artifact service; `upload_dir` names the report folder for actions/upload-artifact."""
    ws = workspace(tmp_path, TASKS[:1], {})
    step = run_step(tmp_path, ws, {"report_dir": "out/report"}, PROMPTER_DEFER_UPLOAD="true")
    assert step.code == 0, step.stdout
    assert step.outputs["upload_dir"] == "out/report" and step.outputs["artifact_id"] == ""
    assert step.of("warning") == []
    assert (ws / "out" / "report" / "junit.xml").is_file()
    # Not asked to upload, or a dry run: nothing for the next step to upload.
    for inputs in ({"upload_artifact": "false"}, {"dry_run": "true"}):
        (tmp_path / "file_commands" / "set_output_1").unlink()
        step = run_step(tmp_path, ws, inputs, PROMPTER_DEFER_UPLOAD="true")
        assert step.code == 0, step.stdout
        assert "upload_dir" not in step.outputs, (inputs, step.outputs)
    # A bad artifact name is still refused before anything runs.
    (tmp_path / "file_commands" / "set_output_1").unlink()
    step = run_step(tmp_path, ws, {"artifact_name": "a/b"}, PROMPTER_DEFER_UPLOAD="true")
    assert step.code == 2 and "upload_dir" not in step.outputs


def test_plain_names_reproduce_a_run_with_docker_run(tmp_path: Path) -> None:
    """`docker run -e WORKFLOW=… -e MAX_PARALLEL=…`: no INPUT_ prefix."""
    ws = workspace(tmp_path, TASKS[:1], {})
    (ws / "flows").mkdir()
    shutil.move(ws / "prompter.toml", ws / "flows" / "wf.toml")
    step = run_step(
        tmp_path, ws, {}, WORKFLOW="flows/wf.toml", MAX_PARALLEL="1", UPLOAD_ARTIFACT="false"
    )
    assert step.code == 0, step.stdout
    assert step.outputs["status"] == "passed"
    # No report_dir: the workflow's own report folder, as `prompter run flows/wf.toml` has it.
    assert step.outputs["state_path"] == ".prompter/wf/state.json"
    assert step.outputs["junit_path"] == ".prompter/wf/junit.xml"
    assert step.outputs["summary_path"] == ".prompter/wf/summary.md"
    assert (ws / step.outputs["junit_path"]).is_file()


def test_hyphenated_input_names_work_too(tmp_path: Path) -> None:
    ws = workspace(tmp_path, TASKS, {})
    step = run_step(tmp_path, ws, {"FAIL-ON-TASK-FAILURE": "false", "UPLOAD-ARTIFACT": "false"})
    assert step.code == 0


def test_bad_inputs_and_invalid_workflows_fail_with_located_errors(tmp_path: Path) -> None:
    ws = workspace(tmp_path, TASKS, {})
    step = run_step(tmp_path, ws, {"max_parallel": "lots"})
    assert step.code == 2
    assert step.of("error")[0].data == "input `max_parallel` must be a positive integer, not 'lots'"
    assert step.outputs["status"] == "invalid"
    (ws / "prompter.toml").write_text(
        '[[tasks]]\nname = "x"\nprompt = 3\nverify_command = "true"\n'
    )
    step = run_step(tmp_path, ws, {})
    assert step.code == 2
    assert step.outputs["status"] == "invalid"
    (error,) = step.of("error")
    assert error.properties["file"] == "prompter.toml" and error.properties["line"] == "3"


def test_task_names_in_progress_lines_issue_no_commands(tmp_path: Path) -> None:
    # The runner finds the old `##[command]` syntax anywhere in a line: a progress line quoting
    # a name (or a reason with a file name an agent chose) must not become one.
    name = "n ##[error title=Injected;]by name"
    tasks = [
        {"name": name, "prompt": "x", "verify_command": "exit 1", "max_attempts": 1},
        {"name": "after ##[stop-commands]t", "prompt": "x", "verify_command": "true",
         "depends_on": [name]},
    ]  # fmt: skip
    step = run_step(tmp_path, workspace(tmp_path, tasks, {}), {"upload_artifact": "false"})
    assert step.code == 1
    assert name in step.stdout.replace("\u200b", "")  # shown, as text
    # Only prompter's own annotations, all of them seen (no stop-commands swallowed them).
    shown = [c for c in step.commands if c.name not in {"group", "endgroup"}]
    assert [(c.name, c.properties.get("title")) for c in shown] == [
        ("error", f"prompter: task {name} failed"),
        ("warning", "prompter: tasks skipped"),
    ]


def test_secrets_split_by_escapes_stay_masked_and_runner_credentials_stay_out(
    tmp_path: Path,
) -> None:
    token = "dtok_0123456789abcdef"
    split = {
        "ansi": token[:6] + "\x1b[0m" + token[6:],
        "nul": token[:6] + "\x00" + token[6:],
        "osc": token[:6] + "\x1b]0;title\x07" + token[6:],
    }
    printed = "".join(f"{k}: {v}\n" for k, v in split.items())
    plan = {"leak": [{"print": printed}]}
    # The verify command shows what a child sees of the runner's own credentials.
    check = (
        'echo "runtime=${ACTIONS_RUNTIME_TOKEN:-none} oidc=${ACTIONS_ID_TOKEN_REQUEST_TOKEN:-none}"'
    )
    tasks = [{"name": "leak", "prompt": "x", "verify_command": check}]
    with artifact_service() as service:
        step = run_step(
            tmp_path,
            workspace(tmp_path, tasks, plan),
            {},
            DEPLOY_TOKEN=token,
            ACTIONS_RUNTIME_TOKEN=service.token,
            ACTIONS_RESULTS_URL=service.url,
            ACTIONS_ID_TOKEN_REQUEST_TOKEN="oidc-request-token-123",
        )
    assert step.code == 0, step.stdout + step.stderr
    assert service.problems == []  # the upload still had the credentials
    assert step.outputs["artifact_id"] == "4242"
    # Only in the runner's mask commands (which the runner consumes), before anything else.
    masks = [c.data for c in step.of("add-mask")]
    assert token in masks and service.token in masks and "oidc-request-token-123" in masks
    shown = [line for line in step.stdout.splitlines() if not line.startswith("::add-mask::")]
    assert step.stdout.startswith("::add-mask::")
    assert token not in "\n".join(shown) and "ansi: ***" in step.stdout
    log = (step.workspace / ".prompter" / "logs" / "leak.log").read_text("utf-8")
    assert "runtime=none oidc=none" in log


def test_annotations_are_capped(tmp_path: Path) -> None:
    tasks = [
        {
            "name": f"t{i:02}",
            "prompt": "x",
            "verify_command": "exit 1",
            "max_attempts": 1,
            "depends_on": [],
        }
        for i in range(14)
    ]
    ws = workspace(tmp_path, tasks, {})
    step = run_step(tmp_path, ws, {"upload_artifact": "false"})
    errors = step.of("error")
    assert len(errors) == 10
    assert errors[-1].data.startswith("5 more like this")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: only root can create files for others")
def test_files_created_as_root_go_to_the_workspace_owner(tmp_path: Path) -> None:
    plan = {"good": [{"write": {"made-by-agent.txt": "x"}}]}
    ws = workspace(tmp_path, TASKS[:1], plan)
    for path in [ws, *ws.rglob("*")]:
        os.lchown(path, 1001, 1001)
    step = run_step(tmp_path, ws, {"upload_artifact": "false"})
    assert step.code == 0
    owners = {p.relative_to(ws).as_posix(): p.lstat().st_uid for p in ws.rglob("*")}
    assert owners["made-by-agent.txt"] == 1001
    assert owners[".prompter/state.json"] == 1001
    assert {uid for uid in owners.values()} == {1001}
