"""`summary.md`: the run for a person, in GitHub-flavoured markdown, at most 1 MiB.

Sections, in order: a headline (result, counts, wall time, sum of task times, speedup, cost,
the forecast made before the run and what verify-first saved (`spend.py`), the agent limit's
changes when the API pushed back (`pushback.py`), critical path); in a fan-out, the jobs with
their cost and the total (`jobs.py`); a table of tasks (each cost beside its forecast); a mermaid
flowchart of the dependency graph coloured by outcome and its legend (a small diagram of its
own under it, out of the graph's layout); a mermaid gantt chart of the actual timeline (one bar
per attempt, the critical path in red; in a fan-out, one section per job; a section for the
agent limit while it was below its maximum); `<details>` with each failure's output tail.

GitHub drops a step summary over 1 MiB, so the document is fitted to `MAX_BYTES` by trimming,
always in this order, and the end of the document says what was trimmed:
1. failure output tails are shortened, 2. then fewer failures get a `<details>` block,
3. passed tasks leave the table, 4. the table is cut, 5. the gantt chart goes, 6. the flowchart
goes. A diagram past mermaid's limits (500 edges, 50,000 characters) or of a very large run
(`MAX_NODES` tasks, `MAX_BARS` bars) is replaced by a compact fallback (the failed subgraph,
a subset of the timeline, or a line of text) with a one-line note: never a diagram that fails.

Untrusted text (names, reasons, output) is escaped for where it goes: backslash escapes and
HTML entities in markdown, HTML entities in `<summary>`, and a code fence longer than any run
of backticks in the content.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import Workflow
from ..records import State, TaskRecord, TaskStatus
from ..text import report_line, xml_safe
from ..words import count
from . import mermaid
from .jobs import jobs_section
from .markdown import fenced, html, md
from .pushback import limit_lines, limit_sections
from .spend import forecast_text, spend_lines
from .view_model import RunFacts, TaskView, analyse, duration_text, utc_text

MAX_BYTES = 1024 * 1024  # GitHub drops a larger step summary
MAX_NODES = 300  # a bigger flowchart does not help a reader: fall back
MAX_BARS = 300  # the same for gantt bars
MAX_TAIL_BYTES = 16 * 1024  # of each failure's output, before any trimming
MIN_TAIL_BYTES = 512  # trimming never shows less than this of a failure it shows
_NOTE_RESERVE = 4 * 1024  # room kept for the "trimmed" notes

_ICON = {
    TaskStatus.PASSED: "✅",
    TaskStatus.FAILED: "❌",
    TaskStatus.SKIPPED: "⏭️",
    TaskStatus.INTERRUPTED: "⚠️",
    TaskStatus.RUNNING: "⏳",
    TaskStatus.PENDING: "⏳",
}
_HEAD_ICON = {"passed": "✅", "failed": "❌", "interrupted": "⚠️"}

# Node colours of the flowchart: class -> (legend text, mermaid style).
_CLASSES = {
    "passed": ("passed", "fill:#d4edda,stroke:#28a745,color:#155724"),
    "reused": ("passed earlier", "fill:#eef7f0,stroke:#8fd19e,color:#155724"),
    "failed": ("failed", "fill:#f8d7da,stroke:#dc3545,color:#721c24,stroke-width:2px"),
    "skipped": ("skipped", "fill:#e2e3e5,stroke:#6c757d,color:#383d41,stroke-dasharray:4 3"),
    "interrupted": ("interrupted", "fill:#fff3cd,stroke:#fd7e14,color:#856404"),
    "unfinished": ("did not finish", "fill:#fff3cd,stroke:#ffc107,color:#856404"),
    "notrun": ("not run", "fill:#ffffff,stroke:#adb5bd,color:#6c757d"),
}


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _utf8_tail(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[len(data) - max_bytes :].decode("utf-8", "ignore")


# -- headline ----------------------------------------------------------------------------------


def _headline(facts: RunFacts) -> str:
    result = facts.result
    lines = [f"## {_HEAD_ICON.get(result, '⏳')} {md(facts.name, 120)}: {md(result)}", ""]
    for run in facts.runs:
        if run.reason:
            job = f" (job {md(run.job, 100)})" if facts.jobs and run.job else ""
            lines += [f"**Why{job}:** {md(run.reason, 500)}", ""]
    order = (
        TaskStatus.PASSED,
        TaskStatus.FAILED,
        TaskStatus.SKIPPED,
        TaskStatus.INTERRUPTED,
        TaskStatus.RUNNING,
        TaskStatus.PENDING,
    )
    counts = " · ".join(
        f"{facts.counts.get(s, 0)} {s.value}"
        for s in order
        if facts.counts.get(s) or s in order[:3]
    )
    parts = [f"**{counts}** ({count(len(facts.tasks), 'task')})"]
    parts.append(f"wall time {duration_text(facts.wall_s)}")
    parts.append(f"sum of task times {duration_text(facts.work_s)}")
    speedup = facts.speedup
    parts.append(f"speedup {speedup:.2f}x" if speedup is not None else "speedup -")
    parts.append(f"cost ${facts.cost_usd:.2f}")
    lines.append(" · ".join(parts))
    lines.append("")
    for paragraph in spend_lines(facts):  # the forecast before the run, what verify-first saved
        lines += [paragraph, ""]
    for paragraph in limit_lines(facts.runs, bool(facts.jobs)):  # if the API pushed back
        lines += [paragraph, ""]
    if facts.timeline_run is not None:
        earlier = facts.timeline_run
        stamp = utc_text(earlier.started_at) or "?"
        lines += [
            "Nothing ran in this run. The critical path and the timeline are those of the "
            f"last run that ran a task: run {md(earlier.run_id, 64)}, started {stamp}.",
            "",
        ]
    if facts.critical:
        shown = [md(n, 80) for n in facts.critical[:12]]
        more = len(facts.critical) - len(shown)
        chain = " → ".join(shown) + (f" → … {more} more" if more > 0 else "")
        lines.append(f"Critical path: {chain} ({duration_text(facts.critical_s)})")
    elif facts.workflow is not None and facts.workflow.mode == "sequential":
        lines.append("Critical path: - (sequential mode: one task at a time)")
    else:
        lines.append("Critical path: - (needs the workflow's dependency graph)")
    lines.append("")
    where = []
    if facts.jobs:
        stamp = utc_text(facts.started_at) or "?"
        where.append(f"{count(len(facts.jobs), 'job')} of a fan-out, the first started {stamp}")
    elif facts.run is not None:
        stamp = utc_text(facts.run.started_at) or "?"
        where.append(f"Run {md(facts.run.run_id, 64)}, started {stamp}")
    if facts.workflow_path:
        where.append(f"workflow {md(facts.workflow_path, 200)}")
    if where:
        lines += [", ".join(where), ""]
    for note in facts.notes[:10]:
        lines.append(f"> note: {md(note, 500)}")
    if facts.notes:
        lines.append("")
    return "\n".join(lines) + "\n"


# -- table ---------------------------------------------------------------------------------


def _row(view: TaskView) -> str:
    record = view.record
    status = f"{_ICON.get(record.status, '')} {record.status.value}"
    if view.job is not None:  # a fan-out: the job that recorded it
        status += f" in {md(view.job, 100)}"
    if record.already_satisfied:
        status += " (already satisfied)"
    if not view.current:
        status += " (earlier run)"
    if view.changed:
        status += " (changed since)"
    if (
        record.status is TaskStatus.FAILED
        and record.attempts
        and record.attempts[-1].environment_error
    ):
        status += " (environment error)"
    cost = record.cost_usd
    cost_text = f"${cost:.2f}" if cost and math.isfinite(cost) else "-"
    if view.forecast is not None:
        cost_text += f" ({forecast_text(view.forecast)})"
    # With worktree isolation, a task that passed says which files it changed.
    reason = record.reason or _changes(record)
    if view.cause_job is not None:  # the dependency failed in another job of the fan-out
        reason = f"{reason} (in job {report_line(view.cause_job, 100)})"
    return (
        f"| {md(view.name, 200)} | {status} | {len(record.attempts)} | "
        f"{duration_text(view.duration_s)} | {cost_text} | {md(reason, 200)} |\n"
    )


def _changes(record: TaskRecord) -> str | None:
    files = record.attempts[-1].changed_files if record.attempts else None
    if not files:
        return None
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return f"changed {shown}"


_TABLE_HEAD = (
    "### Tasks\n\n| task | status | attempts | duration | cost | reason |\n"
    "| --- | --- | ---: | ---: | ---: | --- |\n"
)


def _table(facts: RunFacts, rows: Sequence[TaskView], left_out: str | None) -> str:
    out = [_TABLE_HEAD, *(_row(v) for v in rows)]
    if left_out:
        out.append(f"\n_{left_out}_\n")
    if facts.not_run:
        names = ", ".join(md(n, 80) for n in facts.not_run[:20])
        more = len(facts.not_run) - 20
        out.append(
            f"\nNot run (no record in the state): {count(len(facts.not_run), 'task')}: {names}"
            + (f", … {more} more" if more > 0 else "")
            + "\n"
        )
    return "".join(out) + "\n"


# -- the flowchart -------------------------------------------------------------------------


def _block(diagram: str) -> str:
    return f"```mermaid\n{diagram}```\n"


def _flowchart_section(facts: RunFacts) -> str:
    head = "### Dependency graph\n\n"
    workflow = facts.workflow
    if workflow is None:
        return head + "_Not drawn: the workflow file is not available._\n\n"
    from .graph_view import flowchart

    css = {i: "notrun" for i in range(len(workflow.tasks))}
    for view in facts.tasks:
        if view.index is not None:
            css[view.index] = view.outcome
    index = workflow.index
    chain = [index[n] for n in facts.critical]
    thick = set(itertools.pairwise(chain))
    used = sorted(set(css.values()), key=list(_CLASSES).index)
    legend = [mermaid.Node(f"legend_{c}", _CLASSES[c][0], c) for c in used]
    class_defs = {c: _CLASSES[c][1] for c in used}
    explain = (
        "Arrows point from a dependency to its dependent; thick arrows: the critical path."
        if workflow.mode == "graph"
        else "Sequential mode: solid arrows on success, dotted on failure."
    )
    reason: str
    # The legend is a diagram of its own, under the graph: inside it, mermaid laid it out with
    # the tasks, and arrows between them ran through it.
    # (Top-down: unconnected nodes share the one rank, side by side; left-right stacks them.)
    key = _block(mermaid.flowchart(legend, (), class_defs, direction="TD"))
    if len(workflow.tasks) <= MAX_NODES:
        try:
            diagram = flowchart(workflow, None, css, class_defs, thick)
            return head + _block(diagram) + "\nLegend:\n\n" + key + f"\n{explain}\n\n"
        except mermaid.TooLarge as exc:
            reason = str(exc)
    else:
        reason = f"{len(workflow.tasks):,} tasks are more than a readable diagram ({MAX_NODES})"
    bad = {i for i, c in css.items() if c in ("failed", "interrupted", "unfinished")}
    subset = bad | workflow.graph.descendants(bad) if workflow.mode == "graph" else bad
    if bad and len(subset) <= MAX_NODES:
        try:
            diagram = flowchart(workflow, subset, css, class_defs, thick)
            note = (
                f"_Graph too large to draw ({reason}): showing the failed subgraph only "
                f"({len(subset):,} of {len(workflow.tasks):,} tasks: what failed and what it "
                "took down)._\n\n"
            )
            return head + note + _block(diagram) + "\nLegend:\n\n" + key + "\n"
        except mermaid.TooLarge:
            pass
    # The text fallback: what failed and how much it took down with it.
    note = f"_Graph too large to draw ({reason}); `prompter graph` prints all of it._\n\n"
    if not bad:
        return head + note
    rows = ["| failed task | status | tasks skipped because of it |\n| --- | --- | ---: |\n"]
    for i in sorted(bad)[:50]:
        down = len(workflow.graph.descendants([i])) if workflow.mode == "graph" else 0
        rows.append(f"| {md(workflow.tasks[i].name, 200)} | {css[i]} | {down} |\n")
    if len(bad) > 50:
        rows.append(f"\n_… and {len(bad) - 50:,} more failed tasks (all are in the table)._\n")
    return head + note + "".join(rows) + "\n"


# -- the gantt chart ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Span:
    task: str
    text: str
    start: float
    end: float
    failed: bool
    critical: bool
    lane: str | None = None  # the fan-out job whose run it was in: its section of the chart


# A JavaScript Date holds ±100,000,000 days around the epoch: mermaid cannot place a bar past it.
_DATE_LIMIT_S = 8.64e12


def _drawable(moment: float) -> bool:
    return math.isfinite(moment) and abs(moment) < _DATE_LIMIT_S


def _spans(facts: RunFacts) -> list[_Span]:
    critical = set(facts.critical)
    out: list[_Span] = []
    for view in facts.tasks:
        record = view.record
        if not facts.timed(view) or record.started_at is None:
            continue
        n = len(record.attempts)
        on_path = view.name in critical
        lane = view.job if facts.jobs else None
        last_end = record.started_at
        for attempt in record.attempts:
            start = attempt.started_at
            end = attempt.finished_at
            if end is None:
                end = record.finished_at if record.finished_at is not None else start
            if not (_drawable(start) and _drawable(end)):
                continue
            mark = "✓" if attempt.ok else "✗"
            suffix = f" ({attempt.number}/{n})" if n > 1 else ""
            text = f"{mark} {view.name}{suffix}"
            out.append(_Span(view.name, text, start, end, not attempt.ok, on_path, lane))
            last_end = max(last_end, end)
        finished = record.finished_at
        cut_short = record.status in (TaskStatus.INTERRUPTED, TaskStatus.RUNNING)
        drawable = finished is not None and _drawable(finished) and _drawable(last_end)
        if cut_short and drawable and finished is not None and finished > last_end:
            text = f"! {view.name} ({record.status.value})"
            out.append(_Span(view.name, text, last_end, finished, True, on_path, lane))
    out.sort(key=lambda s: (s.start, s.end))
    return out


def _ms(span: _Span) -> tuple[int, int]:
    """The bar as drawn: whole milliseconds, at least one long (also when the clock stepped
    back and the attempt ended before it started)."""
    start = math.floor(span.start * 1000)
    return start, max(math.ceil(span.end * 1000), start + 1)


def _peak(spans: Sequence[_Span]) -> int:
    """The most bars at one moment; a bar that ends as another starts does not overlap it."""
    bars = [_ms(s) for s in spans]
    events = sorted([(start, 1) for start, _ in bars] + [(end, -1) for _, end in bars])
    peak = level = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def _gantt(
    spans: Sequence[_Span], axis: str, limits: Sequence[tuple[str, Sequence[mermaid.Bar]]] = ()
) -> str:
    """One section ("attempts"), or in a fan-out one per job, in the order they start; after
    the sections of the agent limit (`limits`), if it went below its maximum."""
    lanes: dict[str | None, list[mermaid.Bar]] = {}
    for i, span in enumerate(spans):  # by start: a lane comes where its first bar does
        tags = tuple(t for t, on in (("crit", span.critical), ("done", span.failed)) if on)
        bar = mermaid.Bar(f"b{i}", report_line(span.text, 120), *_ms(span), tags)
        lanes.setdefault(span.lane, []).append(bar)
    sections = [
        ("attempts" if lane is None else f"job {report_line(lane, 100)}", bars)
        for lane, bars in lanes.items()
    ]
    return mermaid.gantt([*limits, *sections], axis_format=axis)


def _gantt_section(facts: RunFacts) -> str:
    head = "### Timeline\n\n"
    spans = _spans(facts)
    if not spans:
        return head + "_No attempts ran in this run._\n\n"
    first = min(s.start for s in spans)
    last = max(s.end for s in spans)
    span = last - first
    axis = "%H:%M:%S.%L" if span < 10 else "%H:%M:%S" if span < 86_400 else "%m-%d %H:%M"
    if facts.timeline_run is not None:
        head += (
            f"_Run {md(facts.timeline_run.run_id, 64)}'s attempts: nothing ran in this run._\n\n"
        )
    lanes = " One section per job of the fan-out." if facts.jobs else ""
    runs = (facts.timeline_run,) if facts.timeline_run is not None else facts.runs
    limits = limit_sections(runs, last, bool(facts.jobs))
    if limits:
        lanes += (
            " Agent limit: while the API's pushback held the agent sessions at once below the "
            "maximum, a light bar per level (\u201c3 of 8\u201d)."
        )
    explain = (
        f"Each bar is one attempt ({len(spans):,} in all, up to {_peak(spans)} at once), on the "
        "viewer's local clock. Red: on the critical path; grey: a failed or interrupted "
        f"attempt (✗, !); ✓ passed.{lanes}\n\n"
    )
    reason: str
    if len(spans) <= MAX_BARS:
        try:
            return head + _block(_gantt(spans, axis, limits)) + "\n" + explain
        except mermaid.TooLarge as exc:
            reason = str(exc)
    else:
        reason = f"{len(spans):,} attempts are more than a readable chart ({MAX_BARS})"
    # A subset: the critical path and the failures first, then the longest attempts.
    ranked = sorted(
        spans, key=lambda s: (not s.critical, not s.failed, -(s.end - s.start), s.start)
    )
    cap = min(MAX_BARS, len(spans))
    while cap >= 1:
        chosen = sorted(ranked[:cap], key=lambda s: (s.start, s.end))
        try:
            diagram = _gantt(chosen, axis, limits)
        except mermaid.TooLarge:
            cap //= 2
            continue
        note = (
            f"_Timeline too large to draw ({reason}): showing {len(chosen):,} of "
            f"{len(spans):,} attempts — the critical path, the failures, then the longest._\n\n"
        )
        return head + note + _block(diagram) + "\n" + explain
    return (
        head + f"_Timeline too large to draw ({reason}); attempts ran from "
        f"{utc_text(first, '%H:%M:%S')} to {utc_text(last, '%H:%M:%S')} UTC, up to "
        f"{_peak(spans)} at once._\n\n"
    )


# -- failures ------------------------------------------------------------------------------


def _failures(facts: RunFacts) -> list[TaskView]:
    return [
        v
        for v in facts.tasks
        if v.status not in (TaskStatus.PASSED, TaskStatus.SKIPPED) and v.current
    ]


def _details(view: TaskView, tail_bytes: int) -> str:
    record = view.record
    output = record.attempts[-1].output_tail if record.attempts else ""
    tail = xml_safe(output, last=tail_bytes)
    cut = len(output) > tail_bytes or _size(tail) > tail_bytes
    tail = _utf8_tail(tail, tail_bytes)
    if cut:
        tail = "[… earlier output cut; the task's log under logs/ has all of it]\n" + tail
    body = fenced(tail) if tail.strip() else "_(no output)_\n"
    summary = f"{html(view.name, 200)}: {html(record.reason or record.status.value, 300)}"
    return f"<details><summary>{summary}</summary>\n\n{body}\n</details>\n\n"


_FAILURES_HEAD = "### Failures\n\n"


def _details_section(failures: Sequence[TaskView], tail_bytes: int) -> str:
    if not failures:
        return ""
    return _FAILURES_HEAD + "".join(_details(v, tail_bytes) for v in failures)


def _details_within(failures: Sequence[TaskView], tail_bytes: int, room: int) -> list[str]:
    """The details of the longest prefix of `failures` that fits in `room` bytes with the
    section's heading; each built once (10,000 failures: one pass, not one per guess)."""
    used = _size(_FAILURES_HEAD)
    parts: list[str] = []
    for view in failures:
        part = _details(view, tail_bytes)
        used += _size(part)
        if used > room:
            break
        parts.append(part)
    return parts


# -- putting it together -------------------------------------------------------------------


def build_summary(
    state: State,
    workflow: Workflow | None = None,
    *,
    notes: tuple[str, ...] = (),
    facts: RunFacts | None = None,
    max_bytes: int = MAX_BYTES,
) -> str:
    """The summary markdown for `state`, at most `max_bytes` bytes of UTF-8."""
    facts = facts or analyse(state, workflow, notes)
    parts = _Parts(
        headline=_headline(facts) + jobs_section(facts),
        table=_table(facts, facts.tasks, None),
        flow=_flowchart_section(facts),
        gantt=_gantt_section(facts),
    )
    failures = _failures(facts)
    budget = max_bytes - _NOTE_RESERVE
    # Steps 3-6 (the rest of the document) only when it does not fit even without any failure
    # details, that is when steps 1-2 have already removed all of them.
    later = _fit_the_rest(facts, parts, budget)
    # Steps 1-2: the failures' output fills what is left.
    details, first = _failure_details(failures, budget - parts.size())
    out = parts.headline + parts.table + parts.flow + parts.gantt + details
    trimmed = first + later
    if trimmed:
        out += (
            f"---\n\n**Trimmed to fit {max_bytes:,} bytes** (GitHub drops a step summary over "
            "1 MiB), in this order: " + "; ".join(trimmed) + ".\n"
        )
    if _size(out) > max_bytes:  # the reserve above prevents it; never exceed the limit anyway
        out = out.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")
    return out


@dataclass
class _Parts:
    """The sections of the summary other than the failures' details, as they are cut to fit."""

    headline: str
    table: str
    flow: str
    gantt: str

    def size(self) -> int:
        return _size(self.headline) + _size(self.table) + _size(self.flow) + _size(self.gantt)


def _fit_the_rest(facts: RunFacts, parts: _Parts, budget: int) -> list[str]:
    """Steps 3-6, each only while the sections do not fit `budget`: the passed tasks leave the
    table, the table is cut, the timeline goes, the graph goes. Returns what was done."""
    later: list[str] = []
    rows = list(facts.tasks)
    left_out: str | None = None
    if parts.size() > budget:
        passed = [v for v in rows if v.status is TaskStatus.PASSED]
        if passed:
            rows = [v for v in rows if v.status is not TaskStatus.PASSED]
            left_out = f"{len(passed):,} passed tasks not listed (size limit)"
            parts.table = _table(facts, rows, left_out)
            later.append(f"{len(passed):,} passed tasks left out of the table")
    if parts.size() > budget:
        room = budget - (parts.size() - _size(parts.table)) - 1024
        keep: list[TaskView] = []
        used = _size(_TABLE_HEAD) + 512
        for view in rows:
            used += _size(_row(view))
            if used > room:
                break
            keep.append(view)
        dropped = len(rows) - len(keep)
        if dropped:
            note = f"{dropped:,} more tasks not listed (size limit)"
            left_out = f"{left_out}; {note}" if left_out else note
            parts.table = _table(facts, keep, left_out)
            later.append(f"the table cut after {len(keep):,} rows")
    if parts.size() > budget:
        parts.gantt = "### Timeline\n\n_Left out (size limit)._\n\n"
        later.append("the timeline chart left out")
    if parts.size() > budget:
        parts.flow = "### Dependency graph\n\n_Left out (size limit)._\n\n"
        later.append("the dependency graph left out")
    return later


def _failure_details(failures: Sequence[TaskView], room: int) -> tuple[str, list[str]]:
    """Steps 1-2: the failures' output within `room` bytes, shortened, then left out for the
    last failures; the section and what was done."""
    first: list[str] = []
    if not failures:
        return "", first
    tail = MAX_TAIL_BYTES
    parts = _details_within(failures, tail, room)
    if len(parts) < len(failures):
        overhead = _size(_details_section(failures, 0)) + 200 * len(failures)
        tail = min(MAX_TAIL_BYTES, max(MIN_TAIL_BYTES, (room - overhead) // len(failures)))
        first.append(f"failure output shortened to its last {tail:,} bytes each")
        parts = _details_within(failures, tail, room - 200)  # 200: the "… more" line
    details = _FAILURES_HEAD + "".join(parts) if parts else ""
    missing = len(failures) - len(parts)
    if missing:
        first.append(f"{missing:,} of {len(failures):,} failures' output not shown")
        if parts:
            details += f"_… and {missing:,} more failures (output not shown)._\n\n"
    return details, first
