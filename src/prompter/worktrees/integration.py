"""The integration line of a run: its base (the user's tree at the start), pooled worktrees at
its tip, each passed task's changes committed and merged into it one at a time."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from .. import identity
from ..config import worktree_path_problem
from .confinement import Unconfined, check_tree, confined_source, confined_target
from .dependencies import DEPENDENCIES_KEY
from .git import GitError, git, git_bytes, git_dir, raw_entries, shown
from .landing import Landing, land
from .runs import REF_ROOT, lock_run, run_home_path, unlock_run
from .snapshot import snapshot_tree

if TYPE_CHECKING:
    from ..refguard import RefGuard


# The most of a task's diff its attempt records (`AttemptRecord.diff`): one that shows what a
# small change did, at a bounded cost to the state (changes.patch has the rest).
DIFF_BYTES = 8 * 1024
DIFF_LINES = 200


@dataclass(frozen=True)
class Merged:
    tip: str
    files: tuple[str, ...]  # what the task changed
    changes: tuple[str, ...]  # the same, as "path +added -deleted"
    lines: int = 0  # lines added and deleted, in all (binary files count none)


@dataclass(frozen=True)
class Conflict:
    paths: tuple[str, ...]
    with_task: str | None  # the task whose merged change the conflict is with
    changes: tuple[str, ...] = ()  # what the task changed, as "path +added -deleted"

    @property
    def reason(self) -> str:
        where = ", ".join(self.paths[:5]) + (" …" if len(self.paths) > 5 else "")
        other = f"`{self.with_task}`" if self.with_task else "an earlier change"
        return f"merge conflict with {other} in {where}"


async def worktrees_unfit(repo: Path, workdir: Path) -> str | None:
    """Why tasks cannot work in worktrees of `repo`, or None. A worktree holds what git
    tracks: not the files of submodules (checked out on their own), and nothing of a working
    directory git ignores — a task's work there would be lost, not merged."""
    if (repo / ".gitmodules").exists():
        return "the repository has submodules, which a task's worktree would not have"
    # A file a task would create there (the name is a probe: `*` ignores it, `*.log` not).
    folder = workdir.resolve().relative_to(repo.resolve()).as_posix()
    probe = "prompter-new-file" if folder == "." else f"{folder}/prompter-new-file"
    code, _ = await git(repo, "check-ignore", "-q", "--no-index", probe, ok=(0, 1))
    if code == 0:
        return f"git ignores what is created in the working directory ({folder}/)"
    return None


@dataclass
class Integration:
    repo: Path  # the user's repository root
    run_id: str
    include: tuple[str, ...] = ()  # ignored paths copied into each worktree (e.g. ".env")
    link: tuple[str, ...] = ()  # ignored paths symlinked into each worktree (e.g. node_modules)
    # Dependency folders found in the user's tree (`dependency_links`), linked like `link`; one
    # that cannot be placed in a worktree is left out there, not an error.
    deps: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()  # never part of the base (prompter's own report folder)
    base: str = ""
    tip: str = ""
    head: str | None = None  # the user's HEAD at the start (None in a repository without one)
    git_dir: Path | None = (
        None  # the common git directory (a linked worktree has its own .git file)
    )
    changed_by: dict[str, str] = field(default_factory=dict)  # path -> last task merging it
    guard: RefGuard | None = None  # the user's refs as at the start (set by `start`)
    _lock: anyio.Lock = field(default_factory=anyio.Lock)
    _pool: list[Path] = field(default_factory=list)  # worktrees a task has finished with
    _checked_out: dict[Path, str] = field(default_factory=dict)  # worktree -> the tip it got
    _made: int = 0
    _alive: int | None = None  # the flock that tells `recover` in other runs this one is alive

    @property
    def ref(self) -> str:
        return f"{REF_ROOT}/{self.run_id}"

    @property
    def root(self) -> Path:
        """Worktrees live in the git directory: outside the user's tree, on the same disk."""
        assert self.git_dir is not None, "start() first"
        return self.git_dir / "prompter" / self.run_id

    async def start(self) -> str:
        """Commit the working tree as it is (private index) as the base of the line."""
        from ..refguard import RefGuard  # it runs git through this module

        self.git_dir = await git_dir(self.repo)
        self.guard = RefGuard(self.repo, self.run_id)
        await self.guard.start()
        self._alive = lock_run(self.git_dir, self.run_id)
        assert self._alive is not None, "run ids are unique"
        # Linked worktrees share refs and the git directory: the run's work lands only here.
        run_home_path(self.git_dir, self.run_id).write_text(str(self.repo.resolve()))
        code, out = await git(self.repo, "rev-parse", "--verify", "-q", "HEAD", ok=(0, 1))
        self.head = out.strip() if code == 0 else None
        tree = await snapshot_tree(self.repo, self.exclude, f"prompter-index-{self.run_id}")
        parents = ["-p", self.head] if self.head else []
        message = f"prompter {self.run_id}: the working tree at the start"
        _, commit = await git(self.repo, "commit-tree", tree.strip(), *parents, "-m", message)
        self.base = self.tip = commit.strip()
        await git(self.repo, "update-ref", f"{self.ref}/base", self.base)
        await git(self.repo, "update-ref", f"{self.ref}/tip", self.tip)
        return self.base

    async def checkout(self, task: str, attempt: int) -> Path:
        """A clean detached worktree at the current tip, with the `include` files.

        Worktrees are reused: writing out a whole tree is the expensive part (seconds for a big
        repository), while moving a clean worktree to a new tip only writes what differs.
        """
        tip = self.tip  # the tip of this moment: merges of other tasks may move it meanwhile
        path = await self._reuse(tip)
        if path is None:
            # One git command on the shared repository at a time: concurrent `worktree add`
            # calls race on its administrative files.
            async with self._lock:
                self._made += 1
                path = self.root / f"wt-{self._made}"
                if path.exists():
                    await self._remove(path)
                identity.make_dirs(path.parent)  # git, as the tree's owner, writes in it
                args = ("worktree", "add", "--detach", "--no-checkout", "--quiet", str(path))
                await git(self.repo, *args, tip)
            # Writing the files is the slow part; it touches only this worktree: no lock.
            await git(path, "reset", "-q", "--hard")
        self._checked_out[path] = tip
        try:
            copies = self._placed(path, "worktree_copy", self.include)
            links = self._placed(path, "worktree_link", self.link)
            for index, source, target in copies:
                if source.is_dir():
                    check_tree(path, target, "worktree_copy", index, self.include[index])
        except Unconfined:
            self._pool.append(path)  # clean still: the next checkout takes it
            raise
        # As the tree's owner: agents of other tasks may be changing this worktree meanwhile.
        with identity.acting_as_user():
            for _, source, target in copies:
                if source.is_dir():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
                elif source.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, target, follow_symlinks=False)
            for _, source, target in links + self._dependencies(path):
                if source.exists() and not os.path.lexists(target):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(source, target_is_directory=source.is_dir())
        return path

    def _dependencies(self, worktree: Path) -> list[tuple[int, Path, Path]]:
        """Like `_placed` for the dependency folders, leaving out (not refusing) one that is no
        longer confined: a default must never fail a task."""
        assert self.git_dir is not None, "start() first"
        placed = []
        for index, item in enumerate(self.deps):
            try:
                source = confined_source(self.repo, self.git_dir, DEPENDENCIES_KEY, index, item)
                target = confined_target(worktree, DEPENDENCIES_KEY, index, item)
            except Unconfined:
                continue
            placed.append((index, source, target))
        return placed

    def _placed(
        self, worktree: Path, key: str, items: Sequence[str]
    ) -> list[tuple[int, Path, Path]]:
        """(index, source in the repository, target in the worktree) of each entry, both
        resolved and confined: all checked before anything is written (raises `Unconfined`)."""
        assert self.git_dir is not None, "start() first"
        return [
            (
                index,
                confined_source(self.repo, self.git_dir, key, index, item),
                confined_target(worktree, key, index, item),
            )
            for index, item in enumerate(items)
        ]

    async def _reuse(self, tip: str) -> Path | None:
        """A worktree from the pool, cleaned of the last task's leftovers (ignored files
        included) and moved to the tip; None when there is none to reuse."""
        while self._pool:
            path = self._pool.pop()
            try:
                await git(path, "reset", "-q", "--hard")
                # -ff: also a git repository a task created (a single -f leaves those)
                await git(path, "clean", "-q", "-ff", "-d", "-x")
                await git(path, "checkout", "-q", "--detach", tip)
            except GitError:
                await self.remove(path)  # not reusable: try the next, or make a new one
                continue
            return path
        return None

    async def commit(self, task: str, worktree: Path) -> str | None:
        """The task's changes as one commit on the tip its worktree was checked out at; None if
        it changed nothing. Commits the agent made itself are part of it: what counts is the
        files, not the worktree's HEAD."""
        root = worktree.resolve()
        for item in self.link + self.deps:  # our symlinks (into the user's tree): not the work
            if worktree_path_problem(item):
                continue
            lexical = root / item
            parent = Path(os.path.realpath(lexical.parent))
            if not parent.is_relative_to(root):  # an agent's symlink on the way out: not there
                continue
            # Removed also though it leads out of the worktree, as each of ours does: a `.venv/`
            # or `node_modules/` pattern ignores folders, not a symlink, which `add` would take.
            if (parent / lexical.name).is_symlink():
                (parent / lexical.name).unlink()
        start = self._checked_out[worktree]
        try:
            await git(worktree, "add", "-A")
        except GitError as exc:
            nested = await _nested_repositories(worktree)
            raise (_nested_error(nested) if nested else exc) from None
        _, tree = await git(worktree, "write-tree")
        _, before = await git(worktree, "rev-parse", f"{start}^{{tree}}")
        if tree.strip() == before.strip():
            return None
        gitlinks = await _new_gitlinks(worktree, start)
        if gitlinks:
            raise _nested_error(gitlinks)
        message = f"prompter: {task}"
        _, out = await git(worktree, "commit-tree", tree.strip(), "-p", start, "-m", message)
        return out.strip()

    async def merge(self, task: str, commit: str) -> Merged | Conflict:
        """Merge the task's commit into the tip, one merge at a time."""
        files, changes, count = await self._changes(commit)
        async with self._lock:
            code, out = await git(
                self.repo,
                "merge-tree",
                "--write-tree",
                "--name-only",
                "--no-messages",
                "-z",  # names as they are, NUL-terminated (a tab, a newline)
                self.tip,
                commit,
                ok=(0, 1),
            )
            lines = out.split("\0")
            if code == 1:
                paths = tuple(dict.fromkeys(p for p in lines[1:] if p))
                others = [self.changed_by[p] for p in paths if p in self.changed_by]
                return Conflict(paths, others[0] if others else None, changes)
            message = f"prompter: merge {task}"
            _, new = await git(
                self.repo, "commit-tree", lines[0], "-p", self.tip, "-p", commit, "-m", message
            )
            # Compare-and-swap on the ref: nothing else may have moved it meanwhile.
            await git(self.repo, "update-ref", f"{self.ref}/tip", new.strip(), self.tip)
            self.tip = new.strip()
            for path in files:
                self.changed_by[path] = task
            return Merged(self.tip, files, changes, count)

    async def _changes(self, commit: str) -> tuple[tuple[str, ...], tuple[str, ...], int]:
        """What a task commit changed: its paths, "path +added -deleted" per path ("+? -?" for
        binary files), and the lines added and deleted in all."""
        args = ("diff", "--numstat", "--no-renames", "-z", f"{commit}^", commit)
        _, out = await git(self.repo, *args)  # -z: names as they are (a tab, a newline)
        paths, rows, lines = [], [], 0
        for line in filter(None, out.split("\0")):
            added, deleted, path = line.split("\t", 2)
            paths.append(path)
            rows.append(f"{path} +{added.replace('-', '?')} -{deleted.replace('-', '?')}")
            lines += sum(int(n) for n in (added, deleted) if n.isdigit())
        return tuple(paths), tuple(rows), lines

    async def small_diff(self, commit: str, lines: int) -> str | None:
        """The task commit as `git diff` against its parent, if it is small (at most
        DIFF_LINES lines and DIFF_BYTES bytes); else, or if git cannot tell, None.

        `lines` (added and deleted, `Merged.lines`) spares running it on a large change.
        Neither the repository's external diff nor a textconv filter runs: the diff is the
        files as committed, whatever the agent put into the attributes or the config."""
        if lines > DIFF_LINES:
            return None
        args = ("diff", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames")
        try:
            _, out = await git_bytes(self.repo, *args, f"{commit}^", commit)
        except GitError:
            return None  # the record's changed files still say what changed
        if len(out) > DIFF_BYTES or out.count(b"\n") > DIFF_LINES:
            return None
        return out.decode("utf-8", "replace")

    async def apply(self) -> Landing:
        """Write the tip's content into the user's working tree (not HEAD, not the index),
        except over files the user changed meanwhile. A crash in the middle is finished by the
        next run."""
        return await land(self.repo, self.run_id, self.base, self.tip)

    async def park(self) -> None:
        """An interrupted run leaves the user's tree as it was; what passed waits under
        `pending` and lands at the start of the next run (see `recover`)."""
        await git(self.repo, "update-ref", f"{self.ref}/pending", self.tip)
        await self._remove_worktrees()
        self._release_run()

    async def _remove_worktrees(self) -> None:
        if self.root.exists():
            for path in sorted(self.root.iterdir()):
                await self.remove(path)
            shutil.rmtree(self.root, ignore_errors=True)

    def release(self, worktree: Path) -> None:
        """Back to the pool, as it is: the next checkout cleans it. Not cleaned here, since a
        release comes between a task's merge and the record of its pass: the longer that
        takes, the likelier a kill in between, after which the task runs again."""
        self._pool.append(worktree)

    async def remove(self, worktree: Path) -> None:
        async with self._lock:
            await self._remove(worktree)

    async def _remove(self, worktree: Path) -> None:
        await git(self.repo, "worktree", "remove", "--force", str(worktree), ok=(0, 128))
        if worktree.exists():
            shutil.rmtree(worktree, ignore_errors=True)

    async def cleanup(self, keep_worktrees: bool = False) -> None:
        """Worktrees (unless kept) and refs of this run go; the user's tree is not touched."""
        if self.git_dir is not None:
            run_home_path(self.git_dir, self.run_id).unlink(missing_ok=True)
        if not keep_worktrees:
            await self._remove_worktrees()
        await git(self.repo, "worktree", "prune")
        for name in ("base", "tip"):
            await git(self.repo, "update-ref", "-d", f"{self.ref}/{name}", ok=(0, 1))
        self._release_run()

    def _release_run(self) -> None:
        if self._alive is not None and self.git_dir is not None:
            unlock_run(self.git_dir, self.run_id, self._alive)
            self._alive = None


async def _new_gitlinks(worktree: Path, start: str) -> list[str]:
    """Paths the index now holds as a git repository (a gitlink) that `start` did not."""
    args = ("diff", "--cached", "--raw", "--no-renames", "-z", "--diff-filter=AT", start)
    _, out = await git_bytes(worktree, *args)
    return [shown(path) for meta, path in raw_entries(out) if meta[1] == "160000"]


async def _nested_repositories(worktree: Path) -> list[str]:
    """Folders below the worktree that are git repositories of their own (`git add` refuses
    one without a commit)."""
    _, out = await git(worktree, "ls-files", "--others", "--directory", "-z")
    found = []
    for entry in (e for e in out.split("\0") if e.endswith("/")):
        if (worktree / entry / ".git").exists():
            found.append(entry.rstrip("/"))
    return found


def _nested_error(paths: Sequence[str]) -> GitError:
    where = ", ".join(paths[:5])
    return GitError(
        f"the task created a git repository inside the repository ({where}): a worktree "
        'cannot carry its files over; remove its .git, or use isolation = "shared"'
    )
