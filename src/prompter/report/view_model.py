"""What the reports say about a run, worked out from the state (and the workflow if there is one).

Shared by `junit.py` and `summary.py`; pure: no I/O. The state alone is enough — task names,
statuses, reasons, attempts and times are all in it — so a report can be rebuilt for any past
run. The workflow adds the file lines, the dependency graph and the critical path; when it is
missing or has changed since, `notes` says what the reports lack.

Everything that came from a process (output tails, reasons) is untrusted: `text.xml_safe` and
`text.report_line` make it printable text that any XML or markdown writer can take.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Workflow
from ..fingerprints import fingerprints
from ..records import RunRecord, RunStatus, State, TaskRecord, TaskStatus
from ..text import report_line
from ..words import count, plural


def duration_text(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def utc_text(moment: float | None, fmt: str = "%Y-%m-%d %H:%M:%S UTC") -> str | None:
    """`moment` (seconds since the epoch) in UTC, or None when it is no date (NaN, out of range)."""
    if moment is None or not math.isfinite(moment):
        return None
    try:
        return time.strftime(fmt, time.gmtime(moment))
    except (OverflowError, OSError, ValueError):
        return None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class TaskView:
    name: str
    record: TaskRecord
    index: int | None  # position in the workflow; None when the workflow does not have it
    line: int | None  # its `[[tasks]]` line in the workflow file
    current: bool  # recorded by the latest run (else: an earlier run's result, reused)
    changed: bool  # its definition changed since it ran

    @property
    def status(self) -> TaskStatus:
        return self.record.status

    @property
    def duration_s(self) -> float | None:
        duration = _finite(self.record.duration_s)
        return duration if duration is None or duration >= 0 else None


@dataclass(frozen=True)
class RunFacts:
    workflow: Workflow | None
    workflow_path: str | None  # as recorded by the run
    run: RunRecord | None  # the latest run
    tasks: list[TaskView]  # every task with a record: workflow order, then the others
    not_run: list[str]  # tasks of the workflow without a record
    counts: dict[TaskStatus, int]
    wall_s: float | None  # the latest run, start to end
    work_s: float  # sum of the latest run's task durations
    cost_usd: float  # the latest run's tasks
    critical: tuple[str, ...]  # the heaviest chain of dependent tasks, by measured durations
    critical_s: float
    notes: list[str] = field(default_factory=list)
    # The latest run ran nothing (every task passed earlier): the earlier run whose timeline and
    # critical path are shown instead, the latest one that ran a task still in the state.
    timeline_run: RunRecord | None = None

    def timed(self, view: TaskView) -> bool:
        """Whether `view` is in the timeline and the critical path: the latest run's, or
        `timeline_run`'s when the latest ran nothing."""
        if self.timeline_run is None:
            return view.current
        return view.record.run_id == self.timeline_run.run_id

    @property
    def name(self) -> str:
        """The workflow's name: its file name without `.toml`."""
        path = self.workflow_path or (str(self.workflow.path) if self.workflow else "")
        return Path(path).stem or "workflow"

    @property
    def result(self) -> str:
        if self.run is None:
            failed = any(t.status is not TaskStatus.PASSED for t in self.tasks)
            return RunStatus.FAILED if failed else RunStatus.PASSED
        return self.run.status or "did not finish"

    @property
    def speedup(self) -> float | None:
        if not self.wall_s or self.wall_s <= 0 or self.work_s <= 0:
            return None
        return self.work_s / self.wall_s


def analyse(state: State, workflow: Workflow | None = None, notes: Sequence[str] = ()) -> RunFacts:
    run = state.runs[-1] if state.runs else None
    out_notes = list(notes)
    views = _views(state, workflow, run, out_notes)
    not_run = [t.name for t in workflow.tasks if t.name not in state.tasks] if workflow else []
    counts: dict[TaskStatus, int] = {}
    for view in views:
        counts[view.status] = counts.get(view.status, 0) + 1
    current = [v for v in views if v.current]
    work = sum(v.duration_s or 0.0 for v in current)
    cost = sum(v.record.cost_usd for v in current if math.isfinite(v.record.cost_usd))
    wall = _wall_time(run, current, out_notes) if run is not None else None
    timed, timeline_run = current, None
    if run is not None and not current:
        timeline_run = _timeline_run(state, views)
        if timeline_run is not None:
            timed = [v for v in views if v.record.run_id == timeline_run.run_id]
    critical, critical_s = _critical_path(workflow, timed)
    changed = sum(v.changed for v in views)
    if changed:
        out_notes.append(
            f"{count(changed, 'task')} changed in the workflow since "
            f"{plural(changed, 'it', 'they')} ran (marked \u201cchanged\u201d)"
        )
    return RunFacts(
        workflow=workflow,
        workflow_path=run.workflow if run else (str(workflow.path) if workflow else None),
        run=run,
        tasks=views,
        not_run=not_run,
        counts=counts,
        wall_s=wall,
        work_s=work,
        cost_usd=cost,
        critical=critical,
        critical_s=critical_s,
        notes=out_notes,
        timeline_run=timeline_run,
    )


def _views(
    state: State, workflow: Workflow | None, run: RunRecord | None, notes: list[str]
) -> list[TaskView]:
    """Every task with a record: the workflow's in its order, then those it no longer has
    (with a note)."""
    index = workflow.index if workflow else {}
    lines = workflow.task_lines if workflow else ()
    prints = fingerprints(workflow) if workflow else {}
    ordered = [t.name for t in workflow.tasks if t.name in state.tasks] if workflow else []
    strays = [name for name in state.tasks if name not in index]
    if workflow and strays:
        notes.append(
            f"{count(len(strays), 'task')} in the state {plural(len(strays), 'is', 'are')} "
            f"no longer in {workflow.path} "
            f"(first: {report_line(strays[0], 80)}): reported without file, line or graph node"
        )
    views: list[TaskView] = []
    for name in ordered + strays:
        record = state.tasks[name]
        i = index.get(name)
        views.append(
            TaskView(
                name=name,
                record=record,
                index=i,
                line=lines[i] if i is not None and i < len(lines) else None,
                current=run is None or record.run_id == run.run_id,
                changed=i is not None and record.fingerprint != prints.get(name),
            )
        )
    return views


def _wall_time(run: RunRecord, current: list[TaskView], notes: list[str]) -> float | None:
    """The run's start to end; without a recorded end, to the end of its last task (noted)."""
    end = _finite(run.finished_at)
    if end is None:
        ends = [e for v in current if (e := _finite(v.record.finished_at)) is not None]
        end = max(ends, default=None)
        notes.append("the run did not record its end (it crashed or is still running)")
    start = _finite(run.started_at)
    if end is not None and start is not None and end >= start:
        return end - start
    return None


def _timeline_run(state: State, views: list[TaskView]) -> RunRecord | None:
    """The latest run before the last that ran a task still in the state."""
    ran = {v.record.run_id for v in views}
    return next((r for r in reversed(state.runs[:-1]) if r.run_id in ran), None)


def _critical_path(
    workflow: Workflow | None, timed: list[TaskView]
) -> tuple[tuple[str, ...], float]:
    """The heaviest chain of tasks that ran (graph mode), by their measured durations."""
    if workflow is None or workflow.mode != "graph":
        return (), 0.0
    weights = [0.0] * len(workflow.tasks)
    for v in timed:
        if v.index is not None and v.status in (TaskStatus.PASSED, TaskStatus.FAILED):
            weights[v.index] = v.duration_s or 0.0
    path = workflow.graph.critical_path(weights)
    chain = [i for i in path.tasks if weights[i] > 0]
    return tuple(workflow.tasks[i].name for i in chain), sum(weights[i] for i in chain)


def attempt_failed_in_verify(record: TaskRecord) -> bool:
    """Whether the task's last attempt failed its check (rather than in the agent phase)."""
    if not record.attempts:
        return False
    last = record.attempts[-1]
    return last.verify_exit_code is not None or (last.reason or "").startswith(
        "verify_command timed out"
    )


def last_output(record: TaskRecord) -> str:
    return record.attempts[-1].output_tail if record.attempts else ""
