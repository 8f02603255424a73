"""What a run asks of its engine: the graph scheduler (graph mode) and the sequential runner
(sequential mode) both follow `Engine`, and both end in an `EngineResult`.

The run picks the engine in one place (`run.choose_engine`); everything after that talks to it
through this protocol only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class EngineResult:
    """What the tasks came to, as the engine judges it (a signal aside, which the run handles)."""

    failed: bool  # the run fails: exit 1
    reason: str | None  # why the engine ended early, if it did
    # Tasks an earlier run's pass stood for, found only as the engine went (sequential mode:
    # a pass stands until the run executes a task); graph mode knows them before it starts.
    answered: tuple[int, ...] = ()


class Engine(Protocol):
    async def run(self) -> None:
        """Run the selected tasks to the end, or until `stop`."""

    def stop(self, reason: str) -> None:
        """Start nothing new and interrupt what runs, for `reason` (a signal, a failed write)."""

    def result(self) -> EngineResult:
        """What the run came to; read once `run` has returned."""
