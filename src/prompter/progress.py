"""What a person watching a run sees: one line per event, or a live table on a terminal.

Only prompter's own lines reach the console; what agents and verify commands print goes to the
per-task logs, so parallel output is never interleaved (and never reaches a CI log unescaped).
Task names and reasons are anyone's text (a reason can quote a file name an agent chose): they
are shown with control and bidirectional characters escaped, and never as rich markup.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, TextIO, cast

import anyio

from .events import (
    AgentLimitChanged,
    AgentNote,
    AgentRefused,
    AttemptFinished,
    Event,
    Prechecked,
    RunFinished,
    RunStarted,
    TaskFinished,
    TaskStarted,
)
from .records import PRECHECK, AgentLimitChange, RunStatus, TaskStatus
from .text import console_line, truncate
from .words import count

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.text import Text

HEARTBEAT_S = 30.0
LISTED = 20  # tasks named in one heartbeat line
RECENT = 8  # finished tasks the live table shows
# Redraws of the live table: a burst of events (300 dependents skipped at once) draws a few
# frames at once, then at most DRAWS_PER_S, the rest folded into the next frame; each frame
# takes milliseconds of the event loop, which runs the tasks too.
DRAW_BURST = 10
DRAWS_PER_S = 20.0
_MARK = {
    TaskStatus.PASSED: "✓",
    TaskStatus.FAILED: "✗",
    TaskStatus.SKIPPED: "-",
    TaskStatus.INTERRUPTED: "!",
}


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)  # the wall clock can step back
    if round(seconds, 1) < 60:  # 59.96 s is "1m00s", not "60.0 s"
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _note(view: RunView, task: str) -> str:
    note = view.notes.get(task)
    return f"; {note}" if note else ""


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    return f"{seconds:.0f} s" if round(seconds) < 60 else _duration(seconds)


def _listed(items: list[str]) -> str:
    more = len(items) - LISTED
    return ", ".join(items[:LISTED]) + (f", … and {more} more" if more > 0 else "")


def _which(attempt: int) -> str:
    """What a started task runs, when not simply its first attempt."""
    if attempt == PRECHECK:
        return " (verify first: no agent yet)"
    return f" (attempt {attempt})" if attempt > 1 else ""


def _refused(event: AgentRefused) -> str:
    """The line for a session the API refused: not an attempt, the task queues again."""
    pause = event.retry_in_s
    after = f" (no new session for {pause:.0f} s)" if pause else ""
    return (
        f"⏸ {event.task}: the API refused the agent session ({truncate(event.reason, 200)}); "
        f"waits for the agent limit{after}"
    )


class RunView:
    """Counts and running tasks, shared by both presentations."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.total = 0
        self.running: dict[str, tuple[float, int]] = {}  # task -> (started at, attempt)
        self.waiting: dict[str, float] = {}  # task -> when its retry is due (backoff)
        # Tasks whose agent session the API refused, queued again behind the agent limit (not
        # an attempt): task -> when the pause the API named (or the back-off) ends, if any.
        self.refused: dict[str, float | None] = {}
        self.limit: AgentLimitChange | None = None  # the agent limit's latest change
        self.cut: AgentLimitChange | None = None  # its latest change that did not raise it
        self.notes: dict[str, str] = {}  # task -> what its agent said last along the way
        # Each task's latest end: a loop ends a task more than once, the count is of tasks.
        self.ended: dict[str, TaskStatus] = {}
        self.cost_usd = 0.0  # agent spend of this run so far

    def update(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.started_at = event.at
            self.total = len(event.tasks)
        elif isinstance(event, TaskStarted):
            self.running[event.task] = (event.at, event.attempt)
            self.waiting.pop(event.task, None)
            self.refused.pop(event.task, None)
            self.notes.pop(event.task, None)
        elif isinstance(event, Prechecked):  # the task waits for its first attempt
            self.running.pop(event.task, None)
        elif isinstance(event, AgentRefused):
            self.running.pop(event.task, None)
            self.notes.pop(event.task, None)
            due = None if event.retry_in_s is None else event.at + event.retry_in_s
            self.refused[event.task] = due
        elif isinstance(event, AgentLimitChanged):
            change, before = event.change, self.limit
            if before is None or change.limit <= before.limit:
                self.cut = change  # a cut, or a pause at the same limit: the why to show
            self.limit = change
        elif isinstance(event, AgentNote):
            if event.task in self.running:
                self.notes[event.task] = event.text
        elif isinstance(event, AttemptFinished):
            self.running.pop(event.task, None)
            self.notes.pop(event.task, None)
            self.cost_usd += event.attempt.cost_usd or 0.0
            if event.retry_in_s is not None:
                self.waiting[event.task] = event.at + event.retry_in_s
        elif isinstance(event, TaskFinished):
            self.running.pop(event.record.name, None)
            self.waiting.pop(event.record.name, None)
            self.refused.pop(event.record.name, None)
            self.notes.pop(event.record.name, None)
            self.ended[event.record.name] = event.record.status

    @property
    def done(self) -> dict[TaskStatus, int]:
        """How many tasks ended in each state (as it is now)."""
        out: dict[TaskStatus, int] = {}
        for status in self.ended.values():
            out[status] = out.get(status, 0) + 1
        return out

    @property
    def queued(self) -> int:
        """Tasks of this run that have not started yet (a retry waiting for its backoff is
        counted in `waiting`, a refused session in `refused`, not here)."""
        started = self.ended.keys() | self.running.keys() | self.waiting.keys()
        return max(self.total - len(started | self.refused.keys()), 0)

    def agents(self, now: float) -> str | None:
        """The agent limit while it is below its maximum, and why: "agents: 3 of 8 — API 429
        12 s ago"; None at the maximum (or before any change)."""
        limit, cut = self.limit, self.cut
        if limit is None or limit.limit >= limit.maximum:
            return None
        why = ""
        if cut is not None:  # "API 429; no new session for 10 s": the signal, when, the rest
            signal, *rest = cut.cause.split("; ", 1)
            why = "; ".join([f" — {signal} {_ago(now - cut.at)} ago", *rest])
        return f"agents: {limit.limit} of {limit.maximum}{why}"

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
        # CI, could start a line with `::`, a workflow command); an escape sequence in it would
        # recolour or clear the reader's terminal.
        self.stream.write(f"[{stamp}] {console_line(text)}\n")
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        self.view.update(event)
        if isinstance(event, RunStarted):
            reused = f", {len(event.reused)} passed earlier" if event.reused else ""
            self._line(
                f"run {event.run_id}: {event.workflow}, {event.mode} mode, "
                f"{count(len(event.tasks), 'task')}{reused}, {count(event.slots, 'slot')}",
                event.at,
            )
            for warning in event.warnings:
                self._line(f"warning: {warning}", event.at)
        elif isinstance(event, TaskStarted):
            self._line(f"▶ {event.task}{_which(event.attempt)}", event.at)
        elif isinstance(event, Prechecked):
            self._line(
                f"· {event.task}: not satisfied yet ({event.precheck.reason}): the agent starts",
                event.at,
            )
        elif isinstance(event, AgentNote):
            self._line(f"… {event.task}: {event.text}", event.at)
        elif isinstance(event, AgentRefused):
            self._line(_refused(event), event.at)
        elif isinstance(event, AgentLimitChanged):
            self._limit_line(event.change, event.at)
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
            if self.view.total == 0 and event.status == RunStatus.PASSED:
                self._line(
                    "nothing to do: every task passed earlier (--fresh runs them again)", event.at
                )
            else:
                self._line(
                    f"run {event.status}{why}: {self.view.counts()} in {took}{self.view.spent()}",
                    event.at,
                )

    def _limit_line(self, change: AgentLimitChange, at: float) -> None:
        # The view has taken the change already: one that is not its `cut` raised the limit.
        back = change is not self.view.cut and change.limit >= change.maximum
        why = "again" if back else f"({change.cause})"
        self._line(f"agents: {change.limit} of {change.maximum} {why}", at)

    def beat(self) -> None:
        """The heartbeat's line: what runs, what waits to be retried or for the agent limit,
        and the limit while it is low (nothing else is printed while a retry's backoff runs,
        up to minutes)."""
        view, now = self.view, time.time()
        parts = []
        if view.running:
            running = [
                f"{name} ({_duration(now - since)}{_note(view, name)})"
                for name, (since, _) in sorted(view.running.items())
            ]
            parts.append(f"running: {_listed(running)}")
        if view.waiting:
            waiting = [
                f"{name} (in {_duration(due - now)})" for name, due in sorted(view.waiting.items())
            ]
            parts.append(f"waiting to retry: {_listed(waiting)}")
        if view.refused:
            parts.append(f"waiting for the agent limit: {_listed(sorted(view.refused))}")
        if parts and (agents := view.agents(now)) is not None:
            parts.append(agents)
        if parts:
            self._line("… " + "; ".join(parts))

    async def heartbeat(self) -> None:
        while True:
            await anyio.sleep(self.heartbeat_s)
            self.beat()


class LiveProgress:
    """A live table on a terminal (rich), redrawn on events (at most DRAWS_PER_S after a burst)
    and once a second.

    It fits the terminal: one line per row, as many running tasks as there is room for (then
    "… and N more running"), so the counts, the queue and the latest failures stay in view and
    a redraw costs the same for 10 running tasks or 1,000. On a console that is not a terminal
    (or TERM=dumb), where nothing can be redrawn, it prints plain timestamped lines instead.
    """

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.view = RunView()
        self.console = console or Console()
        self.recent: list[Text] = []
        # auto_refresh would start a thread; the ticker below redraws from the event loop.
        self.live = Live(console=self.console, auto_refresh=False, transient=False)
        self._tokens: float = DRAW_BURST  # redraws that may happen at once (a token bucket)
        self._filled = self._drawn = time.monotonic()
        self._dirty = False  # an event changed what the last frame shows
        self.plain: PlainProgress | None = None
        if not self.console.is_terminal or self.console.is_dumb_terminal:
            self.plain = PlainProgress(cast("TextIO", self.console.file))
            self.view = self.plain.view

    def _render(self, final: bool = False) -> RenderableType:
        from rich.console import Group
        from rich.text import Text

        view, now = self.view, time.time()
        header = Text.assemble(
            (f"elapsed {_duration(now - view.started_at)}", "bold"),
            f"  {view.counts()}{view.spent()}",
        )
        running = sorted(view.running.items())
        waiting, refused = len(view.waiting), len(view.refused)
        pending = [f"{view.queued} queued"] if view.queued else []
        pending += [f"{waiting} waiting to retry"] if waiting else []
        pending += [f"{refused} waiting for the agent limit"] if refused else []
        agents = view.agents(now)
        recent = self.recent[-RECENT:]
        shown_running = len(running)
        if not final:  # what fits below the header, with a spare line for the cursor
            above = (1 if pending else 0) + (1 if agents else 0)
            room = max(max(self.console.size.height - 2, 2) - above, 1)
            n_recent = min(len(recent), max(room - len(running), room // 3))
            recent = recent[len(recent) - n_recent :]
            if len(running) > room - n_recent:
                shown_running = room - n_recent - 1  # and a line saying how many more
        lines = [header]
        if agents:  # the API pushed back: fewer sessions at once than the slots allow
            lines.append(Text(console_line(agents), style="yellow"))
        if shown_running:
            width = self.console.size.width
            shown = running[:shown_running]
            names = [Text(f"▶ {console_line(name)}", style="cyan") for name, _ in shown]
            column = min(max(n.cell_len for n in names), max(width - 24, 12))
            for text, (name, (since, attempt)) in zip(names, shown, strict=True):
                text.truncate(column, overflow="ellipsis", pad=True)
                extra = f" attempt {attempt}" if attempt > 1 else ""
                note = console_line(_note(view, name))
                lines.append(Text.assemble(text, f"  {_duration(now - since)}{extra}{note}"))
        if len(running) > shown_running:
            more = len(running) - shown_running
            said = f"… and {more} more running" if shown_running else f"{more} running"
            lines.append(Text(said, style="cyan"))
        if pending:
            lines.append(Text(", ".join(pending), style="dim"))
        lines += recent
        for line in lines:  # one row, one line, while live; the last frame shows it all
            line.no_wrap, line.overflow = (False, "fold") if final else (True, "ellipsis")
        return Group(*lines)

    def __call__(self, event: Event) -> None:
        from rich.text import Text

        if self.plain is not None:
            self.plain(event)
            return
        self.view.update(event)
        if isinstance(event, RunStarted):
            for warning in event.warnings:
                self.console.print(Text(console_line(f"warning: {warning}"), style="yellow"))
            self.live.start()
        elif isinstance(event, TaskFinished):
            r = event.record
            why = f": {r.reason}" if r.reason else ""
            color = {"passed": "green", "failed": "red"}.get(r.status.value, "yellow")
            line = console_line(f"{_MARK[r.status]} {r.name} {r.status.value}{why}")
            self.recent.append(Text(line, style=color))
            del self.recent[:-RECENT]
        if isinstance(event, RunFinished):
            self._stop()
            why = f" ({event.reason})" if event.reason else ""
            counts = f"{self.view.counts()}{self.view.spent()}"
            self.console.print(Text(console_line(f"run {event.status}{why}: {counts}")))
        elif self.live.is_started:
            now = time.monotonic()
            self._tokens = min(DRAW_BURST, self._tokens + (now - self._filled) * DRAWS_PER_S)
            self._filled = now
            if self._tokens >= 1:
                self._tokens -= 1
                self._draw()
            else:
                self._dirty = True  # the ticker draws it within 0.1 s

    def _draw(self) -> None:
        self._dirty, self._drawn = False, time.monotonic()
        self.live.update(self._render(), refresh=True)

    def _stop(self) -> None:
        """The last frame, in full, and the terminal back as it was (the cursor shown)."""
        if self.live.is_started:
            self.live.update(self._render(final=True))
            self.live.stop()

    async def heartbeat(self) -> None:
        if self.plain is not None:
            await self.plain.heartbeat()
            return
        try:
            while True:
                await anyio.sleep(0.1)
                stale = self._dirty or time.monotonic() - self._drawn >= 1  # times move on
                if stale and self.live.is_started:
                    self._draw()
        finally:
            # Cancelled when the run ends, and also when it ends by an error that skips the
            # RunFinished event: the terminal must not keep a hidden cursor.
            self._stop()


def choose(mode: str, stream: TextIO | None = None) -> PlainProgress | LiveProgress | None:
    """`auto`: a live table on an interactive terminal, plain lines elsewhere (CI, pipes)."""
    stream = stream or sys.stdout
    if mode == "none":
        return None
    if mode == "auto":
        interactive = stream.isatty() and os.environ.get("TERM") != "dumb"
        mode = "rich" if interactive and not os.environ.get("CI") else "plain"
    return LiveProgress() if mode == "rich" else PlainProgress(stream)
