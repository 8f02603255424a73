"""`prompter status`: the state of every task, from the state file alone (or with its workflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.cells import cell_len

from .config import Workflow
from .fingerprints import fingerprints
from .records import State
from .text import console_line
from .words import count


def status_json(state: State, workflow: Workflow | None = None) -> dict[str, Any]:
    tasks: dict[str, Any] = {}
    prints = fingerprints(workflow) if workflow else {}
    # The workflow's tasks in its order, then those of the state it no longer has.
    own = [t.name for t in workflow.tasks] if workflow else []
    names = list(dict.fromkeys([*own, *state.tasks]))
    for name in names:
        record = state.tasks.get(name)
        if record is None:
            tasks[name] = {
                "status": "pending",
                "reason": None,
                "attempts": [],
                "duration_s": None,
                "cost_usd": 0.0,
                "run_id": None,  # every entry has the same keys
                "already_satisfied": False,
                "precheck": None,
            }
            if workflow:
                tasks[name]["changed"] = False
            continue
        entry: dict[str, Any] = {
            "status": record.status.value,
            "reason": record.reason,
            "attempts": [a.model_dump(mode="json") for a in record.attempts],
            "duration_s": record.duration_s,
            "cost_usd": record.cost_usd,
            "run_id": record.run_id,
            # Passed on its verify command before any agent ran (`verify_first`).
            "already_satisfied": record.already_satisfied,
            "precheck": record.precheck and record.precheck.model_dump(mode="json"),
        }
        if workflow:  # a task no longer in the workflow has changed too
            entry["changed"] = record.fingerprint != prints.get(name)
        tasks[name] = entry
    counts: dict[str, int] = {}
    for entry in tasks.values():
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    return {
        "tasks": tasks,
        "counts": counts,
        "total_cost_usd": sum((e["cost_usd"] for e in tasks.values()), 0.0),
        "runs": [r.model_dump(mode="json") for r in state.runs],
    }


def status_text(
    state: State, workflow: Workflow | None, path: Path, live_pid: int | None = None
) -> str:
    """The status table; `live_pid`: the last run still holds the state (0: pid unknown)."""
    data = status_json(state, workflow)
    if not data["tasks"]:
        return f"no task state in {path} (nothing has run yet)\n"
    rows = [("task", "status", "attempts", "time", "cost", "reason")]
    live_run = state.runs[-1].run_id if state.runs and live_pid is not None else None
    ended = {r.run_id for r in state.runs if r.status is not None}
    for name, e in data["tasks"].items():
        if workflow is not None and name not in workflow.index:
            status = e["status"] + " (no longer in the workflow)"
        else:
            status = e["status"] + (" (changed since)" if e.get("changed") else "")
        if e["already_satisfied"]:
            status += " (already satisfied)"
        if e["status"] == "running" and e.get("run_id") not in ended | {live_run}:
            status += " (run did not finish)"  # it was killed
        took = f"{e['duration_s']:.1f} s" if e["duration_s"] is not None else "-"
        cost = f"${e['cost_usd']:.2f}" if e["cost_usd"] else "-"
        # A reason can quote a file name an agent chose: one line, escapes shown as escapes.
        reason = console_line(e["reason"] or "")
        rows.append((console_line(name), status, str(len(e["attempts"])), took, cost, reason))
    # Columns by the cells a terminal gives each character: 测试 takes four, not two.
    widths = [max(cell_len(r[c]) for r in rows) for c in range(5)]
    lines = [
        "".join(c + " " * (w - cell_len(c) + 2) for c, w in zip(r[:5], widths, strict=True)) + r[5]
        for r in rows
    ]
    counts = ", ".join(f"{n} {s}" for s, n in data["counts"].items())
    lines.append(f"{counts}; total cost ${data['total_cost_usd']:.2f}")
    if state.runs:
        last = state.runs[-1]
        said = last.status or "did not finish"
        if last.status is None and live_pid is not None:  # not ended: still going
            said = "running now" + (f", pid {live_pid}" if live_pid else "")
        elif last.reason:  # "interrupted by SIGTERM" says it all; "failed: max_iterations …"
            said = last.reason if last.reason.startswith(said) else f"{said}: {last.reason}"
        delivered = ""
        if last.changed_files is not None:  # the run wrote a changes.patch (see changes.py)
            delivered = f"; changes.patch: {count(last.changed_files, 'file')}"
        lines.append(console_line(f"last run: {last.run_id} ({said}){delivered}"))
    return "\n".join(line.rstrip() for line in lines) + "\n"
