"""The facts `report.html` shows, as JSON-ready data: built from `RunFacts`, laid out by
`html_layout.py`, and `script_json`, the one way that data goes into the page.

Every string from the state (names, reasons, prompts, output) stays data: the page's script
puts it into the document with `textContent`, never as markup. Here it is only made readable:
names get their control and bidi characters written as escapes (`escape_controls`), longer text
loses terminal codes and what XML forbids (`xml_safe`) and is cut to its last characters so
that a 1,000-task report stays a few megabytes (`TEXT_BUDGET`).

The one URL the page holds is each task's log, `logs/<log_name>`: relative to the report
folder, of the characters `places.log_name` allows only (never a scheme, never `..`).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..config import Task
from ..feedback import Feedback, prompt_with_feedback
from ..places import LOGS_FOLDER, log_name
from ..records import AttemptRecord, RunRecord, TaskRecord
from ..text import escape_controls, xml_safe
from .graph_view import STOP, links
from .html_layout import assign_lanes, layout_graph
from .view_model import RunFacts, TaskView, duration_text, utc_text

TEXT_CHARS = 16 * 1024  # the most of one output, answer or prompt shown
MIN_TEXT_CHARS = 1024  # the least, however many there are
TEXT_BUDGET = 1_800_000  # characters of long text in all: shared among them
MAX_FILES = 200  # changed files listed per attempt
MAX_CAUSES = 20  # root causes linked from a skipped task

# The node classes: what colours a task in the graph, and the legend's words for each.
CLASSES = {
    "passed": "passed",
    "reused": "passed earlier",
    "failed": "failed",
    "skipped": "skipped",
    "interrupted": "interrupted",
    "unfinished": "did not finish",
    "notrun": "not run",
}
_BAD = ("failed", "interrupted", "unfinished")


def script_json(value: object) -> str:
    """`value` as JSON that cannot end or confuse the `<script>` element it sits in: `<`, `>`
    and `&` as \\u escapes (no `</script>`, `<!--` or `<script`), and U+2028/U+2029 escaped
    too (`ensure_ascii`). NaN and infinities, which JSON lacks, become null."""
    text = json.dumps(_finite(value), ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _num(value: float | None, digits: int = 3) -> float | None:
    return round(value, digits) if value is not None and math.isfinite(value) else None


def _name(text: str) -> str:
    return escape_controls(text)


@dataclass(frozen=True)
class _Node:
    name: str
    view: TaskView | None  # None: in the workflow, never run
    task: Task | None  # None: no longer in the workflow


def _nodes(facts: RunFacts) -> list[_Node]:
    """The workflow's tasks in its order, then the state's tasks it no longer has."""
    views = {v.name: v for v in facts.tasks}
    out: list[_Node] = []
    if facts.workflow is not None:
        out = [_Node(t.name, views.get(t.name), t) for t in facts.workflow.tasks]
    known = {n.name for n in out}
    out += [_Node(v.name, v, None) for v in facts.tasks if v.name not in known]
    return out


def _class(view: TaskView | None) -> str:
    return "notrun" if view is None else view.outcome


def _edges(facts: RunFacts, count: int) -> tuple[list[tuple[int, int]], list[str], list[int]]:
    """The graph's edges (dependency to dependent), their kinds, and each node's rank."""
    workflow = facts.workflow
    if workflow is None:
        return [], [], [0] * count
    if workflow.mode == "graph":
        edges = [(d, t) for t, deps in enumerate(workflow.graph.deps) for d in deps]
        ranks = list(workflow.graph.levels) + [0] * (count - len(workflow.tasks))
        return edges, ["dependency"] * len(edges), ranks
    # Sequential: the transitions, tasks in file order from left to right.
    pairs = [(k.source, k.target, k.kind) for k in links(workflow)]
    kept = [(s, t, kind) for s, t, kind in pairs if t not in (STOP, s)]
    ranks = list(range(len(workflow.tasks))) + [0] * (count - len(workflow.tasks))
    return [(s, t) for s, t, _ in kept], [kind for *_, kind in kept], ranks


class _Texts:
    """How much of each long text the page gets: an even share of `TEXT_BUDGET`."""

    def __init__(self, facts: RunFacts) -> None:
        texts = 0
        for view in facts.tasks:
            texts += 2  # prompt, reason
            for a in view.record.attempts:
                texts += bool(a.output_tail) + bool(a.result_text) + (a.number > 1) + bool(a.diff)
        self.limit = max(MIN_TEXT_CHARS, min(TEXT_CHARS, TEXT_BUDGET // max(1, texts)))

    def __call__(self, text: str | None) -> str | None:
        if not text:
            return None
        cut = len(text) - self.limit
        tail = xml_safe(text, last=self.limit)
        if cut > 0:
            return f"[… {cut:,} earlier characters cut; the log under logs/ has all of it]\n{tail}"
        return tail

    def head(self, text: str | None) -> str | None:
        """Like calling it, but the first characters: a diff reads from its start."""
        if not text:
            return None
        cut = len(text) - self.limit
        if cut <= 0:
            return xml_safe(text)
        head = xml_safe(text[: self.limit])
        return f"{head}\n[… {cut:,} more characters cut; changes.patch has the run's changes]"


def log_link(task: str) -> str:
    """The task's log, relative to report.html (which is in the report folder, beside logs/)."""
    return f"{LOGS_FOLDER}/{quote(log_name(task), safe='')}"


def _diff_note(a: AttemptRecord, isolation: str | None) -> str | None:
    """What the page says in place of a passed attempt's diff, when it has none."""
    if a.diff or not a.ok:
        return None
    if isolation == "shared":
        return (
            "no diff per task: the tasks worked in one shared tree "
            "(changes.patch has the run's changes)"
        )
    if not a.changed_files:
        return "it changed no files" if isolation == "worktree" else None
    if isolation == "worktree":
        return "diff too large to record here: see changes.patch"
    return "no diff recorded: see changes.patch"


def _attempt(
    a: AttemptRecord,
    before: AttemptRecord | None,
    task: Task | None,
    texts: _Texts,
    isolation: str | None,
) -> dict[str, Any]:
    feedback = None
    if before is not None and task is not None and not before.ok:
        full = prompt_with_feedback(task, Feedback.of(task, before))
        feedback = texts(full[len(task.prompt) :].lstrip("\n-"))
    duration = None if a.finished_at is None else a.finished_at - a.started_at
    files = a.changed_files or []
    return {
        "n": a.number,
        "ok": a.ok,
        "reason": texts(a.reason),
        "at": utc_text(a.started_at),
        "dur": duration_text(duration),
        "agentExit": a.agent_exit_code,
        "agentS": _num(a.agent_duration_s, 1),
        "verifyExit": a.verify_exit_code,
        "verifyS": _num(a.verify_duration_s, 1),
        "cost": _num(a.cost_usd, 4),
        "tokens": [a.input_tokens, a.output_tokens, a.cache_read_tokens, a.cache_creation_tokens],
        "turns": a.num_turns,
        "session": _name(a.session_id) if a.session_id else None,
        "result": texts(a.result_text),
        "output": texts(a.output_tail),
        "files": [_name(f) for f in files[:MAX_FILES]],
        "moreFiles": max(0, len(files) - MAX_FILES),
        "diff": texts.head(a.diff),
        "diffNote": _diff_note(a, isolation),
        "conflict": texts(a.conflict),
        "feedback": feedback,
        "rateLimited": a.rate_limited,
        "apiStatus": a.api_status,
        "retryAfter": _num(a.retry_after_s, 1),
        "environment": a.environment_error,
        "fatal": a.fatal,
    }


def _task(
    i: int,
    node: _Node,
    causes: list[int],
    critical: set[str],
    texts: _Texts,
    isolation: Mapping[str, str | None],
) -> dict[str, Any]:
    view, task = node.view, node.task
    record = view.record if view is not None else None
    attempts = record.attempts if record is not None else []
    isolated = isolation.get(record.run_id) if record is not None else None
    status = record.status.value if record is not None else "not run"
    if record is not None and record.already_satisfied:
        status += " (already satisfied: its verify command passed before any agent ran)"
    # A failed pre-check (`verify_first`) is what the first attempt's prompt was told.
    precheck = record.precheck if record is not None else None
    return {
        "id": i,
        "name": _name(node.name),
        "cls": _class(view),
        "status": status,
        "satisfied": record is not None and record.already_satisfied,
        "job": view.job if view is not None else None,
        "current": view.current if view is not None else False,
        "changed": view.changed if view is not None else False,
        "critical": node.name in critical,
        "line": view.line if view is not None else None,
        "reason": texts(record.reason) if record is not None else None,
        "causes": causes[:MAX_CAUSES],
        "moreCauses": max(0, len(causes) - MAX_CAUSES),
        "causeJob": view.cause_job if view is not None else None,
        "dur": duration_text(view.duration_s) if view is not None else "-",
        "cost": _num(record.cost_usd, 4) if record is not None else None,
        "visits": record.visits if record is not None else 0,
        "log": _log(record),
        "prompt": texts(task.prompt) if task is not None else None,
        "verify": texts(task.verify_command) if task is not None else None,
        "expect": task.verify_success_code if task is not None else None,
        "attempts": [
            _attempt(a, before, task, texts, isolated)
            for before, a in zip([precheck, *attempts], attempts, strict=False)
        ],
    }


def _log(record: TaskRecord | None) -> str | None:
    """The link to the task's log, if the task ran (a skipped task's attempts: none)."""
    if record is None or not record.attempts:
        return None
    return log_link(record.name)


def _causes(facts: RunFacts, nodes: list[_Node], classes: list[str]) -> list[list[int]]:
    """For each skipped task of a dependency graph: the failed tasks it depended on."""
    workflow = facts.workflow
    out: list[list[int]] = [[] for _ in nodes]
    if workflow is None or workflow.mode != "graph":
        return out
    for i in range(len(workflow.tasks)):
        if classes[i] == "skipped":
            ancestors = workflow.graph.ancestors([i])
            out[i] = sorted(a for a in ancestors if classes[a] in _BAD)
    return out


@dataclass(frozen=True)
class _Bar:
    task: int
    attempt: AttemptRecord
    start: float
    end: float


def _bars(facts: RunFacts, nodes: list[_Node]) -> Iterator[_Bar]:
    for i, node in enumerate(nodes):
        view = node.view
        if view is None or not facts.timed(view):
            continue
        record = view.record
        for a in record.attempts:
            end = a.finished_at if a.finished_at is not None else record.finished_at
            if end is None or not (math.isfinite(a.started_at) and math.isfinite(end)):
                continue
            yield _Bar(i, a, a.started_at, max(end, a.started_at))


def _timeline(facts: RunFacts, nodes: list[_Node]) -> dict[str, Any]:
    """Bars in lanes: per job (a fan-out), the tasks packed into as few lanes as ran at once."""
    bars = list(_bars(facts, nodes))
    if not bars:
        return {"t0": None, "span": 0, "lanes": [], "bars": [], "limits": []}
    t0 = min(b.start for b in bars)
    by_task: dict[int, list[_Bar]] = {}
    for bar in bars:
        by_task.setdefault(bar.task, []).append(bar)
    groups: dict[str | None, list[int]] = {}
    for task in by_task:  # a task's attempts share its lane (its slot)
        view = nodes[task].view
        groups.setdefault(view.job if facts.jobs and view else None, []).append(task)
    lane_of: dict[int, int] = {}
    labels: list[str] = []
    for job, tasks in sorted(groups.items(), key=lambda g: min(by_task[t][0].start for t in g[1])):
        spans = [(by_task[t][0].start, max(b.end for b in by_task[t])) for t in tasks]
        lanes = assign_lanes(spans)
        base = len(labels)
        prefix = f"job {job} · " if job is not None else ""
        labels += [f"{prefix}slot {k + 1}" for k in range(max(lanes) + 1)]
        lane_of.update({t: base + lane for t, lane in zip(tasks, lanes, strict=True)})
    out = []
    for bar in bars:
        a = bar.attempt
        agent = a.agent_duration_s if a.agent_duration_s is not None else None
        verify = a.verify_duration_s if a.verify_duration_s is not None else None
        out.append(
            [
                bar.task,
                a.number,
                lane_of[bar.task],
                _num(bar.start - t0),
                _num(bar.end - t0),
                _num(agent),
                _num(verify),
                1 if a.ok else 0,
                1 if a.rate_limited else 0,
            ]
        )
    span = max(b.end for b in bars) - t0
    return {
        "t0": utc_text(t0),
        "span": _num(span),
        "lanes": labels,
        "bars": out,
        "limits": _limits(facts.runs, t0),
    }


def _limits(runs: tuple[RunRecord, ...], t0: float) -> list[list[Any]]:
    """Each run's changes of its agent limit: [job, seconds since t0, limit, maximum, cause]."""
    out = []
    for run in runs:
        for change in run.agent_limit:
            if math.isfinite(change.at):
                out.append(
                    [run.job, _num(change.at - t0), change.limit, change.maximum, change.cause]
                )
    return out


def _tokens(facts: RunFacts) -> dict[str, int]:
    sums = {"input": 0, "output": 0, "cacheRead": 0, "cacheCreation": 0}
    for view in facts.tasks:
        if not view.current:
            continue
        for a in view.record.attempts:
            sums["input"] += a.input_tokens or 0
            sums["output"] += a.output_tokens or 0
            sums["cacheRead"] += a.cache_read_tokens or 0
            sums["cacheCreation"] += a.cache_creation_tokens or 0
    return sums


def _headline(facts: RunFacts) -> dict[str, Any]:
    run = facts.run
    return {
        "name": _name(facts.name),
        "result": str(facts.result),
        "counts": {str(s): n for s, n in facts.counts.items()},
        "tasks": len(facts.tasks),
        "notRun": len(facts.not_run),
        "wall": duration_text(facts.wall_s),
        "work": duration_text(facts.work_s),
        "speedup": _num(facts.speedup, 2),
        "cost": _num(facts.cost_usd, 4),
        "tokens": _tokens(facts),
        "criticalS": duration_text(facts.critical_s) if facts.critical else None,
        "mode": facts.workflow.mode if facts.workflow is not None else None,
        "runId": run.run_id if run is not None else None,
        "started": utc_text(facts.started_at),
        "workflow": _name(facts.workflow_path) if facts.workflow_path else None,
        "jobs": len(facts.jobs),
        "why": [[r.job, xml_safe(r.reason)] for r in facts.runs if r.reason],
        "notes": [xml_safe(n) for n in facts.notes[:20]],
        "timelineRun": facts.timeline_run.run_id if facts.timeline_run is not None else None,
    }


def page_data(facts: RunFacts, isolation: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """Everything the page shows, as plain JSON values. `isolation`: each run's (`RunRecord.
    isolation`, by run id), which says what a task's missing diff means."""
    isolation = isolation or {}
    nodes = _nodes(facts)
    edges, kinds, ranks = _edges(facts, len(nodes))
    layout = layout_graph(len(nodes), edges, ranks)
    classes = [_class(n.view) for n in nodes]
    critical = set(facts.critical)
    index = {n.name: i for i, n in enumerate(nodes)}
    chain = [index[n] for n in facts.critical if n in index]
    texts = _Texts(facts)
    causes = _causes(facts, nodes, classes)
    return {
        "head": _headline(facts),
        "classes": CLASSES,
        "tasks": [
            _task(i, node, causes[i], critical, texts, isolation) for i, node in enumerate(nodes)
        ],
        "graph": {
            "x": [round(v, 1) for v in layout.x],
            "y": [round(v, 1) for v in layout.y],
            "w": round(layout.width, 1),
            "h": round(layout.height, 1),
            "edges": [[u, v, kind[0]] for (u, v), kind in zip(edges, kinds, strict=True)],
            "critical": [list(pair) for pair in itertools.pairwise(chain)],
        },
        "timeline": _timeline(facts, nodes),
    }
