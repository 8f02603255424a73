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
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Workflow
from ..fingerprints import fingerprints
from ..records import Estimate, RunRecord, RunStatus, State, TaskRecord, TaskStatus
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
    job: str | None = None  # the fan-out job whose run recorded it, if any
    # Skipped because a dependency failed (or was skipped) in another fan-out job: that job.
    cause_job: str | None = None
    # Its cost as forecast before the run that recorded it (that run's `forecast`), if any.
    forecast: Estimate | None = None

    @property
    def status(self) -> TaskStatus:
        return self.record.status

    @property
    def duration_s(self) -> float | None:
        duration = _finite(self.record.duration_s)
        return duration if duration is None or duration >= 0 else None

    @property
    def outcome(self) -> str:
        """How the diagrams colour it: passed (this run), reused (an earlier pass), failed,
        skipped, interrupted, or unfinished."""
        status = self.status
        if status is TaskStatus.PASSED:
            return "passed" if self.current else "reused"
        if status in (TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.INTERRUPTED):
            return status.value
        return "unfinished"


@dataclass(frozen=True)
class JobFacts:
    """One job of a fan-out: its latest run and what that run recorded."""

    job: str
    run: RunRecord
    counts: dict[TaskStatus, int]  # of the tasks its run recorded (reused ones not counted)
    cost_usd: float
    wall_s: float | None  # its run, start to end

    @property
    def tasks(self) -> int:
        return sum(self.counts.values())


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
    # A fan-out (the latest run has a `job`): the latest run of each job, by start. Their tasks
    # are all "current", and the result, the wall time and the cost are theirs together.
    jobs: tuple[JobFacts, ...] = ()

    @property
    def runs(self) -> tuple[RunRecord, ...]:
        """The runs this report is about: the latest, or the latest of each job of a fan-out."""
        if self.jobs:
            return tuple(j.run for j in self.jobs)
        return (self.run,) if self.run is not None else ()

    @property
    def started_at(self) -> float | None:
        starts = [s for r in self.runs if (s := _finite(r.started_at)) is not None]
        return min(starts, default=None)

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
        statuses = [r.status for r in self.runs]
        # Of a fan-out's jobs, the worst: an interruption, then a job that did not finish.
        for status in (RunStatus.INTERRUPTED, None, RunStatus.FAILED):
            if status in statuses:
                return status or "did not finish"
        return RunStatus.PASSED

    @property
    def failed_run(self) -> RunRecord | None:
        """The first of `runs` that did not pass (failed, interrupted or did not finish)."""
        return next((r for r in self.runs if r.status != RunStatus.PASSED), None)

    @property
    def speedup(self) -> float | None:
        if not self.wall_s or self.wall_s <= 0 or self.work_s <= 0:
            return None
        return self.work_s / self.wall_s


def analyse(state: State, workflow: Workflow | None = None, notes: Sequence[str] = ()) -> RunFacts:
    run = state.runs[-1] if state.runs else None
    out_notes = list(notes)
    latest = _latest_of_jobs(state, run)
    reporting = {r.run_id for r in latest} if latest else {run.run_id} if run else None
    views = _views(state, workflow, reporting, out_notes)
    not_run = [t.name for t in workflow.tasks if t.name not in state.tasks] if workflow else []
    counts: dict[TaskStatus, int] = {}
    for view in views:
        counts[view.status] = counts.get(view.status, 0) + 1
    current = [v for v in views if v.current]
    work = sum(v.duration_s or 0.0 for v in current)
    cost = sum(v.record.cost_usd for v in current if math.isfinite(v.record.cost_usd))
    runs = latest or ([run] if run is not None else [])
    wall = _wall_time(runs, current, out_notes) if runs else None
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
        jobs=tuple(_job_facts(r, current) for r in latest),
    )


def _latest_of_jobs(state: State, run: RunRecord | None) -> list[RunRecord]:
    """A fan-out's runs (when the latest run has a `job`): the latest of each job, by start."""
    if run is None or run.job is None:
        return []
    latest: dict[str, RunRecord] = {}
    for r in state.runs:  # in order of start (`records.merge`) or of recording (the store)
        if r.job is not None:
            latest[r.job] = r
    return sorted(latest.values(), key=lambda r: _finite(r.started_at) or 0.0)


def _job_facts(run: RunRecord, current: list[TaskView]) -> JobFacts:
    mine = [v for v in current if v.record.run_id == run.run_id]
    counts: dict[TaskStatus, int] = {}
    for view in mine:
        counts[view.status] = counts.get(view.status, 0) + 1
    cost = sum(v.record.cost_usd for v in mine if math.isfinite(v.record.cost_usd))
    return JobFacts(
        job=run.job or "", run=run, counts=counts, cost_usd=cost, wall_s=_wall_time([run], mine, [])
    )


def _views(
    state: State, workflow: Workflow | None, reporting: set[str] | None, notes: list[str]
) -> list[TaskView]:
    """Every task with a record: the workflow's in its order, then those it no longer has
    (with a note). `reporting`: the ids of the runs whose records are current (None: all)."""
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
    jobs = {r.run_id: r.job for r in state.runs}
    forecasts = {r.run_id: r.forecast.tasks for r in state.runs if r.forecast is not None}
    views: list[TaskView] = []
    for name in ordered + strays:
        record = state.tasks[name]
        i = index.get(name)
        job = jobs.get(record.run_id)
        views.append(
            TaskView(
                name=name,
                record=record,
                index=i,
                line=lines[i] if i is not None and i < len(lines) else None,
                current=reporting is None or record.run_id in reporting,
                changed=i is not None and record.fingerprint != prints.get(name),
                job=job,
                cause_job=_cause_job(state, record, job, jobs),
                forecast=forecasts.get(record.run_id, {}).get(name),
            )
        )
    return views


# The reason the engines give a task they skip for a dependency (see scheduler.py).
_DEPENDENCY = re.compile(r"dependency `(.+)` failed")


def _cause_job(
    state: State, record: TaskRecord, job: str | None, jobs: dict[str, str | None]
) -> str | None:
    """The other fan-out job in which the dependency that got `record` skipped failed."""
    if record.status is not TaskStatus.SKIPPED or not record.reason:
        return None
    match = _DEPENDENCY.fullmatch(record.reason)
    cause = state.tasks.get(match.group(1)) if match else None
    other = jobs.get(cause.run_id) if cause is not None else None
    return other if other is not None and other != job else None


def _wall_time(
    runs: Sequence[RunRecord], current: list[TaskView], notes: list[str]
) -> float | None:
    """The runs' first start to last end; without a recorded end, to the end of their last
    task (noted)."""
    ends = [_finite(r.finished_at) for r in runs]
    end = max((e for e in ends if e is not None), default=None)
    if None in ends:
        tasks = [e for v in current if (e := _finite(v.record.finished_at)) is not None]
        end = max([*tasks, *([end] if end is not None else [])], default=None)
        notes.append(
            "the run did not record its end (it crashed or is still running)"
            if len(runs) == 1
            else "a job's run did not record its end (it crashed or is still running)"
        )
    starts = [s for r in runs if (s := _finite(r.started_at)) is not None]
    start = min(starts, default=None) if len(starts) == len(runs) else None
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
