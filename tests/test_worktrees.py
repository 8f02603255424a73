"""The integration line on real git repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest

from prompter.worktrees import Conflict, Integration, Merged


def sh(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    sh(r, "init", "-q")
    sh(r, "config", "user.email", "u@example.com")
    sh(r, "config", "user.name", "User")
    (r / ".gitignore").write_text(".env\nbuild/\n")
    (r / "app.py").write_text("line 1\nline 2\nline 3\n")
    sh(r, "add", "-A")
    sh(r, "commit", "-qm", "initial")
    # The user's uncommitted work: a modified file, a staged one, an untracked one, an ignored one.
    (r / "app.py").write_text("line 1\nline 2 (user)\nline 3\n")
    (r / "staged.txt").write_text("staged\n")
    sh(r, "add", "staged.txt")
    (r / "notes.txt").write_text("untracked\n")
    (r / ".env").write_text("SECRET=1\n")
    return r


def test_the_base_is_the_working_tree_and_the_user_index_is_untouched(repo: Path) -> None:
    status = sh(repo, "status", "--porcelain")
    head = sh(repo, "rev-parse", "HEAD")
    line = Integration(repo, "r1")

    async def go() -> str:
        return await line.start()

    base = anyio.run(go)
    assert sh(repo, "status", "--porcelain") == status and sh(repo, "rev-parse", "HEAD") == head
    files = set(sh(repo, "ls-tree", "-r", "--name-only", base).split())
    assert files == {".gitignore", "app.py", "staged.txt", "notes.txt"}  # not .env
    assert sh(repo, "show", f"{base}:app.py") == "line 1\nline 2 (user)\nline 3\n"
    assert sh(repo, "rev-parse", "refs/prompter/r1/tip").strip() == base
    assert sh(repo, "branch", "--list").strip().startswith("*")  # no new branch
    assert len(sh(repo, "branch", "--list").splitlines()) == 1


def test_parallel_tasks_merge_and_land_as_uncommitted_changes(repo: Path) -> None:
    line = Integration(repo, "r2", include=(".env",))
    head = sh(repo, "rev-parse", "HEAD")

    async def go() -> tuple[Merged | Conflict, Merged | Conflict, Path, list[str]]:
        await line.start()
        a = await line.checkout("a", 1)
        b = await line.checkout("b", 1)
        assert (a / ".env").read_text() == "SECRET=1\n"  # included, though ignored
        assert not (b / "a.txt").exists()
        (a / "a.txt").write_text("from a\n")
        (b / "b.txt").write_text("from b\n")
        (b / "app.py").write_text("line 1\nline 2 (user)\nline 3 (b)\n")
        ca = await line.commit("a", a)
        cb = await line.commit("b", b)
        assert ca and cb
        ma = await line.merge("a", ca)
        mb = await line.merge("b", cb)
        c = await line.checkout("c", 1)  # a dependent task sees both
        changed = await line.apply()
        await line.cleanup()
        return ma, mb, c, changed

    ma, mb, c, changed = anyio.run(go)
    assert isinstance(ma, Merged) and ma.files == ("a.txt",)
    assert isinstance(mb, Merged) and set(mb.files) == {"app.py", "b.txt"}
    assert sorted(changed) == ["a.txt", "app.py", "b.txt"]
    assert (repo / "a.txt").read_text() == "from a\n"
    assert (repo / "app.py").read_text() == "line 1\nline 2 (user)\nline 3 (b)\n"
    assert (repo / "notes.txt").read_text() == "untracked\n"  # the user's work is still there
    assert (repo / ".env").read_text() == "SECRET=1\n"
    assert sh(repo, "rev-parse", "HEAD") == head  # nothing committed on the user's branch
    assert "A  staged.txt" in sh(repo, "status", "--porcelain")  # their index as it was
    assert not c.exists()  # cleaned up
    assert sh(repo, "for-each-ref", "refs/prompter") == ""
    assert "prompter" not in sh(repo, "worktree", "list")


def test_same_lines_edited_twice_is_a_conflict_naming_the_other_task(repo: Path) -> None:
    line = Integration(repo, "r3")

    async def go() -> tuple[Merged | Conflict, Merged | Conflict]:
        await line.start()
        a = await line.checkout("first", 1)
        b = await line.checkout("second", 1)
        (a / "app.py").write_text("line 1\nline 2 (first)\nline 3\n")
        (b / "app.py").write_text("line 1\nline 2 (second)\nline 3\n")
        ca = await line.commit("first", a)
        cb = await line.commit("second", b)
        assert ca and cb
        return await line.merge("first", ca), await line.merge("second", cb)

    first, second = anyio.run(go)
    assert isinstance(first, Merged)
    assert isinstance(second, Conflict)
    assert second.paths == ("app.py",) and second.with_task == "first"
    assert second.reason == "merge conflict with `first` in app.py"


def test_a_task_that_changes_nothing_commits_nothing(repo: Path) -> None:
    line = Integration(repo, "r4")

    async def go() -> str | None:
        await line.start()
        return await line.commit("idle", await line.checkout("idle", 1))

    assert anyio.run(go) is None
