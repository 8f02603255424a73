"""What a run delivered: `REPORT_DIR/changes.patch`, the difference between the working tree at
the start and at the end, as a binary-safe git patch.

The start is a snapshot of the whole working tree taken with a private index
(`GIT_INDEX_FILE`, `git add -A`, `git write-tree`): HEAD plus uncommitted and untracked (not
ignored) files, without prompter's own files (the report folder, the state). The user's index,
HEAD and files are never touched. The end is, with worktree isolation, the integration line's
base with the paths that landed as its tip has them (what the user edits during the run is not
the tasks' work), and in a shared tree a second snapshot. Uncommitted work the user had before
the run is in both ends and not in the patch. The patch is
`git diff-tree -p --binary -M` of the two trees: new files, deletions, renames, mode changes,
symlinks and binary files, applicable with `git apply` at the repository's root on a tree equal
to the start's (a clean checkout of the starting commit).

A run that builds on earlier passes (it reuses at least one) continues the patch of the run it
resumes: it diffs against the start recorded in the state (`base_commit`, `base_tree` of the
last run), so the patch holds the work of all of them — as long as HEAD is still the commit
that start was taken on (the patch then still applies to HEAD) and git still has its tree (a
fresh clone may not: then this run's own start, with a warning).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .records import RunRecord
from .regular import open_regular
from .words import count
from .worktrees import GitError, git, git_bytes, git_dir, snapshot_tree, toplevel

PATCH_NAME = "changes.patch"
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256 (a state is data)
IGNORE_ALL = "*\n"
# What prompter itself keeps in a report folder; one holding anything else is not given a
# `.gitignore` that would hide it from git.
OWN_ENTRIES = frozenset(
    {
        "logs",
        "state.json",
        "state.json.journal",
        "state.json.lock",
        "state.json.tmp",
        "junit.xml",
        "summary.md",
        PATCH_NAME,
    }
)
DIFF_OPTIONS = (
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)


@dataclass(frozen=True)
class Base:
    """The start the patch is taken from."""

    repo: Path  # the repository's root
    commit: str | None  # HEAD then (None in a repository without a commit)
    tree: str  # the working tree then, without prompter's files
    exclude: tuple[str, ...]  # prompter's files, relative to `repo`
    resumed_from: str | None = None  # the run whose start this one continues


@dataclass(frozen=True)
class Start:
    """`begin`'s answer: the base, or None (outside git, or git failed: `note` says why)."""

    base: Base | None
    note: str | None = None  # why there will be no patch (outside git)
    warning: str | None = None  # git failed (no patch), or the resumed start is gone


@dataclass(frozen=True)
class Landed:
    """Worktree isolation: what the run wrote into the working tree. The end of the patch is
    then `base` with `paths` as at `tip` — not the tree as it is, so that what the user edits
    during the run (a file landing kept as theirs included) is not taken for the tasks' work."""

    base: str  # the integration line's base commit: the working tree when it started
    tip: str  # its tip: every passed task's work
    paths: tuple[str, ...]  # what landed (file-system strings)


@dataclass(frozen=True)
class Changes:
    """What `finish` found and wrote."""

    patch: Path | None = None  # REPORT_DIR/changes.patch; None when not written
    files: tuple[str, ...] = ()  # repository-relative paths that differ (file-system strings)
    repo: Path | None = None
    base_commit: str | None = None
    note: str | None = None  # why there is no patch (outside git, nothing changed)
    warning: str | None = None  # something failed: no patch
    resumed_from: str | None = None  # the run whose start the patch is taken from

    def line(self) -> str:
        """One line for the console after a run."""
        if self.patch is not None:
            since = f" since {self.base_commit[:12]}" if self.base_commit else ""
            if self.resumed_from:
                since += f", the start of run {self.resumed_from}"
            return f"changes: {self.patch} ({count(len(self.files), 'file')} changed{since})"
        return f"changes: {self.note or self.warning or 'none'}"


async def begin(
    workdir: Path, runs: Sequence[RunRecord], resumed: bool, own: Sequence[Path]
) -> Start:
    """Snapshot the working tree at the start of a run, or take the recorded start of the run
    it resumes (see the module's docstring). `own`: prompter's files and folders."""
    repo = await toplevel(workdir)
    if repo is None:
        return Start(None, "not in a git repository: no changes.patch")
    try:
        exclude = _inside(repo, own)
        head = await _head(repo)
        earlier = next((r for r in reversed(runs) if r.base_tree), None)
        warning = None
        if resumed and earlier is not None and earlier.base_commit == head:
            assert earlier.base_tree is not None
            if _OBJECT_ID.fullmatch(earlier.base_tree) and await _has_tree(repo, earlier.base_tree):
                return Start(Base(repo, head, earlier.base_tree, exclude, earlier.run_id))
            warning = (
                f"the start of run {earlier.run_id} is not in this repository (a fresh clone?): "
                "changes.patch covers this run only"
            )
        tree = await snapshot(repo, exclude)
    except (GitError, OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        return Start(None, warning=f"changes.patch will not be written: {_why(exc)}")
    return Start(Base(repo, head, tree, exclude), warning=warning)


def forget(report_dir: Path) -> None:
    """A run starts: the last run's patch goes, so that a run that never gets to write its
    own (a start that fails, a kill) leaves none to be taken for it."""
    _remove_stale(report_dir / PATCH_NAME)


async def finish(start: Start, report_dir: Path, landed: Landed | None = None) -> Changes:
    """Take the end (a snapshot of the working tree, or with worktree isolation what landed)
    and write the difference to REPORT_DIR/changes.patch (removing an old one when there is
    no difference, or no repository)."""
    target = report_dir / PATCH_NAME
    base = start.base
    if base is None:
        _remove_stale(target)
        return Changes(note=start.note or "no changes.patch")
    try:
        if landed is None:
            end = await snapshot(base.repo, base.exclude)
        else:
            end = await _landed_tree(base.repo, landed, base.exclude)
        files = await _changed(base.repo, base.tree, end)
        if not files:
            _remove_stale(target)
            return Changes(repo=base.repo, base_commit=base.commit, note="no file changed")
        await _write_patch(base.repo, base.tree, end, target)
    except (GitError, OSError) as exc:
        _remove_stale(target)
        return Changes(repo=base.repo, warning=f"changes.patch not written: {_why(exc)}")
    return Changes(target, files, base.repo, base.commit, resumed_from=base.resumed_from)


async def snapshot(repo: Path, exclude: Sequence[str]) -> str:
    """The working tree as a git tree (HEAD, uncommitted and untracked not-ignored files,
    without `exclude`): see `worktrees.snapshot_tree`."""
    return await snapshot_tree(repo, exclude, "prompter-changes-index")


async def _landed_tree(repo: Path, landed: Landed, exclude: Sequence[str]) -> str:
    """`landed.base`'s tree with the landed paths as at `landed.tip` and without `exclude`,
    through a private index."""
    index = await git_dir(repo) / f"prompter-changes-index-{secrets.token_hex(6)}"
    env = {"GIT_INDEX_FILE": str(index), "GIT_LITERAL_PATHSPECS": "1"}
    try:
        await git(repo, "read-tree", landed.base, env=env)
        if landed.paths:  # deletions too: a path the tip lacks leaves the index
            names = b"".join(os.fsencode(p) + b"\0" for p in landed.paths)
            restore = ("restore", "--staged", f"--source={landed.tip}")
            await git(
                repo,
                *restore,
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
                input=names,
                env=env,
            )
        if exclude:  # the line's base leaves out the report folder, not a state kept elsewhere
            remove = ("rm", "--cached", "-r", "-q", "-f", "--ignore-unmatch", "--")
            await git(repo, *remove, *exclude, env=env)
        _, tree = await git(repo, "write-tree", env=env)
    finally:
        index.unlink(missing_ok=True)
    return tree.strip()


def ignore_report_dir(report_dir: Path, workdir: Path) -> str | None:
    """Give the report folder a `.gitignore` of `*`, so that git never shows it, unless it has
    one already or holds anything but prompter's own files (or the working directory): a
    user's folder is not hidden from git. A warning when it cannot be written, else None."""
    gitignore = report_dir / ".gitignore"
    try:
        if os.path.lexists(gitignore) or workdir.resolve().is_relative_to(report_dir.resolve()):
            return None
        if any(not _own(name, report_dir) for name in os.listdir(report_dir)):
            return None
        fd = open_regular(gitignore, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(IGNORE_ALL)
    except FileExistsError:
        return None
    except RuntimeError:  # a symlink loop on the way: no folder of prompter's
        return None
    except OSError as exc:
        return f"{gitignore}: not written ({exc.strerror or exc}): git may show the report folder"
    return None


def quote_path(name: str) -> str:
    """A file name for a list of one name per line: as it is, unless it holds a control
    character (a line break, a tab), a `"` or a `\\`, or is not UTF-8; then quoted as git
    quotes names (`core.quotePath`): in double quotes, with C escapes and octal bytes."""
    raw = os.fsencode(name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not any(_needs_quote(c) for c in text):
        return text
    out = []
    for byte in raw:
        char = chr(byte)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}


def _needs_quote(char: str) -> bool:
    return char in '"\\' or unicodedata.category(char) == "Cc" or char in "\u2028\u2029"


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


def _own(name: str, folder: Path | None = None) -> bool:
    """One of the entries prompter keeps in a report folder (a temporary report included), or
    the report folder of another workflow inside it (`.prompter/NAME/`, hidden by its own
    `.gitignore`)."""
    if name in OWN_ENTRIES or (name.startswith(".") and name.endswith(".tmp")):
        return True
    if folder is None:
        return False
    inner = folder / name / ".gitignore"
    try:
        return not inner.is_symlink() and inner.is_file() and inner.read_text("utf-8") == IGNORE_ALL
    except (OSError, UnicodeDecodeError):
        return False


def _inside(repo: Path, paths: Sequence[Path]) -> tuple[str, ...]:
    """Those of `paths` inside the repository, relative to its root (the root itself never)."""
    root = repo.resolve()
    inside = []
    for path in paths:
        full = path.absolute().parent.resolve() / path.name if path.name else path.resolve()
        if full != root and full.is_relative_to(root):
            inside.append(full.relative_to(root).as_posix())
    return tuple(dict.fromkeys(inside))


async def _head(repo: Path) -> str | None:
    code, out = await git(repo, "rev-parse", "--verify", "-q", "HEAD", ok=(0, 1))
    return out.strip() if code == 0 else None


async def _has_tree(repo: Path, tree: str) -> bool:
    code, _ = await git(repo, "cat-file", "-e", f"{tree}^{{tree}}", ok=(0, 1, 128))
    return code == 0


async def _changed(repo: Path, old: str, new: str) -> tuple[str, ...]:
    """Every path that differs between the trees (a rename as its two paths)."""
    args = ("diff-tree", "-r", "--no-renames", "--name-only", "-z", *DIFF_OPTIONS, old, new)
    _, out = await git_bytes(repo, *args)
    return tuple(os.fsdecode(name) for name in out.split(b"\0") if name)


async def _write_patch(repo: Path, old: str, new: str, target: Path) -> None:
    """The patch from `old` to `new`, streamed by git into a temporary file renamed over
    `target` (never opened through a symlink while agent code runs as another user)."""
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        _refuse_special(target)
        fd = open_regular(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            args = ("diff-tree", "-r", "-p", "--binary", "-M", "--full-index", *DIFF_OPTIONS)
            await git_bytes(repo, *args, old, new, stdout=fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)


def _refuse_special(path: Path) -> None:
    """A FIFO, socket, device or folder where the patch goes is not ours to replace."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode) and not stat.S_ISLNK(mode):
        raise OSError(errno.EINVAL, "not a regular file, left as it is", str(path))


def _remove_stale(path: Path) -> None:
    """An earlier run's patch goes: it would be taken for this run's."""
    with contextlib.suppress(OSError):
        if stat.S_ISREG(os.lstat(path).st_mode) or path.is_symlink():
            path.unlink()
