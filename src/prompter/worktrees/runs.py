"""A run's marks in the repository: its refs under `REF_ROOT`, the lock that says it is alive
and the record of the working tree it started in."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

REF_ROOT = "refs/prompter"
# The run's version of files the user changed during the run (not landed); outside REF_ROOT, so
# that recovery and `prompter clean` leave it for the user.
KEPT_ROOT = "refs/prompter-kept"


def _lock_path(common: Path, run: str) -> Path:
    return common / "prompter" / f"{run}.lock"


def run_home_path(common: Path, run: str) -> Path:
    """Where the run records the working tree it started in."""
    return common / "prompter" / f"{run}.home"


def belongs_here(common: Path, run: str, repo: Path) -> bool:
    """Whether the run started in `repo`: not in another linked worktree of the repository
    that still exists (a run from before this record, or from a removed worktree, is taken)."""
    try:
        home = Path(run_home_path(common, run).read_text())
    except (OSError, ValueError):
        return True
    return home == repo.resolve() or not home.is_dir()


def lock_run(common: Path, run: str) -> int | None:
    """The run's lock, taken without waiting; None when a live process holds it. The kernel
    drops a flock when its process dies, so a crashed run's lock is free."""
    path = _lock_path(common, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def unlock_run(common: Path, run: str, fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        _lock_path(common, run).unlink()
    os.close(fd)
