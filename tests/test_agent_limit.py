"""agent_limit.py: the AIMD limit on agent sessions, as tables of events and a small simulation
of an API with room for K sessions at once (no anyio, no processes)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import pytest

from prompter.agent_limit import (
    AgentLimit,
    Congestion,
    Ended,
    Event,
    LimitChange,
    NearLimit,
    Started,
)


def start(limit: AgentLimit, names: str, now: float) -> None:
    for name in names:
        limit.on_event(Started(name), now)


def test_a_burst_of_refusals_is_one_cut_and_the_limit_drops_to_what_the_api_still_serves() -> None:
    limit = AgentLimit(maximum=8)
    start(limit, "abcdefgh", 0.0)
    assert limit.in_flight == 8 and not limit.may_start(0.0)
    # The first refusal: one cut (8 · 0.7), below the 8 that ran when it was refused.
    assert limit.on_event(Congestion("a", 429), 0.1) == 5
    # The same burst (started before that cut): no second cut, but the API is serving only
    # the sessions without a signal, so the limit never stays above them.
    assert limit.on_event(Congestion("b", 429), 0.1) == 5
    for name, serving in zip("cdef", (5, 4, 3, 2), strict=True):
        limit.on_event(Congestion(name, 429), 0.1)
        assert limit.limit == min(5, serving)
    assert [(c.limit, c.cause) for c in limit.changes] == [
        (5, "API 429"),
        (4, "API 429"),
        (3, "API 429"),
        (2, "API 429"),
    ]
    # g signals too (the API serves h alone now); its own signals count once (Claude Code
    # sends an api_retry message per retry).
    assert limit.on_event(Congestion("g", 529), 0.2) == 1
    limit.on_event(Ended("h"), 0.25)
    assert limit.on_event(Congestion("g", 529), 0.3) == 1
    assert len(limit.changes) == 5
    assert limit.changes[0] == LimitChange(at=0.1, limit=5, cause="API 429")


def test_running_sessions_are_not_counted_out_and_none_starts_above_the_limit() -> None:
    limit = AgentLimit(maximum=4)
    start(limit, "abcd", 0.0)
    limit.on_event(Congestion("a", 429), 1.0)
    limit.on_event(Ended("a", ok=False), 1.0)
    assert limit.limit == 2 and limit.in_flight == 3  # int(4 · 0.7); nobody was stopped
    assert limit.room(1.0) == 0
    for name in "bc":
        limit.on_event(Ended(name), 2.0)
    assert limit.room(2.0) == 1  # d still runs: one more may start


def test_a_new_signal_after_the_cut_cuts_again_below_what_it_saw() -> None:
    limit = AgentLimit(maximum=8)
    start(limit, "abcdefgh", 0.0)
    limit.on_event(Congestion("a", 429), 0.1)  # 5
    for name in "abcdefgh":
        limit.on_event(Ended(name), 1.0)
    start(limit, "ijklm", 1.0)  # a new round, at 5
    assert limit.on_event(Congestion("m", 429), 1.1) == 3  # min(int(5 · 0.7), 5 − 1, 4 served)


def test_growth_is_one_per_round_of_sessions_that_reached_the_limit() -> None:
    limit = AgentLimit(maximum=8, limit=3)
    start(limit, "ab", 0.0)
    limit.on_event(Ended("a"), 1.0)
    assert limit.limit == 3  # 2 of 3 ran: the limit was not in use, that says nothing
    start(limit, "cd", 1.0)  # b, c, d: 3 of 3
    limit.on_event(Ended("b"), 2.0)
    assert limit.limit == 4  # b ran with the limit reached, at this level: +1
    limit.on_event(Ended("c"), 2.0)
    limit.on_event(Ended("d"), 2.0)
    assert limit.limit == 4  # they started before that change: one step per round, not per end
    start(limit, "efgh", 3.0)
    limit.on_event(Ended("e", ok=False), 4.0)
    assert limit.limit == 4  # a crash or a timeout says nothing about the API's room
    limit.on_event(Ended("f"), 4.0)
    assert limit.limit == 5


def full_round(limit: AgentLimit, now: float, took: float) -> float:
    """As many sessions as the limit allows start at `now` and end well after `took`."""
    names = [f"{now}-{n}" for n in range(limit.limit)]
    start(limit, names, now)  # type: ignore[arg-type]
    for name in names:
        limit.on_event(Ended(name), now + took)
    return now + took


def refused_at_the_limit(limit: AgentLimit, now: float) -> None:
    """As many sessions as the limit allows start at `now`; the API refuses the last one."""
    names = [f"{now}-{n}" for n in range(limit.limit)]
    start(limit, names, now)  # type: ignore[arg-type]
    limit.on_event(Congestion(names[-1], 429), now)
    for name in names:
        limit.on_event(Ended(name, ok=name != names[-1]), now)


def test_growing_back_to_a_refused_level_waits_longer_each_time_it_is_refused() -> None:
    limit = AgentLimit(maximum=8, limit=4)
    now = full_round(limit, 0.0, took=1.0)  # sessions take 1 s: the hold is that long
    assert limit.limit == 5
    refused_at_the_limit(limit, now)  # at 5, at t=1
    assert limit.limit == 3
    now = full_round(limit, now, took=0.2)
    assert limit.limit == 4  # below the refused level: one step per round
    now = full_round(limit, now, took=0.2)
    assert (now, limit.limit) == (1.4, 4)  # to 5 not before t=2 (1 s after the refusal)
    now = full_round(limit, 1.9, took=0.2)
    assert limit.limit == 5  # the probe: at t=2.1
    refused_at_the_limit(limit, now)  # refused again at that level: the hold doubles
    now = full_round(limit, now, took=0.2)
    now = full_round(limit, now, took=0.2)
    assert limit.limit == 4
    now = full_round(limit, 3.8, took=0.2)
    assert limit.limit == 4  # t=4.0: not yet (2.1 + 2 s)
    now = full_round(limit, now, took=0.2)
    assert limit.limit == 5  # t=4.2: the probe; and when it holds …
    now = full_round(limit, now, took=0.2)
    assert limit.limit == 6  # … that level is no longer in doubt


@pytest.mark.parametrize("warning", [True, False])
def test_a_warning_holds_growth_for_a_while(warning: bool) -> None:
    limit = AgentLimit(maximum=8, limit=2)
    start(limit, "ab", 0.0)
    if warning:
        limit.on_event(NearLimit("a"), 0.5)
    limit.on_event(Ended("a"), 1.0)
    assert limit.limit == (2 if warning else 3)
    assert limit.changes == ([] if warning else [LimitChange(1.0, 3, limit.changes[0].cause)])


def test_a_named_time_blocks_every_new_session_until_then_exactly() -> None:
    limit = AgentLimit(maximum=4)
    start(limit, "ab", 0.0)
    limit.on_event(Congestion("a", 429, retry_at=30.0), 1.0)
    assert limit.blocked_until(1.0) == 30.0
    assert not limit.may_start(29.9) and limit.room(29.9) == 0
    limit.on_event(Ended("a", ok=False), 1.0)
    limit.on_event(Ended("b"), 2.0)
    assert not limit.may_start(29.9)
    assert limit.may_start(30.0)
    assert limit.blocked_until(30.0) is None
    assert limit.changes[-1].cause == "API 429; no new session for 29 s (as it said)"


def test_at_a_limit_of_one_a_refusal_pauses_new_sessions_longer_each_time() -> None:
    limit = AgentLimit(maximum=1, backoff_s=10.0)
    pauses = []
    now = 0.0
    for n in range(7):
        name = f"s{n}"
        limit.on_event(Started(name), now)
        limit.on_event(Congestion(name, 429), now)
        limit.on_event(Ended(name, ok=False), now)
        until = limit.blocked_until(now)
        assert until is not None
        pauses.append(until - now)
        now = until
    assert pauses == [10, 20, 40, 80, 160, 160, 160]
    limit.on_event(Started("ok"), now)
    limit.on_event(Ended("ok"), now + 1)
    limit.on_event(Started("again"), now + 1)
    limit.on_event(Congestion("again", 429), now + 1)
    assert limit.blocked_until(now + 1) == now + 11  # a session that worked starts it over


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="maximum"):
        AgentLimit(maximum=0)
    with pytest.raises(ValueError, match="decrease"):
        AgentLimit(maximum=2, decrease=1.0)


# -- a simulated API --------------------------------------------------------------------------


@dataclass
class Simulation:
    """Tasks of `duration` s on `slots` slots, each session started whenever the limit allows;
    a session that starts while the API already serves `capacity(now)` sessions is refused
    (a 429 after 0.05 s, as the CLI reports it) and its task queued again."""

    capacity: list[tuple[float, int]]  # (from time, K): a step function
    slots: int
    tasks: int
    duration: float = 1.0
    refused: int = 0
    makespan: float = 0.0
    trace: list[tuple[float, int]] = field(default_factory=list)  # (time, limit) at each event

    def room(self, now: float) -> int:
        return next(k for t, k in reversed(self.capacity) if t <= now)

    def run(self) -> AgentLimit:
        limit = AgentLimit(maximum=self.slots)
        queue = list(range(self.tasks))
        serving: set[int] = set()
        events: list[tuple[float, int, str, int]] = []
        seq = 0

        def push(at: float, kind: str, task: int) -> None:
            nonlocal seq
            heapq.heappush(events, (at, seq, kind, task))
            seq += 1

        def dispatch(now: float) -> None:
            while queue and limit.may_start(now):
                task = queue.pop(0)
                limit.on_event(Started(task), now)
                if len(serving) < self.room(now):
                    serving.add(task)
                    push(now + self.duration, "end", task)
                else:
                    self.refused += 1
                    push(now + 0.05, "refused", task)
            until = limit.blocked_until(now)
            if until is not None and queue:
                push(until, "wake", -1)

        dispatch(0.0)
        while events:
            now, _, kind, task = heapq.heappop(events)
            event: list[Event] = []
            if kind == "end":
                serving.discard(task)
                event = [Ended(task)]
            elif kind == "refused":
                event = [Congestion(task, 429), Ended(task, ok=False)]
                queue.append(task)
            for e in event:
                limit.on_event(e, now)
            self.trace.append((now, limit.limit))
            self.makespan = now
            dispatch(now)
        return limit


@pytest.mark.parametrize(("k", "slots"), [(3, 8), (2, 8), (2, 16), (4, 16), (8, 16)])
def test_against_an_api_with_room_for_k_the_run_keeps_k_busy_with_few_refusals(
    k: int, slots: int
) -> None:
    sim = Simulation(capacity=[(0.0, k)], slots=slots, tasks=12 * k)
    limit = sim.run()
    ideal = sim.tasks * sim.duration / k
    assert sim.makespan <= 1.25 * ideal + 1.0
    # The first burst is refused (slots − k: everything started at once), then a few probes
    # of the level above k, each after a hold twice as long: not one refusal per task.
    assert sim.refused <= (slots - k) + 6
    assert k // 2 <= limit.limit <= k + 1


def test_the_limit_follows_the_apis_room_down_and_back_up() -> None:
    # Room for 4 sessions, then 2 from t=10, then 4 again from t=25; 8 slots, 100 tasks of 1 s.
    sim = Simulation(capacity=[(0.0, 4), (10.0, 2), (25.0, 4)], slots=8, tasks=100)
    sim.run()

    def limits(start: float, end: float) -> set[int]:
        return {limit for t, limit in sim.trace if start <= t < end}

    assert max(limits(5, 10)) >= 4  # found the room …
    assert max(limits(13, 25)) <= 3  # … followed the drop (probing 3 now and then) …
    assert max(limits(30, sim.makespan + 1)) >= 4  # … and the recovery
    ideal = 10 + 15 + (100 - 10 * 4 - 15 * 2) / 4  # the API's room used to the full: 32.5 s
    assert sim.makespan <= 1.3 * ideal


def test_after_a_burst_the_level_above_what_the_api_served_is_a_probe_that_waits() -> None:
    limit = AgentLimit(maximum=8)
    start(limit, "abcdefgh", 0.0)
    for name in "abcde":  # the API serves f, g, h
        limit.on_event(Congestion(name, 429), 0.1)
        limit.on_event(Ended(name, ok=False), 0.1)
    assert limit.limit == 3
    for name in "fgh":
        limit.on_event(Ended(name), 1.0)  # from before the cut: no growth
    start(limit, "ijk", 1.0)
    limit.on_event(Ended("i"), 2.0)
    # 4 is the level the burst refused (3 served, the 4th not): not at once, not in the round
    # after (the burst's first refusal saw 8 running, which named no useful level).
    assert limit.limit == 3
    limit.on_event(Ended("j"), 2.0)
    start(limit, "lm", 11.0)  # the hold (no session duration known yet: 10 s) has passed
    limit.on_event(Ended("k"), 11.5)
    assert limit.limit == 4
