"""`outcome.after_attempt`: what follows an attempt, as a table, without an event loop.

Each row is one branch of the decision (and a few of their orderings): a wrong verdict, reason,
backoff or run stop fails it.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from prompter.attempts import backoff_delay
from prompter.config import Task, load_workflow
from prompter.outcome import Outcome, Verdict, after_attempt, attempts_allowed
from prompter.records import AttemptRecord

BUDGET = "cost budget of $1.00 reached"
STOPPING = "interrupted by SIGINT"
STOP_BY = "run stopped by `t` (on_failure = stop)"
DELAY = 2.0
SEED = 7


def _task(tmp_path: Path, on_failure: str = "retry", max_attempts: int = 3) -> Task:
    path = tmp_path / "w.toml"
    path.write_text(
        f'[[tasks]]\nname = "t"\nprompt = "p"\nverify_command = "true"\n'
        f'on_failure = "{on_failure}"\nmax_attempts = {max_attempts}\n'
    )
    return load_workflow(path).tasks[0]


def _attempt(number: int = 1, **fields: object) -> AttemptRecord:
    values: dict[str, object] = {"reason": "verify_command exited 1 (expected 0)", **fields}
    if fields.get("ok"):
        values["reason"] = None
    return AttemptRecord(number=number, started_at=0.0, **values)


REASON = "verify_command exited 1 (expected 0)"
FATAL = "claude not found"
ENVIRONMENT = "verify_command could not run (exit 127: command not found): sh: 1: x: not found"
# The backoff of a first retry with the test's seed: the same draw `backoff_delay` makes.
FIRST_RETRY = backoff_delay(DELAY, 1, random.Random(SEED))
SECOND_RETRY = backoff_delay(DELAY, 2, random.Random(SEED))

# (id, on_failure, max_attempts, number, attempt fields, budget, stopping, expected)
CASES: list[tuple[str, str, int, int, dict[str, object], str | None, str | None, Outcome]] = [
    ("pass", "retry", 3, 1, {"ok": True}, None, None, Outcome(Verdict.PASS)),
    # A pass stands whatever else holds: the budget, a stopping run, the last attempt.
    ("pass while stopping", "stop", 1, 1, {"ok": True}, BUDGET, STOPPING, Outcome(Verdict.PASS)),
    (
        "retry, attempts remain",
        "retry",
        3,
        1,
        {},
        None,
        None,
        Outcome(Verdict.RETRY, retry_in_s=FIRST_RETRY),
    ),
    (
        "retry backs off longer the second time",
        "retry",
        3,
        2,
        {},
        None,
        None,
        Outcome(Verdict.RETRY, retry_in_s=SECOND_RETRY),
    ),
    ("last attempt fails", "retry", 3, 3, {}, None, None, Outcome(Verdict.FAIL, REASON)),
    ("one attempt allowed", "retry", 1, 1, {}, None, None, Outcome(Verdict.FAIL, REASON)),
    # On the last attempt the budget and the stop change nothing: there was no retry to refuse.
    ("last attempt, budget", "retry", 2, 2, {}, BUDGET, None, Outcome(Verdict.FAIL, REASON)),
    ("last attempt, stopping", "retry", 2, 2, {}, None, STOPPING, Outcome(Verdict.FAIL, REASON)),
    ("on_failure next: no retry", "next", 3, 1, {}, None, None, Outcome(Verdict.FAIL, REASON)),
    (
        "on_failure stop: no retry, the run stops",
        "stop",
        3,
        1,
        {},
        None,
        None,
        Outcome(Verdict.FAIL, REASON, stop_run=STOP_BY),
    ),
    (
        "environment error never retries",
        "retry",
        3,
        1,
        {"reason": ENVIRONMENT, "environment_error": True},
        None,
        None,
        Outcome(Verdict.FAIL, ENVIRONMENT),
    ),
    (
        "environment error, on_failure stop",
        "stop",
        1,
        1,
        {"reason": ENVIRONMENT, "environment_error": True},
        None,
        None,
        Outcome(Verdict.FAIL, ENVIRONMENT, stop_run=STOP_BY),
    ),
    (
        "environment error before the budget",
        "retry",
        3,
        1,
        {"reason": ENVIRONMENT, "environment_error": True},
        BUDGET,
        STOPPING,
        Outcome(Verdict.FAIL, ENVIRONMENT),
    ),
    (
        "budget reached: not retried",
        "retry",
        3,
        1,
        {},
        BUDGET,
        None,
        Outcome(Verdict.FAIL, f"{REASON}; not retried: {BUDGET}"),
    ),
    (
        "budget reached, no reason given",
        "retry",
        3,
        1,
        {"reason": None},
        BUDGET,
        None,
        Outcome(Verdict.FAIL, f"failed; not retried: {BUDGET}"),
    ),
    (
        "budget before stopping",
        "retry",
        3,
        1,
        {},
        BUDGET,
        STOPPING,
        Outcome(Verdict.FAIL, f"{REASON}; not retried: {BUDGET}"),
    ),
    (
        "stopping: interrupted, not retried",
        "retry",
        3,
        1,
        {},
        None,
        STOPPING,
        Outcome(Verdict.INTERRUPTED, STOPPING),
    ),
    (
        "fatal agent error stops the run",
        "retry",
        3,
        1,
        {"reason": FATAL, "fatal": True},
        None,
        None,
        Outcome(Verdict.FAIL, FATAL, stop_run=f"run stopped: {FATAL}"),
    ),
    (
        "fatal before everything but a pass",
        "stop",
        1,
        1,
        {"reason": FATAL, "fatal": True, "environment_error": True},
        BUDGET,
        STOPPING,
        Outcome(Verdict.FAIL, FATAL, stop_run=f"run stopped: {FATAL}"),
    ),
    (
        # A rate limit that lifts too late reaches the decision as a fatal error
        # (`attempts._run_agent`); one that was retried away is an ordinary failure.
        "rate limit lifting in hours is fatal",
        "retry",
        3,
        1,
        {"reason": "rate limited; the limit lifts at 18:00", "fatal": True},
        None,
        None,
        Outcome(
            Verdict.FAIL,
            "rate limited; the limit lifts at 18:00",
            stop_run="run stopped: rate limited; the limit lifts at 18:00",
        ),
    ),
]


@pytest.mark.parametrize(
    ("on_failure", "max_attempts", "number", "fields", "budget", "stopping", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_after_attempt(
    tmp_path: Path,
    on_failure: str,
    max_attempts: int,
    number: int,
    fields: dict[str, object],
    budget: str | None,
    stopping: str | None,
    expected: Outcome,
) -> None:
    task = _task(tmp_path, on_failure, max_attempts)
    outcome = after_attempt(
        task,
        _attempt(number, **fields),
        number,
        retry_delay=DELAY,
        budget=budget,
        stopping=stopping,
        rng=random.Random(SEED),
    )
    assert outcome == expected


def test_no_delay_without_retry_delay(tmp_path: Path) -> None:
    outcome = after_attempt(_task(tmp_path), _attempt(), 1, retry_delay=0.0)
    assert outcome == Outcome(Verdict.RETRY, retry_in_s=0.0)


def test_backoff_draws_only_for_a_retry(tmp_path: Path) -> None:
    """The engines' random draws stay where they were: one per retry, none otherwise (a seeded
    run's delays are reproducible)."""
    rng = random.Random(SEED)
    after_attempt(_task(tmp_path), _attempt(3), 3, retry_delay=DELAY, rng=rng)
    after_attempt(_task(tmp_path), _attempt(1, ok=True), 1, retry_delay=DELAY, rng=rng)
    assert rng.getstate() == random.Random(SEED).getstate()
    after_attempt(_task(tmp_path), _attempt(1), 1, retry_delay=DELAY, rng=rng)
    assert rng.getstate() != random.Random(SEED).getstate()


@pytest.mark.parametrize(
    ("on_failure", "max_attempts", "allowed"),
    [("retry", 4, 4), ("retry", 1, 1), ("next", 4, 1), ("stop", 4, 1)],
)
def test_attempts_allowed(tmp_path: Path, on_failure: str, max_attempts: int, allowed: int) -> None:
    assert attempts_allowed(_task(tmp_path, on_failure, max_attempts)) == allowed
