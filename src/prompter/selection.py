"""What a run will try: the tasks named with --task (in graph mode with what they need) or all,
less what an earlier run passed with the definition the task has now; and the dry run's account
of it.

Pure: the names are checked before (`run`), and nothing here fails or writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from .config import Workflow
from .planning import happy_path
from .records import State, TaskStatus
from .text import console_line
from .words import count


@dataclass(frozen=True)
class Selection:
    """What this run will try, and what an earlier run already did."""

    run: tuple[int, ...]  # graph mode: tasks to run; sequential: the start task alone
    reused: frozenset[int]  # passed before with an unchanged definition
    reach: tuple[int, ...] | None  # the tasks the run may get to; None: any (sequential jumps)
    start: int = 0  # sequential mode


def select(
    workflow: Workflow,
    state: State,
    prints: dict[str, str],
    named: Sequence[str] = (),
    only: bool = False,
    fresh: bool = False,
) -> Selection:
    """The tasks `named` (graph mode: with what they need, unless `only`), else all; an earlier
    pass of a task whose fingerprint is in `prints` stands, unless `fresh`. Sequential mode runs
    from the one task named, or the first."""
    chosen = [workflow.index[n] for n in named]
    if fresh:
        reused: set[int] = set()
    elif workflow.mode == "sequential":
        reused = _passed_before(workflow, state, prints)
    else:
        reused = standing_passes(workflow, state, prints)
    if workflow.mode == "sequential":
        start = chosen[0] if chosen else 0
        return Selection(
            run=(start,), reused=frozenset(reused - set(chosen)), reach=None, start=start
        )
    return _select_graph(workflow, chosen, reused, only)


def _passed_before(workflow: Workflow, state: State, prints: dict[str, str]) -> set[int]:
    """The tasks whose last record is a pass of the definition they have now."""
    reused: set[int] = set()
    for i, task in enumerate(workflow.tasks):
        record = state.tasks.get(task.name)
        if (
            record is not None
            and record.status is TaskStatus.PASSED
            and record.fingerprint == prints[task.name]
        ):
            reused.add(i)
    return reused


def standing_passes(workflow: Workflow, state: State, prints: dict[str, str]) -> set[int]:
    """Graph mode: the tasks whose pass stands. A pass counts only while everything it was
    built on stands: a dependency that runs again (it failed, was skipped, changed, or a pass
    under --only came before it) makes its dependents run after it."""
    reused = _passed_before(workflow, state, prints)
    deps = workflow.graph.deps
    for i in workflow.graph.order:
        if i in reused and any(d not in reused for d in deps[i]):
            reused.discard(i)
    return reused


def _select_graph(workflow: Workflow, named: list[int], reused: set[int], only: bool) -> Selection:
    graph = workflow.graph
    if not named:  # every task that did not pass, in file order (no set of thousands of ints)
        run = tuple(i for i in range(len(workflow.tasks)) if i not in reused)
        return Selection(run=run, reused=frozenset(reused), reach=run)
    chosen = set(named)
    if not only:
        # Plus whatever they need that has not passed yet. A pass stands only on passes
        # (above), so nothing behind one needs running: the search stops at passes.
        chosen |= graph.ancestors(named, excluding=reused)
    run = tuple(sorted(chosen))
    return Selection(run=run, reused=frozenset(reused - chosen), reach=run)


def tried(workflow: Workflow, selection: Selection, only_start: bool = False) -> tuple[int, ...]:
    """The tasks the run will try: graph mode, those selected; sequential mode, the path taken
    when every task passes first time, less the earlier passes it starts with (they stand until
    it runs a task)."""
    if workflow.mode == "graph":
        return selection.run
    path, _ = happy_path(workflow, selection.start, only_start)
    first = next((n for n, i in enumerate(path) if i not in selection.reused), len(path))
    return tuple(path[first:])


_VERIFY_FIRST = "verify first"
_VERIFY_FIRST_MEANS = (
    "dry run: verify first: the task's verify command runs before its first attempt; if it "
    "passes, the task passes as already satisfied and no agent starts\n"
)


def describe_dry_run(
    workflow: Workflow, selection: Selection, out: TextIO, only_start: bool = False
) -> None:
    """What a run of `selection` would do, for `--dry-run`."""
    if workflow.mode == "graph":
        _describe_graph(workflow, selection, out)
    else:
        _describe_sequential(workflow, selection, out, only_start)
    out.write(f"dry run: tasks would run in {console_line(str(workflow.workdir))}\n")
    out.write("dry run: nothing was run and no state was written\n")


def _describe_graph(workflow: Workflow, selection: Selection, out: TextIO) -> None:
    names = [t.name for t in workflow.tasks]
    if len(selection.run) == len(workflow.tasks):  # all of them: no set of their indices
        order: Sequence[int] = workflow.graph.order
    else:
        chosen = set(selection.run)
        order = [i for i in workflow.graph.order if i in chosen]
    out.write(f"dry run: would run {count(len(order), 'task')} in graph mode:\n")
    prechecked = False
    for i in order:
        deps = [names[d] for d in workflow.graph.deps[i]]
        notes = [f"after {', '.join(deps)}"] if deps else []
        if workflow.tasks[i].verify_first:
            notes.append(_VERIFY_FIRST)
            prechecked = True
        out.write(f"  {names[i]}" + (f"  ({'; '.join(notes)})" if notes else "") + "\n")
    for i in sorted(selection.reused):
        out.write(f"  {names[i]}: passed in an earlier run, unchanged: not run again\n")
    if prechecked:
        out.write(_VERIFY_FIRST_MEANS)


def _describe_sequential(
    workflow: Workflow, selection: Selection, out: TextIO, only_start: bool
) -> None:
    names = [t.name for t in workflow.tasks]
    path, note = happy_path(workflow, selection.start, only_start)
    out.write(
        f"dry run: sequential mode, from {names[selection.start]}; if every task passes "
        "at its first attempt, in this order:\n"
    )
    reusing = True  # an earlier pass stands until the run executes a task
    prechecked = False
    for i in path:
        reusing = reusing and i in selection.reused
        why = "  (passed in an earlier run, unchanged: not run again)" if reusing else ""
        if not reusing and workflow.tasks[i].verify_first:
            why = f"  ({_VERIFY_FIRST})"
            prechecked = True
        out.write(f"  {names[i]}{why}\n")
    if note:
        out.write(f"  then {note}\n")
    if prechecked:
        out.write(_VERIFY_FIRST_MEANS)
