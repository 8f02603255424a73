"""`worktree_copy` / `worktree_link` paths kept inside the repository and inside a task's
worktree: every symlink resolved, checked at each use (a path may change during a run)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import worktree_path_problem


class Unconfined(Exception):
    """A `worktree_copy` / `worktree_link` path that leads out of the repository (or into git's
    own data), or whose place in a task's worktree leads out of it; nothing was written."""

    def __init__(self, key: str, index: int, item: str, problem: str) -> None:
        super().__init__(f"{key}[{index}] = {json.dumps(item, ensure_ascii=False)} {problem}")
        self.key, self.index, self.problem = key, index, problem


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


def confined_target(worktree: Path, key: str, index: int, item: str) -> Path:
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


def check_tree(worktree: Path, target: Path, key: str, index: int, item: str) -> None:
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
