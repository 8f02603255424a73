"""The integration line on real git repositories."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from prompter.worktrees import Conflict, Integration, Landing, Merged, Recovered, recover

from .git_repos import git_harness, sh
from .harness import Harness


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

    async def go() -> tuple[Merged | Conflict, Merged | Conflict, Path, Landing]:
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
    assert sorted(changed.landed) == ["a.txt", "app.py", "b.txt"] and not changed.kept
    assert (repo / "a.txt").read_text() == "from a\n"
    assert (repo / "app.py").read_text() == "line 1\nline 2 (user)\nline 3 (b)\n"
    assert (repo / "notes.txt").read_text() == "untracked\n"  # the user's work is still there
    assert (repo / ".env").read_text() == "SECRET=1\n"
    assert sh(repo, "rev-parse", "HEAD") == head  # nothing committed on the user's branch
    assert "A  staged.txt" in sh(repo, "status", "--porcelain")  # their index as it was
    assert not c.exists()  # cleaned up
    assert sh(repo, "for-each-ref", "refs/prompter") == ""
    assert "prompter" not in sh(repo, "worktree", "list")


def test_a_reused_worktree_holds_nothing_of_the_task_before_it(repo: Path) -> None:
    line = Integration(repo, "r-reuse")

    async def go() -> tuple[Path, Path, Path, Path]:
        await line.start()
        a = await line.checkout("a", 1)
        (a / "a.txt").write_text("from a\n")
        (a / "build").mkdir()
        (a / "build" / "out.o").write_text("ignored build output\n")
        commit = await line.commit("a", a)
        assert commit is not None and isinstance(await line.merge("a", commit), Merged)
        line.release(a)
        (a / "stray.txt").write_text("written after the commit\n")  # a leftover process
        b = await line.checkout("b", 1)  # the same worktree, reused
        broken = await line.checkout("c", 1)  # a new one: the pool is empty
        line.release(broken)
        sh(broken, "update-ref", "-d", "HEAD")  # a tree git cannot clean any more
        c = await line.checkout("c", 2)
        await line.cleanup(keep_worktrees=True)
        return a, b, broken, c

    a, b, broken, c = anyio.run(go)
    assert b == a
    assert (b / "a.txt").read_text() == "from a\n"  # at the tip: a's merged work
    assert not (b / "build").exists() and not (b / "stray.txt").exists()
    assert sh(b, "status", "--porcelain", "--ignored") == ""
    assert sh(b, "rev-parse", "HEAD").strip() == line.tip
    assert c != broken and not broken.exists()  # removed, and replaced by a new one
    assert (c / "a.txt").read_text() == "from a\n" and sh(c, "status", "--porcelain") == ""


def test_recover_finishes_an_ended_run_and_leaves_a_running_one_alone(repo: Path) -> None:
    # Two runs in one repository (say two workflows): the second one's start-up recovery must
    # not land or delete what the first is still working on.
    running = Integration(repo, "running")
    ended = Integration(repo, "ended")

    async def go() -> tuple[list[Recovered], Path, Path]:
        await running.start()
        await ended.start()
        busy = await running.checkout("a", 1)
        (busy / "a.txt").write_text("work in progress\n")
        left = await ended.checkout("b", 1)
        (left / "b.txt").write_text("passed\n")
        commit = await ended.commit("b", left)
        assert commit and isinstance(await ended.merge("b", commit), Merged)
        await ended.park()  # interrupted: what passed waits under `pending`
        cleaned = await recover(repo)
        return cleaned, busy, left

    cleaned, busy, left = anyio.run(go)
    assert cleaned == [Recovered("ended", Landing(("b.txt",)))]
    assert (repo / "b.txt").read_text() == "passed\n"  # the ended run's work landed
    assert not left.exists()
    assert (busy / "a.txt").read_text() == "work in progress\n"  # the running one is untouched
    refs = sh(repo, "for-each-ref", "--format=%(refname)", "refs/prompter").split()
    assert refs == ["refs/prompter/running/base", "refs/prompter/running/tip"]

    async def finish() -> list[Recovered]:
        await running.cleanup()
        return await recover(repo)

    assert anyio.run(finish) == []
    assert not busy.exists() and sh(repo, "for-each-ref", "refs/prompter") == ""


def _run_one_task(line: Integration, files: dict[str, str]) -> None:
    """Start `line` and merge one task that writes `files`."""

    async def go() -> None:
        await line.start()
        tree = await line.checkout("t", 1)
        for name, text in files.items():
            (tree / name).write_text(text)
        commit = await line.commit("t", tree)
        assert commit and isinstance(await line.merge("t", commit), Merged)

    anyio.run(go)


def test_landing_keeps_a_file_the_user_changed_during_the_run(repo: Path) -> None:
    line = Integration(repo, "r-edit")
    _run_one_task(line, {"app.py": "from the task\n", "new.txt": "new\n", "notes.txt": "task\n"})
    # Meanwhile the user goes on working: app.py edited, notes.txt (untracked) deleted.
    (repo / "app.py").write_text("the user's later edit\n")
    (repo / "notes.txt").unlink()

    async def end() -> Landing:
        landing = await line.apply()
        await line.cleanup()
        return landing

    landing = anyio.run(end)
    assert landing.landed == ("new.txt",)
    assert set(landing.kept) == {"app.py", "notes.txt"}
    assert (repo / "app.py").read_text() == "the user's later edit\n"
    assert not (repo / "notes.txt").exists()
    assert (repo / "new.txt").read_text() == "new\n"
    # Nothing of the run is lost either: its version waits under a ref the clean-up keeps.
    assert landing.ref == "refs/prompter-kept/r-edit"
    assert sh(repo, "show", f"{landing.ref}:app.py") == "from the task\n"
    warning = landing.warning()
    assert (
        warning
        and "app.py" in warning
        and "git restore --source=refs/prompter-kept/r-edit" in warning
    )
    assert anyio.run(recover, repo) == []
    assert sh(repo, "for-each-ref", "--format=%(refname)").split().count(landing.ref) == 1


def test_a_landing_cut_short_is_finished_without_mistaking_landed_files_for_edits(
    repo: Path,
) -> None:
    names = {"plain.txt": "p\n", "*.txt": "star\n", "café.txt": "accent\n"}
    line = Integration(repo, "r-cut")
    _run_one_task(line, names)
    # A kill in the middle of landing: marked as applying, one file already written.
    sh(repo, "update-ref", "refs/prompter/r-cut/applying", line.tip)
    (repo / "plain.txt").write_text("p\n")
    line._release_run()  # the process is gone: its lock with it

    recovered = anyio.run(recover, repo)
    assert [r.run_id for r in recovered] == ["r-cut"]
    assert sorted(recovered[0].landing.landed) == sorted(names) and not recovered[0].landing.kept
    for name, text in names.items():
        assert (repo / name).read_text() == text
    assert sh(repo, "for-each-ref", "refs/prompter") == ""


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


# -- whole runs ---------------------------------------------------------------------------------


def two_parallel_tasks(h: Harness) -> None:
    # Each verify fails if it sees the other's (unfinished, unmerged) file.
    h.task(
        "a",
        [{"write": {"a.txt": "A"}, "sleep": 0.8}],
        depends_on=[],
        verify_command="test -f a.txt && test ! -e b.txt",
    )
    h.task(
        "b",
        [{"write": {"b.txt": "B"}, "sleep": 0.8}],
        depends_on=[],
        verify_command="test -f b.txt && test ! -e a.txt",
    )
    h.task("c", depends_on=["a", "b"], verify_command="test -f a.txt && test -f b.txt")


def test_parallel_tasks_do_not_see_each_other_and_both_land(tmp_path: Path) -> None:
    h = git_harness(tmp_path)
    two_parallel_tasks(h)
    head = sh(tmp_path, "rev-parse", "HEAD")
    assert h.run() == 0
    assert h.tasks_status() == {n: ("passed", None) for n in "abc"}
    assert (h.work / "a.txt").read_text() == "A" and (h.work / "b.txt").read_text() == "B"
    # The user's own uncommitted work is still there, and nothing was committed for them.
    assert (h.work / "app.py").read_text() == "line 1\nline 2 (user)\nline 3\n"
    assert (h.work / "scratch.txt").read_text() == "the user's untracked file\n"
    assert sh(tmp_path, "rev-parse", "HEAD") == head
    assert sh(tmp_path, "for-each-ref", "refs/prompter") == ""
    assert "prompter" not in sh(tmp_path, "worktree", "list")
    # The state says what each task changed.
    changed = h.status()["tasks"]["a"]["attempts"][0]["changed_files"]
    assert changed == ["work/a.txt +1 -0"]
    summary = (tmp_path / ".prompter" / "summary.md").read_text()
    from prompter.report.summary import md  # the table's escaping of untrusted text

    assert f"| {md('changed work/a.txt +1 -0')} |" in summary


def test_the_same_tasks_in_a_shared_tree_fail(tmp_path: Path) -> None:
    """The counterfactual: without isolation the verify commands do see each other."""
    h = git_harness(tmp_path)
    h.settings["isolation"] = "shared"
    two_parallel_tasks(h)
    assert h.run() == 1


def test_same_lines_edited_by_two_tasks_conflict_and_name_the_file(tmp_path: Path) -> None:
    h = git_harness(tmp_path)
    h.task(
        "first",
        [{"write": {"app.py": "line 1\nline 2 (first)\nline 3\n"}, "sleep": 0.1}],
        depends_on=[],
        max_attempts=1,
    )
    h.task(
        "second",
        [{"write": {"app.py": "line 1\nline 2 (second)\nline 3\n"}, "sleep": 1.0}],
        depends_on=[],
        max_attempts=1,
    )
    assert h.run() == 1
    status = h.tasks_status()
    assert status["first"] == ("passed", None)
    assert status["second"] == ("failed", "merge conflict with `first` in work/app.py")
    assert (h.work / "app.py").read_text() == "line 1\nline 2 (first)\nline 3\n"


def test_a_conflict_is_retried_on_the_new_tip_with_the_conflict_in_the_prompt(
    tmp_path: Path,
) -> None:
    h = git_harness(tmp_path)
    h.task(
        "first",
        [{"write": {"app.py": "line 1\nline 2 (first)\nline 3\n"}, "sleep": 0.1}],
        depends_on=[],
    )
    h.task(
        "second",
        [
            {"write": {"app.py": "line 1\nline 2 (second)\nline 3\n"}, "sleep": 1.0},
            {"write": {"app.py": "line 1\nline 2 (first, then second)\nline 3\n"}},
        ],
        depends_on=[],
        max_attempts=2,
    )
    assert h.run() == 0
    retry = [c for c in h.calls() if c["task"] == "second"][-1]
    assert "merge conflict with `first` in work/app.py" in retry["prompt"]
    assert "could not be merged" in retry["prompt"]
    assert (h.work / "app.py").read_text() == "line 1\nline 2 (first, then second)\nline 3\n"


def test_sigterm_leaves_the_user_tree_as_it_was_and_the_next_run_lands_the_rest(
    tmp_path: Path,
) -> None:
    import signal

    h = git_harness(tmp_path)
    h.task("quick", [{"write": {"quick.txt": "Q"}}], depends_on=[])
    h.task("slow", [{"write": {"slow.txt": "S"}, "sleep": 30}], depends_on=[])
    before = {p.name: p.read_bytes() for p in h.work.iterdir()}
    proc = h.spawn()
    h.wait_until("quick")  # merged into the run's line, not into the user's tree
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 143, err
    assert {p.name: p.read_bytes() for p in h.work.iterdir()} == before
    assert "worktrees: your working tree is as it was; what passed lands at the next run" in out
    assert h.tasks_status()["quick"] == ("passed", None)
    # The next run lands what passed, then runs what is left.
    h.plan["slow"] = [{"write": {"slow.txt": "S"}}]
    assert h.run() == 0
    assert (h.work / "quick.txt").read_text() == "Q" and (h.work / "slow.txt").read_text() == "S"
    assert sh(tmp_path, "for-each-ref", "refs/prompter") == ""


def test_after_sigkill_the_next_run_lands_what_had_passed(tmp_path: Path) -> None:
    """A kill leaves no `pending` ref, only the tip with the passed work: the state says those
    tasks passed, so the next run must land them rather than drop the tip."""
    import signal
    import time

    h = git_harness(tmp_path)
    h.task("quick", [{"write": {"quick.txt": "Q"}}], depends_on=[])
    h.task("slow", [{"write": {"slow.txt": "S"}, "sleep": 30}], depends_on=[])
    h.task("after", [{"write": {"after.txt": "A"}}], depends_on=["quick"])
    proc = h.spawn()
    deadline = time.monotonic() + 30
    while not any(c["task"] == "after" for c in h.calls()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # after has merged by now
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=15)
    assert not (h.work / "quick.txt").exists()  # nothing landed yet
    assert h.tasks_status()["quick"] == ("passed", None)
    h.plan["slow"] = [{"write": {"slow.txt": "S"}}]
    assert h.run() == 0
    assert [c["task"] for c in h.calls()].count("quick") == 1  # not run again ...
    for name, text in (("quick.txt", "Q"), ("after.txt", "A"), ("slow.txt", "S")):
        assert (h.work / name).read_text() == text  # ... and its work is there
    assert sh(tmp_path, "for-each-ref", "refs/prompter") == ""


def test_a_file_the_user_edits_during_the_run_is_not_overwritten(tmp_path: Path) -> None:
    import time

    h = git_harness(tmp_path)
    h.task("a", [{"write": {"app.py": "the task's\n", "a.txt": "A"}, "sleep": 1.5}], depends_on=[])
    h.task("b", [{"write": {"b.txt": "B"}}], depends_on=[])
    proc = h.spawn()
    deadline = time.monotonic() + 30
    while not any(c["task"] == "a" for c in h.calls()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (h.work / "app.py").write_text("the user's, written during the run\n")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert (h.work / "app.py").read_text() == "the user's, written during the run\n"
    assert (h.work / "a.txt").read_text() == "A" and (h.work / "b.txt").read_text() == "B"
    warning = next(line for line in err.splitlines() if line.startswith("prompter: warning:"))
    assert "kept your version of 1 file" in warning and "app.py" in warning
    ref = warning.rsplit("--source=", 1)[1].split()[0]
    path = (h.work / "app.py").relative_to(tmp_path).as_posix()  # named from the repository root
    assert path in warning
    assert sh(tmp_path, "show", f"{ref}:{path}") == "the task's\n"


def test_isolation_worktree_outside_git_is_a_usage_error(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.settings["isolation"] = "worktree"
    h.task("a", depends_on=[])
    assert h.run() == 2


def test_a_retry_that_conflicts_again_fails_once_attempts_run_out(tmp_path: Path) -> None:
    """first merges; second conflicts, retries on the new tip, and conflicts again with third,
    which changed the same line meanwhile."""
    h = git_harness(tmp_path)
    line2 = "line 1\nline 2 ({})\nline 3\n"
    h.task("first", [{"write": {"app.py": line2.format("first")}, "sleep": 0.1}], depends_on=[])
    h.task(
        "second",
        [{"write": {"app.py": line2.format("second")}, "sleep": 1.0}],
        depends_on=[],
        max_attempts=2,
    )
    h.task(
        "third",
        [{"write": {"app.py": line2.format("third")}, "sleep": 1.4}],
        depends_on=["first"],
    )
    assert h.run() == 1
    status = h.tasks_status()
    assert status["first"] == ("passed", None) and status["third"] == ("passed", None)
    assert status["second"] == ("failed", "merge conflict with `third` in work/app.py")
    attempts = h.status()["tasks"]["second"]["attempts"]
    assert [a["conflict"] for a in attempts] == [
        "merge conflict with `first` in work/app.py",
        "merge conflict with `third` in work/app.py",
    ]
    assert (h.work / "app.py").read_text() == line2.format("third")
