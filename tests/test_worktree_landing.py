"""Work landing from worktrees (isolation = "worktree") in the user's tree: deletions and moves
of untracked files, user folders, agent commits, nested repositories, linked worktrees, odd
names, many files, ignored working directories, submodules, conflicts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from prompter.worktrees import Integration, Merged, recover

from .git_repos import git_harness as worktrees_harness
from .git_repos import sh, shell_task
from .harness import Harness


def git_harness(tmp_path: Path) -> Harness:
    h = worktrees_harness(tmp_path)
    h.settings["isolation"] = "worktree"
    return h


def committed_repo(path: Path, files: dict[str, str]) -> Path:
    """A new repository at `path` holding `files` in one commit."""
    path.mkdir()
    sh(path, "init", "-q")
    sh(path, "config", "user.email", "u@example.com")
    sh(path, "config", "user.name", "User")
    for name, text in files.items():
        (path / name).write_text(text)
    sh(path, "add", "-A")
    sh(path, "commit", "-qm", "initial")
    return path


# -- 1. deleting a file that was untracked at the start ----------------------------------------


def test_a_task_deleting_an_untracked_file_lands_the_deletion(tmp_path: Path) -> None:
    h = git_harness(tmp_path)
    shell_task(h, "rm", "rm scratch.txt && echo new > new.txt")
    code = h.run()
    assert code == 0
    assert (h.work / "new.txt").read_text() == "new\n"
    assert not (h.work / "scratch.txt").exists()


# -- 2. a file landing over a directory of the user --------------------------------------------


def test_landing_a_file_does_not_delete_a_directory_of_the_user(tmp_path: Path) -> None:
    h = git_harness(tmp_path)
    ignore = ".prompter/\nagent.jsonl\nplan.json\nprompter.toml\nbuild/\n"  # build/: folders only
    (tmp_path / ".gitignore").write_text(ignore)
    (h.work / "build").mkdir()
    (h.work / "build" / "release.tar").write_text("the user's build output\n")
    # The agent is asked for a build script and writes `./build` (no folder in its worktree).
    shell_task(h, "t", "printf '#!/bin/sh\\nmake\\n' > build")
    h.run()
    # The user's folder must survive (the run's file could be kept aside, as for edited files).
    assert (h.work / "build" / "release.tar").read_text() == "the user's build output\n"


# -- 3. an agent that commits its own work -----------------------------------------------------


def test_work_the_agent_committed_itself_lands(tmp_path: Path) -> None:
    h = git_harness(tmp_path)
    shell_task(
        h,
        "t",
        "echo committed > c.txt && git add c.txt && git commit -qm 'agent commit'",
        verify_command="test -f c.txt",
    )
    assert h.run() == 0
    assert h.tasks_status()["t"] == ("passed", None)
    assert (h.work / "c.txt").read_text() == "committed\n"


# -- 4. a nested git repository created by a task ----------------------------------------------


NESTED = (
    "its changes cannot be committed: the task created a git repository inside the repository "
    "(work/pkg): a worktree cannot carry its files over; remove its .git, or use isolation = "
    '"shared"'
)


def test_a_task_that_creates_a_nested_repository_fails_saying_why(tmp_path: Path) -> None:
    h = git_harness(tmp_path)
    # e.g. `git clone` of a dependency, or `git init` in a new package folder
    shell_task(h, "t", "mkdir pkg && cd pkg && git init -q && echo code > main.rs")
    assert h.run() == 1
    assert h.tasks_status()["t"] == ("failed", NESTED)  # not passed with its files lost


def test_a_nested_repository_with_a_commit_fails_saying_why(tmp_path: Path) -> None:
    h = git_harness(tmp_path)
    shell_task(
        h,
        "t",
        "mkdir pkg && cd pkg && git init -q && echo code > main.rs && git add . "
        "&& git -c user.name=a -c user.email=a@b commit -qm init",
    )
    assert h.run() == 1
    assert h.tasks_status()["t"] == ("failed", NESTED)  # git would keep only a gitlink


# -- 5. recovery in a repository with linked worktrees -----------------------------------------


def test_recover_does_not_land_another_worktrees_run_into_this_one(tmp_path: Path) -> None:
    main = committed_repo(tmp_path / "main", {"app.py": "v1\n"})
    other = tmp_path / "other"
    sh(main, "worktree", "add", "-q", "-b", "feature", str(other))
    line = Integration(other, "in-other")

    async def go() -> None:
        await line.start()
        tree = await line.checkout("t", 1)
        (tree / "app.py").write_text("the run in `other` changed this\n")
        (tree / "from_other.txt").write_text("x\n")
        commit = await line.commit("t", tree)
        assert commit and isinstance(await line.merge("t", commit), Merged)

    anyio.run(go)
    anyio.run(line.park)  # the run in `other` was interrupted (Ctrl-C)
    # A run (or `prompter clean`) in `main` recovers ended runs first.
    anyio.run(recover, main)
    assert (main / "app.py").read_text() == "v1\n"  # main's checkout is not touched
    assert not (main / "from_other.txt").exists()


def test_a_task_moving_an_untracked_file_lands_the_move(tmp_path: Path) -> None:
    h = git_harness(tmp_path)
    shell_task(h, "mv", "mkdir notes && mv scratch.txt notes/scratch.txt")
    assert h.run() == 0
    assert (h.work / "notes" / "scratch.txt").read_text() == "the user's untracked file\n"
    assert not (h.work / "scratch.txt").exists()


def test_a_deletion_lands_in_a_repository_without_commits(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    sh(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text(".prompter/\nagent.jsonl\nplan.json\nprompter.toml\n")
    (h.work / "app.py").write_text("x\n")
    h.settings["isolation"] = "worktree"
    shell_task(h, "a", "echo a > a.txt && rm app.py")
    assert h.run() == 0
    assert (h.work / "a.txt").exists() and not (h.work / "app.py").exists()


def test_a_directory_replaced_by_a_file_lands(tmp_path: Path) -> None:
    h = git_harness(tmp_path)
    (h.work / "config").mkdir()
    (h.work / "config" / "a.toml").write_text("a\n")
    sh(tmp_path, "add", "-A")
    sh(tmp_path, "commit", "-qm", "config dir")
    shell_task(h, "a", "rm -r config && echo 'all in one' > config")
    assert h.run() == 0
    assert (h.work / "config").read_text() == "all in one\n"


def test_after_a_failed_landing_later_runs_and_clean_still_work(tmp_path: Path) -> None:
    from .harness import prompter_cli

    h = git_harness(tmp_path)
    shell_task(h, "rm", "rm scratch.txt")
    first = h.spawn()
    first.communicate(timeout=60)
    h.tasks.clear()
    shell_task(h, "other", "echo o > o.txt")
    second = h.spawn()
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err  # today: 2, "cannot set up worktrees: git restore failed"
    clean = prompter_cli("clean", str(tmp_path), cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr


def test_a_file_name_that_is_not_utf8_lands(tmp_path: Path) -> None:
    h = git_harness(tmp_path)
    shell_task(h, "a", "printf x > \"$(printf 'caf\\351.txt')\" && echo ok > ok.txt")
    assert h.run() == 0
    assert (h.work / "ok.txt").read_text() == "ok\n"
    assert os.path.exists(os.fsencode(h.work) + b"/caf\xe9.txt")


def test_a_task_generating_many_files_lands_them(tmp_path: Path) -> None:
    h = git_harness(tmp_path)
    script = (
        "import os\n"
        "d = 'generated/some/deeply/nested/package/path'\n"
        "os.makedirs(d)\n"
        "for i in range(40000):\n"
        "    open(f'{d}/module_number_{i:06}.py', 'w').write('x')\n"
    )
    h.task("gen", agent_command=["python3", "-c", script], depends_on=[], max_attempts=1)
    assert h.run() == 0  # today: 70, OSError: Argument list too long: 'git'
    assert (h.work / "generated/some/deeply/nested/package/path/module_number_039999.py").exists()


# -- nested repositories: a leftover in a reused worktree fails unrelated tasks -----------------


def test_a_nested_repository_left_in_a_reused_worktree_does_not_fail_the_next_task(
    tmp_path: Path,
) -> None:
    h = git_harness(tmp_path)
    h.settings["max_parallel_tasks"] = 1  # b reuses a's worktree
    shell_task(h, "a", "mkdir pkg && cd pkg && git init -q && echo code > main.rs", priority=5)
    shell_task(h, "b", "echo b > b.txt")
    h.run()
    assert h.tasks_status()["b"] == ("passed", None)


# -- the working directory is git-ignored (a home directory under git, `*` ignored) -------------


def test_work_in_an_ignored_working_directory_is_not_silently_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = git_harness(tmp_path)
    (tmp_path / ".gitignore").write_text("*\n!.gitignore\n")  # a home directory under git
    shell_task(h, "a", "echo a > a.txt")
    shell_task(h, "b", "echo b > b.txt")
    assert h.run() == 2  # isolation = "worktree" asked for: it cannot work here
    assert "git ignores what is created in the working directory (work/)" in capsys.readouterr().err
    h.settings["isolation"] = "auto"  # the default: the tasks share the tree instead
    assert h.run() == 0
    assert (h.work / "a.txt").exists() and (h.work / "b.txt").exists()
    assert "tasks share the working tree (no worktrees)" in capsys.readouterr().err


# -- submodules ----------------------------------------------------------------------------------


def _with_submodule(tmp_path: Path) -> Harness:
    lib = committed_repo(tmp_path / "libsrc", {"lib.c": "int f;\n"})
    root = tmp_path / "root"
    root.mkdir()
    h = git_harness(root)
    sh(root, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "work/lib")
    sh(root, "commit", "-qm", "sub")
    h.settings["isolation"] = "auto"
    return h


def test_with_submodules_tasks_share_the_tree_and_see_the_submodule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = _with_submodule(tmp_path)
    shell_task(h, "a", "echo a > a.txt", verify_command="test -f lib/lib.c")
    shell_task(h, "b", "echo b > lib/new.c", verify_command="test -f lib/new.c")
    assert h.run() == 0
    assert h.tasks_status() == {"a": ("passed", None), "b": ("passed", None)}
    assert (h.work / "lib" / "new.c").exists()  # written in place: nothing to lose
    assert "the repository has submodules" in capsys.readouterr().err


def test_isolation_worktree_with_submodules_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = _with_submodule(tmp_path)
    h.settings["isolation"] = "worktree"
    shell_task(h, "b", "echo b > lib/new.c", verify_command="test -f lib/new.c")
    assert h.run() == 2
    err = capsys.readouterr().err
    assert 'isolation = "worktree" cannot work here: the repository has submodules' in err
    assert not (h.work / "lib" / "new.c").exists()


def test_a_conflict_on_a_name_with_a_tab_names_the_file_and_the_other_task(tmp_path: Path) -> None:
    h = git_harness(tmp_path)
    name = "we\tird.txt"
    (h.work / name).write_text("line\n")
    shell_task(h, "a", f"printf 'from a\\n' > '{name}'", priority=1)
    shell_task(h, "b", f"sleep 0.5; printf 'from b\\n' > '{name}'")
    h.run()
    reasons = dict(h.tasks_status())
    failed = [r for _, r in reasons.values() if r and "merge conflict" in r]
    assert failed and all("with `a`" in r or "with `b`" in r for r in failed), reasons
    assert all(r.endswith(f" in work/{name}") for r in failed), failed  # not git's quoting
    changed = [a["changed_files"] for t in h.status()["tasks"].values() for a in t["attempts"]]
    assert [f"work/{name} +1 -1"] in changed


# -- the diff of a passed task, recorded when small ---------------------------------------------


def saved(h: Harness) -> dict[str, Any]:
    return json.loads((h.root / ".prompter" / "state.json").read_text())  # type: ignore[no-any-return]


def test_a_passed_task_records_its_small_diff_with_secrets_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "s3cr3t-value-1234")
    h = git_harness(tmp_path)
    hostile = "</script><img src=x onerror=alert(1)>"
    shell_task(
        h, "small", f"echo '{hostile}' > page.txt && echo \"token $DEPLOY_TOKEN\" >> page.txt"
    )
    shell_task(h, "large", "seq 1 300 > numbers.txt")  # 300 lines: more than DIFF_LINES
    shell_task(h, "nothing", "true")
    assert h.run() == 0
    tasks = saved(h)["tasks"]
    small = tasks["small"]["attempts"][-1]
    assert small["changed_files"] == ["work/page.txt +2 -0"]
    diff = small["diff"]
    assert diff.startswith("diff --git a/work/page.txt b/work/page.txt\n")
    assert f"+{hostile}\n+token ***\n" in diff
    assert "s3cr3t" not in (tmp_path / ".prompter" / "state.json").read_text()
    large = tasks["large"]["attempts"][-1]
    assert large["changed_files"] == ["work/numbers.txt +300 -0"]
    assert "diff" not in large  # too large: not recorded (changes.patch has it)
    assert "diff" not in tasks["nothing"]["attempts"][-1]
    assert saved(h)["runs"][-1]["isolation"] == "worktree"


def test_a_diff_larger_in_bytes_than_in_lines_is_not_recorded(tmp_path: Path) -> None:
    h = git_harness(tmp_path)
    shell_task(h, "wide", "head -c 9000 /dev/zero | tr '\\0' x > wide.txt && echo >> wide.txt")
    assert h.run() == 0
    attempt = saved(h)["tasks"]["wide"]["attempts"][-1]
    assert attempt["changed_files"] == ["work/wide.txt +1 -0"]
    assert "diff" not in attempt


def test_a_shared_tree_records_no_diff_and_says_so(tmp_path: Path) -> None:
    h = git_harness(tmp_path)
    h.settings["isolation"] = "shared"
    shell_task(h, "t", "echo new > new.txt")
    assert h.run() == 0
    state = saved(h)
    assert "diff" not in state["tasks"]["t"]["attempts"][-1]
    assert state["runs"][-1]["isolation"] == "shared"
