"""What a person watching a run sees: one line per event, or a live table on a terminal.

Only prompter's own lines reach the console; what agents and verify commands print goes to the
per-task logs, so parallel output is never interleaved (and never reaches a CI log unescaped).
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, TextIO

import anyio

from .events import AttemptFinished, Event, RunFinished, RunStarted, TaskFinished, TaskStarted
from .state import TaskStatus

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

HEARTBEAT_S = 30.0
_MARK = {
    TaskStatus.PASSED: "✓",
    TaskStatus.FAILED: "✗",
    TaskStatus.SKIPPED: "-",
    TaskStatus.INTERRUPTED: "!",
}


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


class RunView:
    """Counts and running tasks, shared by both presentations."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.total = 0
        self.running: dict[str, tuple[float, int]] = {}  # task -> (started at, attempt)
        # Each task's latest end: a loop ends a task more than once, the count is of tasks.
        self.ended: dict[str, TaskStatus] = {}
        self.cost_usd = 0.0  # agent spend of this run so far

    def update(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.started_at = event.at
            self.total = len(event.tasks)
        elif isinstance(event, TaskStarted):
            self.running[event.task] = (event.at, event.attempt)
        elif isinstance(event, AttemptFinished):
            self.running.pop(event.task, None)
            self.cost_usd += event.attempt.cost_usd or 0.0
        elif isinstance(event, TaskFinished):
            self.running.pop(event.record.name, None)
            self.ended[event.record.name] = event.record.status

    @property
    def done(self) -> dict[TaskStatus, int]:
        """How many tasks ended in each state (as it is now)."""
        out: dict[TaskStatus, int] = {}
        for status in self.ended.values():
            out[status] = out.get(status, 0) + 1
        return out

    def counts(self) -> str:
        order = (TaskStatus.PASSED, TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.INTERRUPTED)
        done = self.done
        parts = [f"{done[s]} {s.value}" for s in order if done.get(s)]
        return ", ".join(parts) or "nothing finished"

    def spent(self) -> str:
        return f", cost ${self.cost_usd:.2f}" if self.cost_usd else ""


class PlainProgress:
    """Timestamped lines, for logs and CI; a heartbeat names what is still running."""

    def __init__(self, stream: TextIO | None = None, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.stream = stream or sys.stdout
        self.view = RunView()
        self.heartbeat_s = heartbeat_s

    def _line(self, text: str, at: float | None = None) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(at or time.time()))
        # One event, one line: a reason that spans lines would break the log's shape (and, in
        # CI, could start a line with `::`, a workflow command).
        text = " ".join(text.replace("\r", "\n").split("\n"))
        self.stream.write(f"[{stamp}] {text}\n")
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        self.view.update(event)
        if isinstance(event, RunStarted):
            reused = f", {len(event.reused)} passed earlier" if event.reused else ""
            self._line(
                f"run {event.run_id}: {event.workflow}, {event.mode} mode, "
                f"{len(event.tasks)} task(s){reused}, {event.slots} at a time",
                event.at,
            )
        elif isinstance(event, TaskStarted):
            self._line(
                f"▶ {event.task}" + (f" (attempt {event.attempt})" if event.attempt > 1 else ""),
                event.at,
            )
        elif isinstance(event, AttemptFinished) and event.retry_in_s is not None:
            self._line(
                f"↻ {event.task} attempt {event.attempt.number} failed: {event.attempt.reason}; "
                f"retrying in {event.retry_in_s:.1f} s with the failure in the prompt",
                event.at,
            )
        elif isinstance(event, TaskFinished):
            r = event.record
            took = f" in {_duration(r.duration_s)}" if r.duration_s is not None else ""
            tries = f", {len(r.attempts)} attempts" if len(r.attempts) > 1 else ""
            cost = f", ${r.cost_usd:.2f}" if r.cost_usd else ""
            why = f": {r.reason}" if r.reason else ""
            self._line(
                f"{_MARK[r.status]} {r.name} {r.status.value}{why}{took}{tries}{cost}", event.at
            )
        elif isinstance(event, RunFinished):
            took = _duration(event.at - self.view.started_at)
            why = f" ({event.reason})" if event.reason else ""
            if self.view.total == 0 and event.status == "passed":
                self._line("nothing to do: every task passed earlier (--fresh runs them again)")
            else:
                self._line(
                    f"run {event.status}{why}: {self.view.counts()} in {took}{self.view.spent()}",
                    event.at,
                )

    async def heartbeat(self) -> None:
        while True:
            await anyio.sleep(self.heartbeat_s)
            if self.view.running:
                now = time.time()
                running = ", ".join(
                    f"{name} ({_duration(now - since)})"
                    for name, (since, _) in sorted(self.view.running.items())
                )
                self._line(f"… running: {running}")


class LiveProgress:
    """A live table on a terminal (rich), redrawn on every event and once a second."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.view = RunView()
        self.console = console or Console()
        self.recent: list[str] = []
        self.queued: list[str] = []
        # auto_refresh would start a thread; the ticker below redraws from the event loop.
        self.live = Live(console=self.console, auto_refresh=False, transient=False)

    def _render(self) -> Table:
        from rich.markup import escape
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        now = time.time()
        table.add_row(
            f"[bold]elapsed {_duration(now - self.view.started_at)}[/]", self.view.counts()
        )
        for name, (since, attempt) in sorted(self.view.running.items()):
            extra = f" attempt {attempt}" if attempt > 1 else ""
            table.add_row(f"[cyan]▶ {escape(name)}[/]", f"{_duration(now - since)}{extra}")
        queued = self.view.total - len(self.view.ended.keys() | self.view.running.keys())
        if queued > 0:
            table.add_row(f"[dim]{queued} queued[/]", "")
        for line in self.recent[-8:]:
            table.add_row(line, "")
        return table

    def __call__(self, event: Event) -> None:
        from rich.markup import escape

        self.view.update(event)
        if isinstance(event, RunStarted):
            self.live.start()
        elif isinstance(event, TaskFinished):
            r = event.record
            why = f": {escape(r.reason)}" if r.reason else ""
            color = {"passed": "green", "failed": "red"}.get(r.status.value, "yellow")
            self.recent.append(
                f"[{color}]{_MARK[r.status]} {escape(r.name)} {r.status.value}{why}[/]"
            )
        self.live.update(self._render(), refresh=True)
        if isinstance(event, RunFinished):
            self.live.stop()
            why = f" ({escape(event.reason)})" if event.reason else ""
            self.console.print(f"run {event.status}{why}: {self.view.counts()}{self.view.spent()}")

    async def heartbeat(self) -> None:
        while True:
            await anyio.sleep(1)
            self.live.update(self._render(), refresh=True)


def choose(mode: str, stream: TextIO | None = None) -> PlainProgress | LiveProgress | None:
    """`auto`: a live table on an interactive terminal, plain lines elsewhere (CI, pipes)."""
    stream = stream or sys.stdout
    if mode == "none":
        return None
    if mode == "auto":
        interactive = stream.isatty() and os.environ.get("TERM") != "dumb"
        mode = "rich" if interactive and not os.environ.get("CI") else "plain"
    return LiveProgress() if mode == "rich" else PlainProgress(stream)
