"""Graph mode: run ready tasks concurrently within the limits, on anyio structured concurrency.

Event-driven: each finished attempt updates the graph and starts whatever became ready, in the
same step, so a slot never waits for a poll. Attempts run on one long-lived worker task per
slot, fed through a queue, rather than on a new task each. A failed attempt that will be
retried gives its slot back while it backs off, and queues again afterwards.

Every attempt starts with its agent, so an attempt starts only while the agent limit
(`agent_gate.py`) has room. A session the API refuses (429/529) is not an attempt: the task
gives its slot back and queues again behind the limit, which the refusal has lowered.

A `verify_first` task's pre-check (its verify command, before the first attempt) runs no agent:
it takes a slot but no session, also while the limit has no room. When it passes, the task
passes; when it fails, the task queues again for its first attempt, which needs a session.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .admission import Admission, Limits, demands_for
from .agent_gate import AgentGate
from .attempts import RATE_LIMIT_RETRIES, AttemptContext, AttemptRunner, run_attempt
from .config import Workflow
from .engines import EngineResult
from .feedback import Feedback
from .graph import Readiness
from .ledger import Ledger
from .outcome import Verdict, after_attempt, not_retried, stopped_by
from .records import ALREADY_SATISFIED, PRECHECK, AttemptRecord, TaskStatus


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
        max_agents: int | None = None,  # agent sessions at once (default: the slots)
    ) -> None:
        self.workflow = workflow
        self.graph = workflow.graph
        self.tasks = workflow.tasks
        self.selected = set(selected)
        self.gate = AgentGate(max_agents or limits.slots, ledger, self._dispatch)
        self.ctx = replace(ctx, sessions=self.gate)
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
        # Tasks whose pre-check (`verify_first`) is still to run: they start without a session.
        self.prechecks = {i for i in self.selected if self.tasks[i].verify_first}
        self.scopes: dict[int, anyio.CancelScope] = {}  # running or backing off
        self.refused: dict[int, _Refused] = {}  # what a task's refused sessions left
        self.stop_reason: str | None = None
        self._wake: anyio.CancelScope | None = None  # waiting for the limit's pause to end
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
        self._close_if_done()  # nothing may run while tasks wait out the agent limit's pause

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
        if self._queue is None:
            return  # a session ended as the run began (or after the queue closed)
        if not len(self.admission):
            return
        for i in self.admission.take(self.gate.room(), self.prechecks):
            scope = anyio.CancelScope()
            self.scopes[i] = scope
            name = self.tasks[i].name
            # Recorded here, when the slot is taken, not when a worker picks the attempt up.
            if i in self.prechecks:
                self.ledger.start(name, PRECHECK)  # no agent: no session reserved
            else:
                self.ledger.start(name, len(self.ledger.attempts(name)) + 1)
                self.gate.start(name)
            self._queue.send_nowait((i, scope))
        if len(self.admission) and (until := self.gate.blocked_until()) is not None:
            self._wake_at(until)

    def _wake_at(self, until: float) -> None:
        """Dispatch again when the agent limit's pause ends (nothing else would: no session
        may start, so none ends)."""
        if self._wake is not None or self._tg is None:
            return
        scope = self._wake = anyio.CancelScope()

        async def wake() -> None:
            with scope:
                await anyio.sleep_until(until)
                self._wake = None
                self._dispatch()
                self._close_if_done()

        self._tg.start_soon(wake)

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
        finished attempt makes tasks ready, so nothing can be dispatched any more. Tasks that
        wait for the agent limit's pause keep them (unless the run is stopping)."""
        if self.scopes or self._queue is None:
            return
        waiting = len(self.admission) and self.stop_reason is None and not self.ctx.budget.exhausted
        if waiting:
            return
        self._queue.close()
        if self._wake is not None:
            self._wake.cancel()

    def _resume_session(self, i: int) -> str | None:
        task = self.tasks[i]
        refused = self.refused.get(i)
        if refused is not None and refused.session_id:  # continue where the refusal cut in
            return refused.session_id
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
        precheck = i in self.prechecks
        number = PRECHECK if precheck else len(self.ledger.attempts(task.name)) + 1
        with scope:
            try:
                if precheck:
                    attempt = await self.run_attempt(self.ctx, task, number, None, None)
                else:
                    attempt = await self.run_attempt(
                        self.ctx, task, number, self.feedback.get(i), self._resume_session(i)
                    )
            except anyio.get_cancelled_exc_class():
                self._interrupted(i)
                raise
        if scope.cancelled_caught:
            return
        if precheck:
            self._prechecked(i, attempt)
            return
        self.gate.close(task.name)  # an attempt that failed before its agent ran
        self.admission.finish(i)
        del self.scopes[i]
        if attempt.rate_limited and self._wait_for_the_limit(i, attempt):
            self._dispatch()
            return
        attempt = self._with_refused(i, attempt)
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

    def _prechecked(self, i: int, precheck: AttemptRecord) -> None:
        """After a task's pre-check: passed, the task passed with no agent; else it queues for
        its first attempt (which needs a session), told what the check said."""
        self.prechecks.discard(i)
        self.admission.finish(i)
        del self.scopes[i]
        if precheck.ok:
            self._finished(i, TaskStatus.PASSED, ALREADY_SATISFIED, precheck=precheck)
        else:
            task = self.tasks[i]
            self.ledger.prechecked(task.name, precheck)
            self.feedback[i] = Feedback.of(task, precheck)
            self.admission.add_ready(i)
        self._dispatch()

    def _wait_for_the_limit(self, i: int, attempt: AttemptRecord) -> bool:
        """Queue a task whose session the API refused behind the agent limit (not an attempt),
        unless that cannot help: the run stops, the budget is spent, the refusal was fatal, or
        the limit was already paused for it RATE_LIMIT_RETRIES times."""
        refused = self.refused.setdefault(i, _Refused())
        until = self.gate.blocked_until()
        pauses = refused.pauses + (until is not None)
        if (
            attempt.fatal
            or self.stop_reason is not None
            or self.ctx.budget.exhausted
            or pauses > RATE_LIMIT_RETRIES
        ):
            return False
        refused.pauses = pauses
        refused.cost_usd += attempt.cost_usd or 0.0
        refused.session_id = attempt.session_id or refused.session_id
        wait = None if until is None else max(0.0, until - anyio.current_time())
        self.ledger.refused(self.tasks[i].name, attempt.reason or "rate-limited", wait)
        self.admission.add_ready(i)
        return True

    def _with_refused(self, i: int, attempt: AttemptRecord) -> AttemptRecord:
        """The attempt with what its refused sessions cost (the state's totals stay true)."""
        refused = self.refused.pop(i, None)
        if refused is None or not refused.cost_usd:
            return attempt
        cost = (attempt.cost_usd or 0.0) + refused.cost_usd
        return attempt.model_copy(update={"cost_usd": cost})

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
        self.gate.close(name)
        if not self.ledger.is_terminal(name):
            self.ledger.finish(name, TaskStatus.INTERRUPTED, self.stop_reason or "interrupted")

    def _finished(
        self,
        i: int,
        status: TaskStatus,
        reason: str | None,
        attempt: AttemptRecord | None = None,
        precheck: AttemptRecord | None = None,
    ) -> None:
        task = self.tasks[i]
        self.ledger.finish(task.name, status, reason, attempt, precheck)
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


@dataclass
class _Refused:
    """What the refused sessions of a task's current attempt left: their cost (carried into
    the attempt's record), the session to continue, and how often the limit paused for it."""

    cost_usd: float = 0.0
    session_id: str | None = None
    pauses: int = 0
