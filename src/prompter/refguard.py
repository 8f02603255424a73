"""The user's refs stay the user's: what an attempt changed of `HEAD`, `refs/heads/*` and
`refs/tags/*` is undone, and the attempt fails naming it.

Worktrees share the repository's refs: an agent in its worktree that runs
`git update-ref refs/heads/main …`, `git branch`, `git tag` or `git checkout -b` changes the
user's repository. The run takes a snapshot of those refs (and of `HEAD` of the working tree it
started in) at the start; after each attempt one `git for-each-ref` and one `git symbolic-ref`
compare them with it, and what differs is put back in one `git update-ref --stdin` transaction
that expects each ref to be as it was just seen (a ref moved again meanwhile is not
overwritten: the transaction fails and says so). The value a ref had before it was put back is
kept under `refs/prompter-undone/<run>/<n>/…` (a branch the user created or moved from their
terminal during the run is undone too — a check cannot tell who changed a ref — and nothing of
it is lost). A task worktree that has such a branch checked out is detached at its commit first,
so the agent's commits stay its `HEAD`.

Attribution: attempts run concurrently and the check sees every change since the snapshot; a
change is undone and blamed on the attempt whose check finds it first, which is the attempt
that made it unless another attempt ended while it was running. A last check at the end of
the run (also an interrupted one) catches what no attempt's check saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import anyio

from .worktrees import GitError, git

GUARDED = ("refs/heads", "refs/tags")
UNDONE_ROOT = "refs/prompter-undone"  # outside refs/prompter: `prompter clean` leaves it


@dataclass(frozen=True)
class Refs:
    """HEAD ("ref:NAME" when on a branch, else the commit) and the guarded refs' values."""

    head: str
    refs: dict[str, str]


@dataclass
class RefGuard:
    repo: Path  # the working tree the run started in: its HEAD is guarded
    run_id: str
    snapshot: Refs | None = None
    _lock: anyio.Lock = field(default_factory=anyio.Lock)
    _undos: int = 0  # checks that undid something: each keeps what it undid under its number

    async def start(self) -> None:
        self.snapshot = await read_refs(self.repo)

    async def check(self, worktrees: Path | None = None) -> str | None:
        """Undo what changed since the snapshot; what it was ("moved refs/heads/main, …"), or
        None when nothing did. Task worktrees under `worktrees` that have a branch checked
        out that is put back are detached first."""
        assert self.snapshot is not None, "start() first"
        async with self._lock:  # one check at a time: the first to see a change undoes it
            now = await read_refs(self.repo)
            was = self.snapshot
            if now == was:
                return None
            changed = sorted(
                name
                for name in was.refs.keys() | now.refs.keys()
                if was.refs.get(name) != now.refs.get(name)
            )
            if worktrees is not None and changed:
                await self._detach(worktrees, set(changed))
            if now.head != was.head and was.head:
                await _set_head(self.repo, was.head)
            if changed:
                await self._restore(changed, was.refs, now.refs)
            return _describe(changed, was, now)

    @property
    def undone_root(self) -> str:
        """Where the values of undone refs are kept (a number per check that undid any)."""
        return f"{UNDONE_ROOT}/{self.run_id}"

    async def _restore(self, names: list[str], was: dict[str, str], now: dict[str, str]) -> None:
        self._undos += 1
        kept = f"{self.undone_root}/{self._undos}"
        lines = []
        for name in names:
            old, new = was.get(name), now.get(name)
            if new is not None:  # kept: it may be the user's own
                lines.append(f"update {kept}/{_short(name)} {new}")
            if old is None:
                lines.append(f"delete {name} {new}")
            elif new is None:
                lines.append(f"create {name} {old}")
            else:
                lines.append(f"update {name} {old} {new}")
        script = "".join(line + "\n" for line in lines).encode()
        try:
            await git(self.repo, "update-ref", "--stdin", input=script)
        except GitError as exc:
            raise GitError(f"the refs could not be put back ({exc})") from None

    async def _detach(self, root: Path, names: set[str]) -> None:
        """Detach the task worktrees (below `root`) that have one of `names` checked out."""
        _, out = await git(self.repo, "worktree", "list", "--porcelain")
        path: Path | None = None
        for line in out.splitlines():
            if line.startswith("worktree "):
                path = Path(line.removeprefix("worktree "))
            elif line.startswith("branch ") and path is not None:
                branch = line.removeprefix("branch ")
                if branch in names and path.is_relative_to(root):
                    verify = ("rev-parse", "-q", "--verify", "HEAD")
                    code, commit = await git(path, *verify, ok=(0, 1, 128))
                    if code == 0:  # else the branch is gone: nothing to keep the HEAD at
                        await git(path, "update-ref", "--no-deref", "HEAD", commit.strip())


async def read_refs(repo: Path) -> Refs:
    fmt = "--format=%(refname) %(objectname)"
    _, out = await git(repo, "for-each-ref", fmt, *GUARDED)
    refs = dict(line.split(" ", 1) for line in out.splitlines() if line)
    code, branch = await git(repo, "symbolic-ref", "-q", "HEAD", ok=(0, 1))
    if code == 0:
        return Refs("ref:" + branch.strip(), refs)
    code, commit = await git(repo, "rev-parse", "-q", "--verify", "HEAD", ok=(0, 1))
    return Refs(commit.strip(), refs)


async def _set_head(repo: Path, head: str) -> None:
    if head.startswith("ref:"):
        await git(repo, "symbolic-ref", "HEAD", head.removeprefix("ref:"))
    else:
        await git(repo, "update-ref", "--no-deref", "HEAD", head)


def _short(name: str) -> str:
    return name.removeprefix("refs/")


def _head(value: str) -> str:
    return value.removeprefix("ref:") if value.startswith("ref:") else f"commit {value[:12]}"


def _describe(changed: list[str], was: Refs, now: Refs) -> str:
    what = []
    if now.head != was.head:
        verb = "switched HEAD to" if now.head.startswith("ref:") else "detached HEAD at"
        what.append(f"{verb} {_head(now.head)} (was {_head(was.head)})")
    for name in changed:
        old, new = was.refs.get(name), now.refs.get(name)
        if old is None:
            what.append(f"created {name}")
        elif new is None:
            what.append(f"deleted {name}")
        else:
            what.append(f"moved {name}")
    return ", ".join(what[:5]) + (f" and {len(what) - 5} more" if len(what) > 5 else "")
