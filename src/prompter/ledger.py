"""The run's task records: every status change goes through here, is persisted, then announced.

One place owns the order "write state, then tell listeners", so nothing reported (on the
console, in reports) can be missing from the state after a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from .events import (
    AgentLimitChanged,
    AgentRefused,
    AttemptFinished,
    Event,
    Listener,
    Prechecked,
    TaskFinished,
    TaskStarted,
)
from .records import TERMINAL, AgentLimitChange, AttemptRecord, TaskRecord, TaskStatus

Persist = Callable[[TaskRecord, bool], None]  # (record, durable)
PersistLimit = Callable[[AgentLimitChange], None]


class Ledger:
    def __init__(
        self,
        run_id: str,
        fingerprints: Mapping[str, str],
        persist: Persist,
        listeners: Sequence[Listener] = (),
        history: Mapping[str, TaskRecord] | None = None,
        persist_limit: PersistLimit | None = None,
    ) -> None:
        self.run_id = run_id
        self.fingerprints = fingerprints
        self.records: dict[str, TaskRecord] = {}
        # The state's records when the run began: what earlier runs left (a pass that stands).
        self.history = dict(history or {})
        self._persist = persist
        self._persist_limit = persist_limit
        self._listeners = list(listeners)

    def emit(self, event: Event) -> None:
        for listener in self._listeners:
            listener(event)

    def is_terminal(self, name: str) -> bool:
        record = self.records.get(name)
        return record is not None and record.status in TERMINAL

    def latest(self, name: str) -> TaskRecord | None:
        """The task's record from this run, else from the earlier run that left one."""
        return self.records.get(name) or self.history.get(name)

    def attempts(self, name: str) -> list[AttemptRecord]:
        record = self.records.get(name)
        return list(record.attempts) if record else []

    def start(self, name: str, attempt: int) -> None:
        record = self.records.get(name)
        if record is None or record.status in TERMINAL:  # the first visit, or a new one
            record = TaskRecord(
                name=name,
                fingerprint=self.fingerprints[name],
                status=TaskStatus.RUNNING,
                run_id=self.run_id,
                started_at=time.time(),
                visits=record.visits + 1 if record else 1,
                earlier_cost_usd=record.cost_usd if record else 0.0,
            )
        else:
            record = record.model_copy(update={"status": TaskStatus.RUNNING})
        self._save(record, durable=False)
        self.emit(TaskStarted(task=name, attempt=attempt))

    def add_attempt(self, name: str, attempt: AttemptRecord, retry_in_s: float | None) -> None:
        record = self.records[name]
        record = record.model_copy(update={"attempts": [*record.attempts, attempt]})
        self._save(record, durable=False)
        self.emit(AttemptFinished(task=name, attempt=attempt, retry_in_s=retry_in_s))

    def prechecked(self, name: str, precheck: AttemptRecord) -> None:
        """The task's verify command, run before its first attempt, did not pass: recorded,
        and the task waits (pending) for its first attempt."""
        record = self.records[name].model_copy(
            update={"status": TaskStatus.PENDING, "precheck": precheck}
        )
        self._save(record, durable=False)
        self.emit(Prechecked(task=name, precheck=precheck))

    def refused(self, name: str, reason: str, retry_in_s: float | None) -> None:
        """The API refused the task's agent session: it waits (pending) for the agent limit,
        with the attempts it had; the next start is the same attempt again."""
        record = self.records[name].model_copy(update={"status": TaskStatus.PENDING})
        self._save(record, durable=False)
        self.emit(AgentRefused(task=name, reason=reason, retry_in_s=retry_in_s))

    def limit_changed(self, change: AgentLimitChange) -> None:
        """The run's agent limit changed: into the run's record, then announced."""
        if self._persist_limit is not None:
            self._persist_limit(change)
        self.emit(AgentLimitChanged(change=change))

    def finish(
        self,
        name: str,
        status: TaskStatus,
        reason: str | None = None,
        attempt: AttemptRecord | None = None,
        precheck: AttemptRecord | None = None,
    ) -> TaskRecord:
        """Move a task to a terminal state (written at once, on disk within ~50 ms: see
        `state._Syncer`), then announce it. `attempt`, the one that decided it, is recorded in
        the same write (one journal line instead of two); so is `precheck`, a verify command
        run before any attempt that decided it (`verify_first`)."""
        assert status in TERMINAL
        # A revisit that never started (skipped: the budget is spent) keeps the record of the
        # visit before, which did run: its attempts and times are what reports can show.
        previous = self.records.get(name)
        attempts = previous.attempts if previous else []
        if attempt is not None:
            attempts = [*attempts, attempt]
        record = TaskRecord(
            name=name,
            fingerprint=self.fingerprints[name],
            status=status,
            reason=reason,
            attempts=attempts,
            run_id=self.run_id,
            started_at=previous.started_at if previous else None,
            finished_at=time.time(),
            visits=previous.visits if previous else 1,
            earlier_cost_usd=previous.earlier_cost_usd if previous else 0.0,
            precheck=precheck or (previous.precheck if previous else None),
        )
        self._save(record, durable=True)
        if attempt is not None:
            self.emit(AttemptFinished(task=name, attempt=attempt, retry_in_s=None))
        self.emit(TaskFinished(record=record))
        return record

    def _save(self, record: TaskRecord, durable: bool) -> None:
        self.records[record.name] = record
        self._persist(record, durable)
