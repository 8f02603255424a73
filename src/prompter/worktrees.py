"""Isolation: a git worktree per task, merged back one at a time into an integration line.

At the start, the user's working tree as it is — HEAD plus uncommitted and untracked (not
ignored) changes — is committed (with a private index, touching nothing of the user's) as the
base of an integration line under `refs/prompter/<run>/tip`. A task gets a detached worktree at
the tip of that moment, so it sees what its dependencies produced. When it passes, its changes
are committed and merged into the tip (`git merge-tree --write-tree`, never touching a working
tree); a conflict names the file and the task whose merge brought the other side. At the end,
the tip's content is written into the user's working tree as uncommitted changes (HEAD and the
index stay as they were).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import anyio

from . import identity
from .attempts import AttemptContext, AttemptRunner, Feedback
from .config import Task, worktree_path_problem
from .records import AttemptRecord
from .regular import open_regular
from .words import count

if TYPE_CHECKING:
    from .refguard import RefGuard

REF_ROOT = "refs/prompter"
# The run's version of files the user changed during the run (not landed); outside REF_ROOT, so
# that recovery and `prompter clean` leave it for the user.
KEPT_ROOT = "refs/prompter-kept"
AUTHOR = {
    "GIT_AUTHOR_NAME": "prompter",
    "GIT_AUTHOR_EMAIL": "prompter@localhost",
    "GIT_COMMITTER_NAME": "prompter",
    "GIT_COMMITTER_EMAIL": "prompter@localhost",
}


class GitError(Exception):
    """A git command failed; the message says which and why, in one line."""


class Unconfined(Exception):
    """A `worktree_copy` / `worktree_link` path that leads out of the repository (or into git's
    own data), or whose place in a task's worktree leads out of it; nothing was written."""

    def __init__(self, key: str, index: int, item: str, problem: str) -> None:
        super().__init__(f"{key}[{index}] = {json.dumps(item, ensure_ascii=False)} {problem}")
        self.key, self.index, self.problem = key, index, problem


@dataclass(frozen=True)
class Merged:
    tip: str
    files: tuple[str, ...]  # what the task changed
    changes: tuple[str, ...]  # the same, as "path +added -deleted"


@dataclass(frozen=True)
class Landing:
    """What the end of a run wrote into the user's working tree."""

    landed: tuple[str, ...] = ()  # paths that now hold the run's version
    # Changed by the user while the run was going: their version stays; the run's is at `ref`.
    kept: tuple[str, ...] = ()
    ref: str | None = None
    # `landed` as file-system strings (os.fsdecode), for git; the same files as `landed`
    paths: tuple[str, ...] = field(default=(), compare=False)

    def warning(self) -> str | None:
        """What to tell the user about `kept`, or None."""
        if not self.kept:
            return None
        shown = ", ".join(self.kept[:10]) + (" …" if len(self.kept) > 10 else "")
        return (
            f"kept your version of {count(len(self.kept), 'file')} you changed while the run was "
            f"going: {shown}; the run's version: git restore --source={self.ref} -- FILE"
        )


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


async def git(
    repo: Path,
    *args: str,
    env: dict[str, str] | None = None,
    ok: Sequence[int] = (0,),
    input: bytes | None = None,
) -> tuple[int, str]:
    """Run git in `repo`; (exit code, stdout). Exit codes outside `ok` raise GitError."""
    code, out = await git_bytes(repo, *args, env=env, ok=ok, input=input)
    return code, out.decode("utf-8", "replace")


async def git_bytes(
    repo: Path,
    *args: str,
    env: dict[str, str] | None = None,
    ok: Sequence[int] = (0,),
    input: bytes | None = None,
    stdout: int | None = None,
) -> tuple[int, bytes]:
    """`git`, with stdout as bytes: file names need not be UTF-8. With `stdout` (a file
    descriptor prompter opened), the output goes there instead, and b"" is returned."""
    full_env = {**os.environ, **AUTHOR, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    config = ["-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false"]
    config += ["-c", "core.quotePath=false"]  # file names as they are, not octal escapes
    # As the tree's owner when prompter is root: what git writes (worktrees, objects) is theirs,
    # and whatever an agent planted in .git runs with no more rights than the agent had.
    user = identity.children()
    if user is not None:
        full_env = user.environ(full_env)
    result = await anyio.run_process(
        ["git", *config, *args],
        cwd=repo,
        env=full_env,
        check=False,
        input=input,
        stdout=subprocess.PIPE if stdout is None else stdout,
        user=None if user is None else user.uid,
        group=None if user is None else user.gid,
        extra_groups=None if user is None else [],
    )
    if result.returncode not in ok:
        detail = " ".join(result.stderr.decode("utf-8", "replace").split())[:300]
        raise GitError(f"git {args[0]} failed ({result.returncode}): {detail}")
    return result.returncode, result.stdout or b""


def shown(path: str) -> str:
    """A file name (possibly not UTF-8: surrogate-escaped) as text that can be printed."""
    return os.fsencode(path).decode("utf-8", "replace")


async def git_dir(repo: Path) -> Path:
    """The common git directory (a linked worktree has a `.git` file, not a folder)."""
    _, common = await git(repo, "rev-parse", "--git-common-dir")
    return (repo / common.strip()).resolve()


async def snapshot_tree(repo: Path, exclude: Sequence[str], index_name: str) -> str:
    """The working tree as a git tree: HEAD, uncommitted and untracked not-ignored files,
    without `exclude`, through a private index (`GIT_DIR/index_name`, removed after): the
    user's index is never touched. It starts from a copy of the user's index: its stat data
    spares `add -A` re-reading every file (20,000 files: 0.06 s against 0.3-2.4 s from
    `read-tree HEAD`), and its skip-worktree bits keep what a sparse checkout leaves out from
    looking deleted."""
    index = await git_dir(repo) / f"{index_name}-{secrets.token_hex(6)}"
    env = {"GIT_INDEX_FILE": str(index)}
    try:
        if not await _copy_index(repo, index):
            code, _ = await git(repo, "rev-parse", "--verify", "-q", "HEAD", ok=(0, 1))
            if code == 0:
                await git(repo, "read-tree", "HEAD", env=env)
        skip = [f":(exclude,literal){path}" for path in await not_ignored(repo, exclude)]
        await git(repo, "add", "-A", "--", ".", *skip, env=env)
        _, tree = await git(repo, "write-tree", env=env)
    finally:
        index.unlink(missing_ok=True)
    return tree.strip()


async def _copy_index(repo: Path, into: Path) -> bool:
    """Copy the work tree's index to `into`; False when there is none (no commit yet, nothing
    added) or it cannot be read."""
    code, out = await git(repo, "rev-parse", "--git-path", "index", ok=(0, 128))
    if code != 0:
        return False
    user_index = Path(out.strip())
    user_index = user_index if user_index.is_absolute() else repo / user_index
    try:  # as the tree's owner, as git would write it (a .git agent code may have changed)
        with (
            identity.acting_as_user(),
            open(open_regular(user_index, os.O_RDONLY), "rb") as src,
            open(into, "xb") as dst,
        ):
            shutil.copyfileobj(src, dst)
    except OSError:
        into.unlink(missing_ok=True)
        return False
    return True


async def not_ignored(repo: Path, paths: Sequence[str]) -> list[str]:
    """Those of `paths` git does not ignore (naming an ignored path to exclude is an error)."""
    kept = []
    for path in paths:
        code, _ = await git(repo, "check-ignore", "-q", "--", path, ok=(0, 1))
        if code == 1:
            kept.append(path)
    return kept


async def toplevel(path: Path) -> Path | None:
    """The repository's root, or None when `path` is not inside a git work tree."""
    try:
        _, out = await git(path, "rev-parse", "--show-toplevel")
    except (GitError, OSError):
        return None
    return Path(out.strip())


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
        from .refguard import RefGuard  # it runs git through this module

        self.git_dir = await git_dir(self.repo)
        self.guard = RefGuard(self.repo, self.run_id)
        await self.guard.start()
        self._alive = _lock_run(self.git_dir, self.run_id)
        assert self._alive is not None, "run ids are unique"
        # Linked worktrees share refs and the git directory: the run's work lands only here.
        _run_home_path(self.git_dir, self.run_id).write_text(str(self.repo.resolve()))
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
                    _check_tree(path, target, "worktree_copy", index, self.include[index])
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
                target = _confined_target(worktree, DEPENDENCIES_KEY, index, item)
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
                _confined_target(worktree, key, index, item),
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
        files, changes = await self._changes(commit)
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
            return Merged(self.tip, files, changes)

    async def _changes(self, commit: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """What a task commit changed: its paths, and "path +added -deleted" per path
        ("+? -?" for binary files)."""
        args = ("diff", "--numstat", "--no-renames", "-z", f"{commit}^", commit)
        _, out = await git(self.repo, *args)  # -z: names as they are (a tab, a newline)
        paths, rows = [], []
        for line in filter(None, out.split("\0")):
            added, deleted, path = line.split("\t", 2)
            paths.append(path)
            rows.append(f"{path} +{added.replace('-', '?')} -{deleted.replace('-', '?')}")
        return tuple(paths), tuple(rows)

    async def apply(self) -> Landing:
        """Write the tip's content into the user's working tree (not HEAD, not the index),
        except over files the user changed meanwhile. A crash in the middle is finished by the
        next run."""
        return await _land(self.repo, self.run_id, self.base, self.tip)

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
            _run_home_path(self.git_dir, self.run_id).unlink(missing_ok=True)
        if not keep_worktrees:
            await self._remove_worktrees()
        await git(self.repo, "worktree", "prune")
        for name in ("base", "tip"):
            await git(self.repo, "update-ref", "-d", f"{self.ref}/{name}", ok=(0, 1))
        self._release_run()

    def _release_run(self) -> None:
        if self._alive is not None and self.git_dir is not None:
            _unlock_run(self.git_dir, self.run_id, self._alive)
            self._alive = None


DEPENDENCIES_KEY = "worktree_link_dependencies"
# Top-level folders of installed dependencies, linked into each worktree when the user's tree
# has them, git ignores them and git tracks nothing in them. Installed packages that a task's
# tools read, not what a build writes (`target`, `build`, `dist`, `.tox`, `.gradle`: parallel
# tasks would write there at once).
DEPENDENCY_FOLDERS = (
    ".venv",  # Python virtual environments (venv, uv, poetry's in-project setting)
    "venv",
    "__pypackages__",  # PEP 582 (pdm)
    "node_modules",  # npm, yarn, pnpm
    "vendor",  # Composer (PHP); a Go `vendor` folder is tracked, and so never linked
    "vendor/bundle",  # Bundler (`bundle config set path vendor/bundle`), when `vendor` is not
)


@dataclass(frozen=True)
class Dependencies:
    linked: tuple[str, ...]  # repository-relative folders to link into every worktree
    warnings: tuple[str, ...] = ()


async def dependency_links(
    repo: Path, subdir: Path, listed: Sequence[str], common: Path
) -> Dependencies:
    """The dependency folders (`DEPENDENCY_FOLDERS`) of the repository root and of the
    working directory (`subdir`, relative to the root) to link into each worktree: those that
    are folders in the user's tree, inside the repository (symlinks resolved), ignored by git,
    with nothing in them tracked, and not already in `listed` (`worktree_copy` /
    `worktree_link`, which the user chose). Two git commands in all."""
    places = [""] if subdir == Path(".") else ["", subdir.as_posix()]
    found: list[str] = []
    for place in places:
        for name in DEPENDENCY_FOLDERS:
            item = f"{place}/{name}" if place else name
            if any(_overlaps(item, other) for other in (*listed, *found)):
                continue
            if (repo / item).is_dir():
                found.append(item)
    if not found:
        return Dependencies(())
    ignored = await _ignored(repo, found)
    _, out = await git(repo, "ls-files", "-z", "--", *found)
    tracked = [path for path in out.split("\0") if path]
    linked: list[str] = []
    warnings: list[str] = []
    for item in found:
        if item not in ignored or any(_overlaps(item, path) for path in tracked):
            continue  # the user's work, in the base already, or git's: never linked
        try:
            confined_source(repo, common, DEPENDENCIES_KEY, 0, item)
        except Unconfined as exc:
            warnings.append(f"{item} is not linked into the worktrees: it {exc.problem}")
            continue
        linked.append(item)
        warnings += _editable_installs(repo, item)
    return Dependencies(tuple(linked), tuple(warnings))


async def _ignored(repo: Path, paths: Sequence[str]) -> set[str]:
    """Those of `paths` (repository-relative) that git ignores, in one command."""
    names = b"".join(os.fsencode(p) + b"\0" for p in paths)
    args = ("check-ignore", "--stdin", "-z")
    _, out = await git(repo, *args, ok=(0, 1), input=names)
    return set(out.split("\0")) - {""}


def _overlaps(a: str, b: str) -> bool:
    """Whether one of two repository paths is the other or inside it."""
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _editable_installs(repo: Path, item: str) -> list[str]:
    """A warning for a linked virtual environment with editable installs of the user's tree
    (PEP 610's `direct_url.json`): in a task's worktree they still import the user's files."""
    root = repo.resolve()
    names = []
    for record in (repo / item).glob("lib/python*/site-packages/*.dist-info/direct_url.json"):
        try:
            data = json.loads(record.read_text("utf-8"))
            editable = data.get("dir_info", {}).get("editable") is True
            url = data.get("url", "")
        except (OSError, ValueError, AttributeError):
            continue
        if not (editable and isinstance(url, str) and url.startswith("file://")):
            continue
        where = Path(unquote(urlsplit(url).path))
        if where.resolve().is_relative_to(root):
            names.append(record.parent.name.split("-")[0])
    if not names:
        return []
    shown = ", ".join(sorted(set(names)))
    return [
        f"{item}, linked into every task's worktree, has an editable install of {shown} that "
        f"points at your working tree ({root}), not at the task's worktree: what imports it "
        "there gets your files, not the task's changes (put the worktree's code first, e.g. "
        "`PYTHONPATH=src` in verify_command, or set worktree_link_dependencies = false and "
        "install in the task)"
    ]


def confined_source(repo: Path, git_dir: Path, key: str, index: int, item: str) -> Path:
    """Where `worktree_copy` / `worktree_link` entry `item` is in the user's repository, every
    symlink resolved; raises `Unconfined` when that is outside the repository, the repository
    itself or in git's own data. Checked at each use: a path may change during a run."""
    if problem := worktree_path_problem(item):
        raise Unconfined(key, index, item, problem)
    root = repo.resolve()
    source = Path(os.path.realpath(root / item))
    if source == root or not source.is_relative_to(root):
        where = "the repository itself" if source == root else f"{source}, outside the repository"
        raise Unconfined(key, index, item, f"leads through a symlink to {where}")
    if source.is_relative_to(git_dir.resolve()):
        raise Unconfined(
            key, index, item, f"leads through a symlink into git's own data ({source})"
        )
    return source


def _confined_target(worktree: Path, key: str, index: int, item: str) -> Path:
    """Where entry `item` goes in a task's worktree; raises `Unconfined` when a symlink in the
    worktree (something a task committed) would take it, or a write to it, out of there."""
    if problem := worktree_path_problem(item):
        raise Unconfined(key, index, item, problem)
    root = worktree.resolve()
    lexical = root / item
    target = Path(os.path.realpath(lexical.parent)) / lexical.name
    if not target.parent.is_relative_to(root):
        raise Unconfined(
            key,
            index,
            item,
            f"would be placed through a symlink in the task's worktree, at {target}",
        )
    if target.is_symlink():
        reached = Path(os.path.realpath(target))
        if not reached.is_relative_to(root):
            raise Unconfined(
                key, index, item, f"is a symlink in the task's worktree to {reached}, outside it"
            )
    return target


def _check_tree(worktree: Path, target: Path, key: str, index: int, item: str) -> None:
    """Raise `Unconfined` when a folder copy into `target` would write through a symlink the
    worktree already has there (a task's committed work) to outside the worktree."""
    if not target.is_dir() or target.is_symlink():
        return
    root = worktree.resolve()
    for folder, dirs, files in os.walk(target):
        for name in (*dirs, *files):
            path = Path(folder) / name
            if path.is_symlink() and not Path(os.path.realpath(path)).is_relative_to(root):
                raise Unconfined(
                    key,
                    index,
                    item,
                    f"would be copied through the symlink {path}, out of the worktree",
                )


async def _refs(repo: Path) -> dict[str, str]:
    _, out = await git(repo, "for-each-ref", "--format=%(refname) %(objectname)", REF_ROOT)
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


async def _land(repo: Path, run: str, base: str, tip: str) -> Landing:
    """Write what changed from `base` to `tip` into the user's working tree, path by path,
    only where the user's file is still as it was at `base` (or already as at `tip`: a landing
    cut short and finished now). A folder of the user's where the run has a file is theirs."""
    ref = f"{REF_ROOT}/{run}"
    changes = await _changed_blobs(repo, base, tip)
    if not changes:
        return Landing()
    # Marked first: a kill in the middle is finished by the next run's `recover`.
    await git(repo, "update-ref", f"{ref}/applying", tip)
    now = await _worktree_blobs(repo, list(changes))
    landed: list[str] = []
    kept: list[str] = []
    for path, versions in changes.items():
        (landed if now.get(path) in versions else kept).append(path)
    # Deletions by hand: `git restore` takes only paths that the user's index or `tip` has, and
    # one path it does not know fails the whole call.
    for path in landed:
        if changes[path][1] is None:
            _delete(repo, path)
    # A folder that held only what was just deleted (the run replaced it with a file) is gone
    # now, or empty: the file may take its place.
    replaced = [p for p in kept if now.get(p) == _FOLDER and changes[p][0] is None]
    for path in [p for p in replaced if changes[p][1] is not None]:
        folder = repo / path
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty
        if not folder.exists():
            kept.remove(path)
            landed.append(path)
    written = [p for p in landed if changes[p][1] is not None]
    if written:
        literal = {"GIT_LITERAL_PATHSPECS": "1"}  # a file named `*.py` is that file
        names = b"".join(os.fsencode(p) + b"\0" for p in written)  # no argv limit, any bytes
        await git(
            repo,
            "restore",
            f"--source={tip}",
            "--worktree",
            "--pathspec-from-file=-",
            "--pathspec-file-nul",
            env=literal,
            input=names,
        )
    kept_ref = None
    if kept:
        kept_ref = f"{KEPT_ROOT}/{run}"
        await git(repo, "update-ref", kept_ref, tip)
    await git(repo, "update-ref", "-d", f"{ref}/applying")
    return Landing(tuple(map(shown, landed)), tuple(map(shown, kept)), kept_ref, tuple(landed))


def _delete(repo: Path, path: str) -> None:
    """Remove a file the run deleted, and the folders that leaves empty (as git does)."""
    full = repo / path
    with contextlib.suppress(FileNotFoundError):
        full.unlink()
    for parent in full.parents:
        if parent == repo or not parent.is_relative_to(repo):
            break
        try:
            parent.rmdir()
        except OSError:  # not empty (or gone): what is above it is not empty either
            break


async def _changed_blobs(
    repo: Path, base: str, tip: str
) -> dict[str, tuple[str | None, str | None]]:
    """Each path that differs between the commits, with its object id in each (None where the
    path is absent), from one `git diff --raw`. Paths are file-system strings (`os.fsdecode`)."""
    _, out = await git_bytes(repo, "diff", "--raw", "--no-renames", "--no-abbrev", "-z", base, tip)
    changes = {}
    for meta, path in _raw_entries(out):
        old, new = meta[2:4]
        changes[path] = (None if set(old) == {"0"} else old, None if set(new) == {"0"} else new)
    return changes


def _raw_entries(out: bytes) -> list[tuple[list[str], str]]:
    """`git diff --raw -z` output as (`:old_mode new_mode old_id new_id status` split, path),
    the path a file-system string (`os.fsdecode`: any bytes)."""
    fields = out.split(b"\0")
    return [
        (meta.decode().split(), os.fsdecode(path))
        for meta, path in zip(fields[0::2], fields[1::2], strict=False)
    ]


_FOLDER = "folder"  # in `_worktree_blobs`: a directory stands at the path (never an object id)


async def _worktree_blobs(repo: Path, paths: Sequence[str]) -> dict[str, str]:
    """The object ids git would give the user's current files at `paths` (clean filters
    applied, as `git add` does), `_FOLDER` for a directory; absent paths and names git cannot
    take one per line are left out, which counts as "changed" unless the path is absent at the
    compared commit too."""
    files, links = [], []
    blobs: dict[str, str] = {}
    for path in paths:
        full = repo / path
        if full.is_symlink():
            links.append(path)
        elif full.is_dir():
            blobs[path] = _FOLDER
        elif full.is_file() and "\n" not in path:
            files.append(path)
    if files:
        names = b"".join(os.fsencode(p) + b"\n" for p in files)
        _, out = await git(repo, "hash-object", "--stdin-paths", input=names)
        blobs.update(zip(files, out.split(), strict=True))
    for path in links:  # git stores a symlink as its target's text
        target = os.readlink(os.fsencode(repo / path))
        _, out = await git(repo, "hash-object", "--stdin", "--no-filters", input=target)
        blobs[path] = out.strip()
    return blobs


@dataclass(frozen=True)
class Recovered:
    run_id: str
    landing: Landing  # what of its work landed now (nothing when it had landed already)


async def recover(repo: Path) -> list[Recovered]:
    """Finish what ended runs left: a landing cut short is completed, the passed work of a run
    that was interrupted (`pending`) or killed before landing (only its `tip` is left) lands —
    the state says those tasks passed — and their worktrees and refs go. A run still going
    (another prompter process in this repository) is left alone, and so is one that started
    in another linked worktree of the repository (it lands there)."""
    refs = await _refs(repo)
    runs = {ref.removeprefix(REF_ROOT + "/").split("/")[0] for ref in refs}
    common = await git_dir(repo)
    if (common / "prompter").exists():
        runs |= {p.name for p in (common / "prompter").iterdir() if p.is_dir()}
    cleaned = []
    for run in sorted(runs):
        if not _belongs_here(common, run, repo):
            continue  # another linked worktree's run: its own next run lands it
        alive = _lock_run(common, run)
        if alive is None:  # its process holds the lock: not ended
            continue
        try:
            ref = f"{REF_ROOT}/{run}"
            # A run that ends normally deletes its refs after landing; a tip left behind holds
            # work that has not landed (landing it again is harmless: see `_land`).
            tip = (
                refs.get(f"{ref}/applying") or refs.get(f"{ref}/pending") or refs.get(f"{ref}/tip")
            )
            base = refs.get(f"{ref}/base")
            landing = await _land(repo, run, base, tip) if tip and base else Landing()
            await git(repo, "update-ref", "-d", f"{ref}/pending", ok=(0, 1))
            await Integration(repo, run, git_dir=common).cleanup()
            _run_home_path(common, run).unlink(missing_ok=True)
        finally:
            _unlock_run(common, run, alive)
        cleaned.append(Recovered(run, landing))
    return cleaned


def _run_lock_path(common: Path, run: str) -> Path:
    return common / "prompter" / f"{run}.lock"


def _run_home_path(common: Path, run: str) -> Path:
    """Where the run records the working tree it started in."""
    return common / "prompter" / f"{run}.home"


def _belongs_here(common: Path, run: str, repo: Path) -> bool:
    """Whether the run started in `repo`: not in another linked worktree of the repository
    that still exists (a run from before this record, or from a removed worktree, is taken)."""
    try:
        home = Path(_run_home_path(common, run).read_text())
    except (OSError, ValueError):
        return True
    return home == repo.resolve() or not home.is_dir()


def _lock_run(common: Path, run: str) -> int | None:
    """The run's lock, taken without waiting; None when a live process holds it. The kernel
    drops a flock when its process dies, so a crashed run's lock is free."""
    path = _run_lock_path(common, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _unlock_run(common: Path, run: str, fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        _run_lock_path(common, run).unlink()
    os.close(fd)


async def _new_gitlinks(worktree: Path, start: str) -> list[str]:
    """Paths the index now holds as a git repository (a gitlink) that `start` did not."""
    args = ("diff", "--cached", "--raw", "--no-renames", "-z", "--diff-filter=AT", start)
    _, out = await git_bytes(worktree, *args)
    return [shown(path) for meta, path in _raw_entries(out) if meta[1] == "160000"]


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


def _failed(number: int, started: float, reason: str) -> AttemptRecord:
    return AttemptRecord(number=number, started_at=started, finished_at=time.time(), reason=reason)


def _leads_out(tree: Path, subdir: Path) -> Path | None:
    """Where `subdir` of the worktree really is, when a symlink takes it out of the worktree."""
    root = tree.resolve()
    real = Path(os.path.realpath(root / subdir))
    return None if real.is_relative_to(root) else real


async def _refs_changed(line: Integration) -> str | None:
    """What the attempt changed of the user's refs, now undone (see `refguard`), or None."""
    if line.guard is None:
        return None
    try:
        what = await line.guard.check(line.root)
    except GitError as exc:
        return f"the repository's refs changed during the attempt and {exc}"
    if what is None:
        return None
    return (
        f"it changed the repository's refs, which are the user's: {what}; undone "
        "(commit in the task's own worktree only, without branches or tags)"
    )


def _refs_failure(record: AttemptRecord, refs: str) -> AttemptRecord:
    """The attempt, failed for what it did to the user's refs. A passed one is told as an
    agent failure (no verify duration: the feedback then quotes this text, not the check)."""
    if not record.ok:
        return record.model_copy(update={"reason": f"{record.reason or 'failed'}; and {refs}"})
    tail = (
        f"prompter: {refs}. The repository's branches, tags and HEAD belong to the user: "
        "leave them as they are. Your files are what counts: commits in your own worktree "
        "(detached HEAD) are fine, but no `git branch`, `git tag`, `git checkout -b`, "
        "`git switch` or `git update-ref`."
    )
    return record.model_copy(
        update={"ok": False, "reason": refs, "output_tail": tail, "verify_duration_s": None}
    )


async def _missing_hint(
    line: Integration, tree: Path, subdir: Path, task: Task, record: AttemptRecord
) -> str | None:
    """For a verify command that could not run in a task's worktree: when what it missed — a
    path the shell named, or that the command names — is in the user's tree but not in the
    worktree because git ignores it (a `.venv`, `node_modules`), how to bring it there."""
    from .attempts import named_by_shell

    try:
        words = shlex.split(task.verify_command)
    except ValueError:
        words = task.verify_command.split()
    named = named_by_shell(record.output_tail) + words[:1] + [w for w in words[1:] if "/" in w]
    root, user = tree.resolve(), line.repo.resolve()
    for name in dict.fromkeys(named):
        path = Path(name)
        if path.is_absolute():
            if not path.is_relative_to(root):
                continue
            rel = path.relative_to(root)
        else:
            rel = Path(os.path.normpath(subdir / path))
        if not rel.parts or rel.parts[0] == ".." or rel.parts[0] == ".git":
            continue
        if not os.path.lexists(user / rel) or os.path.lexists(root / rel):
            continue
        prefixes = [Path(*rel.parts[: n + 1]).as_posix() for n in range(len(rel.parts))]
        try:
            found = await _ignored(line.repo, prefixes)
        except GitError:
            return None
        ignored = [p for p in prefixes if p in found]
        if ignored:
            item = json.dumps(ignored[0], ensure_ascii=False)
            hint = (
                f"{item} is in your working tree but not in the task's worktree (git ignores "
                f"it, so worktrees do not get it): list it in worktree_link = [{item}] "
                f"(shared) or worktree_copy = [{item}] (copied)"
            )
            folder = ignored[0].rsplit("/", 1)[-1]
            if folder in {f.rsplit("/", 1)[-1] for f in DEPENDENCY_FOLDERS}:
                hint += f", or set {DEPENDENCIES_KEY} = true (the default), which links it"
            return hint
    return None


def isolated(line: Integration, subdir: Path, inner: AttemptRunner) -> AttemptRunner:
    """An attempt runner that runs each task in its own worktree and merges what passes.

    `subdir` is the working directory relative to the repository root. A retry after a failed
    check continues in the same worktree (the agent's session remembers those edits); a retry
    after a merge conflict starts from the new tip, with the conflict in its feedback. Worktrees
    of tasks that end failed are removed by `cleanup` (or kept for inspection).
    """
    trees: dict[str, Path] = {}  # task -> the worktree its next attempt continues in

    async def attempt(
        ctx: AttemptContext,
        task: Task,
        number: int,
        feedback: Feedback | None,
        resume: str | None,
    ) -> AttemptRecord:
        started = time.time()
        tree = trees.pop(task.name, None)
        if tree is None or not tree.exists():
            try:
                tree = await line.checkout(task.name, number)
            except (GitError, OSError, Unconfined) as exc:
                return _failed(number, started, f"worktree could not be created: {exc}")
        done = False  # True: the worktree has served its purpose and goes now
        try:
            workdir = tree / subdir
            if outside := _leads_out(tree, subdir):
                trees[task.name] = tree
                reason = (
                    f"the working directory {subdir.as_posix()} is, in the task's worktree, a "
                    f"symlink to {outside}, outside it (a task committed it): not run there"
                )
                return _failed(number, started, reason)
            with identity.acting_as_user():
                workdir.mkdir(parents=True, exist_ok=True)  # git keeps no empty folders
            record = await inner(replace(ctx, workdir=workdir), task, number, feedback, resume)
            if refs := await _refs_changed(line):
                trees[task.name] = tree
                return _refs_failure(record, refs)
            if not record.ok:
                trees[task.name] = tree
                if record.environment_error and (
                    hint := await _missing_hint(line, tree, subdir, task, record)
                ):
                    return record.model_copy(update={"reason": f"{record.reason}; {hint}"})
                return record
            done = True
            try:
                commit = await line.commit(task.name, tree)
            except GitError as exc:
                reason = f"its changes cannot be committed: {exc}"
                return record.model_copy(update={"ok": False, "reason": reason})
            if commit is None:
                return record
            try:
                outcome = await line.merge(task.name, commit)
            except GitError as exc:
                return record.model_copy(update={"ok": False, "reason": f"merge failed: {exc}"})
            if isinstance(outcome, Merged):
                return record.model_copy(update={"changed_files": list(outcome.changes)})
            other = f"`{outcome.with_task}`" if outcome.with_task else "another task"
            return record.model_copy(
                update={
                    "ok": False,
                    "reason": outcome.reason,
                    "conflict": outcome.reason,
                    "changed_files": list(outcome.changes),
                    "output_tail": (
                        f"Your change to {', '.join(outcome.paths)} conflicts with what "
                        f"{other} changed there first."
                    ),
                }
            )
        finally:
            if done:
                line.release(tree)

    return attempt
