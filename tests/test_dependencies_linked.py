"""Worktrees see the user's installed dependencies (issue 15, item 5): git-ignored `.venv`,
`node_modules`, … folders of the user's tree are symlinked into each task's worktree unless
`worktree_link_dependencies = false`; never one git tracks or does not ignore, never one that
leads out of the repository. Without them, a verify command that cannot run is an environment
error that names `worktree_link`, not a failure sent back to the agent."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest

from prompter.worktrees import Dependencies, dependency_links, git_dir

from .git_repos import sh
from .harness import Harness

VENV_CHECK = '.venv/bin/python -c "import sys; print(sys.version_info >= (3,))"'


def repo_harness(tmp_path: Path, ignore: str = ".venv/\nnode_modules/\n") -> Harness:
    """A git repository whose working directory is `work/`; `ignore` goes into .gitignore."""
    h = Harness(tmp_path)
    sh(tmp_path, "init", "-q")
    sh(tmp_path, "config", "user.email", "u@example.com")
    sh(tmp_path, "config", "user.name", "User")
    (tmp_path / ".gitignore").write_text(".prompter/\nagent.jsonl\nplan.json\nwf.toml\n" + ignore)
    (h.work / "app.py").write_text("print('app')\n")
    sh(tmp_path, "add", "-A")
    sh(tmp_path, "commit", "-qm", "initial")
    return h


def fake_venv(where: Path) -> Path:
    """A virtual environment as far as a verify command sees it: `bin/python` is a symlink
    to an interpreter, as `python -m venv` makes it on Linux."""
    (where / "bin").mkdir(parents=True)
    (where / "bin" / "python").symlink_to(sys.executable)
    (where / "pyvenv.cfg").write_text("home = /usr/bin\n")
    return where


def two_tasks(h: Harness, verify: str, **keys: object) -> None:
    """Two independent tasks, so that `isolation = "auto"` gives each a worktree."""
    for name in ("a", "b"):
        h.task(
            name, [{"write": {f"{name}.txt": name}}], depends_on=[], verify_command=verify, **keys
        )


def in_worktrees(h: Harness) -> None:
    cwds = {c["cwd"] for c in h.calls()}
    assert cwds and all("/.git/prompter/" in c for c in cwds), cwds


def only_their_own_changes(h: Harness, err: str) -> None:
    """Each task's commit holds its own file, not the symlinks the run placed (a `.venv/`
    pattern ignores a folder, not a symlink: committed, landing would keep the user's)."""
    tasks = h.status()["tasks"]
    for name in ("a", "b"):
        assert tasks[name]["attempts"][-1]["changed_files"] == [f"work/{name}.txt +1 -0"]
    assert "kept your version" not in err, err


def test_an_ignored_venv_of_the_user_is_linked_and_its_python_runs_in_each_worktree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = repo_harness(tmp_path)
    fake_venv(h.work / ".venv")
    two_tasks(h, f"test -L .venv && {VENV_CHECK}")
    assert h.run() == 0, h.tasks_status()
    in_worktrees(h)
    # The links were the run's, not the tasks' work: nothing of them lands in the user's tree.
    only_their_own_changes(h, capsys.readouterr().err)
    assert (h.work / ".venv").is_dir() and not (h.work / ".venv").is_symlink()
    assert (h.work / ".venv" / "bin" / "python").is_symlink()
    assert (h.work / "a.txt").read_text() == "a" and (h.work / "b.txt").read_text() == "b"
    assert ".venv" not in sh(tmp_path, "status", "--porcelain", "--ignored=no")


def test_node_modules_at_the_repository_root_is_linked_too(tmp_path: Path) -> None:
    h = repo_harness(tmp_path)
    (tmp_path / "node_modules" / "left-pad").mkdir(parents=True)
    (tmp_path / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 1\n")
    two_tasks(h, "test -L ../node_modules && test -f ../node_modules/left-pad/index.js")
    assert h.run() == 0, h.tasks_status()
    in_worktrees(h)


def test_a_listed_worktree_link_under_a_folder_pattern_is_not_committed_either(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = repo_harness(tmp_path)
    fake_venv(h.work / ".venv")
    h.settings["worktree_link_dependencies"] = False
    h.settings["worktree_link"] = ["work/.venv"]
    two_tasks(h, VENV_CHECK)
    assert h.run() == 0, h.tasks_status()
    only_their_own_changes(h, capsys.readouterr().err)


def test_turned_off_the_missing_python_is_an_environment_error_not_sent_to_the_agent(
    tmp_path: Path,
) -> None:
    h = repo_harness(tmp_path)
    fake_venv(h.work / ".venv")
    h.settings["worktree_link_dependencies"] = False
    two_tasks(h, VENV_CHECK, max_attempts=3)
    assert h.run() == 1
    in_worktrees(h)
    tasks = h.status()["tasks"]
    for name in ("a", "b"):
        reason = tasks[name]["reason"]
        assert reason.startswith("verify_command could not run (exit 127: command not found): "), (
            reason
        )
        assert ".venv/bin/python" in reason, reason
        assert 'worktree_link = ["work/.venv"]' in reason, reason  # from the repository root
        assert "or set worktree_link_dependencies = true (the default)" in reason, reason
        assert len(tasks[name]["attempts"]) == 1  # no retry
        assert tasks[name]["attempts"][0]["environment_error"] is True
    # The agent ran once per task, and no prompt ever quoted the failure.
    calls = h.calls()
    assert sorted((c["task"], c["attempt"]) for c in calls) == [("a", 1), ("b", 1)]
    assert not any("did not pass" in c["prompt"] for c in calls)
    junit = (tmp_path / ".prompter" / "junit.xml").read_text()
    assert junit.count('type="environment_error"') == 2 and "<failure" not in junit, junit
    summary = (tmp_path / ".prompter" / "summary.md").read_text()
    assert summary.count("failed (environment error)") == 2, summary


def test_only_ignored_folders_nothing_in_which_is_tracked_are_chosen(tmp_path: Path) -> None:
    h = repo_harness(tmp_path, ignore=".venv/\nnode_modules/\n__pypackages__/\nvendor/\n")
    fake_venv(h.work / ".venv")  # ignored, untracked: linked
    (tmp_path / "node_modules").mkdir()  # at the root, ignored, but git tracks a file in it
    (tmp_path / "node_modules" / "vendored.js").write_text("tracked\n")
    sh(tmp_path, "add", "-f", "node_modules/vendored.js")
    sh(tmp_path, "commit", "-qm", "vendored")
    (tmp_path / "node_modules" / "installed.js").write_text("the user's only\n")
    (h.work / "venv").mkdir()  # not ignored: the user's work, part of every worktree anyway
    (h.work / "venv" / "notes.txt").write_text("mine\n")
    (h.work / "vendor" / "bundle").mkdir(parents=True)  # listed by the user: theirs to place
    (h.work / "__pypackages__").write_text("a file, not a folder\n")

    async def choose() -> Dependencies:
        common = await git_dir(tmp_path)
        return await dependency_links(tmp_path, Path("work"), ["work/vendor"], common)

    found = anyio.run(choose)
    assert found == Dependencies(("work/.venv",), ())
    # And in a run: the tracked folder is the worktree's own, without the user's extra file.
    two_tasks(
        h,
        "test -L .venv && test ! -L venv && test -f venv/notes.txt && test ! -L ../node_modules"
        " && test -f ../node_modules/vendored.js && test ! -e ../node_modules/installed.js",
    )
    assert h.run() == 0, h.tasks_status()
    in_worktrees(h)


def test_one_leading_out_of_the_repository_is_left_out_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    h = repo_harness(repo)
    outside = fake_venv(tmp_path / "elsewhere" / "venv")
    (h.work / ".venv").symlink_to(outside)
    # `.venv/` matches folders only, not a symlink: ignored by name too, so it is no user work
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + ".venv\n")
    sh(repo, "commit", "-qam", "ignore the link too")
    two_tasks(h, "test ! -e .venv")
    assert h.run() == 0, h.tasks_status()
    in_worktrees(h)
    err = capsys.readouterr().err
    assert "work/.venv is not linked into the worktrees: it leads through a symlink to" in err
    assert str(outside) in err


def test_an_editable_install_of_the_users_tree_in_a_linked_venv_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = repo_harness(tmp_path)
    venv = fake_venv(h.work / ".venv")
    site = venv / "lib" / "python3.11" / "site-packages"
    for name, url, editable in (
        ("myapp-0.1.dist-info", tmp_path.as_uri(), True),  # `pip install -e .`
        ("requests-2.0.dist-info", "https://example.com/requests.whl", False),
        ("other-1.0.dist-info", (tmp_path.parent / "other").as_uri(), True),  # not this repo
    ):
        (site / name).mkdir(parents=True)
        info = {"url": url, "dir_info": {"editable": editable}} if editable else {"url": url}
        (site / name / "direct_url.json").write_text(json.dumps(info))
    two_tasks(h, "true")
    assert h.run() == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "editable install" in line]
    assert len(warnings) == 1, err
    assert "editable install of myapp that points at your working tree" in warnings[0]
    assert "requests" not in warnings[0] and "other" not in warnings[0]


def test_without_an_editable_install_there_is_no_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = repo_harness(tmp_path)
    fake_venv(h.work / ".venv")
    two_tasks(h, "true")
    assert h.run() == 0
    assert "warning" not in capsys.readouterr().err


def test_a_task_that_deletes_the_link_leaves_the_users_venv_alone(tmp_path: Path) -> None:
    h = repo_harness(tmp_path)
    fake_venv(h.work / ".venv")
    h.task(
        "rm",
        depends_on=[],
        agent_command=["sh", "-c", "rm .venv && echo done > done.txt"],
        verify_command="test -f done.txt",
    )
    h.task("other", depends_on=[], verify_command=VENV_CHECK)
    assert h.run() == 0, h.tasks_status()
    assert (h.work / ".venv" / "bin" / "python").is_symlink()
    assert os.path.samefile(h.work / ".venv" / "bin" / "python", sys.executable)
    assert (h.work / "done.txt").read_text() == "done\n"


def test_a_tool_missing_from_the_users_tree_too_gets_no_worktree_hint(tmp_path: Path) -> None:
    h = repo_harness(tmp_path)
    two_tasks(h, "tools/no-such-check --strict", max_attempts=2)
    assert h.run() == 1
    in_worktrees(h)
    for record in h.status()["tasks"].values():
        reason = record["reason"]
        assert reason.startswith("verify_command could not run (exit 127: command not found)")
        assert "tools/no-such-check" in reason and "worktree_" not in reason, reason
        assert len(record["attempts"]) == 1


def test_an_ignored_tool_folder_named_by_the_command_gets_the_hint(tmp_path: Path) -> None:
    h = repo_harness(tmp_path, ignore="tools/\n")
    (h.work / "tools").mkdir()
    check = h.work / "tools" / "check"
    check.write_text("#!/bin/sh\nexit 0\n")
    check.chmod(0o755)
    two_tasks(h, "tools/check --strict")
    assert h.run() == 1
    in_worktrees(h)
    for record in h.status()["tasks"].values():
        assert record["reason"].endswith(
            '"work/tools" is in your working tree but not in the task\'s worktree (git ignores '
            'it, so worktrees do not get it): list it in worktree_link = ["work/tools"] '
            '(shared) or worktree_copy = ["work/tools"] (copied)'
        ), record["reason"]
