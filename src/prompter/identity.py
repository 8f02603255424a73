"""Who the processes of a run (agents, verify commands, git in the user's tree) run as.

Agent code is untrusted. Run as root — the action's container — prompter starts every such
process as the owner of the work tree: an unprivileged uid, which cannot read the environment
or memory of prompter, tini or any other root process (`/proc/<pid>/environ` and ptrace need
the same uid or CAP_SYS_PTRACE), nor read a file only root may read, nor change what prompter
writes as root (the report folder). Git runs as that owner too, so the worktrees and objects of
a run are the owner's, and a hook or `core.fsmonitor` an agent planted in `.git` runs with no
more rights than the agent had. Not root — a laptop — everything runs as you, as prompter does.

One decision per process (`settle`), read where children are started (`children`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Identity",
    "acting_as_user",
    "children",
    "current",
    "for_tree",
    "make_dirs",
    "no_new_privileges",
    "settle",
]


@dataclass(frozen=True)
class Identity:
    """An unprivileged user that processes are started as."""

    uid: int
    gid: int
    home: str | None = None  # a HOME of its own, when prompter's is not writable for it

    def environ(self, env: Mapping[str, str] | None) -> dict[str, str]:
        """`env` (None: prompter's) as this user's processes get it."""
        out = dict(os.environ if env is None else env)
        if self.home is not None:
            out["HOME"] = self.home
        return out


_children: Identity | None = None
_settled = False


def children() -> Identity | None:
    """Who the run's processes run as; None: as prompter itself."""
    return _children


def settle(tree: Path, keep_root: bool = False) -> Identity | None:
    """Decide, for this process, who the processes working in `tree` run as (see `for_tree`);
    `keep_root`: as prompter itself, root included (the action's `agent_user: root`)."""
    global _children, _settled  # noqa: PLW0603 (one decision for the process, like its uid)
    _children = None if keep_root else for_tree(tree)
    _settled = True
    return _children


def current(tree: Path) -> Identity | None:
    """The process's decision if made, else what it would be for `tree`."""
    return _children if _settled else for_tree(tree)


@functools.cache
def for_tree(tree: Path) -> Identity | None:
    """As root: the owner of `tree`, unless that is root too (then None: a laptop's root-owned
    tree runs as root; the action lends such a workspace to an unprivileged user first). Not
    root: None."""
    if os.geteuid() != 0:
        return None
    try:
        st = tree.stat()
    except OSError:
        return None  # the run reports a missing working directory itself
    if st.st_uid == 0:
        return None
    return Identity(st.st_uid, st.st_gid, _home_for(st.st_uid, st.st_gid))


def _home_for(uid: int, gid: int) -> str | None:
    """None when prompter's HOME is already this user's (the runner's /github/home); else a
    fresh one (tools keep settings and sessions there), removed when prompter exits."""
    home = os.environ.get("HOME", "")
    with contextlib.suppress(OSError):
        if home and os.stat(home).st_uid == uid:
            return None
    made = tempfile.mkdtemp(prefix=f"prompter-home-{uid}-")
    os.chown(made, uid, gid)
    atexit.register(shutil.rmtree, made, ignore_errors=True)
    return made


def make_dirs(path: Path) -> None:
    """`mkdir -p`, each folder it creates owned by the run's user: prompter (root) makes some
    folders in the user's tree and git directory that that user's git and agents write into."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    path.mkdir(parents=True, exist_ok=True)
    user = _children
    if user is not None:
        for folder in reversed(missing):
            os.lchown(folder, user.uid, user.gid)


@contextlib.contextmanager
def acting_as_user() -> Iterator[None]:
    """File operations in the block are the run's user's, not root's (effective ids): what
    prompter writes into a tree agent code can change at the same time (a worktree) cannot be
    turned, by a symlink swapped in at the right moment, into a write as root elsewhere.
    Synchronous blocks only: the effective ids are the whole process's while it lasts."""
    user = _children
    if user is None:
        yield
        return
    groups = os.getgroups()
    os.setgroups([])
    os.setegid(user.gid)
    os.seteuid(user.uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
        os.setgroups(groups)


def no_new_privileges() -> bool:
    """Set PR_SET_NO_NEW_PRIVS for this process and all it starts: no setuid program (su,
    mount, a planted one) and no file capability lifts a child above the uid it was started as.
    False where the kernel has no such call (not Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_no_new_privs = 38
        return bool(libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False
