"""Where a workflow's tasks run by default, and where its state, logs and reports go: real git
repositories, real runs of the CLI (see `prompter.places`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from prompter.config import load_workflow, with_settings
from prompter.fingerprints import fingerprints
from prompter.places import default_report_dir, repository_root, workflow_identity

from .harness import prompter_cli
from .init_session import VALID, answer, init

COMPAT = Path(__file__).parent / "compat" / "prompter-0.10"
COMPAT_FILES = sorted([COMPAT / "example.toml", *(COMPAT / "examples").glob("*.toml")])


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "README").write_text("the top of the repository\n")
    return path


def no_git_above(path: Path) -> Path:
    """A folder outside any git repository (the test would prove nothing inside one)."""
    path.mkdir(parents=True, exist_ok=True)
    assert repository_root(path.resolve()) is None, f"{path} is inside a git repository"
    return path


def workflow(path: Path, tasks: list[str], calls: Path, settings: str = "", **verify: str) -> Path:
    """A graph-mode workflow of `command` agents that note each call in `calls`; each task's
    check is `true` unless `verify` gives one."""
    lines = [
        "[settings]",
        'agent = "command"',
        f'agent_command = ["sh", "-c", "echo {{task}} >> {calls}"]',
        'isolation = "shared"',
        "retry_delay = 0",
        settings,
    ]
    for name in tasks:
        lines += [
            "\n[[tasks]]",
            f'name = "{name}"',
            f'prompt = "do {name}"',
            f"verify_command = {json.dumps(verify.get(name, 'true'))}",
            "depends_on = []",
            "max_attempts = 1",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def called(calls: Path) -> list[str]:
    """The tasks whose agent ran (tasks of one run run at once: in any order)."""
    return calls.read_text().split() if calls.exists() else []


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = prompter_cli(*args, cwd=cwd)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    return done


def ran_in(marker: Path) -> Path:
    return Path(marker.read_text().strip())


# -- the working directory ------------------------------------------------------------------------


def test_a_workflow_in_a_subfolder_of_a_repository_runs_at_its_root(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    where = tmp_path / "where"
    wf = workflow(
        repo / ".github" / "prompter.toml",
        ["check"],
        tmp_path / "calls",
        check=f"test -f README && pwd -P > {where}",
    )
    done = run(repo, "run", "--progress", "none", ".github/prompter.toml")
    assert done.returncode == 0, done.stderr
    assert ran_in(where) == repo.resolve()
    # From the subfolder itself too: the repository decides, not the current directory.
    where.unlink()
    done = run(wf.parent, "run", "--progress", "none", "--fresh", "prompter.toml")
    assert done.returncode == 0, done.stderr
    assert ran_in(where) == repo.resolve()


def test_with_worktree_isolation_too_the_tasks_see_the_repository_root(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    subprocess.run(["git", "-C", str(repo), "add", "README"], check=True)
    wf = workflow(
        repo / ".github" / "prompter.toml",
        ["one", "two"],
        tmp_path / "calls",
        one="test -f README && test -d .github",
        two="test -f README && test -d .github",
    )
    wf.write_text(wf.read_text().replace('isolation = "shared"', 'isolation = "worktree"'))
    done = run(repo, "run", "--progress", "none", ".github/prompter.toml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_outside_git_a_workflow_runs_in_its_own_folder(tmp_path: Path) -> None:
    top = no_git_above(tmp_path / "plain")
    where = tmp_path / "where"
    workflow(top / "sub" / "wf.toml", ["check"], tmp_path / "calls", check=f"pwd -P > {where}")
    done = run(top, "run", "--progress", "none", "sub/wf.toml")
    assert done.returncode == 0, done.stderr
    assert ran_in(where) == (top / "sub").resolve()


@pytest.mark.parametrize(("written", "expected"), [(".", ".github"), ("tools", ".github/tools")])
def test_an_explicit_working_directory_is_relative_to_the_workflow_file(
    tmp_path: Path, written: str, expected: str
) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / ".github" / "tools").mkdir(parents=True)
    where = tmp_path / "where"
    workflow(
        repo / ".github" / "wf.toml",
        ["check"],
        tmp_path / "calls",
        f'working_directory = "{written}"',
        check=f"pwd -P > {where}",
    )
    done = run(repo, "run", "--progress", "none", ".github/wf.toml")
    assert done.returncode == 0, done.stderr
    assert ran_in(where) == (repo / expected).resolve()


def test_plan_and_dry_run_show_the_resolved_working_directory(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    workflow(repo / ".github" / "prompter.toml", ["a"], tmp_path / "calls")
    root = str(repo.resolve())
    text = run(repo, "plan", ".github/prompter.toml")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[1] == f"working directory: {root}"
    plan = json.loads(run(repo, "plan", "--json", ".github/prompter.toml").stdout)
    assert plan["working_directory"] == root
    dry = run(repo, "run", "--dry-run", ".github/prompter.toml")
    assert dry.returncode == 0, dry.stderr
    assert f"dry run: tasks would run in {root}\n" in dry.stdout


def test_a_missing_explicit_working_directory_is_named(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    workflow(repo / "wf.toml", ["a"], tmp_path / "calls", 'working_directory = "gone"')
    done = run(repo, "run", "--progress", "none", "wf.toml")
    assert done.returncode == 2
    assert "working_directory 'gone' is not a directory" in done.stderr


@pytest.mark.parametrize("path", COMPAT_FILES, ids=lambda p: p.name)
def test_prompter_0_10_examples_run_where_0_10_ran_them(tmp_path: Path, path: Path) -> None:
    """0.10 ran a file without `working_directory` in the current directory, which for the
    usual `prompter FILE` at the top of a repository is the repository's root: so do we, at the
    top and in a subfolder. A file with `working_directory = "."` keeps this project's meaning
    (the file's folder). Passes recorded before the change still stand where the folder is the
    same (the fingerprint is unchanged), and only there."""
    text = path.read_text("utf-8")
    explicit = load_workflow(path).settings.working_directory
    assert explicit in (None, "."), "a new kind of example: extend this test"
    repo = git_repo(tmp_path / "repo")
    at_top, below = repo / path.name, repo / "flows" / path.name
    below.parent.mkdir()
    at_top.write_text(text, "utf-8")
    below.write_text(text, "utf-8")
    top = load_workflow(at_top)
    assert top.workdir == repo.resolve()
    sub = load_workflow(below)
    assert sub.workdir == (repo.resolve() if explicit is None else below.parent.resolve())
    as_before = fingerprints(with_settings(top, working_directory="."))
    assert fingerprints(top) == as_before
    if explicit is None:  # moved from the file's folder to the root: runs again, once
        assert fingerprints(sub) != fingerprints(with_settings(sub, working_directory="."))


def test_a_0_10_example_without_working_directory_runs_at_the_root_from_the_top(
    tmp_path: Path,
) -> None:
    # task-jumping.toml has no working_directory: run (dry) from the top of a repository, with
    # the file in a subfolder, its tasks would run where 0.10 ran them: the current directory.
    repo = git_repo(tmp_path / "repo")
    (repo / "flows").mkdir()
    shutil.copy(COMPAT / "examples" / "task-jumping.toml", repo / "flows" / "jumping.toml")
    done = run(repo, "run", "--dry-run", "flows/jumping.toml")
    assert done.returncode == 0, done.stderr
    assert f"dry run: tasks would run in {repo.resolve()}\n" in done.stdout


# -- one state per workflow ---------------------------------------------------------------------


def test_default_report_folders() -> None:
    assert default_report_dir("prompter.toml") == Path(".prompter")
    assert default_report_dir(".github/prompter.toml") == Path(".prompter")
    assert default_report_dir(None) == Path(".prompter")
    assert default_report_dir("a.toml") == Path(".prompter/a")
    assert default_report_dir(".github/review.toml") == Path(".prompter/review")
    assert default_report_dir("flows/logs.toml") == Path(".prompter/logs.toml")  # not the logs
    assert default_report_dir("..toml") == Path(".prompter/..toml")
    assert default_report_dir("x") == Path(".prompter/x")


def test_the_identity_is_the_path_from_the_repository_root(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    assert workflow_identity(repo / ".github" / "a.toml") == ".github/a.toml"
    assert workflow_identity(repo / "a.toml") == "a.toml"
    plain = no_git_above(tmp_path / "plain")
    assert workflow_identity(plain / "a.toml") == str((plain / "a.toml").resolve())


def two_workflows(tmp_path: Path) -> tuple[Path, Path]:
    repo = git_repo(tmp_path / "repo")
    calls = tmp_path / "calls"
    workflow(repo / "a.toml", ["a1", "a2"], calls, a2="false")
    workflow(repo / "b.toml", ["b1"], calls)
    return repo, calls


def test_two_workflows_in_one_folder_keep_apart(tmp_path: Path) -> None:
    repo, calls = two_workflows(tmp_path)
    assert run(repo, "run", "--progress", "none", "a.toml").returncode == 1  # a2 fails
    a_state = (repo / ".prompter" / "a" / "state.json").read_bytes()
    assert run(repo, "run", "--progress", "none", "b.toml").returncode == 0
    assert sorted(called(calls)[:2]) == ["a1", "a2"] and called(calls)[2:] == ["b1"]
    # b's status lists b's task alone, and nothing "no longer in the workflow".
    status = run(repo, "status", "b.toml")
    assert status.returncode == 0, status.stderr
    assert "b1" in status.stdout and "a1" not in status.stdout and "no longer" not in status.stdout
    assert list(json.loads(run(repo, "status", "--json", "b.toml").stdout)["tasks"]) == ["b1"]
    assert list(json.loads(run(repo, "status", "--json", "a.toml").stdout)["tasks"]) == [
        "a1",
        "a2",
    ]
    # b's reports are b's; a's state is as a's run left it.
    suite = ET.parse(repo / ".prompter" / "b" / "junit.xml").getroot()
    assert [c.get("name") for c in suite.iter("testcase")] == ["b1"]
    summary = (repo / ".prompter" / "b" / "summary.md").read_text()
    assert "b1" in summary and "a1" not in summary
    assert (repo / ".prompter" / "a" / "state.json").read_bytes() == a_state
    assert sorted(p.name for p in (repo / ".prompter" / "b" / "logs").iterdir()) == ["b1.log"]
    assert not (repo / ".prompter" / "state.json").exists()
    # `report` rebuilds each workflow's own.
    assert run(repo, "report", "a.toml").returncode == 0
    suite = ET.parse(repo / ".prompter" / "a" / "junit.xml").getroot()
    assert [c.get("name") for c in suite.iter("testcase")] == ["a1", "a2"]
    # A run of each again resumes its own: a runs its failed task only, b nothing.
    calls_before = called(tmp_path / "calls")
    assert run(repo, "run", "--progress", "none", "a.toml").returncode == 1
    assert run(repo, "run", "--progress", "none", "b.toml").returncode == 0
    assert called(tmp_path / "calls")[len(calls_before) :] == ["a2"]
    # clear-state WORKFLOW forgets that workflow only.
    assert run(repo, "clear-state", "b.toml").returncode == 0
    assert not (repo / ".prompter" / "b" / "state.json").exists()
    assert (repo / ".prompter" / "a" / "state.json").exists()


def test_0_10_clear_state_with_a_file_clears_that_workflows_state(tmp_path: Path) -> None:
    repo, _ = two_workflows(tmp_path)
    run(repo, "run", "--progress", "none", "a.toml")
    run(repo, "run", "--progress", "none", "b.toml")
    done = run(repo, "--clear-state", "b.toml")  # 0.10's spelling
    assert done.returncode == 0, done.stderr
    assert not (repo / ".prompter" / "b" / "state.json").exists()
    assert (repo / ".prompter" / "a" / "state.json").exists()


SHARED = [
    ["run", "--progress", "none", "b.toml", "--report-dir", "shared"],
    ["run", "--dry-run", "b.toml", "--report-dir", "shared"],
    ["run", "--progress", "none", "b.toml", "--state-file", "shared/state.json"],
    ["status", "b.toml", "--report-dir", "shared"],
    ["plan", "b.toml", "--report-dir", "shared"],
    ["report", "b.toml", "--report-dir", "shared"],
    ["clear-state", "b.toml", "--report-dir", "shared"],
    ["--clear-state", "b.toml", "--report-dir", "shared"],
]


@pytest.mark.parametrize("args", SHARED, ids=lambda a: " ".join(a[:2]))
def test_a_state_of_another_workflow_is_refused_and_left_as_it_is(
    tmp_path: Path, args: list[str]
) -> None:
    repo, calls = two_workflows(tmp_path)
    assert run(repo, "run", "--progress", "none", "a.toml", "--report-dir", "shared").returncode
    # (the lock file holds the pid of the last process that held the lock: a run, to look)
    files = [repo / "shared" / name for name in ("state.json", "state.json.journal")]
    before = [p.read_bytes() for p in files]
    assert b'"workflow_id":"a.toml"' in before[0].replace(b" ", b"")
    done = run(repo, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == (
        f"prompter: {Path('shared/state.json')}: the state of another workflow (a.toml), not of "
        "b.toml (b.toml); give each workflow its own --report-dir (or --state-file)\n"
    )
    after = [p.read_bytes() for p in files]
    assert after == before
    assert sorted(called(calls)) == ["a1", "a2"]  # b's agent never ran


def test_two_files_of_one_name_in_different_folders_are_told_apart(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    calls = tmp_path / "calls"
    workflow(repo / "a.toml", ["top"], calls)
    workflow(repo / ".github" / "a.toml", ["nested"], calls)
    assert run(repo, "run", "--progress", "none", "a.toml").returncode == 0
    done = run(repo, "run", "--progress", "none", ".github/a.toml")
    assert done.returncode == 2
    assert "the state of another workflow (a.toml), not of .github/a.toml" in done.stderr
    assert "--report-dir" in done.stderr
    assert called(calls) == ["top"]
    done = run(repo, "run", "--progress", "none", ".github/a.toml", "--report-dir", "nested")
    assert done.returncode == 0, done.stderr


def test_a_state_from_before_the_identity_is_taken_and_resumed(tmp_path: Path) -> None:
    repo, calls = two_workflows(tmp_path)
    assert run(repo, "run", "--progress", "none", "b.toml").returncode == 0
    state = repo / ".prompter" / "b" / "state.json"
    data = json.loads(state.read_text())
    for record in data["runs"]:
        del record["workflow_id"]  # as the previous version wrote it
    state.write_text(json.dumps(data))
    status = run(repo, "status", "b.toml")
    assert status.returncode == 0 and "passed" in status.stdout, status.stderr
    done = run(repo, "run", "--progress", "none", "b.toml")
    assert done.returncode == 0, done.stderr
    assert called(calls) == ["b1"]  # resumed: the pass stands, nothing ran again
    runs = json.loads(state.read_text())["runs"]
    assert [r.get("workflow_id") for r in runs] == [None, "b.toml"]  # recorded from now on


def test_an_old_state_of_another_workflow_is_accepted_as_before(tmp_path: Path) -> None:
    # No identity recorded: nothing tells whose it is, so it is taken (as before).
    repo, _ = two_workflows(tmp_path)
    assert run(repo, "run", "--progress", "none", "a.toml", "--report-dir", "shared").returncode
    state = repo / "shared" / "state.json"
    data = json.loads(state.read_text())
    for record in data["runs"]:
        del record["workflow_id"]
    state.write_text(json.dumps(data))
    done = run(repo, "status", "b.toml", "--report-dir", "shared")
    assert done.returncode == 0 and "no longer in the workflow" in done.stdout


def test_the_action_keeps_each_workflows_report_folder(tmp_path: Path) -> None:
    from .action_step import TASKS, run_step, workspace

    ws = workspace(tmp_path, TASKS[:1], {})
    (ws / "flows").mkdir()
    shutil.move(ws / "prompter.toml", ws / "flows" / "review.toml")
    step = run_step(tmp_path, ws, {"workflow": "flows/review.toml", "upload_artifact": "false"})
    assert step.code == 0, step.stdout + step.stderr
    assert step.outputs["state_path"] == ".prompter/review/state.json"
    assert step.outputs["junit_path"] == ".prompter/review/junit.xml"
    assert step.outputs["summary_path"] == ".prompter/review/summary.md"
    assert (ws / ".prompter" / "review" / "state.json").is_file()
    assert not (ws / ".prompter" / "state.json").exists()


def test_init_puts_its_transcript_in_the_files_report_folder(tmp_path: Path) -> None:
    done = init(tmp_path, [{"result": answer(VALID)}], "review.toml", "--yes")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".prompter" / "review" / "logs" / "init.log").is_file()
    assert not (tmp_path / ".prompter" / "logs").exists()
    done = init(tmp_path, [{"result": answer(VALID)}], "--yes")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".prompter" / "logs" / "init.log").is_file()


def test_the_report_folder_of_other_workflows_stays_out_of_a_worktree_base(
    tmp_path: Path,
) -> None:
    # Worktree isolation commits the working tree as the base of a run, without the report
    # folder; with `.prompter/` shared by every workflow, without any of it.
    repo = git_repo(tmp_path / "repo")
    subprocess.run(["git", "-C", str(repo), "add", "README"], check=True)
    calls = tmp_path / "calls"
    workflow(repo / "b.toml", ["b1"], calls)
    assert run(repo, "run", "--progress", "none", "b.toml").returncode == 0
    wf = workflow(
        repo / "a.toml",
        ["one", "two"],
        calls,
        one="test ! -e .prompter",
        two="test ! -e .prompter",
    )
    wf.write_text(wf.read_text().replace('isolation = "shared"', 'isolation = "worktree"'))
    done = run(repo, "run", "--progress", "none", "a.toml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert os.path.isfile(repo / ".prompter" / "b" / "state.json")


def test_report_finds_the_workflow_of_a_moved_state_in_its_own_folder(tmp_path: Path) -> None:
    # A state moved with its project (an artifact downloaded elsewhere): the workflow the run
    # recorded is looked for relative to the run's folder, two levels above `.prompter/wf`.
    proj = no_git_above(tmp_path / "proj")
    workflow(proj / "wf.toml", ["a1"], tmp_path / "calls")
    assert run(proj, "run", "--progress", "none", "wf.toml").returncode == 0
    moved = tmp_path / "moved"
    proj.rename(moved)
    done = run(moved, "report", "--report-dir", ".prompter/wf")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no "workflow wf.toml not found" note
    suite = ET.parse(moved / ".prompter" / "wf" / "junit.xml").getroot()
    assert [c.get("line") for c in suite.iter("testcase")] == ["8"]  # its [[tasks]] line


def test_git_status_stays_clean_with_a_workflow_beside_prompter_toml(tmp_path: Path) -> None:
    """`.prompter/wf/` first, then `prompter.toml`'s own `.prompter/`: the outer folder holds
    the other workflow's folder, which is prompter's too, so it still gets its `.gitignore`."""
    repo = git_repo(tmp_path / "repo")
    calls = tmp_path / "calls"
    workflow(repo / "wf.toml", ["w"], calls)
    workflow(repo / "prompter.toml", ["p"], calls)
    subprocess.run(
        ["git", "-C", str(repo), "add", "wf.toml", "prompter.toml", "README"], check=True
    )
    assert run(repo, "run", "--progress", "none", "wf.toml").returncode == 0
    assert run(repo, "run", "--progress", "none", "prompter.toml").returncode == 0
    assert (repo / ".prompter" / "wf" / "state.json").exists()
    assert (repo / ".prompter" / "state.json").exists()
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert status.split("\n") == ["A  README", "A  prompter.toml", "A  wf.toml", ""], status
