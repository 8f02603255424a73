"""Sequential mode: a state machine over the tasks in file order, one task at a time.

The run starts at the first task (or the one named with --task); after each, its `on_success` /
`on_failure` picks what runs next: `next`, `stop`, a task by name, `repeat` (on success) or
`retry` (on failure):
- an `on_failure` that names a task jumps after the first failed attempt (its retries are not
  used up first);
- running a task again (a jump back, `repeat`) needs `allow_infinite_loops`: otherwise the run
  stops and fails, rather than skipping the task;
- reaching `max_iterations` stops the run and fails it;
- a revisit is a new visit: its attempts count from 1, with a new session;
- a `verify_first` task runs its verify command before the first attempt of its first visit
  (a loop that comes back to a task came back for the agent's work: a revisit does not);
- on a later run, earlier passes stand only until the run executes a task: what comes after a
  task that runs again runs again too (the order is the dependency).
Every status change goes through the `Ledger` (state first, then events).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Set

import anyio

from .attempts import AttemptContext, AttemptRunner, run_attempt
from .config import Workflow
from .engines import EngineResult
from .feedback import Feedback
from .ledger import Ledger
from .outcome import Outcome, Verdict, after_attempt, attempts_allowed, not_retried
from .records import ALREADY_SATISFIED, PRECHECK, AttemptRecord, TaskStatus


class SequentialRunner:
    """The sequential-mode `engines.Engine`."""

    def __init__(
        self,
        workflow: Workflow,
        start: int,
        ctx: AttemptContext,
        ledger: Ledger,
        reused: Set[int] = frozenset(),
        only_start: bool = False,
        rng: random.Random | None = None,
        attempt_runner: AttemptRunner = run_attempt,
    ) -> None:
        self.workflow = workflow
        self.tasks = workflow.tasks
        self.start = start
        self.ctx = ctx
        self.ledger = ledger
        self.reused = reused  # passed before with an unchanged definition: follow on_success
        self.only_start = only_start  # --task: "next" after the named task ends the run
        self.rng = rng or random.Random()
        self.run_attempt = attempt_runner
        self.answered: list[int] = []  # tasks an earlier run's pass stood for, in order
        self.stop_reason: str | None = None  # why the run ended early, if it did
        self.failed_run = False
        self._scope: anyio.CancelScope | None = None
        self._current: int | None = None

    def stop(self, reason: str) -> None:
        self.stop_reason = reason
        if self._scope is not None:
            self._scope.cancel()

    def result(self) -> EngineResult:
        """Failed when the run stopped on a failure (`on_failure = stop`, a forbidden revisit,
        `max_iterations`, the budget) or any task failed, also one a jump moved on from."""
        records = self.ledger.records.values()
        failed = self.failed_run or any(r.status is TaskStatus.FAILED for r in records)
        return EngineResult(failed=failed, reason=self.stop_reason, answered=tuple(self.answered))

    async def run(self) -> None:
        settings = self.workflow.settings
        visited: set[int] = set()
        iterations = 0
        current: int | None = self.start
        previous: int | None = None
        while current is not None and self.stop_reason is None:
            task = self.tasks[current]
            # What passed in an earlier run stands only until this run executes a task: the
            # order is the only dependency sequential mode knows, so what follows a task that
            # runs again runs again too (a loop's `wait` after its `check`, a pipeline's steps
            # after a changed one). And for a task's first visit only: a loop that comes back
            # to it (a jump, `repeat`) must run it, as the earlier run did.
            if current in self.reused and current not in visited and not iterations:
                self.answered.append(current)
                visited.add(current)
                previous = current
                current = self._next(current, True)
                continue
            iterations += 1  # executions: a visit answered from history is not one
            if iterations > settings.max_iterations:
                self._end(
                    f"max_iterations ({settings.max_iterations}) reached before `{task.name}`"
                )
                return
            if current in visited and not settings.allow_infinite_loops:
                self._end(
                    f"`{task.name}` would run a second time; set allow_infinite_loops = true "
                    "to allow jumps and repeats that revisit tasks"
                )
                return
            first_visit = current not in visited
            visited.add(current)
            passed = await self._run_task(current, previous, first_visit)
            if self.stop_reason is not None:
                return
            previous = current
            current = self._next(current, passed)

    def _end(self, reason: str) -> None:
        self.stop_reason = reason
        self.failed_run = True

    def _next(self, i: int, passed: bool) -> int | None:
        task = self.tasks[i]
        target = task.on_success if passed else task.on_failure
        if target == "stop":
            return None
        if target in ("next", "retry"):  # retry: its attempts are used up, so move on
            return None if self.only_start or i + 1 >= len(self.tasks) else i + 1
        if target == "repeat":
            return i
        return self.workflow.index[target]

    def _session(self, i: int, previous: int | None, retrying: bool) -> str | None:
        """A retry continues the task's own session; a visit (also a revisit: a jump back, a
        `repeat`) starts a new one, or with `resume_previous_session` the previous task's."""
        own = self.ledger.attempts(self.tasks[i].name)
        if retrying and own and own[-1].session_id:
            return own[-1].session_id
        if previous is None or not self.tasks[i].resume_previous_session:
            return None
        before = self.ledger.latest(self.tasks[previous].name)  # an earlier run's, if it stands
        return before.attempts[-1].session_id if before and before.attempts else None

    async def _run_task(self, i: int, previous: int | None, first_visit: bool) -> bool:
        task = self.tasks[i]
        feedback: Feedback | None = None
        budget = self.ctx.budget
        for tries in range(1, attempts_allowed(task) + 1):
            if budget.exhausted:
                if tries == 1:
                    self.ledger.finish(task.name, TaskStatus.SKIPPED, budget.reason)
                else:
                    last = self.ledger.attempts(task.name)[-1].reason
                    reason = not_retried(last, budget.reason)
                    self.ledger.finish(task.name, TaskStatus.FAILED, reason)
                self._end(budget.reason)
                return False
            if tries == 1 and first_visit and task.verify_first:
                precheck = await self._precheck(i)
                if precheck is None:  # interrupted
                    return False
                if precheck.ok:
                    self.ledger.finish(
                        task.name, TaskStatus.PASSED, ALREADY_SATISFIED, precheck=precheck
                    )
                    return True
                self.ledger.prechecked(task.name, precheck)
                feedback = Feedback.of(task, precheck)
            number = tries  # a visit's attempts: a revisit starts again at 1
            # Before `start`, which gives a revisit a new record: `repeat` with
            # resume_previous_session continues the visit before, its own.
            session = self._session(i, previous, tries > 1)
            self.ledger.start(task.name, number)
            with self._interruptible(task.name) as scope:
                attempt = await self.run_attempt(self.ctx, task, number, feedback, session)
                # The budget is checked before the next attempt (above, after the backoff),
                # and a stop cancels this scope: neither is part of this decision.
                outcome = after_attempt(
                    task,
                    attempt,
                    number,
                    retry_delay=self.workflow.settings.retry_delay,
                    rng=self.rng,
                )
                if outcome.verdict is not Verdict.RETRY:
                    return self._decided(i, attempt, outcome)
                assert outcome.retry_in_s is not None
                self.ledger.add_attempt(task.name, attempt, outcome.retry_in_s)
                feedback = Feedback.of(task, attempt)
                await anyio.sleep(outcome.retry_in_s)
            if scope.cancelled_caught:
                return False
        return False

    async def _precheck(self, i: int) -> AttemptRecord | None:
        """The task's verify command before its first attempt (no agent); None when the run
        stopped meanwhile (the task is then recorded as interrupted)."""
        task = self.tasks[i]
        self.ledger.start(task.name, PRECHECK)
        with self._interruptible(task.name):
            return await self.run_attempt(self.ctx, task, PRECHECK, None, None)
        return None  # cancelled: the scope caught it

    @contextlib.contextmanager
    def _interruptible(self, name: str) -> Iterator[anyio.CancelScope]:
        """The scope a stop cancels while `name` runs; cancelled, the task is recorded as
        interrupted (the scope then swallows the cancellation)."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                yield scope
            except anyio.get_cancelled_exc_class():
                self.ledger.finish(name, TaskStatus.INTERRUPTED, self.stop_reason or "interrupted")
                raise
            finally:
                self._scope = None

    def _decided(self, i: int, attempt: AttemptRecord, outcome: Outcome) -> bool:
        """Record a pass or a failure (which may end the run); whether the task passed."""
        name = self.tasks[i].name
        if outcome.verdict is Verdict.PASS:
            self.ledger.finish(name, TaskStatus.PASSED, attempt=attempt)
            return True
        # Without `stopping`, `after_attempt` never answers INTERRUPTED.
        assert outcome.verdict is Verdict.FAIL
        self.ledger.finish(name, TaskStatus.FAILED, outcome.reason, attempt)
        if outcome.stop_run is not None:
            self._end(outcome.stop_run)
        return False
