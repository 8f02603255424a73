"""How many agent sessions may run at once: a limit that follows the API's capacity (AIMD).

Parallel sessions that hit a rate limit (429) or an overloaded API (529) are the API saying it
has less room than the run's slots. As TCP's congestion control and Netflix's concurrency-limits
(`AIMDLimit`) do, the limit is cut multiplicatively on a congestion signal and raised by one
after a session that ended without one:

- one cut per round: a signal from a session that started before the last cut belongs to the
  burst that cut already answered (TCP NewReno's rule), so 429s from many sessions at once are
  one signal, not one per session; and a session's own signals count once;
- a cut goes at least below the concurrency the refused session saw (its peak): the API said
  no at that level, so the limit never asks the same question again at once;
- it grows only while it is in use (the session ran with the limit reached): a limit nobody
  reaches says nothing about the API's room;
- growing back to a level the API refused waits a hold (about one session's duration, so the
  answer of the level below is in) that doubles each time that level is refused again: a few
  probes, not one refusal per task;
- a warning that a limit is close (`allowed_warning`) holds growth for a while;
- a time the API named (`retry-after`, a reset time) blocks every new session until then; at a
  limit of 1 a refusal blocks new sessions for a back-off (10, 20, 40, 80, 160 s) instead;
- running sessions are never stopped to shrink it: it only gates new ones.

A pure state machine: `on_event(event, now)` returns the new limit, and every change is kept
with its time and cause (for the state and the reports). The scheduler asks `may_start`.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

DECREASE = 0.7  # CUBIC's factor: halving (Reno) undershoots a small room (3 → 1)
HOLD_S = 10.0  # before a level the API refused is tried again, until sessions have a duration
HOLD_RANGE_S = (1.0, 120.0)  # the hold follows the sessions' duration within these bounds
BACKOFF_S = 10.0  # at a limit of 1: the first pause of new sessions after a refusal …
MAX_BACKOFF_S = 300.0  # … doubled up to 16 times that (160 s), and never longer than this


@dataclass(frozen=True)
class Started:
    """A session started (the scheduler reserved it before starting the agent phase)."""

    session: Hashable


@dataclass(frozen=True)
class Congestion:
    """A session got a 429 or 529 (and retries by itself, or ended so); `retry_at` is when the
    API said to retry (absolute, on the clock of `now`), if it said."""

    session: Hashable
    status: int | None
    retry_at: float | None = None


@dataclass(frozen=True)
class NearLimit:
    """The API warned that a limit is close (`rate_limit_event` with `allowed_warning`)."""

    session: Hashable


@dataclass(frozen=True)
class Ended:
    """A session ended (after its signals, if it had any); `ok`: the agent finished its turn
    (a crash, a timeout or a cancelled session says nothing about the API's room)."""

    session: Hashable
    ok: bool = True


Event = Started | Congestion | NearLimit | Ended


@dataclass(frozen=True)
class LimitChange:
    """One change of the limit: when, to what, and why (for the state and the reports)."""

    at: float
    limit: int
    cause: str


@dataclass(slots=True)
class _Session:
    started_at: float
    round: int  # the number of cuts when it started
    level: int  # the number of changes when it started
    peak: int  # the most sessions that ran at once while it ran, itself included
    congested: bool = False


@dataclass
class AgentLimit:
    """The limit on agent sessions at once, between 1 and `maximum` (the configured one)."""

    maximum: int
    decrease: float = DECREASE
    backoff_s: float = BACKOFF_S
    limit: int = 0  # 0: start at `maximum`
    changes: list[LimitChange] = field(default_factory=list)
    _sessions: dict[Hashable, _Session] = field(default_factory=dict)
    _round: int = 0  # cuts so far
    _level: int = 0  # changes so far
    _ceiling: int | None = None  # the concurrency the API refused last, while below it
    _refusals_at_ceiling: int = 0
    _probe_after: float = float("-inf")  # no growth to the ceiling before
    _warned_until: float = float("-inf")  # no growth at all before (a warning)
    _blocked_until: float = float("-inf")
    _backoffs: int = 0  # refusals in a row at a limit of 1
    _typical_s: float | None = None  # the sessions' duration (moving average)

    def __post_init__(self) -> None:
        if self.maximum < 1:
            raise ValueError(f"maximum must be at least 1, not {self.maximum}")
        if not 0 < self.decrease < 1:
            raise ValueError(f"decrease must be between 0 and 1, not {self.decrease}")
        self.limit = self.limit or self.maximum

    @property
    def in_flight(self) -> int:
        return len(self._sessions)

    def may_start(self, now: float) -> bool:
        """Whether one more session may start now."""
        return self.in_flight < self.limit and now >= self._blocked_until

    def room(self, now: float) -> int:
        """How many sessions may start now."""
        return max(0, self.limit - self.in_flight) if now >= self._blocked_until else 0

    def blocked_until(self, now: float) -> float | None:
        """When new sessions may start again, while a named time or a back-off blocks them."""
        return self._blocked_until if self._blocked_until > now else None

    def on_event(self, event: Event, now: float) -> int:
        """Take one event at time `now`; return the limit after it."""
        kind = type(event)  # one lookup: this runs for every session of a run
        if kind is Started:
            self._started(event.session, now)
        elif kind is Ended:
            self._ended(event, now)  # type: ignore[arg-type]
        elif isinstance(event, Congestion):
            self._congested(event, now)
        elif isinstance(event, NearLimit):
            self._warned_until = max(self._warned_until, now + self._hold())
        return self.limit

    def _started(self, key: Hashable, now: float) -> None:
        sessions = self._sessions
        sessions[key] = _Session(started_at=now, round=self._round, level=self._level, peak=0)
        running = len(sessions)
        for session in sessions.values():  # at most the slots: cheaper than any bookkeeping
            session.peak = max(session.peak, running)

    def _congested(self, event: Congestion, now: float) -> None:
        session = self._sessions.get(event.session)
        if session is None or session.congested:
            return  # not a session it knows, or its signal counted already
        session.congested = True
        if event.retry_at is not None:
            self._blocked_until = max(self._blocked_until, event.retry_at)
        # The API serves the sessions that run without a signal: never more than that now,
        # and one more is a level it refused (a burst of refusals names it better than the
        # peak of the session that was refused first, which saw them all start).
        serving = sum(1 for s in self._sessions.values() if not s.congested)
        limit = min(self.limit, max(1, serving))
        if serving < self.limit and (self._ceiling is None or serving + 1 < self._ceiling):
            self._ceiling = serving + 1
        cause = self._cause(event)
        paused = event.retry_at is not None  # a pause of new sessions is worth a record too
        if event.retry_at is not None:
            cause += f"; no new session for {max(0.0, event.retry_at - now):.0f} s (as it said)"
        if session.round == self._round:  # a new signal, not the burst the last cut answered
            self._round += 1
            if self.limit == 1 and event.retry_at is None:
                # No room even for one: pause new sessions, longer each time in a row.
                pause = min(MAX_BACKOFF_S, self.backoff_s * 2.0 ** min(self._backoffs, 4))
                self._backoffs += 1
                self._blocked_until = max(self._blocked_until, now + pause)
                cause += f"; no new session for {pause:.0f} s"
                paused = True
            limit = min(limit, int(self.limit * self.decrease), session.peak - 1)
            self._refused_at(session.peak, now)
        limit = max(1, limit)
        if limit < self.limit or paused:
            self._set(limit, now, cause)

    def _refused_at(self, level: int, now: float) -> None:
        """Remember the level the API refused; growing back to it waits, longer each time."""
        if self._ceiling is not None and level >= self._ceiling:
            self._refusals_at_ceiling += 1
        else:
            self._refusals_at_ceiling = 1
        self._ceiling = level
        hold = self._hold() * 2.0 ** min(self._refusals_at_ceiling - 1, 10)
        self._probe_after = max(self._probe_after, now + hold)

    @staticmethod
    def _cause(event: Congestion) -> str:
        return f"API {event.status}" if event.status else "API rate limit"

    def _ended(self, event: Ended, now: float) -> None:
        session = self._sessions.pop(event.session, None)
        if session is None or session.congested or not event.ok:
            return
        self._backoffs = 0
        took = now - session.started_at
        self._typical_s = took if self._typical_s is None else 0.8 * self._typical_s + 0.2 * took
        # In use: the limit was reached while it ran, and it ran at this limit (started after
        # the last change: what ran before says nothing about the level now). So the limit
        # grows by one per round of sessions, as TCP's window grows by one per round trip.
        in_use = session.peak >= self.limit and session.level == self._level
        if not in_use or self.limit >= self.maximum or now < self._warned_until:
            return
        probing = self._ceiling is not None and self.limit + 1 >= self._ceiling
        if probing and now < self._probe_after:
            return
        if self._ceiling is not None and self.limit + 1 > self._ceiling:
            self._ceiling = None  # the refused level held: the API has more room now
        self._set(self.limit + 1, now, "sessions ended without a rate limit")

    def _hold(self) -> float:
        low, high = HOLD_RANGE_S
        return HOLD_S if self._typical_s is None else min(high, max(low, self._typical_s))

    def _set(self, limit: int, now: float, cause: str) -> None:
        if limit != self.limit:
            self._level += 1
        self.limit = limit
        self.changes.append(LimitChange(at=now, limit=limit, cause=cause))
