"""What happens during a run, as typed events, for those who show it (progress, the action).

The engines (scheduler.py, sequential.py) tell the `Ledger` of each status change; it writes
the state first and then announces the change as an event, so that nothing shown can be missing
from the state after a crash (see ledger.py). Listeners never write the state. Events flow one
way; listeners must be quick and synchronous (they run on the event loop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from time import time

from .records import AgentLimitChange, AttemptRecord, RunStatus, TaskRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    at: float = field(default_factory=time)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Event):
    run_id: str
    workflow: str
    mode: str
    tasks: tuple[str, ...]  # the tasks this run will try, in file order
    reused: tuple[str, ...]  # passed earlier with an unchanged definition: not run again
    slots: int
    # What the run warns of before any task starts (a forecast above the budget).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStarted(Event):
    """A task took a slot (once per attempt in graph mode: a retry waits in the queue);
    `attempt` is `records.PRECHECK` for the verify command run before the first attempt."""

    task: str
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Prechecked(Event):
    """A task's verify command, run before its first attempt (`verify_first`), did not pass:
    the agent runs. (One that passes ends the task: `TaskFinished`.)"""

    task: str
    precheck: AttemptRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptFinished(Event):
    task: str
    attempt: AttemptRecord
    retry_in_s: float | None  # set when another attempt will follow after this delay


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentNote(Event):
    """What a running agent reports along the way that its result will not say (Claude Code
    retrying a failed API request): for the console only, not a change of state."""

    task: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRefused(Event):
    """The API refused a task's agent session (429/529): not an attempt. The task waits for
    the run's agent limit, `retry_in_s` longer when the API named a time or the limit is 1."""

    task: str
    reason: str
    retry_in_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLimitChanged(Event):
    """The run's limit on agent sessions at once changed (recorded in the run's record)."""

    change: AgentLimitChange


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFinished(Event):
    """A task reached a terminal state: passed, failed, skipped or interrupted."""

    record: TaskRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(Event):
    run_id: str
    status: RunStatus
    reason: str | None


Listener = Callable[[Event], None]
