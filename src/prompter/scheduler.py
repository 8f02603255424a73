"""Graph mode: run ready tasks concurrently within the limits, on anyio structured concurrency.

Event-driven: each finished attempt updates the graph and starts whatever became ready, in the
same step, so a slot never waits for a poll. Attempts run on one long-lived worker task per
slot, fed through a queue, rather than on a new task each. A failed attempt that will be
retried gives its slot back while it backs off, and queues again afterwards.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .admission import Admission, Limits, demands_for
from .attempts import AttemptContext, AttemptRunner, Feedback, run_attempt
from .config import Workflow
from .engines import EngineResult
from .graph import Readiness
from .ledger import Ledger
from .outcome import Verdict, after_attempt, not_retried, stopped_by
from .records import AttemptRecord, TaskStatus


class GraphScheduler:
    """The graph-mode `engines.Engine`."""

    def __init__(
        self,
        workflow: Workflow,
        selected: Sequence[int],
        ctx: AttemptContext,
        ledger: Ledger,
        limits: Limits,
        weights: Sequence[float],
        rng: random.Random | None = None,
        attempt_runner: AttemptRunner = run_attempt,
    ) -> None:
        self.workflow = workflow
        self.graph = workflow.graph
        self.tasks = workflow.tasks
        self.selected = set(selected)
        self.ctx = ctx
        self.ledger = ledger
        self.rng = rng or random.Random()
        self.run_attempt = attempt_runner
        self.admission = Admission(
            limits,
            demands_for(workflow, limits),
            [t.priority for t in workflow.tasks],
            self.graph.bottom_levels(weights),
        )
        # Dependencies still to pass; those outside the selection count as passed already.
        self.readiness = Readiness(self.graph, self.selected)
        self.feedback: dict[int, Feedback] = {}
        self.scopes: dict[int, anyio.CancelScope] = {}  # running or backing off
        self.stop_reason: str | None = None
        self._tg: TaskGroup | None = None
        self._queue: MemoryObjectSendStream[tuple[int, anyio.CancelScope]] | None = None

    async def run(self) -> None:
        send, receive = anyio.create_memory_object_stream[tuple[int, anyio.CancelScope]](math.inf)
        self._queue = send
        async with receive, anyio.create_task_group() as tg:  # receive closes after the workers
            self._tg = tg
            # A task per attempt costs more than the rest of scheduling (bench_scheduler.py).
            # Admission never runs more than `slots` attempts at once, so with that many workers
            # a queued attempt starts as soon as one of them is back at the queue, in the same
            # step as the attempt that freed the slot.
            for _ in range(min(self.admission.limits.slots, len(self.selected))):
                tg.start_soon(self._worker, receive)
            self.readiness.prepare()
            self._queue_ready()
            self._dispatch()
            self._close_if_done()

    def stop(self, reason: str) -> None:
        """Start nothing new; interrupt what runs; skip what has not started."""
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        for scope in self.scopes.values():
            scope.cancel()
        self._skip_unstarted(reason)

    def result(self) -> EngineResult:
        """Failed unless every task it recorded passed (a skip, an interruption fail it too)."""
        records = self.ledger.records.values()
        failed = any(r.status is not TaskStatus.PASSED for r in records)
        return EngineResult(failed=failed, reason=self.stop_reason)

    def _skip_unstarted(self, reason: str) -> None:
        for i in sorted(self.selected):
            name = self.tasks[i].name
            if i not in self.scopes and not self.ledger.is_terminal(name):
                self.ledger.finish(name, TaskStatus.SKIPPED, reason)

    # -- internals -----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        if self.stop_reason is not None:
            return
        if self.ctx.budget.exhausted:
            # What runs may finish; nothing new starts.
            self._skip_unstarted(self.ctx.budget.reason)
            self._close_if_done()
            return
        assert self._queue is not None
        for i in self.admission.take():
            scope = anyio.CancelScope()
            self.scopes[i] = scope
            name = self.tasks[i].name
            # Recorded here, when the slot is taken, not when a worker picks the attempt up.
            self.ledger.start(name, len(self.ledger.attempts(name)) + 1)
            self._queue.send_nowait((i, scope))

    def _queue_ready(self) -> None:
        """Hand the tasks whose dependencies all passed to admission; one skipped meanwhile (the
        budget ran out) stays skipped."""
        for i in self.readiness.get_ready():
            if not self.ledger.is_terminal(self.tasks[i].name):
                self.admission.add_ready(i)

    async def _worker(
        self, queue: MemoryObjectReceiveStream[tuple[int, anyio.CancelScope]]
    ) -> None:
        async for i, scope in queue:
            await self._attempt(i, scope)
            self._close_if_done()

    def _close_if_done(self) -> None:
        """Let the workers end once nothing runs, backs off or waits in the queue: only a
        finished attempt makes tasks ready, so nothing can be dispatched any more."""
        if not self.scopes and self._queue is not None:
            self._queue.close()

    def _resume_session(self, i: int) -> str | None:
        task = self.tasks[i]
        own = self.ledger.attempts(task.name)
        if own:  # a retry continues its own conversation
            return own[-1].session_id
        if not task.resume_previous_session:
            return None
        # Otherwise the session of the dependency that finished last (in an earlier run, when
        # its pass stands).
        finished = [self.ledger.latest(self.tasks[d].name) for d in self.graph.deps[i]]
        done = [r for r in finished if r is not None and r.attempts and r.finished_at]
        if not done:
            return None
        latest = max(done, key=lambda r: r.finished_at or 0.0)
        return latest.attempts[-1].session_id

    async def _attempt(self, i: int, scope: anyio.CancelScope) -> None:
        task = self.tasks[i]
        number = len(self.ledger.attempts(task.name)) + 1
        with scope:
            try:
                attempt = await self.run_attempt(
                    self.ctx, task, number, self.feedback.get(i), self._resume_session(i)
                )
            except anyio.get_cancelled_exc_class():
                self._interrupted(i)
                raise
        if scope.cancelled_caught:
            return
        self.admission.finish(i)
        del self.scopes[i]
        budget = self.ctx.budget
        outcome = after_attempt(
            task,
            attempt,
            number,
            retry_delay=self.workflow.settings.retry_delay,
            budget=budget.reason if budget.exhausted else None,
            stopping=self.stop_reason,
            rng=self.rng,
        )
        if outcome.verdict is Verdict.PASS:
            self._finished(i, TaskStatus.PASSED, None, attempt)
        elif outcome.verdict is Verdict.FAIL:
            # `_finished` stops the run of an `on_failure = stop` task itself (also when its
            # budget runs out during a backoff); a fatal error's stop comes after, and the
            # first reason stands.
            self._finished(i, TaskStatus.FAILED, outcome.reason, attempt)
            if outcome.stop_run is not None:
                self.stop(outcome.stop_run)
        elif outcome.verdict is Verdict.INTERRUPTED:
            self.ledger.finish(task.name, TaskStatus.INTERRUPTED, outcome.reason, attempt)
        else:
            assert outcome.retry_in_s is not None
            self.feedback[i] = Feedback.of(task, attempt)
            self.ledger.add_attempt(task.name, attempt, outcome.retry_in_s)
            self._backoff(i, outcome.retry_in_s)
        self._dispatch()

    def _backoff(self, i: int, delay: float) -> None:
        scope = anyio.CancelScope()
        self.scopes[i] = scope

        async def wait_then_queue() -> None:
            with scope:
                try:
                    await anyio.sleep(delay)
                except anyio.get_cancelled_exc_class():
                    self._interrupted(i)
                    raise
                if self.stop_reason is not None:  # stopped just as the wait ended
                    self._interrupted(i)
                    return
                del self.scopes[i]
                if self.ctx.budget.exhausted:  # spent by other tasks while this one waited
                    last = self.ledger.attempts(self.tasks[i].name)[-1].reason
                    reason = not_retried(last, self.ctx.budget.reason)
                    self._finished(i, TaskStatus.FAILED, reason)
                    self._dispatch()
                    return
                self.admission.add_ready(i)
                self._dispatch()
            self._close_if_done()

        assert self._tg is not None
        self._tg.start_soon(wait_then_queue)

    def _interrupted(self, i: int) -> None:
        self.scopes.pop(i, None)
        name = self.tasks[i].name
        if not self.ledger.is_terminal(name):
            self.ledger.finish(name, TaskStatus.INTERRUPTED, self.stop_reason or "interrupted")

    def _finished(
        self, i: int, status: TaskStatus, reason: str | None, attempt: AttemptRecord | None = None
    ) -> None:
        task = self.tasks[i]
        self.ledger.finish(task.name, status, reason, attempt)
        if status is TaskStatus.PASSED:
            self.readiness.done(i)
            self._queue_ready()
            return
        skip = f"dependency `{task.name}` failed"
        for d in self.readiness.discard(i):
            if not self.ledger.is_terminal(self.tasks[d].name):
                self.ledger.finish(self.tasks[d].name, TaskStatus.SKIPPED, skip)
        if task.on_failure == "stop":
            self.stop(stopped_by(task))
