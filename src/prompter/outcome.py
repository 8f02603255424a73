"""What happens after an attempt: pass, retry, fail, or stop as the run is stopping.

One pure function, `after_attempt`, for both engines (the graph scheduler and sequential mode),
and the messages it gives, so that a task's retry ladder and its reasons are written once.
Rate limits are not decided here: an attempt's agent phase retries them itself (without using
up an attempt) and reports a limit that lifts too late as a fatal error (`attempts._run_agent`).
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from .attempts import backoff_delay
from .config import Task
from .records import AttemptRecord


class Verdict(enum.Enum):
    PASS = "pass"
    RETRY = "retry"  # another attempt, with the failed one's feedback, after `retry_in_s`
    FAIL = "fail"  # the task failed; `stop_run` says whether the whole run stops too
    INTERRUPTED = "interrupted"  # the run is stopping: no retry, and not a real failure


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    reason: str | None = None  # the task's recorded reason (FAIL, INTERRUPTED)
    retry_in_s: float | None = None  # RETRY: the backoff before the next attempt
    stop_run: str | None = None  # FAIL: why the run stops with it, if it does


_PASSED = Outcome(Verdict.PASS)  # one for every pass: a frozen dataclass costs ~0.5 µs to build


def attempts_allowed(task: Task) -> int:
    """A task's attempts: `max_attempts` when it retries on failure, else one."""
    return task.max_attempts if task.on_failure == "retry" else 1


def fatal_stop(reason: str | None) -> str:
    """The run's stop reason after an agent error no other task could get past."""
    return f"run stopped: {reason}"


def stopped_by(task: Task) -> str:
    """The run's stop reason after a task with `on_failure = stop` failed."""
    return f"run stopped by `{task.name}` (on_failure = stop)"


def not_retried(reason: str | None, budget: str) -> str:
    """A task's reason when a retry was due but the cost budget is spent."""
    return f"{reason or 'failed'}; not retried: {budget}"


def after_attempt(
    task: Task,
    attempt: AttemptRecord,
    number: int,
    *,
    retry_delay: float,
    budget: str | None = None,
    stopping: str | None = None,
    rng: random.Random | None = None,
) -> Outcome:
    """What follows attempt `number` of `task`, which ended as `attempt` says.

    `budget` is the cost budget's reason once it is spent, `stopping` the run's stop reason once
    it is stopping (None: not so). The first that holds decides: a pass; a fatal agent error
    (the task fails, the run stops); an environment error (a verify command that could not run:
    no agent can supply what is missing, so never a retry); then, while attempts remain, the
    budget (no retry), the run stopping (interrupted), else a retry after a backoff drawn from
    `rng`; with none left, a failure. A failure of an `on_failure = stop` task stops the run.
    """
    if attempt.ok:
        return _PASSED
    if attempt.fatal:
        return Outcome(Verdict.FAIL, attempt.reason, stop_run=fatal_stop(attempt.reason))
    stop_run = stopped_by(task) if task.on_failure == "stop" else None
    if attempt.environment_error or number >= attempts_allowed(task):
        return Outcome(Verdict.FAIL, attempt.reason, stop_run=stop_run)
    if budget is not None:
        return Outcome(Verdict.FAIL, not_retried(attempt.reason, budget), stop_run=stop_run)
    if stopping is not None:
        return Outcome(Verdict.INTERRUPTED, stopping)
    return Outcome(Verdict.RETRY, retry_in_s=backoff_delay(retry_delay, number, rng))
