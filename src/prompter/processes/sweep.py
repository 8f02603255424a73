"""Descendants that leave their process group (`setsid`, a double fork: daemons), found again
and killed when their child ends.

While a run owns its descendants (`owning_descendants`, Linux), prompter is a child
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
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import anyio

from .child import lean_supported
from .groups import live_groups, signal_group

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
    return sys.platform == "linux" and hasattr(os, "P_PIDFD") and lean_supported()


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
        if pid not in live_groups and (proc := _stat(pid)) is not None and proc.sid != own:
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
    roots = [pid for pid in live_groups if pid in procs] if everything else []
    for pid, proc in procs.items():
        if pid in live_groups or pid == me:
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
        if pid not in found and (everything or pid not in live_groups):
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


def terminate_all(sig: int = signal.SIGKILL) -> None:
    """Send `sig` to every process group a running `run_process` started.

    Synchronous so the second-signal emergency exit can call it right before `os._exit`. While
    a run owns its descendants, also every process that left its group (see the module
    docstring); that is a walk of /proc.
    """
    for pgid in tuple(live_groups):
        signal_group(pgid, sig)
    if _Owning.on:  # and what left the groups: no waiting, no reaping, the process exits next
        for pid in _leftovers(None, kill_strays=True, everything=True):
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
