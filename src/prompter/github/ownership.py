"""Who owns the workspace's files while the action runs, and after.

As root in a container: a root-owned workspace is lent to `LENT_UID` so that agent code need
not be root, the runner's file-command files are locked away from agents, and whatever the run
created is handed back to the workspace's owner at the end (the runner's later steps run as that
user). Outside root, nothing here changes anything.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..words import count
from .commands import Console

# The runner's file commands: what a process writes there becomes the environment, PATH,
# outputs or summary of the job's later steps, which hold the job's secrets.
FILE_COMMANDS = (
    "GITHUB_ENV",
    "GITHUB_PATH",
    "GITHUB_OUTPUT",
    "GITHUB_STATE",
    "GITHUB_STEP_SUMMARY",
)
# Who agent code runs as when the workspace is root's (a job container running as root, or a
# rootless `docker run`): never root. The uid distroless images call "nonroot".
LENT_UID = 65532


def lend(workspace: Path, console: Console) -> bool:
    """As root on a root-owned workspace, hand it to LENT_UID for the run, so that agent code
    can work in it without being root; `give_back` returns it. True if lent."""
    if os.geteuid() != 0:
        return False
    try:
        owner = workspace.stat()
    except OSError:
        return False
    if owner.st_uid != 0:
        _ensure_account(owner.st_uid, owner.st_gid)
        return False
    started = time.monotonic()
    changed = hand_over(workspace, 0, LENT_UID, LENT_UID)
    _ensure_account(LENT_UID, LENT_UID)
    console.info(
        f"the workspace is root's: agents and verify commands run as uid {LENT_UID}, which "
        f"has it for the run ({count(changed, 'file')}, {time.monotonic() - started:.1f} s)"
    )
    return True


def _ensure_account(uid: int, gid: int) -> None:
    """A passwd and group entry for the user agent code runs as: git, ssh and most tools look
    their user up, and the runner's uid has none in this image."""
    import grp
    import pwd

    try:
        pwd.getpwuid(uid)
    except KeyError:
        with contextlib.suppress(OSError), open("/etc/passwd", "a", encoding="utf-8") as f:
            f.write(f"prompter-agent:x:{uid}:{gid}:prompter agent:/nonexistent:/bin/sh\n")
    try:
        grp.getgrgid(gid)
    except KeyError:
        with contextlib.suppress(OSError), open("/etc/group", "a", encoding="utf-8") as f:
            f.write(f"prompter-agent:x:{gid}:\n")


@contextlib.contextmanager
def file_commands_locked(
    env: Mapping[str, str], workspace: Path, console: Console, as_root: bool
) -> Iterator[None]:
    """While agents run, only root may reach the runner's file-command files: the folder that
    holds them becomes root's alone (a file alone could be replaced: its folder is the
    runner user's). A folder that is not theirs alone (the workspace, /tmp) keeps its rights;
    the files in it are locked instead. Everything is given back as it was. Agents running as
    root (`agent_user: root`) could undo it: nothing to do then."""
    from ..processes import on_emergency_exit

    if os.geteuid() != 0 or as_root:
        yield
        return
    paths = {Path(env[name]) for name in FILE_COMMANDS if env.get(name)}
    targets: set[Path] = set()
    for path in paths:
        folder = path.parent
        try:
            shared = workspace.is_relative_to(folder.resolve()) or folder.resolve().is_relative_to(
                workspace
            )
            sticky = bool(folder.stat().st_mode & stat.S_ISVTX)
        except OSError:
            continue
        targets.add(path if shared or sticky else folder)
    saved: list[tuple[Path, os.stat_result]] = []
    for target in sorted(targets):
        try:
            st = target.stat()
            os.chown(target, 0, 0)
            os.chmod(target, 0o700 if target.is_dir() else 0o600)
            saved.append((target, st))
        except OSError as exc:
            console.annotation("warning", f"cannot protect {target} from agents: {exc}")

    def restore() -> None:
        for target, st in saved:
            with contextlib.suppress(OSError):
                os.chown(target, st.st_uid, st.st_gid)
                os.chmod(target, stat.S_IMODE(st.st_mode))

    # Also when a second signal (or a stuck stop) ends the process at once: the runner reads
    # these files after the step, as the runner user.
    take_back = on_emergency_exit(restore)
    try:
        yield
    finally:
        take_back()
        restore()


def hand_over(top: Path, from_uid: int | None, to_uid: int, to_gid: int) -> int:
    """Everything under `top` (itself included) owned by `from_uid` (None: by anyone else)
    becomes `to_uid`'s."""
    changed = 0
    for path in (str(top), *_walk(top)):
        try:
            uid = os.lstat(path).st_uid
            if uid == from_uid or (from_uid is None and uid != to_uid):
                os.lchown(path, to_uid, to_gid)
                changed += 1
        except OSError:
            continue
    return changed


def _walk(top: Path) -> Iterator[str]:
    for root, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            yield os.path.join(root, name)


def give_back(workspace: Path, console: Console, lent: bool = False) -> None:
    """As root in a container, whatever the run created belongs to root; the runner's later
    steps run as the workspace's owner and must be able to change it (git included). A lent
    workspace goes back to root."""
    if os.geteuid() != 0:
        return
    try:
        owner = workspace.stat()
    except OSError:
        return
    started = time.monotonic()
    if lent:
        changed = hand_over(workspace, LENT_UID, 0, 0)
        owner_uid = 0
    elif owner.st_uid == 0:
        return
    else:
        changed = hand_over(workspace, 0, owner.st_uid, owner.st_gid)
        owner_uid = owner.st_uid
    if changed:
        console.info(
            f"{count(changed, 'file')} handed to uid {owner_uid} "
            f"({time.monotonic() - started:.1f} s)"
        )
