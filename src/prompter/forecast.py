"""What each task will likely cost and take, from what the state measured of it.

The history is thin, and this says so: a state keeps one record per task, its latest, and that
record keeps the attempts of its latest visit only. So a task's sample is the attempts of its
last outcome (passed or failed; a skipped or interrupted record measured nothing whole), and
its expected number of attempts is how many that outcome took. Per attempt, the median is the
expected amount and the 90th percentile the high one; each times the expected attempts.
Attempts the API refused (rate-limited) are no work and left out. A task without such a record,
or whose attempts reported no cost (a command agent), is unknown: named, never taken as zero.

Pure: records in, a `Forecast` out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .records import AttemptRecord, Estimate, RunForecast, State, TaskRecord, TaskStatus

HIGH = 0.9  # the quantile of one attempt's amount that is the high end


def quantile(values: Sequence[float], q: float) -> float:
    """The `q` quantile of `values` (not empty), interpolated between the two nearest ranks."""
    ordered = sorted(values)
    at = q * (len(ordered) - 1)
    low = math.floor(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def _spread(samples: Sequence[float], attempts: int) -> Estimate | None:
    if not samples:
        return None
    return Estimate(
        expected=quantile(samples, 0.5) * attempts, high=quantile(samples, HIGH) * attempts
    )


def _measured(value: float | None) -> float | None:
    """`value` if it is a measurement (finite, not negative), else None."""
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def _duration(attempt: AttemptRecord) -> float | None:
    if attempt.finished_at is None:
        return None
    return _measured(attempt.finished_at - attempt.started_at)


def _tokens(attempt: AttemptRecord) -> float | None:
    if attempt.input_tokens is None and attempt.output_tokens is None:
        return None
    return float((attempt.input_tokens or 0) + (attempt.output_tokens or 0))


@dataclass(frozen=True)
class TaskForecast:
    name: str
    attempts: int  # expected: how many its last outcome took; 0 without history
    cost_usd: Estimate | None  # None: unknown
    duration_s: Estimate | None  # the attempts' time (agent and verify), not waits between
    tokens: Estimate | None  # input + output tokens

    def to_json(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "cost_usd": _json(self.cost_usd),
            "duration_s": _json(self.duration_s),
            "tokens": _json(self.tokens),
        }


def _json(estimate: Estimate | None) -> dict[str, float] | None:
    return None if estimate is None else {"expected": estimate.expected, "high": estimate.high}


def task_forecast(name: str, record: TaskRecord | None) -> TaskForecast:
    """What `record` (the task's latest, if any) says the task's next run will take."""
    if record is None or record.status not in (TaskStatus.PASSED, TaskStatus.FAILED):
        return TaskForecast(name=name, attempts=0, cost_usd=None, duration_s=None, tokens=None)
    worked = [a for a in record.attempts if not a.rate_limited]
    n = len(worked)
    costs = [c for a in worked if (c := _measured(a.cost_usd)) is not None]
    durations = [d for a in worked if (d := _duration(a)) is not None]
    tokens = [t for a in worked if (t := _tokens(a)) is not None]
    return TaskForecast(
        name=name,
        attempts=n,
        cost_usd=_spread(costs, n),
        duration_s=_spread(durations, n),
        tokens=_spread(tokens, n),
    )


def _total(estimates: Iterable[Estimate | None]) -> Estimate | None:
    known = [e for e in estimates if e is not None]
    if not known:
        return None
    return Estimate(expected=sum(e.expected for e in known), high=sum(e.high for e in known))


@dataclass(frozen=True)
class Forecast:
    """The forecast of some tasks (those a plan or a run would try), in their order."""

    tasks: tuple[TaskForecast, ...]

    @property
    def cost_usd(self) -> Estimate | None:
        """The total over the tasks with a cost history; None when none has one."""
        return _total(t.cost_usd for t in self.tasks)

    @property
    def duration_s(self) -> Estimate | None:
        """The tasks' time one after another (not the makespan); None when none was measured."""
        return _total(t.duration_s for t in self.tasks)

    @property
    def unknown(self) -> tuple[str, ...]:
        """The tasks without a cost history: left out of the total, never counted as zero."""
        return tuple(t.name for t in self.tasks if t.cost_usd is None)

    def to_json(self) -> dict[str, Any]:
        return {
            "cost_usd": _json(self.cost_usd),
            "duration_s": _json(self.duration_s),
            "unknown": list(self.unknown),
            "tasks": {t.name: t.to_json() for t in self.tasks},
        }

    def record(self, budget_usd: float | None) -> RunForecast:
        """The forecast as a run records it: each task's cost, how many are unknown."""
        return RunForecast(
            tasks={t.name: t.cost_usd for t in self.tasks if t.cost_usd is not None},
            unknown=len(self.unknown),
            budget_usd=budget_usd,
        )


def forecast(state: State, names: Iterable[str]) -> Forecast:
    """The forecast of the tasks `names` from `state`."""
    return Forecast(tuple(task_forecast(name, state.tasks.get(name)) for name in names))
