"""The action's container, built from the real Dockerfile and run the way GitHub's runner runs it.

The runner's contract (actions/runner): `docker run --workdir /github/workspace`
as root, the checkout mounted at /github/workspace and owned by the runner's user (uid 1001 on
GitHub's images), HOME=/github/home, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files under
/github/file_commands, every input as INPUT_<NAME>. The workflow is the bundled demo
(examples/pipeline.toml: the command agent examples/agent.py, one task passing only on retry).

Then `act` runs the CI job `action` of .github/workflows/ci.yml against podman's Docker API: the
runner's side of `uses: ./` (build the Dockerfile, pass inputs, read outputs in the next step).
The job runs in a container of the local base image, not with `-P ubuntu-latest=-self-hosted`:
in act's host mode a Docker action gets host paths for GITHUB_OUTPUT that are not mounted into
its container, so no action can write outputs there (act 0.2.89).

These tests need root, podman, runc and debootstrap; scripts/test installs them. They fail, not
skip, when something is missing. Timings of each stage are printed (pytest -s or -rA shows them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.action_files import OUTPUTS
from tests.containers import (
    BUILD_TIMEOUT,
    OWNER,
    REPO,
    TIMINGS,
    act_binary,
    action_image,
    base_image,
    checkout,
    chown_tree,
    commit_all,
    container_name,
    copy_of_checkout,
    docker_api,
    podman,
    podman_env,
    read_outputs,
    report,
    run_args,
    run_container,
)

pytestmark = pytest.mark.container

# Every output of action.yml; `artifact_id` stays empty here (no results service in podman).
REQUIRED_OUTPUTS = [name for name in OUTPUTS if name != "artifact_id"]


def action_defaults() -> dict[str, str]:
    action = yaml.safe_load((REPO / "action.yml").read_text("utf-8"))
    return {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}


def wrong_owner(ws: Path) -> list[str]:
    return [
        f"{p.relative_to(ws)} (uid {p.lstat().st_uid})"
        for p in [ws, *ws.rglob("*")]
        if p.lstat().st_uid != OWNER
    ]


def test_image_builds_on_a_python3_at_usr_bin_base() -> None:
    image = action_image()
    inspect = podman("image", "inspect", "--format", "{{json .Config.Entrypoint}}", image)
    entrypoint = '["/usr/bin/tini","--","/opt/prompter/bin/prompter-action"]'
    assert inspect.stdout.strip() == entrypoint
    probe = podman(
        "run", "--rm", "--entrypoint", "/bin/sh", image, "-c",
        "/opt/prompter/bin/prompter --version && git --version && command -v python3 "
        "&& test -x /opt/prompter/bin/prompter-action && test -x /usr/bin/tini",
    )  # fmt: skip
    assert "git version" in probe.stdout, probe.stdout
    print(f"\ntimings: {TIMINGS}")


def test_runs_like_the_github_runner(tmp_path: Path) -> None:
    image = action_image()
    ws = checkout(tmp_path)
    home = tmp_path / "_github_home"
    files = tmp_path / "_runner_file_commands"
    temp = tmp_path / "_temp"
    for d in (home, files, temp):
        d.mkdir()
    (files / "set_output_x").touch()
    (files / "step_summary_x").touch()
    for d in (ws, home, files, temp):
        chown_tree(d, OWNER)

    inputs = action_defaults()
    inputs.update(workflow="examples/pipeline.toml", upload_artifact="false", github_token="")
    env = {f"INPUT_{name.upper()}": value for name, value in inputs.items()}
    env.update(
        HOME="/github/home",
        CI="true",
        GITHUB_ACTIONS="true",
        GITHUB_WORKSPACE="/github/workspace",
        GITHUB_OUTPUT="/github/file_commands/set_output_x",
        GITHUB_STEP_SUMMARY="/github/file_commands/step_summary_x",
        GITHUB_REPOSITORY="octo/demo",
        GITHUB_RUN_ID="1",
        GITHUB_JOB="action",
        GITHUB_ACTION="prompter",
        GITHUB_SERVER_URL="https://github.com",
        RUNNER_OS="Linux",
        RUNNER_TEMP="/github/runner_temp",
        DEMO_AGENT_THINK_S="0.2",
    )
    mounts = {
        ws: "/github/workspace",
        home: "/github/home",
        files: "/github/file_commands",
        temp: "/github/runner_temp",
    }
    proc = run_container(image, env, mounts)
    print(f"\ntimings: {TIMINGS}")
    assert proc.returncode == 0, report(proc)

    outputs = read_outputs(files / "set_output_x")
    missing = [name for name in REQUIRED_OUTPUTS if name not in outputs]
    assert not missing, f"outputs missing: {missing}; written: {outputs}"
    assert outputs["status"] == "passed", outputs
    assert (outputs["passed"], outputs["failed"], outputs["skipped"]) == ("4", "0", "0"), outputs
    for key in ("junit_path", "summary_path", "state_path"):
        # Paths in GITHUB_OUTPUT are not translated by the runner: workspace-relative.
        assert not Path(outputs[key]).is_absolute(), outputs
        assert (ws / outputs[key]).exists(), (key, outputs[key], sorted(os.listdir(ws)))
    junit = (ws / outputs["junit_path"]).read_text("utf-8")
    assert "<testsuite" in junit and 'tests="4"' in junit, junit[:2000]
    assert (files / "step_summary_x").stat().st_size > 0

    assert (ws / "examples/workspace/bundle.txt").read_text("utf-8") == "hello\ngoodbye\n"
    assert not wrong_owner(ws), f"not owned by uid {OWNER}: {wrong_owner(ws)}"


FAILING = """\
[settings]
agent = "command"
agent_command = ["python3", "-c", "print('agent did its best')"]

[[tasks]]
name = "broken"
prompt = "make it 42"
verify_command = "echo 'expected 42, got 41'; exit 1"
on_failure = "next"
depends_on = []

[[tasks]]
name = "after"
prompt = "use it"
verify_command = "true"
depends_on = ["broken"]
"""


def test_a_failing_task_fails_the_step_with_annotations_on_workspace_paths(
    tmp_path: Path,
) -> None:
    """Exit 1, outputs say why, and annotations name the workflow file as the runner sees it
    (workspace-relative: /github/workspace/... means nothing outside the container)."""
    image = action_image()
    ws = checkout(tmp_path)
    (ws / "flows").mkdir()
    (ws / "flows" / "fail.toml").write_text(FAILING, "utf-8")
    files = tmp_path / "_runner_file_commands"
    files.mkdir()
    (files / "set_output_x").touch()
    for d in (ws, files):
        chown_tree(d, OWNER)
    env = {
        "INPUT_WORKFLOW": "flows/fail.toml",
        "INPUT_UPLOAD_ARTIFACT": "false",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": "/github/workspace",
        "GITHUB_OUTPUT": "/github/file_commands/set_output_x",
    }
    mounts = {ws: "/github/workspace", files: "/github/file_commands"}
    proc = run_container(image, env, mounts)
    assert proc.returncode == 1, report(proc)
    outputs = read_outputs(files / "set_output_x")
    assert outputs["status"] == "failed", outputs
    assert (outputs["passed"], outputs["failed"], outputs["skipped"]) == ("0", "1", "1"), outputs
    log = proc.stdout + proc.stderr
    line = FAILING.splitlines().index("[[tasks]]") + 1
    errors = [x for x in log.splitlines() if x.startswith("::error ")]
    assert any(f"file=flows/fail.toml,line={line}" in x for x in errors), errors or log[-4000:]
    assert "/github/workspace" not in "\n".join(
        x for x in log.splitlines() if x.startswith(("::error", "::warning", "::notice"))
    )
    assert (ws / outputs["junit_path"]).is_file()


# Worktree isolation, the default for a workflow in a git repository: each check fails if it
# sees the other parallel task's file, which only separate worktrees guarantee.
WORKTREES = """\
[settings]
agent = "command"
agent_command = ["sh", "-c", "sleep 0.5; echo \\"$PROMPTER_TASK\\" > \\"$PROMPTER_TASK.txt\\""]
max_parallel_tasks = 2

[[tasks]]
name = "one"
prompt = "write one.txt"
verify_command = "test -f one.txt && test ! -e two.txt"
depends_on = []

[[tasks]]
name = "two"
prompt = "write two.txt"
verify_command = "test -f two.txt && test ! -e one.txt"
depends_on = []

[[tasks]]
name = "both"
prompt = "check"
verify_command = "test -f one.txt && test -f two.txt"
depends_on = ["one", "two"]
"""


def test_worktree_isolation_in_the_container_lands_for_the_runner_user(tmp_path: Path) -> None:
    """As root on a checkout owned by the runner user: worktrees work, both tasks' files land as
    uncommitted changes, and the runner user's next git step still works on the repository."""
    image = action_image()
    ws = checkout(tmp_path)
    (ws / "prompter.toml").write_text(WORKTREES, "utf-8")
    chown_tree(ws, OWNER)
    env = {"WORKFLOW": "prompter.toml", "UPLOAD_ARTIFACT": "false", "GITHUB_ACTIONS": "true"}
    proc = run_container(image, env, {ws: "/github/workspace"})
    assert proc.returncode == 0, report(proc)
    assert (ws / "one.txt").read_text() == "one\n" and (ws / "two.txt").read_text() == "two\n"
    assert not wrong_owner(ws), f"not owned by uid {OWNER}: {wrong_owner(ws)}"
    state = json.loads((ws / ".prompter" / "state.json").read_text("utf-8"))
    changed = state["tasks"]["one"]["attempts"][-1].get("changed_files")
    assert changed == ["one.txt +1 -0"], changed  # recorded by worktree isolation only

    def git_as_owner(*args: str) -> subprocess.CompletedProcess[str]:
        """A later step of the job: git as the runner user, not root."""
        env = {"HOME": str(ws), "PATH": "/usr/bin:/bin"}
        cmd = ["git", "-C", str(ws), "-c", "user.name=ci", "-c", "user.email=ci@e.com", *args]
        return subprocess.run(
            cmd, check=False, capture_output=True, text=True, user=OWNER, group=OWNER, env=env
        )

    # pytest's temporary folders are root's alone: let the runner user pass through to `ws`.
    for folder in [*reversed(ws.parents[: len(ws.parents) - 2])]:
        folder.chmod(folder.stat().st_mode | 0o001)
    status = git_as_owner("status", "--porcelain")
    assert status.returncode == 0, status.stderr
    assert {"?? one.txt", "?? two.txt"} <= set(status.stdout.splitlines()), status.stdout
    commit = git_as_owner("add", "-A")
    assert commit.returncode == 0, commit.stderr
    commit = git_as_owner("commit", "-qm", "the agents' work")
    assert commit.returncode == 0, commit.stderr
    worktrees = git_as_owner("worktree", "list")
    assert len(worktrees.stdout.splitlines()) == 1, worktrees.stdout  # the checkout alone


def test_plain_docker_run_reproduces_a_ci_run(tmp_path: Path) -> None:
    """`docker run -v "$PWD:/github/workspace" -w /github/workspace -e WORKFLOW=…`, no runner."""
    image = action_image()
    ws = checkout(tmp_path)
    chown_tree(ws, OWNER)
    env = {"WORKFLOW": "examples/pipeline.toml", "UPLOAD_ARTIFACT": "false"}
    env["DEMO_AGENT_THINK_S"] = "0.2"
    proc = run_container(image, env, {ws: "/github/workspace"})
    assert proc.returncode == 0, report(proc)
    assert (ws / ".prompter" / "pipeline" / "junit.xml").is_file(), sorted(os.listdir(ws))
    assert (ws / "examples/workspace/bundle.txt").read_text("utf-8") == "hello\ngoodbye\n"


# An agent that leaves a background process behind: prompter kills what is left of its process
# group when it exits, and the orphan, whose parent is gone, becomes a child of the container's
# PID 1. The check fails while any zombie is left unreaped.
ORPHANS = """\
[settings]
agent = "command"
agent_command = ["sh", "-c", "sleep 60 & sleep 60 & exit 0"]
isolation = "shared"

[[tasks]]
name = "leaves_orphans"
prompt = "go"
verify_command = "true"
depends_on = []

[[tasks]]
name = "no_zombies"
prompt = "check"
verify_command = "sleep 1; ! grep -l '^State:[[:space:]]*Z' /proc/[0-9]*/status"
depends_on = ["leaves_orphans"]
"""


def test_orphans_of_the_agents_are_reaped_in_the_container(tmp_path: Path) -> None:
    """Docker runs the entrypoint as PID 1, which inherits every orphan; a PID 1 that never
    reaps them fills the process table with zombies over a long run."""
    image = action_image()
    ws = checkout(tmp_path)
    (ws / "prompter.toml").write_text(ORPHANS, "utf-8")
    chown_tree(ws, OWNER)
    env = {"WORKFLOW": "prompter.toml", "UPLOAD_ARTIFACT": "false"}
    proc = run_container(image, env, {ws: "/github/workspace"})
    assert proc.returncode == 0, report(proc)


def test_cancelling_the_job_interrupts_the_run_in_the_runners_window(tmp_path: Path) -> None:
    """On cancel the runner signals its `docker run` (SIGINT, 7.5 s later SIGTERM, 2.5 s later
    SIGKILL); the CLI proxies the signal to the container's PID 1, tini, which passes it on to
    the entrypoint; prompter must stop, keep state and exit 130 in time."""
    image = action_image()
    ws = checkout(tmp_path)
    chown_tree(ws, OWNER)
    env = {
        "INPUT_WORKFLOW": "examples/pipeline.toml",
        "INPUT_UPLOAD_ARTIFACT": "false",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": "/github/workspace",
        "DEMO_AGENT_THINK_S": "120",  # agents still thinking when the job is cancelled
    }
    name = container_name()
    args = run_args(env, {ws: "/github/workspace"}, "/github/workspace", name)
    proc = subprocess.Popen(
        ["podman", *args, image],
        env=podman_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        started = ws / ".prompter" / "pipeline" / "logs" / "add_greeting.log"
        deadline = time.monotonic() + 60
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert started.exists(), f"the run did not start: exit {proc.poll()}"
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, _ = proc.communicate(timeout=30)
        elapsed = time.monotonic() - sent
        TIMINGS["SIGINT to exit"] = round(elapsed, 1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
            podman("rm", "--force", name, check=False)
    assert proc.returncode == 130, f"exit {proc.returncode}\n{out[-6000:]}"
    assert elapsed < 7.5, f"took {elapsed:.1f} s after SIGINT (the runner escalates at 7.5 s)"
    state = (ws / ".prompter" / "pipeline" / "state.json").read_text("utf-8")
    assert "interrupted" in state, state[:3000]
    assert not (ws / "examples/workspace/bundle.txt").exists()
    assert not wrong_owner(ws), f"not owned by uid {OWNER} after SIGINT: {wrong_owner(ws)}"


def test_act_runs_the_ci_action_job(tmp_path: Path) -> None:
    """nektos/act runs ci.yml's `action` job: `uses: ./`, then a step reading its outputs.

    No --artifact-server-path: act 0.2.89's v4 artifact server rejects CreateArtifact requests
    that carry `mimeType` (as today's clients, ours included, send), so the job's artifact check
    is skipped under act (`$ACT`)."""
    act = act_binary()
    # act builds the Dockerfile with its default FROM; no registry is reachable, so the local
    # base image stands in for python:3.12-slim (the Dockerfile works on either).
    job_image = base_image()
    podman("tag", job_image, "docker.io/library/python:3.12-slim")
    repo = tmp_path / "repo"
    copy_of_checkout(repo)
    commit_all(repo)

    home = tmp_path / "home"
    (home / ".config" / "act").mkdir(parents=True)
    (home / ".config" / "act" / "actrc").write_text(f"-P ubuntu-latest={job_image}\n", "utf-8")
    start = time.monotonic()
    with docker_api(tmp_path / "podman.sock") as api:
        env = dict(api, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
        proc = subprocess.run(
            [act, "push", "-W", ".github/workflows/ci.yml", "-j", "action",
             "-P", f"ubuntu-latest={job_image}", "--pull=false",
             "--container-daemon-socket", "-", "--env", "DEMO_AGENT_THINK_S=0.2"],
            cwd=repo, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
        )  # fmt: skip
    TIMINGS["act run"] = round(time.monotonic() - start, 1)
    print(f"\ntimings: {TIMINGS}")
    assert proc.returncode == 0, report(proc)
    log = proc.stdout + proc.stderr
    assert "Success - Main Check the action's outputs and files" in log, report(proc)
    assert "Job succeeded" in log, report(proc)
