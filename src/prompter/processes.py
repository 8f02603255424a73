"""Run one child command in its own process group, with bounded output, timeout and clean-up.

Agent and verify commands each run in their own process group; a timeout
or a cancellation sends SIGTERM to the group, waits a grace period, then SIGKILLs it. Nothing a
run started may outlive it, and nothing a child prints may exhaust our memory.

Processes that leave the group (`setsid`, a double fork: daemons) are found again when the
child ends. While a run owns its descendants (`owning_descendants`, Linux), prompter is a child
subreaper (PR_SET_CHILD_SUBREAPER): every orphan below it becomes its child instead of init's.
Each child is an `Enclosure`: a random token in its environment (PROMPTER_PROCESS_TOKEN) and its
session (== the leader's pid). When it ends, with its leader dead but not yet reaped (so the
session id cannot be reused), a sweep reads prompter's children (/proc/<pid>/task/<pid>/
children; orphans join the main thread): when none is outside prompter's session other than a
running leader, nothing escaped and that is all. Otherwise it walks /proc once and kills, with
pidfds (no pid-reuse race): every process in the child's session; every adopted orphan whose
environment carries the child's token; and everything below those. An adopted orphan that
carries no live token (its environment scrubbed, or a zombie, whose environment is gone) is a
stray of some child: a zombie is reaped at once, a live one killed once no other enclosure
runs, and at the run's end in any case. A live orphan with another running child's token is
never touched. Every process killed that is prompter's child is reaped by its pidfd (waitid
P_PIDFD): never a pid another waiter (Popen, asyncio's child watcher, the Claude SDK) owns, and
never waitpid(-1). The emergency exit (`terminate_all`) SIGKILLs all of it too. Without pidfds
or prctl (old kernels, macOS) only the process groups are reached.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import anyio
from anyio.abc import ByteReceiveStream, Process

from . import identity
from .text import strip_terminal_codes

__all__ = [
    "Enclosure",
    "ProcessResult",
    "emergency_exit",
    "on_emergency_exit",
    "owning_descendants",
    "readable",
    "run_process",
    "stop_session",
    "terminate_all",
    "tracked_group",
]

# Big reads keep the per-chunk Python overhead negligible even for a child printing gigabytes.
_CHUNK = 64 * 1024

# Once the whole group is dead the pipe reaches EOF at once, so waiting longer only happens if a
# process outside the group (one that called setsid, or a stuck one in uninterruptible sleep)
# still holds it; we stop reading then rather than hang the run.
_DRAIN_S = 1.0

# Process group ids (== leader pids, thanks to start_new_session) whose members may still be
# alive. A plain set: the emergency exit reads it from a signal handler, which runs between
# bytecodes on the main thread, so it never sees a half-done mutation.
_live_groups: set[int] = set()


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """How a child process ended and what it printed."""

    returncode: int | None  # None if it could not be started; negative = killed by that signal
    timed_out: bool
    duration_s: float
    output: str  # bounded, readable head and tail of merged stdout+stderr
    output_bytes: int  # total bytes the process wrote
    spawn_error: str | None = None

    @property
    def ok(self) -> bool:
        """Started, not timed out, and exited 0 (callers compare other codes themselves)."""
        return self.spawn_error is None and not self.timed_out and self.returncode == 0


def readable(data: bytes) -> str:
    """Text a person can read in a log or report, whatever bytes a process printed.

    Decodes UTF-8 with replacement, drops terminal escape sequences and control characters other
    than newline and tab, and turns CR LF and lone CR into LF. Never raises.
    """
    return strip_terminal_codes(data.decode("utf-8", errors="replace"))


def terminate_all(sig: int = signal.SIGKILL) -> None:
    """Send `sig` to every process group a running `run_process` started.

    Synchronous so the second-signal emergency exit can call it right before `os._exit`. While
    a run owns its descendants, also every process that left its group (see the module
    docstring); that is a walk of /proc.
    """
    for pgid in tuple(_live_groups):
        _signal_group(pgid, sig)
    if _Owning.on:  # and what left the groups: no waiting, no reaping, the process exits next
        for pid in _leftovers(None, kill_strays=True, everything=True):
            with contextlib.suppress(OSError):
                os.kill(pid, sig)


# Done right before an emergency exit, after the children are killed: what must not stay as
# the run left it (the action's locks on the runner's files). Each quick and synchronous.
_last_words: list[Callable[[], None]] = []


def on_emergency_exit(action: Callable[[], None]) -> Callable[[], None]:
    """Have `action` done by `emergency_exit`; returns a function that takes it back."""
    _last_words.append(action)
    return lambda: _last_words.remove(action) if action in _last_words else None


def emergency_exit(code: int) -> NoReturn:
    """Kill every child (daemons included), do the registered last words, exit at once: no
    clean-up of this process, which may be stuck (a second signal, the stop deadline)."""
    terminate_all(signal.SIGKILL)
    for action in reversed(_last_words):
        with contextlib.suppress(Exception):
            action()
    os._exit(code)


def _signal_group(pgid: int, sig: int) -> None:
    # ESRCH: the group is already empty; EPERM: what is left of it is not ours to signal.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# --- descendants that leave the group -----------------------------------------------------------

TOKEN_VAR = "PROMPTER_PROCESS_TOKEN"
_TOKEN_KEY = b"\0" + TOKEN_VAR.encode() + b"="
_PR_SET_CHILD_SUBREAPER = 36
_SWEEP_PASSES = 4  # a process forking while it is being killed needs another look, not forever
_REAP_WAIT_S = 5.0  # SIGKILLed processes exit at once, unless stuck in uninterruptible sleep

# The running enclosures by token.
_enclosures: dict[str, Enclosure] = {}


class _Owning:
    """Whether a run owns its descendants now (prompter is their subreaper)."""

    on = False


class Enclosure:
    """One child (or a CLI another library spawns) and whatever it leaves behind: a token in its
    environment and the sessions it runs in, to find daemons again when it ends."""

    __slots__ = ("foreign", "sessions", "token")

    def __init__(self, foreign: bool = False) -> None:
        self.token = os.urandom(8).hex()
        self.sessions: set[int] = set()
        # Started by another library and not yet known by pid: until `track`, an unknown zombie
        # among our children may be its leader, which that library will reap.
        self.foreign = foreign
        _enclosures[self.token] = self

    def environ(self, env: Mapping[str, str] | None) -> dict[str, str]:
        return {**(os.environ if env is None else env), TOKEN_VAR: self.token}

    def track(self, leader: int) -> None:
        """The leader of a session this enclosure started."""
        self.sessions.add(leader)
        self.foreign = False

    async def close(self) -> None:
        """Kill and reap what is left of it (see the module docstring); then it is gone."""
        try:
            if _Owning.on:
                await _sweep(self)
        finally:
            self.forget()

    def forget(self) -> None:
        _enclosures.pop(self.token, None)


@contextlib.asynccontextmanager
async def owning_descendants() -> AsyncIterator[bool]:
    """Make this process the subreaper of everything it starts, for the block (a run); at its
    end, kill and reap every leftover. Yields whether that works here (Linux with pidfds)."""
    if _Owning.on or not _sweep_supported() or not _set_subreaper(True):
        yield _Owning.on
        return
    _Owning.on = True
    try:
        yield True
    finally:
        with anyio.CancelScope(shield=True):
            await _sweep(None)
        _Owning.on = False
        _set_subreaper(False)


@functools.cache
def _sweep_supported() -> bool:
    return sys.platform == "linux" and hasattr(os, "P_PIDFD") and _lean_supported()


def _set_subreaper(on: bool) -> bool:
    import ctypes  # only here: a run pays for the import once

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True, slots=True)
class _Proc:
    ppid: int
    sid: int
    zombie: bool
    started: int  # clock ticks after boot: with the pid, names one process for good


def _stat(pid: int | str) -> _Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:  # gone
        return None
    fields = data[data.rindex(b")") + 2 :].split()  # the name in parentheses may hold anything
    return _Proc(int(fields[1]), int(fields[3]), fields[0] in b"ZX", int(fields[19]))


def _token(pid: int) -> str | None:
    """The enclosure token in a process's environment, if it is there and readable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:  # gone, or not ours to read
        return None
    at = (b"\0" + env).find(_TOKEN_KEY)
    if at < 0:
        return None
    return env[at + len(_TOKEN_KEY) - 1 :].partition(b"\0")[0].decode("ascii", "replace")


def _strangers() -> bool:
    """Whether prompter has a child outside its own session that is not a running leader: only
    then can anything have escaped, and a walk of /proc is worth it."""
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children", "rb") as f:  # orphans join the main thread
            children = f.read().split()
    except OSError:  # a kernel without CONFIG_PROC_CHILDREN: look at everything
        return True
    own = os.getsid(0)
    for child in children:
        pid = int(child)
        if pid not in _live_groups and (proc := _stat(pid)) is not None and proc.sid != own:
            return True
    return False


def _leftovers(
    own: Enclosure | None, kill_strays: bool, everything: bool = False
) -> dict[int, _Proc]:
    """What to kill: see the module docstring. `own` None: only the strays (the run's end);
    `everything`: also what running enclosures left (the emergency exit)."""
    procs: dict[int, _Proc] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (proc := _stat(name)) is not None:
            procs[int(name)] = proc
    me, own_sid = os.getpid(), os.getsid(0)
    others = [e for e in _enclosures.values() if e is not own]
    busy = set().union(*(e.sessions for e in others))
    pending = any(e.foreign for e in others)
    mine = own.sessions if own is not None else set()
    if everything:
        mine, busy, pending = busy, set(), False
    # In the emergency exit the leaders are still running: what they started counts too.
    roots = [pid for pid in _live_groups if pid in procs] if everything else []
    for pid, proc in procs.items():
        if pid in _live_groups or pid == me:
            continue  # a leader: its owner reaps it
        if proc.sid in mine:
            roots.append(pid)
        elif proc.ppid == me and proc.sid != own_sid and proc.sid not in busy:
            token = None if proc.zombie else _token(pid)
            if own is not None and token == own.token:
                roots.append(pid)
            elif token in _enclosures and not everything:
                continue  # a daemon of a child still running
            elif (proc.zombie and not pending) or token is not None or kill_strays:
                roots.append(pid)
    below: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        below.setdefault(proc.ppid, []).append(pid)
    found: dict[int, _Proc] = {}
    while roots:
        pid = roots.pop()
        if pid not in found and (everything or pid not in _live_groups):
            found[pid] = procs[pid]
            roots.extend(below.get(pid, ()))
    return found


async def _sweep(own: Enclosure | None) -> None:
    for _ in range(_SWEEP_PASSES):
        if not _strangers():
            return
        quiet = all(e is own for e in _enclosures.values())
        targets = _leftovers(own, kill_strays=quiet)
        if not targets:
            return
        pidfds = []
        try:
            for pid, proc in targets.items():
                with contextlib.suppress(OSError):  # gone already
                    pidfd = os.pidfd_open(pid)
                    if not _same(pid, proc):  # gone, and its pid given to a new process
                        os.close(pidfd)
                        continue
                    pidfds.append(pidfd)
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            with anyio.move_on_after(_REAP_WAIT_S):
                for pidfd in pidfds:
                    await anyio.wait_readable(pidfd)
            for pidfd in pidfds:
                # Ours by now, if its parent was killed too; ECHILD: someone else's to reap.
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
        finally:
            for pidfd in pidfds:
                os.close(pidfd)


def _same(pid: int, proc: _Proc) -> bool:
    now = _stat(pid)
    return now is not None and now.started == proc.started


class _Capture:
    """Everything the child prints: counted, copied to the log, and kept as head + tail."""

    def __init__(self, head_bytes: int, tail_bytes: int, log: BinaryIO | None) -> None:
        self.total = 0
        self._head = bytearray()
        self._tail = bytearray()
        self._head_bytes = head_bytes
        self._tail_bytes = tail_bytes
        self._log = log

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self._log is not None:
            try:
                self._log.write(chunk)
            except OSError:
                # A full disk must not kill the run it is logging; the output tail survives.
                self._log = None
        room = self._head_bytes - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self._tail += chunk
            excess = len(self._tail) - self._tail_bytes
            if excess > 0:
                del self._tail[:excess]

    def output(self) -> str:
        omitted = self.total - len(self._head) - len(self._tail)
        if omitted == 0:
            # Decode as one piece so a character split across head and tail stays whole.
            return readable(bytes(self._head + self._tail))
        marker = f"\n[… {omitted} bytes omitted …]\n"
        return readable(bytes(self._head)) + marker + readable(bytes(self._tail))


async def _read_all(
    stream: ByteReceiveStream, capture: _Capture, scope: anyio.CancelScope, eof: anyio.Event
) -> None:
    # `scope` is shielded so output printed during the grace period after a cancellation is still
    # read (and a chatty child does not block on a full pipe); the supervisor cancels it.
    with scope:
        try:
            while True:
                capture.feed(await stream.receive(_CHUNK))
        except anyio.EndOfStream:
            eof.set()


async def _stop(process: Process, pgid: int, grace_s: float) -> bool:
    """Leave nothing of the group alive and reap the leader; True if the leader had to be
    stopped (it was still running)."""
    still_running = process.returncode is None
    if still_running:
        _signal_group(pgid, signal.SIGTERM)
        with anyio.move_on_after(grace_s):
            await process.wait()
    # Also for a leader that exited by itself: whatever it left in the group (background
    # children, possibly holding the pipe open) must not survive the run.
    _signal_group(pgid, signal.SIGKILL)
    await process.wait()
    return still_running


def _spawn_error(exc: OSError | ValueError, argv: Sequence[str], cwd: Path) -> str:
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


class _Child:
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
    def spawn(cls, argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None) -> _Child:
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
                    **_as_user(user, env),
                )
                pid = popen.pid
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        return cls(pid, popen, read_end)

    async def follow(self, capture: _Capture) -> None:
        """Copy output into `capture` until the leader exits (it is not reaped yet)."""
        assert self._poller is not None
        while not self.exited:
            await anyio.wait_readable(self._poller.fileno())
            for fd, _ in self._poller.poll(0):
                if fd == self._pipe:
                    self._read(capture)
                else:
                    self.exited = True

    async def drain(self, capture: _Capture) -> None:
        """Copy output until every holder of the pipe has closed it."""
        # Read before waiting: usually the pipe is at EOF already, and a wait costs a turn of
        # the event loop.
        while not self.eof:
            if not self._read(capture):
                await anyio.wait_readable(self._pipe)

    def _read(self, capture: _Capture) -> bool:
        """One read; False if there was nothing to read yet."""
        try:
            chunk = os.read(self._pipe, _CHUNK)
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
            _signal_group(self.pid, signal.SIGKILL)
            self.reap()
        for fd in (self._pipe, self._pidfd):
            if fd >= 0:
                os.close(fd)
        self._pipe = self._pidfd = -1
        if self._poller is not None:
            self._poller.close()


async def _stop_child(
    child: _Child, capture: _Capture, grace_s: float, enclosure: Enclosure
) -> bool:
    """Like `_stop`: leave nothing of the group alive, reap the leader; True if it had to be
    stopped. Output is still read meanwhile, so a child that prints while it cleans up does not
    block on a full pipe."""
    still_running = not child.exited
    if still_running:
        _signal_group(child.pid, signal.SIGTERM)
        with anyio.move_on_after(grace_s):
            await child.follow(capture)
    # The leader is not reaped yet (a zombie at most), so its group id cannot have been reused:
    # this reaches only what it left behind.
    _signal_group(child.pid, signal.SIGKILL)
    await child.follow(capture)
    # Before reaping, for the same reason: the session's id still names only this child's.
    await enclosure.close()
    child.reap()
    return still_running


def _as_user(user: identity.Identity | None, env: Mapping[str, str] | None) -> dict[str, Any]:
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
def _lean_supported() -> bool:
    """Whether this kernel has pidfd_open (Linux >= 5.3) and epoll; probed once."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):  # no such function, ENOSYS, or a seccomp filter
        return False
    return hasattr(select, "epoll")


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    log: BinaryIO | None = None,
    head_bytes: int = 8 * 1024,
    tail_bytes: int = 56 * 1024,
    grace_s: float = 2.0,
) -> ProcessResult:
    """Run `argv` in a new session (own process group) with stdin from /dev/null.

    stdout and stderr are merged and streamed: raw bytes go to `log` (left open) and into a
    bounded head + tail buffer. On `timeout` (seconds from start) or cancellation the group gets
    SIGTERM, `grace_s` to exit, then SIGKILL; a cancellation propagates after that. When the
    leader exits by itself, anything left in its group is SIGKILLed. Failing to start is reported
    in the result, never raised.
    """
    if isinstance(argv, str | bytes):
        raise TypeError("argv must be a sequence of arguments, not a string")
    if head_bytes < 0 or tail_bytes < 0 or grace_s < 0:
        raise ValueError("head_bytes, tail_bytes and grace_s must not be negative")
    started = anyio.current_time()
    if not argv:
        return ProcessResult(None, False, 0.0, "", 0, spawn_error="empty command")
    capture = _Capture(head_bytes, tail_bytes, log)
    deadline = started + timeout if timeout is not None else float("inf")
    # The lean path costs about half the CPU of asyncio's subprocess transport per process (no
    # child-watcher thread, no protocol objects); the anyio path is kept for other kernels.
    run = _run_lean if _lean_supported() else _run_anyio
    try:
        result = await run(argv, cwd, env, deadline, capture, grace_s)
    finally:
        if log is not None:
            with contextlib.suppress(OSError):
                log.flush()
    if isinstance(result, str):
        duration = anyio.current_time() - started
        return ProcessResult(None, False, duration, "", 0, spawn_error=result)
    returncode, timed_out = result
    return ProcessResult(
        returncode=returncode,
        timed_out=timed_out,
        duration_s=anyio.current_time() - started,
        output=capture.output(),
        output_bytes=capture.total,
    )


# (returncode, timed_out), or why the process could not be started.
_Outcome = tuple[int | None, bool] | str


async def _run_lean(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None,
    deadline: float,
    capture: _Capture,
    grace_s: float,
) -> _Outcome:
    enclosure = Enclosure()
    try:
        child = _Child.spawn(argv, cwd, enclosure.environ(env))
    except (OSError, ValueError) as exc:
        enclosure.forget()
        return _spawn_error(exc, argv, cwd)
    enclosure.track(child.pid)
    _live_groups.add(child.pid)
    timed_out = False
    try:
        try:
            with anyio.CancelScope(deadline=deadline) as timer:
                await child.follow(capture)
        finally:
            # Runs on natural exit, on timeout and on cancellation alike; shielded so the
            # clean-up completes before a cancellation propagates.
            with anyio.CancelScope(shield=True):
                stopped = await _stop_child(child, capture, grace_s, enclosure)
                timed_out = stopped and timer.cancelled_caught
                if not child.eof:
                    with anyio.move_on_after(_DRAIN_S):
                        await child.drain(capture)
    finally:
        child.close()
        enclosure.forget()
        _live_groups.discard(child.pid)
    return child.returncode, timed_out


async def _run_anyio(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None,
    deadline: float,
    capture: _Capture,
    grace_s: float,
) -> _Outcome:
    enclosure = Enclosure(foreign=True)  # its leader's pid is known once it is spawned
    try:
        # Shielded: a cancellation landing after fork but before we hold the handle would leave
        # a process we cannot stop; spawning is quick, and the cancellation is seen right after.
        with anyio.CancelScope(shield=True):
            process = await anyio.open_process(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
                **_as_user(identity.children(), enclosure.environ(env)),
            )
    except (OSError, ValueError) as exc:
        enclosure.forget()
        return _spawn_error(exc, argv, cwd)

    pgid = process.pid
    enclosure.track(pgid)
    _live_groups.add(pgid)
    assert process.stdout is not None
    timed_out = False
    try:
        async with anyio.create_task_group() as tg:
            reader = anyio.CancelScope(shield=True)
            eof = anyio.Event()
            tg.start_soon(_read_all, process.stdout, capture, reader, eof)
            try:
                with anyio.CancelScope(deadline=deadline) as timer:
                    await process.wait()
            finally:
                # Runs on natural exit, on timeout and on cancellation alike; shielded so the
                # clean-up completes before a cancellation propagates.
                with anyio.CancelScope(shield=True):
                    stopped = await _stop(process, pgid, grace_s)
                    # asyncio has reaped the leader: unlike the lean path, its session id could
                    # in theory be reused by now (pids are handed out cyclically).
                    await enclosure.close()
                    timed_out = stopped and timer.cancelled_caught
                    with anyio.move_on_after(_DRAIN_S):
                        await eof.wait()
                    reader.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await process.aclose()
        enclosure.forget()
        _live_groups.discard(pgid)
    return process.returncode, timed_out


async def stop_session(pid: int, grace_s: float = 2.0) -> None:
    """Stop a process group that another library spawned (its leader called setsid).

    SIGTERM to the group, up to `grace_s` for the leader to exit (a pidfd: no polling), then
    SIGKILL to whatever is left. The leader is not reaped here: its spawner does that.
    """
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except ProcessLookupError:
        pidfd = None
    except OSError:  # no pidfd support: the grace period is a plain wait
        pidfd = -1
    _signal_group(pid, signal.SIGTERM)
    try:
        with anyio.move_on_after(grace_s):
            if pidfd is None:
                pass
            elif pidfd >= 0:
                await anyio.wait_readable(pidfd)
            else:
                await anyio.sleep(grace_s)
    finally:
        if pidfd is not None and pidfd >= 0:
            os.close(pidfd)
        _signal_group(pid, signal.SIGKILL)


@contextlib.contextmanager
def tracked_group(pgid: int) -> Iterator[None]:
    """Include a group spawned elsewhere in `terminate_all` while the block runs."""
    _live_groups.add(pgid)
    try:
        yield
    finally:
        _live_groups.discard(pgid)
