"""SIGINT and SIGTERM during a run: the first stops the engine in order, a second (or a stop
that does not come within STOP_WITHIN_S) kills every child and exits at once."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import anyio

from . import exits, processes
from .engines import Engine

STOP_WITHIN_S = 5.0


async def watch_signals(stop: list[int], engine: Engine) -> None:
    """Stop `engine` on the first signal, noted in `stop`; give up on a second."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals, _backstop():
        if _interrupted_before():
            stop.append(signal.SIGINT)
            engine.stop("interrupted by SIGINT")
        async for signum in signals:
            if stop:  # a second signal: no more grace
                processes.emergency_exit(exits.signalled(signum))
            stop.append(signum)
            engine.stop(f"interrupted by {signal.Signals(signum).name}")


def _interrupted_before() -> bool:
    """Whether the `prompter` command had a Ctrl-C before the run's handlers took over that did
    not end it: one Python could not raise where it landed (a weakref callback while importing;
    see cli._unraisable). The run stops at once, as on a Ctrl-C now."""
    cli = sys.modules.get("prompter.cli")
    return bool(getattr(cli, "_interrupts", None))


def _give_up(signum: int) -> None:
    """What a second signal does: kill every child, exit at once (the state is as SIGKILL
    leaves it: every record written so far, loadable)."""
    processes.emergency_exit(exits.signalled(signum))


@contextlib.contextmanager
def _backstop() -> Iterator[None]:
    """A deadline behind the orderly stop on a signal, which is the event loop's work: should
    the loop be stuck in a system call (a write to a console pipe nobody reads), it never gets
    to the signal, and Ctrl-C or SIGTERM would go unanswered for good.

    Python runs a signal's handler in the main thread even then: the stuck call is interrupted,
    the handler runs, the call is retried. Put over the event loop's handler (which only wakes
    the loop), this one also starts a timer: a run not stopped STOP_WITHIN_S after the signal
    exits as on a second signal, and a second signal does at once, loop or no loop.
    """
    sigs = (signal.SIGINT, signal.SIGTERM)
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in sigs}
    timers: list[threading.Timer] = []
    deadline = _deadline(timers)

    def handler(signum: int, frame: FrameType | None) -> None:
        deadline(signum, frame)
        chained = previous[signum]
        if callable(chained):
            chained(signum, frame)

    for sig in sigs:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for timer in timers:
            timer.cancel()
        for signum, held in previous.items():
            signal.signal(signum, held)


def finish_after_the_loop() -> None:
    """Once the run's event loop is gone, asyncio has put SIGTERM back to its default, and one
    that comes now, as the run closes its state and writes its reports, would kill the process
    outright (status -15, reports unwritten). Instead the run gets STOP_WITHIN_S to finish what
    it does, and ends with its own exit code; a second SIGTERM, or that deadline, exits at once
    with 143 as during a run. Only from the main thread (where Python runs handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # a handler of the caller's own (or SIGTERM ignored): not ours to replace
    signal.signal(signal.SIGTERM, _deadline([]))


def _deadline(timers: list[threading.Timer]) -> Callable[[int, FrameType | None], None]:
    """A signal handler that gives up on a second signal, or STOP_WITHIN_S after the first
    (the timers it starts go into `timers`, for the caller to cancel)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if timers:
            _give_up(signum)
        timer = threading.Timer(STOP_WITHIN_S, _give_up, (signum,))
        timer.daemon = True
        timers.append(timer)
        timer.start()

    return handler
