"""A fan-out for real: `prompter ci generate` writes the CI workflow, nektos/act (0.2.89, on
podman's Docker API, as test_container.py's act test) runs every job of it with the container
action (`uses: ./`), and the jobs carry their changes and states through act's own artifact
server (v4, `--artifact-server-path`): the action's artifact client (src/prompter/github/
artifact.py) against a server that is not ours.

The workflow: a diamond A -> B, A -> C, B + C -> D, and E on its own; the command agent writes
`<task>.txt`, and each task's check wants its own file and its dependencies' (B and C A's, D B's
and C's), so a task passes only in a job that got its dependencies' changes. With one task at
a time per machine (max_parallel_tasks = 1) and --max-jobs 5 the grouping gives each task a job:
A and E first, B and C on A, D on B and C, then `prompter-merge`.

act runs a workflow with `needs` as serial stages (jobs of one stage in parallel) and evaluates
`if: ${{ !cancelled() }}` as GitHub does, so a failed job does not stop the later ones; the
generated workflow runs unchanged, triggered as `workflow_dispatch` (its `workflow_call`
trigger is not exercised here; `secrets.ANTHROPIC_API_KEY` is empty, which the command agent
does not need). One act invocation per variant; the final job's `prompter-report` is read from
the artifact server's folder. Each action step builds the Dockerfile again (`uses: ./`), from
podman's layer cache after the first.

These tests need root, podman, runc and debootstrap (scripts/test installs them); they fail, not
skip, when something is missing.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.containers import (
    BUILD_TIMEOUT,
    REPO,
    TIMINGS,
    act_binary,
    base_image,
    commit_all,
    copy_of_checkout,
    docker_api,
    podman,
    report,
)
from tests.junit_read import junit_cases

pytestmark = pytest.mark.container

DEPS = {"A": [], "B": ["A"], "C": ["A"], "D": ["B", "C"], "E": []}
JOBS = ["p-a", "p-e", "p-b", "p-c", "p-d"]  # as the grouping orders them
FLOW = "flows/diamond.toml"
GENERATED = ".github/workflows/fanout.yml"
RUN_ID = "1"  # act's run id unless GITHUB_RUN_ID is given: the artifact server's folder


def flow(failing: str = "") -> str:
    lines = [
        "[settings]",
        'agent = "command"',
        "agent_command = "
        + json.dumps(["sh", "-c", 'echo "$PROMPTER_TASK" > "$PROMPTER_TASK.txt"']),
        "retry_delay = 0",
        "max_parallel_tasks = 1",
    ]
    for name, deps in DEPS.items():
        check = " && ".join(f"test -f {n}.txt" for n in [*deps, name])
        lines += [
            "\n[[tasks]]",
            f'name = "{name}"',
            f'prompt = "write {name}.txt"',
            f"verify_command = {json.dumps('false' if name == failing else check)}",
            "max_attempts = 1",
            f"depends_on = {json.dumps(deps)}",
        ]
    return "\n".join(lines) + "\n"


def make_repo(root: Path, failing: str) -> Path:
    """This checkout (the action `uses: ./` builds) plus the diamond and the workflow that
    `prompter ci generate` writes for it, committed."""
    repo = root / "repo"
    copy_of_checkout(repo)
    (repo / FLOW).parent.mkdir(parents=True, exist_ok=True)
    (repo / FLOW).write_text(flow(failing), "utf-8")
    commit_all(repo)  # a repository first: the generator names the TOML from its root
    generate = [sys.executable, "-m", "prompter", "ci", "generate", FLOW, "-o", GENERATED,
                "--uses", "./", "--max-jobs", "5"]  # fmt: skip
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(generate, cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    commit_all(repo)
    return repo


def free_port() -> int:
    # Not act's default port: other act runs on this machine may hold it.
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def run_act(repo: Path, store: Path) -> subprocess.CompletedProcess[str]:
    act = act_binary()
    job_image = base_image()
    # act builds `uses: ./` from the Dockerfile's default FROM: the local base image stands in.
    podman("tag", job_image, "docker.io/library/python:3.12-slim")
    home = repo.parent / "home"
    (home / ".config" / "act").mkdir(parents=True, exist_ok=True)
    (home / ".config" / "act" / "actrc").write_text(f"-P ubuntu-latest={job_image}\n", "utf-8")
    start = time.monotonic()
    with docker_api(repo.parent / "podman.sock") as api:
        env = dict(api, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
        proc = subprocess.run(
            [act, "workflow_dispatch", "-W", GENERATED,
             "-P", f"ubuntu-latest={job_image}", "--pull=false",
             "--container-daemon-socket", "-",
             "--rm",  # act keeps a failed job's container running, for debugging, without it
             "--artifact-server-path", str(store), "--artifact-server-port", str(free_port())],
            cwd=repo, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
        )  # fmt: skip
    TIMINGS["act fan-out"] = round(time.monotonic() - start, 1)
    print(f"\ntimings: {TIMINGS}")
    (repo.parent / "act.log").write_text(proc.stdout + proc.stderr, "utf-8")  # the whole log
    return proc


def artifact(store: Path, name: str) -> dict[str, bytes]:
    """The files of artifact `name` as act's server keeps it: `<run>/<name>/<name>.zip`."""
    data = (store / RUN_ID / name / f"{name}.zip").read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def job_ended(proc: subprocess.CompletedProcess[str], job: str, how: str) -> bool:
    """act's last word on `job`: `how` is "succeeded" or "failed"."""
    return any(
        line.startswith(f"[prompter/{job}]") and f"Job {how}" in line
        for line in (proc.stdout + proc.stderr).splitlines()
    )


def job_of_each_task(state: dict[str, Any]) -> dict[str, str | None]:
    """The fan-out job whose run recorded each task (RunRecord.job of the task's run)."""
    jobs = {run["run_id"]: run.get("job") for run in state["runs"]}
    return {name: jobs.get(task["run_id"]) for name, task in state["tasks"].items()}


def test_act_runs_the_generated_fanout(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, failing="")
    generated = (repo / GENERATED).read_text("utf-8")
    for job in JOBS:
        assert f"  {job}:\n" in generated, generated
    assert "needs: [p-b, p-c]" in generated, generated  # D's job waits on two jobs
    store = tmp_path / "artifacts"
    proc = run_act(repo, store)
    assert proc.returncode == 0, report(proc)
    for job in [*JOBS, "prompter-merge"]:
        assert job_ended(proc, job, "succeeded"), (job, report(proc))
    # Each group job exported only its own change (the imported ones are not in its patch).
    for job in JOBS:
        task = job[2:].upper()
        files = artifact(store, f"prompter-fanout-{job}")
        assert sorted(files) == ["changes.patch", "state.json"], job
        patch = files["changes.patch"].decode()
        assert [t for t in DEPS if f"b/{t}.txt" in patch] == [task], (job, patch)
    final = artifact(store, "prompter-report")
    cases = junit_cases(final["junit.xml"])
    assert {name: outcome for name, (outcome, _) in cases.items()} == dict.fromkeys(
        "ABCDE", "passed"
    ), cases
    patch = final["changes.patch"].decode()
    assert all(f"b/{t}.txt" in patch for t in "ABCDE"), patch
    # Each task ran in its own job: the merged state names the job of every task's run.
    state = json.loads(final["state.json"])
    assert job_of_each_task(state) == {t: f"p-{t.lower()}" for t in "ABCDE"}, state["runs"]
    # The final patch applies to the commit every job started from.
    clean = tmp_path / "clean"
    subprocess.run(["git", "clone", "-q", str(repo), str(clean)], check=True)
    (tmp_path / "all.patch").write_bytes(final["changes.patch"])
    subprocess.run(["git", "-C", str(clean), "apply", str(tmp_path / "all.patch")], check=True)
    assert (clean / "D.txt").read_text("utf-8") == "D\n"


def test_act_fanout_with_a_failed_task_skips_its_dependents_in_later_jobs(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, failing="B")
    store = tmp_path / "artifacts"
    proc = run_act(repo, store)
    assert proc.returncode != 0, report(proc)  # act fails the run: jobs failed
    for job in ("p-a", "p-e", "p-c"):
        assert job_ended(proc, job, "succeeded"), (job, report(proc))
    for job in ("p-b", "p-d", "prompter-merge"):  # exit 1: a task failed or was skipped
        assert job_ended(proc, job, "failed"), (job, report(proc))
    # D's job and the merge ran though jobs they need failed (`if: ${{ !cancelled() }}`).
    state = json.loads(artifact(store, "prompter-fanout-p-d")["state.json"])
    assert state["tasks"]["D"]["status"] == "skipped", state["tasks"]
    final = artifact(store, "prompter-report")
    cases = junit_cases(final["junit.xml"])
    assert cases["D"] == ("skipped", "dependency `B` failed"), cases
    assert cases["B"][0] == "failure", cases
    assert {k: v[0] for k, v in cases.items() if k not in {"B", "D"}} == dict.fromkeys(
        "ACE", "passed"
    ), cases
    state = json.loads(final["state.json"])
    assert job_of_each_task(state) == {t: f"p-{t.lower()}" for t in "ABCDE"}, state["runs"]
    merged = state["tasks"]
    assert {t: merged[t]["status"] for t in "ABCDE"} == {
        "A": "passed",
        "B": "failed",
        "C": "passed",
        "D": "skipped",
        "E": "passed",
    }
