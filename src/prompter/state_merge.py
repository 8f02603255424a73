"""`prompter state merge`: the states of partial runs (the jobs of a fan-out) made one.

Every input is read and checked before the output is touched: a damaged input, or one of
another workflow, leaves the output as it was. The output, if it exists, is one of the states
merged (so merging again adds only what is new), and is written through the store: under its
lock, atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .records import State, merge
from .state import StateError, StateStore

_T = TypeVar("_T")


@dataclass(frozen=True)
class Merged:
    """What `merge_files` wrote."""

    path: Path
    state: State
    inputs: int  # the states merged, the output's earlier content not counted
    workflow_id: str | None  # the workflow they all belong to; None if none of them says


def read_input(path: Path) -> State:
    """A state file to merge: it must exist (a missing one is a mistyped path, not an empty
    state) and load (snapshot and journal, as the store reads them)."""
    store = StateStore(path)
    if not any(p.exists() or p.is_symlink() for p in (path, store.journal_path)):
        raise StateError(f"{path}: no such state file")
    return store.load()


def check_one_workflow(
    states: Sequence[tuple[Path, State]], identity: str | None, workflow: str | None
) -> str | None:
    """The workflow all `states` belong to (`State.owner`), or a StateError naming the first
    that belongs to another: `identity` (of the file `workflow`) when given, else the first
    state that says whose it is. A state that does not say (an older prompter's) fits any."""
    expected, source = identity, workflow
    for path, state in states:
        owner = state.owner()
        if owner is None or owner.workflow_id is None:
            continue
        if expected is None:
            expected, source = owner.workflow_id, f"the workflow of {path}"
            continue
        if owner.workflow_id != expected:
            raise StateError(
                f"{path}: the state of another workflow ({owner.workflow_id}), not of "
                f"{source} ({expected}); only states of one workflow merge"
            )
    return expected


def merge_files(
    out: Path, inputs: Sequence[Path], identity: str | None = None, workflow: str | None = None
) -> Merged:
    """Merge the states at `inputs` into the state at `out` (created if missing); with
    `identity` (of the workflow file `workflow`), every state must be that workflow's."""
    states = [(path, read_input(path)) for path in inputs]
    merged, owner = merge_at(
        out,
        [state for _, state in states],
        lambda held: check_one_workflow([*states, (out, held)], identity, workflow),
    )
    return Merged(path=out, state=merged, inputs=len(states), workflow_id=owner)


def merge_at(out: Path, states: Sequence[State], check: Callable[[State], _T]) -> tuple[State, _T]:
    """Merge `states` into the state at `out` (created if missing) through its store: under
    its lock, durably, in one snapshot (also when nothing is new). `check` sees the state held
    at `out` first and raises to refuse: the state at `out` is then left as it was. The merged
    state, and what `check` returned."""
    store = StateStore(out)
    held = store.open()
    try:
        checked = check(held)
        merged = merge([held, *states])
        store.replace(merged)
    except BaseException:
        store.abandon()
        raise
    store.close()
    return merged, checked
