"""Starting a child in its own session, with stdin from /dev/null and stdout and stderr into one
pipe: posix_spawn where it can do what Popen does, Popen otherwise (another directory, another
user). `Child` follows its pipe and its pidfd with one epoll descriptor; `spawn_error` says why
one could not start."""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from .. import identity
from .capture import CHUNK, Capture
from .groups import signal_group


def as_user(user: identity.Identity | None, env: Mapping[str, str] | None) -> dict[str, Any]:
    """Popen's arguments for a child started as `user` (posix_spawn cannot change uid)."""
    if user is None:
        return {"env": env}
    return {
        "env": user.environ(env),
        "user": user.uid,
        "group": user.gid,
        "extra_groups": [],  # none of root's supplementary groups
    }


@functools.cache
def lean_supported() -> bool:
    """Whether this kernel has pidfd_open (Linux >= 5.3) and epoll; probed once."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):  # no such function, ENOSYS, or a seccomp filter
        return False
    return hasattr(select, "epoll")


def _posix_spawn_fits(command: str, cwd: Path, env: Mapping[str, str] | None) -> bool:
    """Whether posix_spawn can start this child as Popen would, with about half the CPU of
    Popen's Python layer (bench/bench_overhead.py).

    Python's posix_spawn cannot change directory and searches our own PATH: so only for a child
    that runs in our working directory, with our PATH or a path to the program. Everything else
    Popen does for a child, `_posix_spawn` does too (descriptors, signals, session).
    """
    if os.sep not in command and env is not None and env.get("PATH") != os.environ.get("PATH"):
        return False
    try:
        return os.path.samestat(os.stat(cwd), os.stat("."))
    except (OSError, ValueError):  # Popen reports a missing or bad directory properly
        return False


@functools.cache
def _inherited_fds() -> tuple[int, ...]:
    """Inheritable descriptors above stderr that this process was started with.

    Popen closes them in every child (close_fds); posix_spawn would pass them on, so it closes
    these explicitly. Looked up once: Python itself only creates non-inheritable ones (PEP 446).
    """
    found = []
    for name in os.listdir("/proc/self/fd"):  # the lean layer runs on Linux only
        fd = int(name)
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
            if fd > 2 and os.get_inheritable(fd):
                found.append(fd)
    return tuple(found)


_IGNORED_BY_PYTHON = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name)
)


def _posix_spawn(argv: Sequence[str], env: Mapping[str, str] | None, output: int) -> int:
    actions: list[tuple[Any, ...]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, output, 1),
        (os.POSIX_SPAWN_DUP2, output, 2),
    ]
    # glibc ignores closing a descriptor that is no longer open.
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_fds()]
    spawn = os.posix_spawn if os.sep in argv[0] else os.posix_spawnp
    return spawn(
        argv[0],
        list(argv),
        os.environ if env is None else env,
        file_actions=actions,
        setsid=True,
        # Python ignores these; Popen restores their defaults in a child (restore_signals).
        setsigdef=_IGNORED_BY_PYTHON,
    )


class Child:
    """A started child without asyncio's transport: its output pipe, a pidfd, and one epoll fd
    that becomes readable when either does, so a single task can follow both."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None, pipe: int) -> None:
        self.pid = pid
        self.returncode: int | None = None  # set by reap()
        self._popen = popen  # None when posix_spawn started it: reaped with waitpid
        self.exited = False  # the leader has exited; until reaped it is a zombie holding its pid
        self.eof = False
        self._pipe = pipe
        self._pidfd = -1
        self._poller: select.epoll | None = None
        try:
            self._pidfd = os.pidfd_open(self.pid)
            self._poller = select.epoll(2)
            self._poller.register(pipe, select.EPOLLIN)
            self._poller.register(self._pidfd, select.EPOLLIN)
        except BaseException:
            self.close()  # e.g. out of fds: stop the child rather than lose track of it
            raise

    @classmethod
    def spawn(cls, argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None) -> Child:
        # Synchronous from fork to the handle, so no cancellation can land in between. Only the
        # read end is non-blocking: the child's stdout must stay a blocking pipe.
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        popen = None
        user = identity.children()
        try:
            os.set_blocking(read_end, False)
            if user is None and _posix_spawn_fits(argv[0], cwd, env):
                pid = _posix_spawn(argv, env, write_end)
            else:
                popen = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=write_end,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    start_new_session=True,
                    **as_user(user, env),
                )
                pid = popen.pid
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        return cls(pid, popen, read_end)

    async def follow(self, capture: Capture) -> None:
        """Copy output into `capture` until the leader exits (it is not reaped yet)."""
        assert self._poller is not None
        while not self.exited:
            await anyio.wait_readable(self._poller.fileno())
            for fd, _ in self._poller.poll(0):
                if fd == self._pipe:
                    self._read(capture)
                else:
                    self.exited = True

    async def drain(self, capture: Capture) -> None:
        """Copy output until every holder of the pipe has closed it."""
        # Read before waiting: usually the pipe is at EOF already, and a wait costs a turn of
        # the event loop.
        while not self.eof:
            if not self._read(capture):
                await anyio.wait_readable(self._pipe)

    def _read(self, capture: Capture) -> bool:
        """One read; False if there was nothing to read yet."""
        try:
            chunk = os.read(self._pipe, CHUNK)
        except BlockingIOError:
            return False
        if chunk:
            capture.feed(chunk)
            return True
        self.eof = True
        if self._poller is not None:  # a pipe at EOF stays readable: stop watching it
            self._poller.unregister(self._pipe)
        return True

    def reap(self) -> int:
        """The leader's exit status; call once it has exited (or was SIGKILLed): no blocking."""
        if self.returncode is None:
            if self._popen is not None:
                self.returncode = self._popen.wait()
            else:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def close(self) -> None:
        """Release every fd; a leader still unreaped (only on an unexpected error) is killed and
        reaped first, so no zombie is left."""
        if self.returncode is None:
            signal_group(self.pid, signal.SIGKILL)
            self.reap()
        for fd in (self._pipe, self._pidfd):
            if fd >= 0:
                os.close(fd)
        self._pipe = self._pidfd = -1
        if self._poller is not None:
            self._poller.close()


def spawn_error(exc: OSError | ValueError, argv: Sequence[str], cwd: Path) -> str:
    command = argv[0]
    about_cwd = isinstance(exc, OSError) and str(exc.filename) == str(cwd)
    if isinstance(exc, NotADirectoryError) and about_cwd:
        return f"not a directory: {cwd}"
    if isinstance(exc, FileNotFoundError):
        if about_cwd:
            return f"no such directory: {cwd}"
        if os.sep in command and (cwd / command).is_file():
            # exec reports ENOENT for a script whose #! interpreter is missing.
            return f"interpreter not found for: {command}"
        return f"command not found: {command}"
    if isinstance(exc, NotADirectoryError):
        return f"command not found: {command}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {cwd if about_cwd else command}"
    if isinstance(exc, OSError):
        return f"cannot start {command}: {exc.strerror or exc}"
    if any("\0" in arg for arg in argv):  # worded differently by Popen and posix_spawn
        return f"invalid command {command!r}: embedded null byte"
    return f"invalid command {command!r}: {exc}"
