"""The user's working tree as a git tree, through a private index: the user's own index is
never touched."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path

from .. import identity
from ..regular import open_regular
from .git import git, git_dir, not_ignored


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
