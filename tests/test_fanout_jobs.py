"""A fan-out across jobs, job by job: each job a fresh clone of one commit and a step of the
action (`prompter-action`, INPUT_* as the runner passes them), all talking to one stand-in of
the artifact service (tests/artifact_service.py) as the jobs of one workflow run do.

The workflow: a diamond A -> B, A -> C, B + C -> D, and E on its own, one job per task as
`prompter ci generate` would write them (`needs` and `fanout_imports` transitively).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import zipfile
from collections.abc import Collection
from pathlib import Path

import pytest

from prompter.github.inputs import InputError, Inputs

from .action_step import Step, run_step
from .artifact_service import Service, artifact_service
from .junit_read import junit_cases

JOBS = {  # job id: (its tasks, the jobs it imports, transitively, in order)
    "p-a": ("A", ()),
    "p-b": ("B", ("p-a",)),
    "p-c": ("C", ("p-a",)),
    "p-d": ("D", ("p-a", "p-b", "p-c")),
    "p-e": ("E", ()),
}
DEPS = {"A": [], "B": ["A"], "C": ["A"], "D": ["B", "C"], "E": []}
NEEDS = {  # what each task's check wants to find: its own file and every ancestor's
    "A": ["A"],
    "B": ["A", "B"],
    "C": ["A", "C"],
    "D": ["A", "B", "C", "D"],
    "E": ["E"],
}


def origin(tmp_path: Path, agent: str, failing: str = "", until: Path | None = None) -> Path:
    """The repository every job checks out: the workflow, committed. The `failing` task's
    check fails, or with `until` fails until that file (outside the repository) exists."""
    repo = tmp_path / "origin"
    repo.mkdir()
    lines = [
        "[settings]",
        'agent = "command"',
        f"agent_command = {json.dumps(['sh', '-c', agent])}",
        "retry_delay = 0",
    ]
    for name, deps in DEPS.items():
        check = " && ".join(f"test -f {n}.txt" for n in NEEDS[name])
        if name == failing:
            check = "false" if until is None else f"test -f {until} && {check}"
        lines += [
            "\n[[tasks]]",
            f'name = "{name}"',
            f'prompt = "write {name}.txt"',
            f"verify_command = {json.dumps(check)}",
            "max_attempts = 1",
            f"depends_on = {json.dumps(deps)}",
        ]
    (repo / "prompter.toml").write_text("\n".join(lines) + "\n")
    (repo / "README").write_text("base\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    return repo


def job_step(
    tmp_path: Path,
    repo: Path,
    service: Service,
    job: str,
    inputs: dict[str, str],
    attempt: int = 1,
) -> Step:
    """One job: a fresh clone, then the action's step with this job's runtime token (a re-run
    is a new job run: another runner, another backend id, GITHUB_RUN_ATTEMPT counted up)."""
    key = job if attempt == 1 else f"{job}-{attempt}"
    root = tmp_path / "jobs" / key
    root.mkdir(parents=True)
    ws = root / "workspace"
    subprocess.run(["git", "clone", "-q", str(repo), str(ws)], check=True)
    (root / "runner_temp").mkdir()
    env = {**service.env(f"backend-{key}"), "GITHUB_RUN_ATTEMPT": str(attempt)}
    return run_step(root, ws, inputs, **env)


Jobs = dict[str, tuple[str, tuple[str, ...]]]


def run_fanout(
    tmp_path: Path,
    repo: Path,
    service: Service,
    jobs: Jobs = JOBS,
    attempt: int = 1,
    only: Collection[str] | None = None,
) -> dict[str, Step]:
    """The jobs in order, then the final job; `only`: just those (a re-run of failed jobs)."""
    steps = {}
    for job, (tasks, imports) in jobs.items():
        if only is None or job in only:
            inputs = {"tasks": tasks, "fanout_job": job, "fanout_imports": " ".join(imports)}
            steps[job] = job_step(tmp_path, repo, service, job, inputs, attempt)
    merge = {"fanout_merge": " ".join(jobs)}
    steps["prompter-merge"] = job_step(tmp_path, repo, service, "prompter-merge", merge, attempt)
    return steps


def artifact_files(service: Service, name: str) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(service.artifacts[name].data)) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


WRITE = "echo {task} > {task}.txt"


def test_each_job_sees_its_dependencies_and_the_final_job_has_everything(
    tmp_path: Path,
) -> None:
    repo = origin(tmp_path, WRITE)
    with artifact_service() as service:
        steps = run_fanout(tmp_path, repo, service)
    assert service.problems == []
    for job, step in steps.items():
        assert step.code == 0, (job, step.stdout[-3000:], step.stderr[-3000:])
    # Each group job's export holds its state and only its own change.
    for job, (task, _) in JOBS.items():
        files = artifact_files(service, f"prompter-fanout-{job}")
        assert sorted(files) == ["changes.patch", "state.json"], job
        patch = files["changes.patch"].decode()
        assert f"b/{task}.txt" in patch, (job, patch)
        others = [t for t in DEPS if t != task and f"b/{t}.txt" in patch]
        assert others == [], (job, patch)
        # Its report folder went up under its own name.
        assert f"prompter-report-{job}" in service.artifacts
    final = steps["prompter-merge"]
    o = final.outputs
    assert (o["status"], o["passed"], o["failed"], o["skipped"]) == ("passed", "5", "0", "0")
    assert sorted(o["changed_files"].splitlines()) == [f"{t}.txt" for t in "ABCDE"]
    report = artifact_files(service, "prompter-report")
    assert {k: v[0] for k, v in junit_cases(report["junit.xml"]).items()} == dict.fromkeys(
        "ABCDE", "passed"
    )
    patch = report["changes.patch"].decode()
    assert all(f"b/{t}.txt" in patch for t in "ABCDE"), patch
    # The final job's patch applies to the commit every job started from.
    check = tmp_path / "check"
    subprocess.run(["git", "clone", "-q", str(repo), str(check)], check=True)
    (tmp_path / "all.patch").write_bytes(report["changes.patch"])
    subprocess.run(["git", "-C", str(check), "apply", str(tmp_path / "all.patch")], check=True)
    assert (check / "D.txt").read_text() == "D\n"


def test_a_failure_upstream_skips_its_dependents_in_later_jobs(tmp_path: Path) -> None:
    repo = origin(tmp_path, WRITE, failing="B")
    with artifact_service() as service:
        steps = run_fanout(tmp_path, repo, service)
    assert service.problems == []
    assert steps["p-b"].code == 1
    assert steps["p-d"].code == 1  # it ran, recorded D skipped, and says so
    assert steps["p-d"].outputs["skipped"] == "1"
    assert "dependency `B` failed" in steps["p-d"].stdout + steps["p-d"].summary
    # D's job still left its export: the final job has every task.
    assert "prompter-fanout-p-d" in service.artifacts
    final = steps["prompter-merge"]
    assert final.code == 1
    o = final.outputs
    assert (o["status"], o["passed"], o["failed"], o["skipped"]) == ("failed", "3", "1", "1")
    report = artifact_files(service, "prompter-report")
    cases = junit_cases(report["junit.xml"])
    assert cases["D"] == ("skipped", "dependency `B` failed"), cases
    assert cases["E"] == ("passed", "")
    assert cases["B"][0] == "failure", cases  # each job's run counts: B's own, not "earlier"
    assert {k: v[0] for k, v in cases.items() if k not in {"B", "D"}} == dict.fromkeys(
        "ACE", "passed"
    )
    merged = json.loads(report["state.json"])["tasks"]
    assert {t: merged[t]["status"] for t in "ABCDE"} == {
        "A": "passed",
        "B": "failed",
        "C": "passed",
        "D": "skipped",
        "E": "passed",
    }


def test_changes_that_do_not_apply_fail_the_importing_job_naming_file_and_job(
    tmp_path: Path,
) -> None:
    # B and C both create shared.txt: D's job applies B's, then C's does not apply.
    agent = WRITE + "; case {task} in B|C) echo {task} > shared.txt;; esac"
    repo = origin(tmp_path, agent)
    with artifact_service() as service:
        steps = run_fanout(tmp_path, repo, service)
    assert service.problems == []
    for job in ("p-a", "p-b", "p-c", "p-e"):
        assert steps[job].code == 0, (job, steps[job].stdout[-3000:])
    d = steps["p-d"]
    assert d.code == 1
    reason = "changes of job `p-c` do not apply: shared.txt"
    assert reason in d.stdout, d.stdout[-3000:]
    assert d.outputs["failed"] == "1"
    # No task ran, and the export still went up, with D failed in its state.
    state = json.loads(artifact_files(service, "prompter-fanout-p-d")["state.json"])
    assert state["tasks"]["D"]["status"] == "failed"
    assert state["tasks"]["D"]["reason"] == reason
    assert not (tmp_path / "jobs" / "p-d" / "workspace" / "D.txt").exists()
    report = artifact_files(service, "prompter-report")
    assert reason in junit_cases(report["junit.xml"])["D"][1]
    assert json.loads(report["state.json"])["tasks"]["D"]["status"] == "failed"
    # The final job meets the same conflict and says so.
    assert steps["prompter-merge"].code == 1
    assert reason in steps["prompter-merge"].stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"INPUT_FANOUT_JOB": "a b"}, "is one job id, not 2"),
        ({"INPUT_FANOUT_JOB": "p/a"}, "is not a job id"),
        ({"INPUT_FANOUT_JOB": "x" * 101}, "is not a job id"),
        ({"INPUT_FANOUT_IMPORTS": "p-a"}, "needs `fanout_job`"),
        ({"INPUT_FANOUT_JOB": "p-a", "INPUT_FANOUT_IMPORTS": "p-a"}, "this job itself"),
        ({"INPUT_FANOUT_JOB": "p-b", "INPUT_FANOUT_IMPORTS": "p-a p-a"}, "twice"),
        ({"INPUT_FANOUT_JOB": "p-a", "INPUT_FANOUT_MERGE": "p-a"}, "excludes `fanout_job`"),
        ({"INPUT_FANOUT_MERGE": "p-a", "INPUT_TASKS": "A"}, "leave `tasks` empty"),
    ],
)
def test_fanout_inputs_are_checked(env: dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Inputs.from_env(env)


def test_fanout_inputs_are_read() -> None:
    inputs = Inputs.from_env(
        {"INPUT_FANOUT_JOB": " p-d ", "INPUT_FANOUT_IMPORTS": "p-a\np-b\np-c\n", "INPUT_TASKS": "D"}
    )
    assert (inputs.fanout.job, inputs.fanout.imports) == ("p-d", ("p-a", "p-b", "p-c"))
    merge = Inputs.from_env({"INPUT_FANOUT_MERGE": "p-a, p-b"}).fanout
    assert (merge.job, merge.merge) == (None, ("p-a", "p-b"))
    assert Inputs.from_env({}).fanout.job is None


def noted(tmp_path: Path) -> str:
    """WRITE, and a note of each task the agent works on, outside the repository."""
    return WRITE + f"; echo {{task}} >> {tmp_path / 'ran.log'}"


def rerun_failed_jobs(
    tmp_path: Path, jobs: Jobs, failed: tuple[str, ...]
) -> tuple[Service, dict[str, Step], dict[str, Step]]:
    """Run the fan-out with B failing, then "Re-run failed jobs" once B's check would pass:
    the failed jobs (and the final one) again, attempt 2, against the same artifacts."""
    fixed = tmp_path / "fixed"
    repo = origin(tmp_path, noted(tmp_path), failing="B", until=fixed)
    with artifact_service() as service:
        first = run_fanout(tmp_path, repo, service, jobs)
        assert [j for j, step in first.items() if step.code != 0] == [*failed, "prompter-merge"]
        fixed.write_text("")
        again = run_fanout(tmp_path, repo, service, jobs, attempt=2, only=failed)
    assert service.problems == []
    return service, first, again


def test_rerun_failed_jobs_resumes_and_replaces_the_artifacts(tmp_path: Path) -> None:
    service, first, again = rerun_failed_jobs(tmp_path, JOBS, ("p-b", "p-d"))
    ran = (tmp_path / "ran.log").read_text().split()
    assert sorted(ran) == sorted("ABCE" + "BD"), ran  # 1st: A B(failed) C E; 2nd: B, D
    for job, step in again.items():
        assert step.code == 0, (job, step.stdout[-3000:], step.stderr[-3000:])
    o = again["prompter-merge"].outputs
    assert (o["status"], o["passed"], o["failed"], o["skipped"]) == ("passed", "5", "0", "0")
    report = artifact_files(service, "prompter-report")
    assert {k: v[0] for k, v in junit_cases(report["junit.xml"]).items()} == dict.fromkeys(
        "ABCDE", "passed"
    )
    assert all(f"b/{t}.txt" in report["changes.patch"].decode() for t in "ABCDE")
    # A, C and E keep the records of the first attempt: not re-run, no new attempt.
    before = json.loads(
        first["prompter-merge"].workspace.joinpath(".prompter/state.json").read_text()
    )
    after = json.loads(report["state.json"])
    for task in "ACE":
        assert after["tasks"][task] == before["tasks"][task], task
    assert after["tasks"]["B"]["run_id"] != before["tasks"]["B"]["run_id"]
    # The re-run's uploads took the earlier attempt's names: deleted first, then uploaded.
    replaced = sorted(a.name for a in service.deleted)
    assert replaced == sorted(
        [
            "prompter-fanout-p-b",
            "prompter-fanout-p-d",
            "prompter-report-p-b",
            "prompter-report-p-d",
            "prompter-report",
        ]
    )
    deletes = [body for method, body in service.calls if method == "DeleteArtifact"]
    assert {d["workflowJobRunBackendId"] for d in deletes} == {
        "backend-p-b",
        "backend-p-d",
        "backend-prompter-merge",
    }  # the ids of the job that uploaded it, as the toolkit sends them
    assert "imported job `p-b`'s earlier state" in again["p-b"].stdout


def test_a_rerun_keeps_the_changes_of_its_tasks_that_passed(tmp_path: Path) -> None:
    # B and C in one job: B fails, C passes; the re-run reuses C and its C.txt still travels.
    jobs: Jobs = {
        "p-a": ("A", ()),
        "p-b": ("B C", ("p-a",)),
        "p-d": ("D", ("p-a", "p-b")),
        "p-e": ("E", ()),
    }
    service, _, again = rerun_failed_jobs(tmp_path, jobs, ("p-b", "p-d"))
    ran = (tmp_path / "ran.log").read_text().split()
    assert sorted(ran) == sorted("ABCE" + "BD"), again["p-b"].stdout  # C is not run again
    for job, step in again.items():
        assert step.code == 0, (job, step.stdout[-3000:], step.stderr[-3000:])
    assert "C passed" in again["p-b"].stdout
    patch = artifact_files(service, "prompter-fanout-p-b")["changes.patch"].decode()
    assert "b/B.txt" in patch and "b/C.txt" in patch, patch
    assert "b/A.txt" not in patch, patch
    report = artifact_files(service, "prompter-report")
    assert {k: v[0] for k, v in junit_cases(report["junit.xml"]).items()} == dict.fromkeys(
        "ABCDE", "passed"
    )
    assert all(f"b/{t}.txt" in report["changes.patch"].decode() for t in "ABCDE")


def test_delete_artifact_and_a_taken_name(tmp_path: Path) -> None:
    from prompter.github.artifact import (
        ArtifactError,
        ArtifactMissing,
        delete_artifact,
        replace_earlier,
        upload_folder,
    )

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "x.txt").write_text("x")
    with artifact_service() as service:
        first = service.env("backend-one")
        upload_folder(folder, "thing", first)
        with pytest.raises(ArtifactError, match="CreateArtifact answered HTTP 409"):
            upload_folder(folder, "thing", first)
        # A first attempt replaces nothing; a re-run (another job run) does.
        later = service.env("backend-two")
        assert replace_earlier("thing", later) is None
        assert replace_earlier("thing", {**later, "GITHUB_RUN_ATTEMPT": "2"}) == "4242"
        assert replace_earlier("thing", {**later, "GITHUB_RUN_ATTEMPT": "2"}) is None
        uploaded = upload_folder(folder, "thing", later)
        assert uploaded.artifact_id != "4242"
        assert delete_artifact("thing", first) == uploaded.artifact_id
        with pytest.raises(ArtifactMissing):
            delete_artifact("thing", first)
    assert service.problems == []


def host_job_step(
    tmp_path: Path,
    repo: Path,
    store: dict[str, Path],
    job: str,
    inputs: dict[str, str],
    attempt: int = 1,
) -> Step:
    """One job as the host action (host/action.yml) runs it: actions/download-artifact puts
    every `prompter-fanout-*` of the run in a folder named after it, the step reads them from
    there (no runtime token), and actions/upload-artifact (`overwrite`) takes the folders the
    outputs `export_dir` and `upload_dir` name. `store`: the run's artifacts, by name."""
    key = job if attempt == 1 else f"{job}-{attempt}"
    root = tmp_path / "jobs" / key
    root.mkdir(parents=True)
    ws = root / "workspace"
    subprocess.run(["git", "clone", "-q", str(repo), str(ws)], check=True)
    imports = root / "runner_temp" / "prompter-fanout-imports"
    imports.mkdir(parents=True)
    for name, folder in store.items():
        if name.startswith("prompter-fanout-"):
            shutil.copytree(folder, imports / name)
    env = {
        "PROMPTER_DEFER_UPLOAD": "true",
        "PROMPTER_FANOUT_IMPORTS_DIR": str(imports),
        "GITHUB_RUN_ATTEMPT": str(attempt),
    }
    step = run_step(root, ws, inputs, **env)
    uploads = tmp_path / "uploads" / key
    for name, output in (
        (f"prompter-fanout-{job}", "export_dir"),
        (step.outputs.get("upload_name", ""), "upload_dir"),
    ):
        if step.outputs.get(output):
            shutil.copytree(ws / step.outputs[output], uploads / name)
            store[name] = uploads / name
    return step


def test_the_host_action_fans_out_through_folders_and_resumes(tmp_path: Path) -> None:
    fixed = tmp_path / "fixed"
    repo = origin(tmp_path, noted(tmp_path), failing="B", until=fixed)
    store: dict[str, Path] = {}

    def attempt(number: int, only: Collection[str]) -> dict[str, Step]:
        steps = {}
        for job, (tasks, imports) in JOBS.items():
            if job in only:
                inputs = {"tasks": tasks, "fanout_job": job, "fanout_imports": " ".join(imports)}
                steps[job] = host_job_step(tmp_path, repo, store, job, inputs, number)
        merge = {"fanout_merge": " ".join(JOBS)}
        steps["prompter-merge"] = host_job_step(
            tmp_path, repo, store, "prompter-merge", merge, number
        )
        return steps

    first = attempt(1, JOBS)
    assert [j for j, s in first.items() if s.code != 0] == ["p-b", "p-d", "prompter-merge"]
    said = "".join(s.stdout + s.stderr for s in first.values())
    assert "ACTIONS_RUNTIME_TOKEN" not in said and "not uploaded" not in said, said[-3000:]
    assert first["p-d"].outputs["skipped"] == "1"
    assert first["p-b"].outputs["upload_name"] == "prompter-report-p-b"
    assert first["prompter-merge"].outputs["upload_name"] == "prompter-report"
    cases = junit_cases((store["prompter-report"] / "junit.xml").read_bytes())
    assert cases["D"] == ("skipped", "dependency `B` failed"), cases
    fixed.write_text("")
    again = attempt(2, ("p-b", "p-d"))
    for job, step in again.items():
        assert step.code == 0, (job, step.stdout[-3000:], step.stderr[-3000:])
    assert sorted((tmp_path / "ran.log").read_text().split()) == sorted("ABCE" + "BD")
    o = again["prompter-merge"].outputs
    assert (o["status"], o["passed"], o["failed"], o["skipped"]) == ("passed", "5", "0", "0")
    patch = (store["prompter-report"] / "changes.patch").read_text()
    assert all(f"b/{t}.txt" in patch for t in "ABCDE"), patch
