"""One child command from start to end: its own process group, bounded output, a timeout, and
clean-up. A timeout or a cancellation sends SIGTERM to the group, waits a grace period, then
SIGKILLs it; what the child left behind is swept (`sweep.py`) before its leader is reaped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio
from anyio.abc import Process

from .. import identity
from .capture import Capture, read_all
from .child import Child, as_user, lean_supported, spawn_error
from .groups import live_groups, signal_group
from .sweep import Enclosure

# Once the whole group is dead the pipe reaches EOF at once, so waiting longer only happens if a
# process outside the group (one that called setsid, or a stuck one in uninterruptible sleep)
# still holds it; we stop reading then rather than hang the run.
_DRAIN_S = 1.0


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
    capture = Capture(head_bytes, tail_bytes, log)
    deadline = started + timeout if timeout is not None else float("inf")
    # The lean path costs about half the CPU of asyncio's subprocess transport per process (no
    # child-watcher thread, no protocol objects); the anyio path is kept for other kernels.
    run = _run_lean if lean_supported() else _run_anyio
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
    capture: Capture,
    grace_s: float,
) -> _Outcome:
    enclosure = Enclosure()
    try:
        child = Child.spawn(argv, cwd, enclosure.environ(env))
    except (OSError, ValueError) as exc:
        enclosure.forget()
        return spawn_error(exc, argv, cwd)
    enclosure.track(child.pid)
    live_groups.add(child.pid)
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
        live_groups.discard(child.pid)
    return child.returncode, timed_out


async def _run_anyio(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None,
    deadline: float,
    capture: Capture,
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
                **as_user(identity.children(), enclosure.environ(env)),
            )
    except (OSError, ValueError) as exc:
        enclosure.forget()
        return spawn_error(exc, argv, cwd)

    pgid = process.pid
    enclosure.track(pgid)
    live_groups.add(pgid)
    assert process.stdout is not None
    timed_out = False
    try:
        async with anyio.create_task_group() as tg:
            reader = anyio.CancelScope(shield=True)
            eof = anyio.Event()
            tg.start_soon(read_all, process.stdout, capture, reader, eof)
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
        live_groups.discard(pgid)
    return process.returncode, timed_out


async def _stop_child(child: Child, capture: Capture, grace_s: float, enclosure: Enclosure) -> bool:
    """Like `_stop`: leave nothing of the group alive, reap the leader; True if it had to be
    stopped. Output is still read meanwhile, so a child that prints while it cleans up does not
    block on a full pipe."""
    still_running = not child.exited
    if still_running:
        signal_group(child.pid, signal.SIGTERM)
        with anyio.move_on_after(grace_s):
            await child.follow(capture)
    # The leader is not reaped yet (a zombie at most), so its group id cannot have been reused:
    # this reaches only what it left behind.
    signal_group(child.pid, signal.SIGKILL)
    await child.follow(capture)
    # Before reaping, for the same reason: the session's id still names only this child's.
    await enclosure.close()
    child.reap()
    return still_running


async def _stop(process: Process, pgid: int, grace_s: float) -> bool:
    """Leave nothing of the group alive and reap the leader; True if the leader had to be
    stopped (it was still running)."""
    still_running = process.returncode is None
    if still_running:
        signal_group(pgid, signal.SIGTERM)
        with anyio.move_on_after(grace_s):
            await process.wait()
    # Also for a leader that exited by itself: whatever it left in the group (background
    # children, possibly holding the pipe open) must not survive the run.
    signal_group(pgid, signal.SIGKILL)
    await process.wait()
    return still_running


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
    signal_group(pid, signal.SIGTERM)
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
        signal_group(pid, signal.SIGKILL)
