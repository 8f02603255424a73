"""Opening prompter's own files (state, journal, lock, task logs, reports): regular files only.

A FIFO where prompter expects a file would block `open()` until a reader or writer comes, for
ever, and in the thread whose signal handlers only set a flag during a run: Ctrl-C and SIGTERM
would go unanswered. A device or a socket is no place for a state or a report either. So
`open_regular` opens with O_NONBLOCK, which makes a FIFO or a device answer at once, then checks
the type of what it opened (fstat) and refuses anything but a regular file. A symlink is
followed (what counts is the file it leads to), unless agent code runs as another user.

`make_dir` makes the directories they go in, naming the file that stands in the way if one does.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from . import identity

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def kind_of(mode: int) -> str:
    """What a file of this mode is, for messages: "a FIFO", "a directory", …"""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


class NotARegularFile(OSError):
    """`filename` is a FIFO, socket, device (or, read, a directory): `kind` says which."""

    def __init__(self, path: str | Path, kind: str) -> None:
        super().__init__(errno.EINVAL, f"is {kind}, not a regular file", str(path))
        self.kind = kind


class IsADirectory(NotARegularFile, IsADirectoryError):
    """A directory: an IsADirectoryError as well, with the system's own wording."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, "a directory")
        self.errno = errno.EISDIR
        self.strerror = os.strerror(errno.EISDIR)


def refusal(path: str | Path, mode: int) -> NotARegularFile:
    return IsADirectory(path) if stat.S_ISDIR(mode) else NotARegularFile(path, kind_of(mode))


def open_regular(path: str | Path, flags: int, mode: int = 0o666) -> int:
    """`os.open(path, flags, mode)` that never blocks and returns only a regular file's
    descriptor; else NotARegularFile (IsADirectoryError for a directory) or the OSError.

    While agent code runs as another user than prompter (root in the action's container), a
    symlink is refused too: that user may plant one where prompter writes as root."""
    guarded = identity.children() is not None
    if guarded:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if guarded and exc.errno == errno.ELOOP:
            kind = "a symbolic link (refused: agent code could plant one)"
            raise NotARegularFile(path, kind) from None
        # A FIFO opened for writing without a reader, and any socket: "No such device or
        # address". Say what the file is instead.
        if exc.errno == errno.ENXIO:
            try:
                st = os.stat(path)
            except OSError:
                raise exc from None
            if not stat.S_ISREG(st.st_mode):
                raise refusal(path, st.st_mode) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise refusal(path, st.st_mode)
        if not flags & os.O_NONBLOCK:
            os.set_blocking(fd, True)  # no effect on a regular file; as the caller asked
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | Path) -> bytes:
    """The bytes of a regular file; raises as `open_regular` (FileNotFoundError when absent)."""
    with open(open_regular(path, os.O_RDONLY), "rb") as f:
        return f.read()


def make_dir(path: Path) -> None:
    """`mkdir -p path`. When a file stands where a directory must be, NotADirectoryError names
    that file (`filename`): mkdir's own "File exists" does not say what is wrong, or where."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = not_a_directory(path)
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(blocker)) from None


def not_a_directory(path: Path) -> Path:
    """What stands in the way of directory `path`: the nearest of it and its parents that
    exists but is not a directory (`path` itself when none does)."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return path if candidate.is_dir() else candidate
    return path
