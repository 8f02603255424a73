"""Landing: what a run changed from its base to its tip, written into the user's working tree
path by path, never over a file the user changed meanwhile (HEAD and the index untouched)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..words import count
from .git import git, git_bytes, raw_entries, shown
from .runs import KEPT_ROOT, REF_ROOT


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


async def land(repo: Path, run: str, base: str, tip: str) -> Landing:
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
    for meta, path in raw_entries(out):
        old, new = meta[2:4]
        changes[path] = (None if set(old) == {"0"} else old, None if set(new) == {"0"} else new)
    return changes


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
