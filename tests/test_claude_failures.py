"""How a Claude attempt fails or survives: usage limits with odd reset times, a resume cut by
the deadline, a CLI that refuses `initialize` or says nothing before a second signal, a limit
event it survives, an API that retries, recovers or stays unreachable."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from prompter import attempts

from .harness import ClaudeHarness, alive


@pytest.mark.parametrize("resets_at", [1e17, 1e20], ids=["1e17", "1e20"])
def test_a_usage_limit_reset_time_far_in_the_future_fails_the_task_not_prompter(
    c: ClaudeHarness,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    resets_at: float,
) -> None:
    # Not a believable reset time: a limit of unknown end, retried with the backoff.
    monkeypatch.setattr(attempts, "RATE_LIMIT_BASE_S", 0.05)
    c.claude("weekly", [{"usage_limit": True, "resets_at": resets_at}], depends_on=[])
    code = c.run()
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err.lower(), err
    assert code == 1
    state, reason = c.tasks_status()["weekly"]
    assert state == "failed" and reason is not None and "usage limit" in reason


def test_a_timeout_while_a_resumed_session_starts_is_not_taken_for_a_failed_resume(
    c: ClaudeHarness,
) -> None:
    c.claude("a", [{}])
    c.claude("b", [{"slow_init": 30}], resume_previous_session=True, timeout=2, max_attempts=1)
    started = time.monotonic()
    assert c.run() == 1
    elapsed = time.monotonic() - started
    log = (c.root / ".prompter" / "logs" / "b.log").read_text()
    assert c.tasks_status()["b"] == ("failed", "agent timed out after 2 s")
    assert "could not be resumed" not in log
    assert len(c.claude_calls("b")) == 1  # no new CLI after the deadline
    assert elapsed < 2 + 2.5
    for call in c.claude_calls("b"):
        assert not alive(call["pid"])


def test_a_cli_that_refuses_the_initialize_request_fails_the_attempt_not_prompter(
    c: ClaudeHarness, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_INIT_ERROR", "unknown option for this CLI version")
    c.claude("a", [{}], depends_on=[], max_attempts=1)
    code = c.run()
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err, err
    assert code == 1
    state, reason = c.tasks_status()["a"]
    assert state == "failed" and reason is not None and "unknown option" in reason


def _wait_for(predicate: Callable[[], bool], what: str, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_second_signal_kills_a_cli_that_has_not_said_anything_yet(c: ClaudeHarness) -> None:
    c.claude("slow", [{"slow_init": 30, "ignore_term": True}], depends_on=[])
    proc = c.spawn()
    _wait_for(lambda: bool(c.claude_calls("slow")), "the fake CLI never started")
    (call,) = c.claude_calls("slow")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # the first signal's clean-up is under way: the CLI ignores its SIGTERM
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    time.sleep(0.5)
    try:
        assert not alive(call["pid"]), "the CLI outlived prompter's emergency exit"
    finally:
        if alive(call["pid"]):
            os.killpg(call["pid"], signal.SIGKILL)


def test_max_turns_after_a_survived_limit_event_is_not_a_usage_limit(c: ClaudeHarness) -> None:
    # Claude Code reported one window's limit, went on (another model), then hit max_turns.
    step = {
        "limit_event": 3 * 3600,
        "patch": {"subtype": "error_max_turns", "is_error": True, "result": None},
    }
    c.claude("long", [step], depends_on=[], max_turns=3, max_attempts=1)
    c.claude("other", [{}], depends_on=[], priority=-1)
    assert c.run("--no-parallel") == 1
    assert c.tasks_status()["long"] == ("failed", "Claude Code stopped: max_turns (3) reached")
    assert c.tasks_status()["other"] == ("passed", None)  # the run went on


def test_a_limit_beyond_the_calendar_is_still_told_in_words() -> None:
    assert attempts._clock_in(120).startswith("at ")
    assert attempts._clock_in(1e20) == f"in {1e20 / 3600:,.0f} h"


def test_graph_mode_resumes_the_session_of_a_dependency_whose_earlier_pass_stands(
    c: ClaudeHarness,
) -> None:
    c.claude("analyze", [{}], depends_on=[])
    c.claude(
        "review",
        [{}],
        depends_on=["analyze"],
        verify_command="test -f reviewed",
        max_attempts=1,
        resume_previous_session=True,
    )
    assert c.run() == 1
    (analyze,) = c.claude_calls("analyze")
    (c.work / "reviewed").write_text("yes")
    assert c.run() == 0
    assert len(c.claude_calls("analyze")) == 1  # its pass stood
    assert c.claude_calls("review")[1]["resume"] == analyze["session_id"]


def test_a_timeout_while_claude_code_retries_the_api_says_so(
    c: ClaudeHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    # Claude Code retries a failed API request itself (10 times, backing off to ~30 s) and says
    # so only in system/api_retry messages: with the API unreachable, the task failed with a
    # bare "agent timed out" and nothing in its log (seen with the real CLI 2.1.332, offline).
    retries = [[None, "unknown"], [529, "overloaded_error"]]
    c.claude("a", [{"api_retry": retries, "stall": True}], timeout=2, max_attempts=1)
    assert c.run() == 1
    state, reason = c.tasks_status()["a"]
    assert state == "failed"
    assert reason == (
        "agent timed out after 2 s while Claude Code was retrying a failed Claude API request "
        "(retry 2 of 10; last: HTTP 529 overloaded_error)"
    ), reason
    log = (c.root / ".prompter" / "logs" / "a.log").read_text()
    assert (
        "Claude API request failed (no response: unknown); Claude Code retries in 1.0 s (1 of 10)"
        in log
    ), log
    assert (
        "Claude API request failed (HTTP 529 overloaded_error); "
        "Claude Code retries in 2.0 s (2 of 10)" in log
    ), log
    # The console hears of it as it happens (minutes of backing off are otherwise silent).
    out = capsys.readouterr().out
    assert (
        "] … a: Claude Code is retrying a failed Claude API request (no response: unknown; "
        "retry 1 of 10)\n" in out
    ), out
    assert "] … a: Claude Code is retrying a failed Claude API request (HTTP 529 " in out, out


def test_a_timeout_after_the_api_recovered_is_a_plain_timeout(c: ClaudeHarness) -> None:
    # The retries worked (the model answered afterwards): the time went into the work.
    steps = [{"api_retry": [[529, "overloaded_error"]], "hang": True}]
    c.claude("a", steps, timeout=2, max_attempts=1)
    assert c.run() == 1
    assert c.tasks_status()["a"] == ("failed", "agent timed out after 2 s")


def test_an_unreachable_api_stops_the_run_instead_of_retrying_every_task(
    c: ClaudeHarness,
) -> None:
    # The real CLI, offline, spends ~3 minutes on its own 10 retries before its error result;
    # every further attempt and every other task would spend them again, to the same end.
    c.claude("first", [{"unreachable": True}], depends_on=[], max_attempts=3)
    c.claude("second", [{}], depends_on=[], priority=-1)
    assert c.run("--no-parallel") == 1
    status = c.tasks_status()
    state, reason = status["first"]
    assert state == "failed"
    assert reason == (
        "Claude Code could not reach the Claude API (10 of 10 retries got no response): "
        "API Error: Can't reach the API server — check your internet or DNS (ENOTFOUND)"
    ), reason
    assert len(c.claude_calls("first")) == 1
    assert status["second"][0] == "skipped" and status["second"][1].startswith("run stopped: ")
