"""The agents' side of the run's agent limit: what they tell it while a session runs and when it
ends — Claude Code's retries of a 429/529, its rate-limit warnings and rejections, the HTTP
status of a refusal; a spend limit, which is no rate limit; and a command agent's exit 75
(EX_TEMPFAIL) or `rate_limit_pattern`. Observed where a user sees them: the state's record of
the limit's changes, the tasks' attempts, the CLI calls made."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from prompter import attempts
from prompter.agents.claude_messages import ResultView, spend_limit
from prompter.agents.command import EX_TEMPFAIL
from prompter.cli import main

from .harness import ClaudeHarness, Harness
from .workflow_files import errors_of, write

GRAPH = {"depends_on": []}


def limit_changes(root: Path) -> list[dict[str, Any]]:
    state = json.loads((root / ".prompter" / "state.json").read_text())
    changes: list[dict[str, Any]] = state["runs"][-1]["agent_limit"]
    return changes


def causes(root: Path) -> list[str]:
    return [change["cause"] for change in limit_changes(root)]


# -- Claude Code ------------------------------------------------------------------------------


def test_a_429_the_cli_retries_by_itself_cuts_the_agent_limit(c: ClaudeHarness) -> None:
    c.settings["max_parallel_tasks"] = 2
    c.claude("busy", [{"api_retry": [[429, "rate_limit_error"]], "say": "done anyway"}], **GRAPH)
    c.claude("calm", [{}], **GRAPH)
    assert c.run() == 0
    # The session went on and passed: an attempt as any other, one call each.
    for name in ("busy", "calm"):
        assert len(c.claude_calls(name)) == 1
        assert len(c.status()["tasks"][name]["attempts"]) == 1
    (cut, *_) = limit_changes(c.root)
    assert cut["cause"] == "API 429" and cut["limit"] == 1 and cut["maximum"] == 2


def test_a_retried_529_is_congestion_too_and_other_retries_are_not(c: ClaudeHarness) -> None:
    c.claude("overloaded", [{"api_retry": [[529, "overloaded_error"]]}], **GRAPH)
    c.claude("flaky", [{"api_retry": [[500, "api_error"], [None, "unknown"]]}], **GRAPH)
    assert c.run() == 0
    # A 500 or no response says nothing about the API's room: only the 529 cuts.
    assert causes(c.root) == ["API 529"]


@pytest.mark.parametrize("warned", [False, True])
def test_a_usage_limit_warning_holds_the_limit_where_it_is(c: ClaudeHarness, warned: bool) -> None:
    # A chain, one session at a time: a short session (the sessions' duration, which sets how
    # long a level the API refused is held: 1 s, the shortest), one the API pushes back on (cut
    # to 1), then one that outlasts that hold: it raises the limit again, unless the API warned
    # that a limit is close as it ended.
    c.settings["max_parallel_tasks"] = 2
    c.claude("warm", [{}], depends_on=[])
    c.claude("pushed", [{"api_retry": [[429, "rate_limit_error"]]}], depends_on=["warm"])
    c.claude("after", [{"work": 1.5, "warning": warned}], depends_on=["pushed"])
    assert c.run() == 0
    grown = ["sessions ended without a rate limit"]
    assert causes(c.root) == ["API 429"] + ([] if warned else grown)
    assert [change["limit"] for change in limit_changes(c.root)] == [1] + ([] if warned else [2])
    log = (c.root / ".prompter" / "logs" / "after.log").read_text()
    assert ("rate limit: allowed_warning (five_hour)" in log) is warned


def test_a_rejection_that_names_its_time_holds_new_sessions_until_then(c: ClaudeHarness) -> None:
    # The CLI went on after it (another model took over), but no new session starts before
    # the time the API named.
    c.claude("rejected", [{"limit_event": 2, "say": "carried on"}], depends_on=[])
    c.claude("then", [{}], depends_on=["rejected"])
    assert c.run() == 0
    (cut,) = limit_changes(c.root)
    assert re.fullmatch(r"API rate limit; no new session for [12] s \(as it said\)", cut["cause"])
    assert len(c.claude_calls("rejected")) == 1


def test_a_rejection_that_lifts_in_hours_names_no_wait(c: ClaudeHarness) -> None:
    # A weekly window of one model: the session went on with another, and the run must not
    # hold every new session for days on its word.
    c.claude("rejected", [{"limit_event": 7 * 24 * 3600, "say": "carried on"}], depends_on=[])
    c.claude("then", [{}], depends_on=["rejected"])
    assert c.run() == 0
    assert causes(c.root) == ["API rate limit"]


def test_a_refused_session_tells_the_limit_its_http_status(c: ClaudeHarness) -> None:
    c.claude("overloaded", [{"error": 529}, {}], max_attempts=1, **GRAPH)
    assert c.run() == 0
    assert causes(c.root)[0] == "API 529"
    assert len(c.claude_calls("overloaded")) == 2
    assert len(c.status()["tasks"]["overloaded"]["attempts"]) == 1


def test_the_spend_limit_fails_the_task_and_stops_the_run_without_a_retry(
    c: ClaudeHarness,
) -> None:
    c.claude("spent", [{"spend_limit": True}, {}], depends_on=[], max_attempts=3)
    c.claude("later", [{}], depends_on=[], priority=-1)
    assert c.run("--no-parallel") == 1
    assert len(c.claude_calls("spent")) == 1  # not queued again, not retried
    assert c.claude_calls("later") == []
    tasks = c.status()["tasks"]
    assert tasks["spent"]["status"] == "failed"
    (attempt,) = tasks["spent"]["attempts"]
    assert attempt["fatal"] and not attempt["rate_limited"]
    reason = tasks["spent"]["reason"]
    assert reason.startswith(
        "the organization's API spend limit is reached (enforced_spend_limit_reached); "
        "raise it in the Claude Console — no retry until then (the API said: You have reached "
        "your API usage limits"
    )
    assert re.search(r"regain access on \d{4}-\d\d-01 at 00:00 UTC", reason)
    assert tasks["later"]["status"] == "skipped"
    assert tasks["later"]["reason"].startswith("run stopped: ")
    assert causes(c.root) == []  # not a rate limit: the agent limit stays as it was


def test_the_spend_limit_is_read_from_the_error_body_not_from_any_text() -> None:
    def result(text: str | None = None, errors: tuple[str, ...] = ()) -> ResultView:
        return ResultView(
            subtype="success",
            is_error=True,
            num_turns=1,
            session_id=None,
            total_cost_usd=0,
            usage={},
            result=text,
            api_error_status=429,
            errors=errors,
        )

    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "over the limit",
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
    }
    quoted = json.dumps(body)
    assert spend_limit(result(f"API Error: 429 {quoted}")) == "over the limit"
    assert spend_limit(result(None, (f"Error: 429 {quoted}\n    at generate (cli.js:1:2)",))) == (
        "over the limit"
    )
    del body["error"]["message"]  # type: ignore[attr-defined]
    assert spend_limit(result(f"API Error: 429 {json.dumps(body)}")) == ""
    # Not the spend limit: the code outside `details`, another status, not the API's body.
    elsewhere = {"type": "error", "error": {"message": "enforced_spend_limit_reached"}}
    for text in (
        f"API Error: 429 {json.dumps(elsewhere)}",
        f"API Error: 400 {quoted}",
        f"the agent said: API Error: 429 {quoted}",
        "API Error: 429 {not json",
        'API Error: 429 ["enforced_spend_limit_reached"]',
    ):
        assert spend_limit(result(text)) is None, text


# -- command agents ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["graph", "sequential"])
def test_exit_75_is_a_rate_limit_not_an_attempt(
    h: Harness, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    assert EX_TEMPFAIL == 75
    monkeypatch.setattr(attempts, "RATE_LIMIT_BASE_S", 0.05)  # sequential mode's wait
    keys = GRAPH if mode == "graph" else {}
    h.task("busy", [{"calls": [{"exit": 75}], "write": {"done": "1"}}], **keys)
    assert h.run() == 0
    calls = h.calls()
    assert [(call["task"], call["attempt"]) for call in calls] == [("busy", 1), ("busy", 1)]
    task = h.status()["tasks"]["busy"]
    assert task["status"] == "passed" and len(task["attempts"]) == 1
    log = (h.root / ".prompter" / "logs" / "busy.log").read_text()
    if mode == "graph":  # queued behind the run's agent limit
        assert "the API refused the agent session: agent exited 75 (EX_TEMPFAIL" in log
        assert causes(h.root) == ["API rate limit"]
    else:  # waited out within the attempt
        assert "agent rate-limited; retrying in" in log


def test_another_exit_code_is_an_attempt_as_before(h: Harness) -> None:
    h.task("failing", [{"exit": 74}, {}], max_attempts=2, **GRAPH)
    assert h.run() == 0
    assert len(h.status()["tasks"]["failing"]["attempts"]) == 2
    assert causes(h.root) == []


def test_rate_limit_pattern_marks_a_failed_agent_rate_limited_and_names_the_wait(
    h: Harness,
) -> None:
    said = "Error: 429 Too Many Requests; retry in 1 s\n"
    h.task(
        "busy",
        [{"calls": [{"print": said, "exit": 1}]}],
        rate_limit_pattern=r"429 Too Many Requests; retry in (?P<seconds>\d+) s",
        **GRAPH,
    )
    assert h.run() == 0
    first, second = h.calls()
    assert first["attempt"] == second["attempt"] == 1
    # The time the agent said: no new session before it (the fake agent ends as it logs).
    assert second["start"] - first["end"] > 0.9
    task = h.status()["tasks"]["busy"]
    assert task["status"] == "passed" and len(task["attempts"]) == 1
    (cut,) = limit_changes(h.root)
    assert cut["cause"] == "API rate limit; no new session for 1 s (as it said)"


def test_rate_limit_pattern_from_settings_applies_only_to_a_failed_agent(h: Harness) -> None:
    h.settings["rate_limit_pattern"] = "(?i)rate limit"
    # Said on the way to a success (a retry inside the agent): the work is done, it stands.
    h.task("recovered", [{"print": "hit a rate limit, retried\n"}], **GRAPH)
    # Failed without saying it: an attempt.
    h.task("broken", [{"print": "syntax error\n", "exit": 1}, {}], max_attempts=2, **GRAPH)
    assert h.run() == 0
    tasks = h.status()["tasks"]
    assert len(tasks["recovered"]["attempts"]) == 1
    assert len(tasks["broken"]["attempts"]) == 2
    assert len(h.calls()) == 3
    assert causes(h.root) == []


def test_an_invalid_rate_limit_pattern_is_a_located_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        '[settings]\nagent = "command"\nagent_command = ["true"]\n'
        'rate_limit_pattern = "retry in (\\\\d+"\n'
        '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "true"\n'
        '[[tasks]]\nname = "b"\nprompt = "p"\nverify_command = "true"\n'
        "rate_limit_pattern = 'x{2,1}'\n",
    )
    assert errors_of(path) == [
        (
            4,
            "rate_limit_pattern is not a valid regular expression: "
            "missing ), unterminated subpattern at position 9",
        ),
        (
            13,
            "rate_limit_pattern is not a valid regular expression: "
            "min repeat greater than max repeat at position 2",
        ),
    ]
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4:1: error: rate_limit_pattern is not a valid regular expression" in err


def test_rate_limit_pattern_is_inherited_overridden_and_checked(tmp_path: Path) -> None:
    from prompter.config import load_workflow

    path = write(
        tmp_path,
        '[settings]\nagent = "command"\nagent_command = ["true"]\n'
        "rate_limit_pattern = 'slow down'\n"
        '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "true"\n'
        '[[tasks]]\nname = "b"\nprompt = "p"\nverify_command = "true"\n'
        "rate_limit_pattern = 'quota'\n"
        '[[tasks]]\nname = "c"\nprompt = "p"\nverify_command = "true"\nagent = "claude"\n'
        "rate_limit_pattern = 'quota'\n",
    )
    wf = load_workflow(path)
    assert [t.rate_limit_pattern for t in wf.tasks] == ["slow down", "quota", "quota"]
    assert [(w.line, w.message) for w in wf.warnings] == [
        (19, 'rate_limit_pattern has no effect: task `c` uses agent = "claude"')
    ]
    empty = write(
        tmp_path,
        '[settings]\nrate_limit_pattern = ""\n[[tasks]]\nname = "a"\n'
        'prompt = "p"\nverify_command = "true"\n',
        "empty.toml",
    )
    assert errors_of(empty) == [(2, "`rate_limit_pattern` must not be empty")]
