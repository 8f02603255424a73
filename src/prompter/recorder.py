"""The ledger's writes into the state store, and what a failed write does: it stops the run
rather than crashing it."""

from __future__ import annotations

import anyio

from .engines import Engine
from .records import AgentLimitChange, RunRecord, TaskRecord
from .state import StateError, StateStore


class Recorder:
    """The ledger's writes into the store. The first failed write (a full disk) stops the run
    rather than crashing it: what runs is interrupted, nothing new starts, and the store keeps
    every record it could not write for `close()` to try again (see `state`)."""

    def __init__(self, store: StateStore, run: RunRecord) -> None:
        self.store = store
        self.run = run  # the run's record as last written
        self.error: StateError | None = None
        self.failed = anyio.Event()

    def __call__(self, record: TaskRecord, durable: bool) -> None:
        try:
            self.store.record(record, durable=durable)
        except StateError as exc:
            if self.error is None:
                self.error = exc
                self.failed.set()

    def agent_limit(self, change: AgentLimitChange) -> None:
        """A change of the agent limit, into the run's record."""
        self.run = self.run.model_copy(update={"agent_limit": [*self.run.agent_limit, change]})
        try:
            self.store.update_run(self.run)
        except StateError as exc:
            if self.error is None:
                self.error = exc
                self.failed.set()

    async def stop_on_failure(self, engine: Engine) -> None:
        await self.failed.wait()  # not from inside the write: the engine is mid-step there
        engine.stop(f"run stopped: the state cannot be written ({self.error})")
