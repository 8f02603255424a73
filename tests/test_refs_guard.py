"""The user's refs are the user's (issue 14, item 6): what an agent does to `HEAD`, branches and
tags of the repository is undone after its attempt, which fails naming it."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import anyio

from prompter.refguard import RefGuard

from .git_repos import git_harness, sh, shell_task
from .harness import Harness


def repo_harness(tmp_path: Path) -> tuple[Harness, str, str]:
    """A worktree-isolated harness in tmp_path/repo with two commits on the user's branch and a
    second branch; (harness, branch, its first commit)."""
    (tmp_path / "repo").mkdir()
    h = git_harness(tmp_path / "repo")
    h.settings["isolation"] = "worktree"
    old = sh(h.root, "rev-parse", "HEAD").strip()
    (h.root / "second.txt").write_text("second\n")
    sh(h.root, "add", "second.txt")
    sh(h.root, "commit", "-qm", "second")
    sh(h.root, "branch", "doomed", old)
    branch = sh(h.root, "symbolic-ref", "HEAD").strip()
    return h, branch, old


def refs(repo: Path) -> str:
    return sh(repo, "for-each-ref", "--format=%(refname) %(objectname)")


def test_what_an_agent_does_to_the_users_refs_is_undone_and_fails_the_attempt(
    tmp_path: Path,
) -> None:
    h, branch, old = repo_harness(tmp_path)
    sh(h.root, "pack-refs", "--all")  # the branches in packed-refs, as after a `git gc`
    before = refs(h.root)
    head = sh(h.root, "rev-parse", "HEAD").strip()
    script = (
        f"git update-ref {branch} {old} && git branch agent-branch && git tag v-agent "
        f"&& git branch -D doomed && git -C {h.root} checkout -q --detach && echo work > w.txt"
    )
    shell_task(h, "t", script)
    assert h.run() == 1
    assert h.tasks_status()["t"] == (
        "failed",
        "it changed the repository's refs, which are the user's: "
        f"detached HEAD at commit {old[:12]} (was {branch}), created refs/heads/agent-branch, "
        f"deleted refs/heads/doomed, moved {branch}, created refs/tags/v-agent; undone "
        "(commit in the task's own worktree only, without branches or tags)",
    )
    assert sh(h.root, "symbolic-ref", "HEAD").strip() == branch
    assert sh(h.root, "rev-parse", "HEAD").strip() == head  # the user's branch where it was
    assert {r for r in refs(h.root).splitlines() if "refs/prompter-undone/" not in r} == set(
        before.splitlines()
    )
    assert not (h.work / "w.txt").exists()  # the attempt failed: nothing landed


def test_the_reason_is_fed_back_and_a_retry_that_leaves_refs_alone_lands(tmp_path: Path) -> None:
    h, branch, _ = repo_harness(tmp_path)
    head = sh(h.root, "rev-parse", "HEAD").strip()
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    script = (
        f'echo "$2" > {prompts}/$1; if [ "$1" = 1 ]; then git update-ref {branch} HEAD; fi; '
        "echo done > out.txt && git add out.txt && git commit -q --allow-empty -m 'agent commit'"
    )
    h.task(
        "t",
        agent_command=["sh", "-c", script, "sh", "{attempt}", "{prompt}"],
        depends_on=[],
        max_attempts=2,
        verify_command="test -f out.txt",
    )
    assert h.run() == 0
    assert (
        f"Attempt 1 did not pass: it changed the repository's refs, which are the user's: "
        f"moved {branch}; undone" in (prompts / "2").read_text()
    )
    assert sh(h.root, "rev-parse", "HEAD").strip() == head
    assert (h.work / "out.txt").read_text() == "done\n"  # its own commit landed, as files


def test_an_agent_committing_in_its_own_worktree_changes_no_ref(tmp_path: Path) -> None:
    h, _, _ = repo_harness(tmp_path)
    before = refs(h.root)
    shell_task(
        h,
        "t",
        "echo c > c.txt && git add c.txt && git commit -qm 'agent commit'",
        verify_command="test -f c.txt",
    )
    assert h.run() == 0
    assert h.tasks_status()["t"] == ("passed", None)
    assert (h.work / "c.txt").read_text() == "c\n"
    assert refs(h.root) == before  # nothing undone, nothing kept


def test_a_branch_the_agent_checked_out_in_its_worktree_goes_and_its_commits_stay(
    tmp_path: Path,
) -> None:
    h, _, _ = repo_harness(tmp_path)
    shell_task(
        h, "t", "git checkout -q -b feature && echo f > f.txt && git add f.txt && git commit -qm f"
    )
    assert h.run("--keep-worktrees") == 1
    assert "created refs/heads/feature" in (h.tasks_status()["t"][1] or "")
    assert sh(h.root, "branch", "--list", "feature") == ""
    kept = sh(h.root, "for-each-ref", "--format=%(refname)", "refs/prompter-undone").split()
    assert len(kept) == 1 and kept[0].endswith("/heads/feature")
    assert sh(h.root, "show", f"{kept[0]}:work/f.txt") == "f\n"  # the agent's commit is kept
    (tree,) = (h.root / ".git" / "prompter").glob("*/wt-*")  # kept: the task failed
    assert sh(tree, "status", "--porcelain", "--branch").startswith("## HEAD (no branch)")
    assert sh(tree, "rev-parse", "HEAD") == sh(h.root, "rev-parse", kept[0])  # detached there


def test_a_ref_the_user_moves_during_the_run_is_put_back_and_kept(tmp_path: Path) -> None:
    # A check cannot tell who moved a ref: what differs from the snapshot is undone, and the
    # value it had is kept under refs/prompter-undone/<run>/ (nothing of the user's is lost).
    h, branch, _ = repo_harness(tmp_path)
    head = sh(h.root, "rev-parse", "HEAD").strip()
    guard = RefGuard(h.root, "r1")

    async def go() -> tuple[str | None, str | None]:
        await guard.start()
        sh(h.root, "commit", "-qm", "user's commit during the run", "--allow-empty")
        first = await guard.check()
        return first, await guard.check()

    first, second = anyio.run(go)
    assert first is not None and f"moved {branch}" in first and second is None
    assert sh(h.root, "rev-parse", "HEAD").strip() == head
    short = branch.removeprefix("refs/")
    kept = sh(h.root, "log", "-1", "--format=%s", f"refs/prompter-undone/r1/1/{short}")
    assert kept.strip() == "user's commit during the run"


def test_a_ref_undone_twice_keeps_both_values(tmp_path: Path) -> None:
    h, branch, _ = repo_harness(tmp_path)
    guard = RefGuard(h.root, "r2")

    async def go() -> None:
        await guard.start()
        for n in (1, 2):
            sh(h.root, "commit", "-qm", f"commit {n}", "--allow-empty")
            assert await guard.check() == f"moved {branch}"

    anyio.run(go)
    short = branch.removeprefix("refs/")
    for n in (1, 2):
        kept = sh(h.root, "log", "-1", "--format=%s", f"refs/prompter-undone/r2/{n}/{short}")
        assert kept.strip() == f"commit {n}"


def test_a_branch_made_by_an_attempt_cut_short_is_undone_at_the_end(tmp_path: Path) -> None:
    h, _, _ = repo_harness(tmp_path)
    shell_task(h, "t", "git branch late && sleep 60")
    proc = h.spawn()
    deadline = time.monotonic() + 30
    while not sh(h.root, "branch", "--list", "late") and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert sh(h.root, "branch", "--list", "late") == ""
    assert (
        "prompter: warning: the repository's refs changed during the run: created "
        "refs/heads/late; undone (their values are kept under refs/prompter-undone/"
    ) in err


def test_a_branch_deleted_while_the_agent_has_it_checked_out_comes_back(tmp_path: Path) -> None:
    h, _, old = repo_harness(tmp_path)
    shell_task(h, "t", "git checkout -q doomed && git update-ref -d refs/heads/doomed")
    assert h.run() == 1
    assert h.tasks_status()["t"][1] == (
        "it changed the repository's refs, which are the user's: deleted refs/heads/doomed; "
        "undone (commit in the task's own worktree only, without branches or tags)"
    )
    assert sh(h.root, "rev-parse", "refs/heads/doomed").strip() == old
