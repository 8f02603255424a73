"""Task records and states built directly, without validation (hostile strings stay as they
are), and the workflows they belong to; for the report tests."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prompter.config import Workflow, load_workflow
from prompter.fingerprints import fingerprints
from prompter.records import AttemptRecord, RunRecord, State, TaskRecord, TaskStatus

from .toml_text import toml_value

MERMAID_BLOCK = re.compile(r"^```mermaid\n(.*?)^```$", re.S | re.M)


def blocks(text: str) -> list[str]:
    """The mermaid diagrams of a markdown text."""
    return MERMAID_BLOCK.findall(text)


def write_toml(path: Path, tasks: Sequence[dict[str, Any]]) -> Workflow:
    lines = []
    for task in tasks:
        lines.append("[[tasks]]")
        fields = {"prompt": "p", "verify_command": "true", **task}
        lines += [f"{k} = {toml_value(v)}" for k, v in fields.items()]
        lines.append("")
    path.write_text("\n".join(lines), "utf-8")
    return load_workflow(path)


T0 = 1_790_000_000.0


def record(
    name: str,
    status: TaskStatus,
    start: float,
    seconds: float,
    *,
    attempts: int = 1,
    output: str = "",
    reason: str | None = None,
    run_id: str = "run-1",
) -> TaskRecord:
    """A task record without validation (so hostile strings stay as they are)."""
    tries = []
    each = seconds / max(1, attempts)
    for n in range(attempts):
        ok = status is TaskStatus.PASSED and n == attempts - 1
        tries.append(
            AttemptRecord.model_construct(
                number=n + 1,
                started_at=start + n * each,
                finished_at=start + (n + 1) * each,
                ok=ok,
                reason=None if ok else reason,
                agent_exit_code=0,
                verify_exit_code=0 if ok else 1,
                output_tail=output if not ok else "",
                cost_usd=0.01,
                input_tokens=100,
                output_tokens=20,
                session_id=f"session-{name[:20]}",
            )
        )
    if status is TaskStatus.SKIPPED:
        tries, seconds = [], 0.0
    return TaskRecord.model_construct(
        name=name,
        fingerprint="x",
        status=status,
        reason=reason,
        attempts=tries,
        run_id=run_id,
        started_at=start,
        finished_at=start + seconds,
    )


def state_of(records: Sequence[TaskRecord], workflow: Path, end: float) -> State:
    run = RunRecord(
        run_id="run-1", workflow=str(workflow), started_at=T0, finished_at=end, status="failed"
    )
    return State.model_construct(version=1, tasks={r.name: r for r in records}, runs=[run])


def grouped_run(
    tmp: Path,
    tasks: int,
    group: int,
    fail_at: set[int],
    output: str,
    every: int = 3,
    *,
    stem: str = "grouped",
    name_the_dependency: bool = False,
) -> tuple[Workflow, State]:
    """Groups of `group` tasks, each depending on the one or two before it in its group; in
    every `every`th group the tasks at `fail_at` fail and their descendants are skipped (the
    reason naming the task before, with `name_the_dependency`). The times are those of 8 slots.
    The workflow is `<stem>-<tasks>.toml` in `tmp`."""
    names = [f"task {i:04d}" for i in range(tasks)]
    spec: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        pos = i % group
        deps = [names[j] for j in (i - 1, i - 2) if j >= i - pos]
        spec.append({"name": name, "depends_on": deps})
    workflow = write_toml(tmp / f"{stem}-{tasks}.toml", spec)
    records = []
    lane_free = [T0] * 8
    failed_groups: set[int] = set()
    for i, name in enumerate(names):
        g, pos = divmod(i, group)
        if g in failed_groups:
            skip = f"dependency `{names[i - 1]}` failed" if name_the_dependency else None
            reason = skip or "dependency failed"
            records.append(record(name, TaskStatus.SKIPPED, T0, 0, reason=reason))
            continue
        lane = min(range(8), key=lane_free.__getitem__)
        start, seconds = lane_free[lane], 5.0 + (i * 7919 % 13)
        lane_free[lane] = start + seconds
        if pos in fail_at and g % every == 0:
            failed_groups.add(g)
            records.append(
                record(
                    name,
                    TaskStatus.FAILED,
                    start,
                    seconds,
                    attempts=2,
                    output=output,
                    reason="verify_command exited 1 (expected 0)",
                )
            )
        else:
            records.append(record(name, TaskStatus.PASSED, start, seconds))
    prints = fingerprints(workflow)
    for r in records:
        r.fingerprint = prints[r.name]  # unchanged since the run
    return workflow, state_of(records, workflow.path, max(lane_free))
