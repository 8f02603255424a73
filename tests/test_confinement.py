"""What the workflow names stays where it belongs: `worktree_copy` / `worktree_link` paths
inside the repository, and each task's log in a file of its own (issue 14, item 2)."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prompter.cli import main
from prompter.config import worktree_path_problem
from prompter.places import log_name
from prompter.worktrees import Integration, Unconfined

from .git_repos import git_harness, sh, shell_task

# Names as a workflow may hold them, and ones made to look like another name's log file.
_names = st.one_of(
    st.text(max_size=250),
    st.text(alphabet="aAbB_-/.0123456789cdef", max_size=30),
    st.builds(
        lambda a, h: f"{a}-{h}",
        st.text(alphabet="abAB_/.", min_size=1, max_size=5),
        st.text(alphabet="0123456789abcdef", min_size=8, max_size=16),
    ),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_names, unique=True, min_size=2, max_size=8))
def test_log_names_are_distinct_also_after_case_folding_and_safe(names: list[str]) -> None:
    files = [log_name(n) for n in names]
    # Also each name's own log name as a task name: it must not get the same file.
    stems = [f.removesuffix(".log") for f in files]
    files += [log_name(stem) for stem in stems if stem not in names]
    for fold in (str, str.casefold, str.lower):
        assert len({fold(f) for f in files}) == len(files), files
    for f in files:
        assert "/" not in f and "\0" not in f and f not in (".", "..") and not f.startswith(".")
        assert 0 < len(f.encode()) <= 120


def test_the_reported_pair_gets_two_log_files() -> None:
    taken = log_name("a/b")
    assert log_name(taken.removesuffix(".log")) != taken  # `a_b-c14cddc0` named as a task
    assert log_name("build") == "build.log" and log_name("lint-2") == "lint-2.log"


# -- worktree_copy / worktree_link: nothing outside the repository or the worktree ------------


def _repo(path: Path) -> Path:
    path.mkdir(parents=True)
    sh(path, "init", "-q")
    sh(path, "config", "user.email", "u@example.com")
    sh(path, "config", "user.name", "User")
    (path / ".gitignore").write_text(".env\nnode_modules\n")
    (path / "notes.txt").write_text("the user's notes\n")
    sh(path, "add", "-A")
    sh(path, "commit", "-qm", "initial")
    return path


def test_an_absolute_link_path_deletes_nothing_outside_the_repository(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data").write_text("precious\n")
    (outside / "shortcut").symlink_to(outside / "data")
    line = Integration(repo, "abs")

    async def go() -> str:
        await line.start()
        worktree = await line.checkout("t", 1)
        line.link = (str(outside / "shortcut"),)  # as `worktree_link = ["/abs/path"]` gives
        (worktree / "new.txt").write_text("work\n")
        assert await line.commit("t", worktree) is not None
        try:
            await line.checkout("u", 1)
        except Unconfined as exc:
            return str(exc)
        finally:
            await line.cleanup()
        return "no error"

    error = anyio.run(go)
    assert (outside / "shortcut").is_symlink()  # the task's commit deleted it
    assert error.startswith('worktree_link[0] = "/') and "is an absolute path" in error


def test_a_copy_path_with_dot_dots_writes_nothing_in_the_users_tree(tmp_path: Path) -> None:
    # The worktree is <repo>/.git/prompter/<run>/wt-1: four `..` from it are the user's tree.
    repo = _repo(tmp_path / "d1" / "d2" / "d3" / "repo")
    (tmp_path / "notes.txt").write_text("not the user's notes\n")
    line = Integration(repo, "dots", include=("../../../../notes.txt",))

    async def go() -> str:
        await line.start()
        try:
            await line.checkout("t", 1)
        except Unconfined as exc:
            return str(exc)
        finally:
            await line.cleanup()
        return "no error"

    error = anyio.run(go)
    assert "has a `..` component" in error
    assert (repo / "notes.txt").read_text() == "the user's notes\n"


def _line_of(text: str, key: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(key))


def test_a_link_through_a_symlink_out_of_the_repository_is_refused_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "repo").mkdir()
    h = git_harness(tmp_path / "repo")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (h.root / "node_modules").symlink_to(outside)  # valid text: only the disk says where it goes
    (h.root / ".gitignore").write_text((h.root / ".gitignore").read_text() + "node_modules\n")
    h.settings.update(isolation="worktree", worktree_link=["node_modules"])
    shell_task(h, "t", "echo x > ../node_modules/planted")
    workflow = h.write()
    assert main(["validate", str(workflow)]) == 0
    capsys.readouterr()
    assert h.run() == 2
    err = capsys.readouterr().err
    line = _line_of(workflow.read_text(), "worktree_link")
    assert err == (
        f'prompter: {workflow}:{line}: worktree_link[0] = "node_modules" leads through a symlink '
        f"to {outside.resolve()}, outside the repository\n"
    )
    assert list(outside.iterdir()) == [] and not h.calls()


def test_a_symlink_a_task_committed_does_not_take_a_copy_out_of_the_worktree(
    tmp_path: Path,
) -> None:
    (tmp_path / "repo").mkdir()
    h = git_harness(tmp_path / "repo")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (h.root / "cfg").mkdir()
    (h.root / "cfg" / ".env").write_text("SECRET=1\n")
    (h.root / ".gitignore").write_text((h.root / ".gitignore").read_text() + ".env\n")
    h.settings.update(worktree_copy=["cfg/.env"])
    # The first task's agent replaces the folder with a symlink out of the repository; it lands.
    shell_task(h, "a", f"cd .. && rm -rf cfg && ln -s {outside} cfg")
    shell_task(h, "b", "true", depends_on=["a"])
    assert h.run() == 1
    status = h.tasks_status()
    assert status["a"][0] == "passed"
    assert status["b"] == (
        "failed",
        'worktree could not be created: worktree_copy[0] = "cfg/.env" would be placed through a '
        f"symlink in the task's worktree, at {outside.resolve()}/.env",
    )
    assert list(outside.iterdir()) == []  # no copy of the secret there
    assert (h.root / "cfg" / ".env").read_text() == "SECRET=1\n"


def test_a_link_into_git_s_own_data_is_refused(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    (repo / "gitdata").symlink_to(".git")  # the text is fine; the disk leads into .git
    line = Integration(repo, "gitdir", link=("gitdata",))

    async def go() -> str:
        await line.start()
        try:
            tree = await line.checkout("t", 1)
            return "linked" if (tree / "gitdata").is_symlink() else "not linked"
        except Unconfined as exc:
            return str(exc)
        finally:
            await line.cleanup()

    error = anyio.run(go)
    assert error.startswith('worktree_link[0] = "gitdata" leads through a symlink into git')


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["a", ".", "..", "", ".git", ".GIT", "b.git", "~"]), max_size=6))
def test_an_accepted_entry_stays_inside_the_repository(parts: list[str]) -> None:
    item = "/".join(parts)
    for text in (item, "/" + item):
        if worktree_path_problem(text) is None:
            normal = os.path.normpath(text)
            assert not os.path.isabs(normal) and normal != "." and not normal.startswith("..")
            assert ".git" not in normal.casefold().split("/")


def test_a_working_directory_a_task_made_a_symlink_out_is_not_run_in(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    h = git_harness(tmp_path / "repo")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    h.settings["isolation"] = "worktree"
    # The first task replaces the working directory with a symlink out of the repository.
    shell_task(h, "a", f"cd .. && rm -rf work && ln -s {outside} work")
    shell_task(h, "b", "echo b > b.txt", depends_on=["a"])
    assert h.run() == 1
    assert h.tasks_status()["b"] == (
        "failed",
        f"the working directory work is, in the task's worktree, a symlink to "
        f"{outside.resolve()}, outside it (a task committed it): not run there",
    )
    assert list(outside.iterdir()) == []
