"""How many agent sessions may run at once: a limit that follows the API's capacity (AIMD).

Parallel sessions that hit a rate limit (429) or an overloaded API (529) are the API saying it
has less room than the run's slots. As TCP's congestion control and Netflix's concurrency-limits
(`AIMDLimit`) do, the limit is cut multiplicatively on a congestion signal and raised by one
after a completion without one:

- a cut happens at most once per `window_s`: a burst of 429s from many sessions at once is one
  signal, not one per session;
- it grows only while it is in use (as many sessions ran as it allowed): a limit nobody reaches
  says nothing about the API's room;
- a warning that the limit is close (`allowed_warning`) holds it: no growth for a window;
- a time the API named (`retry-after`, a reset time) blocks every new session until then;
- running sessions are never stopped to shrink it: it only gates new ones.

A pure state machine: `on_event(event, now)` returns the new limit, and every change is kept
with its time and cause (for the state and the reports). The scheduler asks `may_start`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOW_S = 10.0  # one cut per window: about the first retry's wait, so a burst counts once
DECREASE = 0.5  # TCP's halving: the API's room is found in a few cuts


@dataclass(frozen=True)
class Congestion:
    """A session ended or retried with a 429 or 529; `retry_at` is when the API said to retry
    (absolute, same clock as `now`), if it said."""

    status: int
    retry_at: float | None = None


@dataclass(frozen=True)
class NearLimit:
    """The API warned that a limit is close (`rate_limit_event` with `allowed_warning`)."""


@dataclass(frozen=True)
class Completed:
    """A session ended without congestion; `in_flight` sessions ran as it ended (itself too)."""

    in_flight: int


Event = Congestion | NearLimit | Completed


@dataclass(frozen=True)
class LimitChange:
    """One change of the limit: when, to what, and why (for the state and the reports)."""

    at: float
    limit: int
    cause: str


@dataclass
class AgentLimit:
    """The limit on agent sessions at once, between 1 and `maximum` (the configured one)."""

    maximum: int
    window_s: float = WINDOW_S
    decrease: float = DECREASE
    limit: int = 0  # 0: start at `maximum`
    changes: list[LimitChange] = field(default_factory=list)
    _last_cut: float | None = None
    _held_until: float = float("-inf")
    _blocked_until: float = float("-inf")

    def __post_init__(self) -> None:
        if self.maximum < 1:
            raise ValueError(f"maximum must be at least 1, not {self.maximum}")
        if not 0 < self.decrease < 1:
            raise ValueError(f"decrease must be between 0 and 1, not {self.decrease}")
        self.limit = self.limit or self.maximum

    def on_event(self, event: Event, now: float) -> int:
        """Take one event at time `now`; return the limit after it."""
        if isinstance(event, Congestion):
            self._congested(event, now)
        elif isinstance(event, NearLimit):
            self._held_until = max(self._held_until, now + self.window_s)
        elif self._may_grow(event, now):
            self._set(self.limit + 1, now, "completed without a rate limit")
        return self.limit

    def _may_grow(self, event: Completed, now: float) -> bool:
        """Below the maximum, in use (as many ran as it allowed), not held by a recent signal."""
        in_use = event.in_flight >= self.limit
        return self.limit < self.maximum and in_use and now >= self._held_until

    def may_start(self, in_flight: int, now: float) -> bool:
        """Whether one more session may start while `in_flight` run."""
        return in_flight < self.limit and now >= self._blocked_until

    def blocked_until(self) -> float | None:
        """When the API said new sessions may start again, if that is still to come."""
        return None if self._blocked_until == float("-inf") else self._blocked_until

    def _congested(self, event: Congestion, now: float) -> None:
        if event.retry_at is not None:
            self._blocked_until = max(self._blocked_until, event.retry_at)
        self._held_until = max(self._held_until, now + self.window_s)
        if self._last_cut is not None and now - self._last_cut < self.window_s:
            return  # the same burst
        self._last_cut = now
        cut = max(1, int(self.limit * self.decrease))
        if cut < self.limit:
            self._set(cut, now, f"API {event.status}")

    def _set(self, limit: int, now: float, cause: str) -> None:
        self.limit = limit
        self.changes.append(LimitChange(at=now, limit=limit, cause=cause))
