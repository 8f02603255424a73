"""agent_limit.py: the AIMD limit on agent sessions, as a table of events and a small simulation
of an API with room for K sessions (no anyio, no processes)."""

from __future__ import annotations

import pytest

from prompter.agent_limit import AgentLimit, Completed, Congestion, LimitChange, NearLimit

# (event, time, limit after it), applied in order to AgentLimit(maximum=8, window_s=10).
TABLE = [
    (Completed(in_flight=8), 0.0, 8),  # at the maximum: nothing to grow
    (Congestion(429), 1.0, 4),  # halved
    (Congestion(429), 2.0, 4),  # the same burst (within the window): one cut
    (Congestion(529), 5.0, 4),  # still the same window
    (Completed(in_flight=4), 6.0, 4),  # held for a window after congestion
    (Completed(in_flight=4), 16.0, 5),  # in use and no congestion since: +1
    (Completed(in_flight=3), 17.0, 5),  # not in use (3 of 5): says nothing
    (Completed(in_flight=5), 18.0, 6),
    (NearLimit(), 19.0, 6),  # a warning holds it …
    (Completed(in_flight=6), 20.0, 6),  # … for a window
    (Completed(in_flight=6), 29.5, 7),
    (Congestion(429), 30.0, 3),  # a new window: cut again (7 // 2)
    (Congestion(429), 41.0, 1),  # and again
    (Congestion(429), 52.0, 1),  # never below 1
]


def test_the_table() -> None:
    limit = AgentLimit(maximum=8, window_s=10.0)
    for event, now, expected in TABLE:
        assert limit.on_event(event, now) == expected, (event, now)
    assert [(c.limit, c.cause) for c in limit.changes] == [
        (4, "API 429"),
        (5, "completed without a rate limit"),
        (6, "completed without a rate limit"),
        (7, "completed without a rate limit"),
        (3, "API 429"),
        (1, "API 429"),
    ]
    assert limit.changes[0] == LimitChange(at=1.0, limit=4, cause="API 429")


def test_a_named_time_blocks_new_sessions_until_then_and_running_ones_are_not_counted_out() -> None:
    limit = AgentLimit(maximum=4)
    assert limit.may_start(3, 0.0) and not limit.may_start(4, 0.0)
    limit.on_event(Congestion(429, retry_at=30.0), 1.0)
    assert limit.limit == 2
    assert limit.blocked_until() == 30.0
    assert not limit.may_start(0, 29.9)  # the API named a time: honoured exactly
    assert limit.may_start(1, 30.0)
    assert not limit.may_start(2, 30.0)  # 3 still running from before the cut: none stopped,
    assert not limit.may_start(3, 30.0)  # none started until they are under the limit


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="maximum"):
        AgentLimit(maximum=0)
    with pytest.raises(ValueError, match="decrease"):
        AgentLimit(maximum=2, decrease=1.0)


def simulate(capacity: list[tuple[float, int]], maximum: int, seconds: float) -> list[int]:
    """Sessions of 1 s each, started whenever the limit allows; a session started while the
    API's capacity (a step function of time) is full is refused at once with a 429. Returns
    the limit after each second."""
    limit = AgentLimit(maximum=maximum, window_s=2.0)
    running: list[float] = []  # end times
    now, step, trace = 0.0, 0.05, []
    while now < seconds:
        room = next(k for t, k in reversed(capacity) if t <= now)
        for end in [e for e in running if e <= now]:
            running.remove(end)
            limit.on_event(Completed(in_flight=len(running) + 1), now)
        while limit.may_start(len(running), now):
            if len(running) >= room:
                limit.on_event(Congestion(429), now)
                break
            running.append(now + 1.0)
        if abs(now - round(now)) < step / 2:
            trace.append(limit.limit)
        now += step
    return trace


def test_the_limit_follows_the_apis_room_down_and_back_up() -> None:
    # Room for 3 sessions, then 1 from t=30, then 6 from t=60; the configured limit is 8.
    trace = simulate([(0.0, 3), (30.0, 1), (60.0, 6)], maximum=8, seconds=100)
    assert trace[0] == 4  # the first burst of 429s is one cut, not one per refused session
    assert set(trace[10:30]) == {2, 3}  # around the room: cut on a 429, +1 when in use
    assert set(trace[40:60]) == {1}  # followed the drop
    assert max(trace[80:100]) == 6 and min(trace[80:100]) == 3  # and the recovery
