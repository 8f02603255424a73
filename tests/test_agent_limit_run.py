"""The agent limit in a real run: the real SDK against the fake Claude CLI in its capacity mode,
an API with room for K sessions at once that refuses the rest with a 429 as Claude Code
reports it (api_retry messages, then an error result with api_error_status 429)."""

from __future__ import annotations

import json
import signal
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .harness import ClaudeHarness


@dataclass
class Capacity:
    """What the fake API saw: from `capacity.jsonl` (one line per call, one per end)."""

    admitted: list[tuple[float, float]]  # (start, end) of each session it served
    refused: list[float]  # when it refused one

    @classmethod
    def read(cls, state: Path) -> Capacity:
        lines = [json.loads(x) for x in (state / "capacity.jsonl").read_text().splitlines()]
        starts = {x["pid"]: x["at"] for x in lines if x.get("admitted") is True}
        ends = {x["pid"]: x["at"] for x in lines if x.get("ended")}
        return cls(
            admitted=[(starts[p], ends[p]) for p in starts],
            refused=[x["at"] for x in lines if x.get("admitted") is False],
        )

    def most_at_once(self) -> int:
        edges = sorted([(s, 1) for s, _ in self.admitted] + [(e, -1) for _, e in self.admitted])
        now = most = 0
        for _, step in edges:
            now += step
            most = max(most, now)
        return most


def capacity_run(
    c: ClaudeHarness, monkeypatch: pytest.MonkeyPatch, k: int, tasks: int, slots: int, work: float
) -> Path:
    room = c.root / "capacity"
    room.write_text(str(k))
    monkeypatch.setenv("FAKE_CLAUDE_CAPACITY", str(room))
    c.settings["max_parallel_tasks"] = slots
    for n in range(tasks):
        c.claude(f"t{n:02}", [{"work": work}], depends_on=[], max_attempts=1)
    return room


def check_every_task_passed_in_one_attempt(c: ClaudeHarness, tasks: int) -> dict[str, Any]:
    state = c.state()
    assert len(state["tasks"]) == tasks
    for name, record in state["tasks"].items():
        assert record["status"] == "passed", (name, record["reason"])
        assert len(record["attempts"]) == 1, name  # a refused session is not an attempt
    return state


def test_an_api_with_room_for_k_sessions_gets_k_busy_with_few_refusals(
    c: ClaudeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    k, tasks, slots = 3, 24, 8
    capacity_run(c, monkeypatch, k=k, tasks=tasks, slots=slots, work=1.0)
    started = time.monotonic()
    assert c.run() == 0
    makespan = time.monotonic() - started
    state = check_every_task_passed_in_one_attempt(c, tasks)
    seen = Capacity.read(c.claude_state)
    assert len(seen.admitted) == tasks
    assert seen.most_at_once() <= k
    # The first burst is refused (8 started, 3 fit), then a few probes of one more: not a
    # number that grows with the tasks.
    assert len(seen.refused) <= (slots - k) + 3, seen.refused
    # The API's room used: within 1.5 times the work it can take at once, a task's duration
    # being what its (one) attempt took: the CLI's start, the session, the verify command.
    duration = statistics.median(
        r["attempts"][0]["finished_at"] - r["attempts"][0]["started_at"]
        for r in state["tasks"].values()
    )
    assert makespan <= 1.5 * tasks * duration / k, (makespan, duration)
    changes = state["runs"][-1]["agent_limit"]
    assert changes and changes[0]["maximum"] == slots and changes[0]["cause"] == "API 429"
    assert min(change["limit"] for change in changes) >= 1


def test_the_limit_follows_the_apis_room_down_and_back_up(
    c: ClaudeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Room for 4 sessions, then 2 from 3 s on, then 4 again from 7 s on; enough tasks that the
    # run goes on well after that (probes of a level refused during the drop wait ever longer).
    tasks = 72
    room = capacity_run(c, monkeypatch, k=4, tasks=tasks, slots=8, work=0.5)
    begun = time.time()
    schedule = [(3.0, "2"), (7.0, "4")]

    def change_room() -> None:
        for at, k in schedule:
            time.sleep(max(0.0, begun + at - time.time()))
            room.write_text(k)

    changer = threading.Thread(target=change_room, daemon=True)
    changer.start()
    assert c.run() == 0
    changer.join()
    state = check_every_task_passed_in_one_attempt(c, tasks)
    changes = [(x["at"] - begun, x["limit"]) for x in state["runs"][-1]["agent_limit"]]

    def limits(start: float, end: float) -> list[int]:
        return [limit for at, limit in changes if start <= at < end]

    assert limits(3.0, 7.0) and max(limits(3.0, 7.0)) <= 3, changes  # down with the room …
    assert min(limits(3.0, 7.0)) <= 2, changes
    assert limits(7.0, 1e9) and max(limits(7.0, 1e9)) >= 4, changes  # … and back up
    seen = Capacity.read(c.claude_state)
    assert len(seen.admitted) == tasks
    assert len(seen.refused) <= 16, seen.refused  # the first burst, the drop, a few probes


def test_sigterm_while_every_task_waits_out_the_limits_pause_stops_the_run_at_once(
    c: ClaudeHarness,
) -> None:
    # Refused at a limit of 1, the task waits for the limit's pause (10 s, then 20 s): no
    # session runs, nothing would end the wait but its end.
    c.claude("busy", [{"error": 429}], depends_on=[], max_attempts=1)
    proc = c.spawn()
    try:
        calls = c.claude_state / "calls.jsonl"
        deadline = time.monotonic() + 30
        while not calls.exists() or len(calls.read_text().splitlines()) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "no second call"
            time.sleep(0.05)
        time.sleep(0.5)  # the second refusal has paused new sessions
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 143, out
    assert took < 5, took  # not the pause's 10 s (a stop used to wait for it)
    assert c.tasks_status()["busy"][0] == "skipped"
