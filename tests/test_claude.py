"""The Claude Code backend: the real claude-agent-sdk against tests/agents/fake_claude.py."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from prompter import attempts
from prompter.agents import claude

from .harness import FAKE_CLAUDE, ClaudeHarness, alive

SECRET = "sk-ant-api03-TESTSECRET-0123456789abcdef"


@pytest.fixture
def quick_rate_limit_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attempts, "RATE_LIMIT_BASE_S", 0.05)


def test_success_records_cost_tokens_turns_and_session(c: ClaudeHarness) -> None:
    c.claude(
        "edit",
        [
            {
                "say": "on it",
                "write": {"out.txt": "hello"},
                "cost": 0.25,
                "tokens": [1200, 340, 50, 7],
            }
        ],
        verify_command="grep -qx hello out.txt",
        depends_on=[],
        model="claude-test-model",
        max_turns=7,
        system_prompt="Be brief.",
        disallowed_tools=["WebFetch"],
    )
    assert c.run() == 0
    (call,) = c.claude_calls("edit")
    assert call["flags"]["model"] == "claude-test-model"
    assert call["flags"]["max-turns"] == "7"
    assert call["flags"]["append-system-prompt"] == "Be brief."  # added, not replacing
    assert "system-prompt" not in call["flags"]
    assert call["flags"]["permission-mode"] == "bypassPermissions"
    assert call["flags"]["disallowedTools"] == "WebFetch"
    assert call["cwd"] == str(c.work)
    assert call["sid"] == call["pid"]  # the CLI leads a session (process group) of its own
    (attempt,) = c.state()["tasks"]["edit"]["attempts"]
    assert attempt["cost_usd"] == 0.25
    assert (attempt["input_tokens"], attempt["output_tokens"]) == (1200, 340)
    assert (attempt["cache_read_tokens"], attempt["cache_creation_tokens"]) == (50, 7)
    assert attempt["num_turns"] == 1
    assert attempt["session_id"] == call["session_id"]
    assert attempt["result_text"] == "done" and attempt["is_error"] is False
    log = (c.root / ".prompter" / "logs" / "edit.log").read_text()
    assert "on it\n" in log and "→ Write: out.txt" in log
    assert "result: success · 1 turn · $0.2500 · 1200 in / 340 out" in log
    assert '{"type"' not in log  # readable text, not the raw stream


def test_retry_resumes_its_own_session_and_carries_the_verify_output(c: ClaudeHarness) -> None:
    c.claude(
        "fix",
        [{"write": {"out.txt": "wrong"}, "write_on_retry": {"out.txt": "right"}, "cost": 0.1}],
        verify_command="cat out.txt; grep -qx right out.txt",
        depends_on=[],
    )
    assert c.run() == 0
    first, second = c.claude_calls("fix")
    assert first["resume"] is None
    assert second["resume"] == first["session_id"] == second["session_id"]
    assert "Attempt 1 did not pass: verify_command exited 1 (expected 0)" in second["prompt"]
    assert "`cat out.txt; grep -qx right out.txt`" in second["prompt"]
    assert "wrong" in second["prompt"]  # what the verify command printed
    task = c.status()["tasks"]["fix"]
    assert task["status"] == "passed" and len(task["attempts"]) == 2
    assert task["cost_usd"] == pytest.approx(0.2)


def test_mixed_claude_and_command_tasks_with_costs_in_status(
    c: ClaudeHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    c.claude("plan", [{"write": {"plan.md": "steps"}, "cost": 0.5}], depends_on=[])
    c.task(
        "build", [{"write": {"built": "yes"}}], depends_on=["plan"], verify_command="test -f built"
    )
    c.claude(
        "review",
        [{"cost": 0.25}],
        depends_on=["build"],
        resume_previous_session=True,
    )
    assert c.run() == 0
    status = c.status()
    costs = {name: t["cost_usd"] for name, t in status["tasks"].items()}
    assert costs == {"plan": 0.5, "build": 0.0, "review": 0.25}
    assert status["total_cost_usd"] == pytest.approx(0.75)
    out = capsys.readouterr().out
    assert re.search(r"✓ plan passed in [\d.]+ s, \$0\.50\n", out)
    assert re.search(r"run passed: 3 passed in [\d.]+ s, cost \$0\.75\n", out)
    # `review` resumes the session of its dependency that finished last: `build` ran the
    # command agent (no session), so there is none to resume.
    assert c.claude_calls("review")[0]["resume"] is None


def test_resume_previous_session_takes_the_dependency_that_finished_last(
    c: ClaudeHarness,
) -> None:
    c.claude("a", [{}], depends_on=[])
    c.claude("b", [{}], depends_on=["a"])
    c.claude("c", [{}], depends_on=["b"], resume_previous_session=True)
    assert c.run("--no-parallel") == 0
    b_session = c.claude_calls("b")[0]["session_id"]
    assert c.claude_calls("c")[0]["resume"] == b_session


def test_a_session_that_cannot_be_resumed_starts_a_new_one(c: ClaudeHarness) -> None:
    c.claude("a", [{"forget_session": True}], depends_on=[])
    c.claude("b", [{}], depends_on=["a"], resume_previous_session=True)
    assert c.run() == 0
    tried, fresh = c.claude_calls("b")
    assert tried["resume"] == c.claude_calls("a")[0]["session_id"]
    assert fresh["resume"] is None
    assert len(c.status()["tasks"]["b"]["attempts"]) == 1  # the same attempt
    log = (c.root / ".prompter" / "logs" / "b.log").read_text()
    assert "could not be resumed; starting a new one" in log


def test_error_result_fails_the_attempt_with_the_api_message(c: ClaudeHarness) -> None:
    c.claude("boom", [{"error": 500}], depends_on=[], max_attempts=2)
    c.claude("after", [{}], depends_on=["boom"])
    assert c.run() == 1
    status = c.tasks_status()
    assert status["boom"] == (
        "failed",
        "Claude Code error (HTTP 500): API Error: 500 Internal server error",
    )
    assert status["after"] == ("skipped", "dependency `boom` failed")
    assert len(c.claude_calls("boom")) == 2


@pytest.mark.parametrize(
    ("patch", "unusable"),
    [
        ({"total_cost_usd": "abc"}, "`total_cost_usd`"),
        ({"total_cost_usd": -100}, "`total_cost_usd`"),  # would raise the budget
        ({"total_cost_usd": 1e400}, "`total_cost_usd`"),  # JSON's 1e400 is inf
        ({"usage": [1, 2]}, "`usage`"),
        ({"num_turns": "x", "session_id": 5}, "`num_turns`, `session_id`"),
        ({"result": 12345, "is_error": True}, "`result`"),
    ],
)
def test_a_result_message_with_unusable_fields_fails_the_attempt_not_the_run(
    c: ClaudeHarness, patch: dict[str, Any], unusable: str
) -> None:
    c.claude("odd", [{"patch": patch}, {}], depends_on=[], max_attempts=2)
    assert c.run() == 0  # the second attempt passes: the run went on
    (first, second) = c.state()["tasks"]["odd"]["attempts"]
    assert first["reason"] == (
        f"Claude Code sent output prompter cannot read: a result message with unusable {unusable}"
    )
    assert second["ok"] and second["cost_usd"] == 0.01


def test_the_final_answer_is_kept_as_readable_text(c: ClaudeHarness) -> None:
    c.claude("t", [{"result": "res\u0000ult \u001b[2Jdone"}], depends_on=[])
    assert c.run() == 0
    (attempt,) = c.state()["tasks"]["t"]["attempts"]
    assert attempt["result_text"] == "result done"


@pytest.mark.usefixtures("quick_rate_limit_backoff")
def test_no_rate_limit_retry_once_the_budget_is_spent(c: ClaudeHarness) -> None:
    c.settings["max_cost_usd"] = 0.5
    c.claude("t", [{"error": 429, "patch": {"total_cost_usd": 0.6}}, {"cost": 0.1}], depends_on=[])
    assert c.run() == 1
    assert len(c.claude_calls("t")) == 1  # the retry would have been new work past the budget
    record = c.state()["tasks"]["t"]
    assert record["status"] == "failed" and record["attempts"][-1]["cost_usd"] == 0.6


def test_a_crashing_cli_is_an_agent_failure_with_its_stderr(c: ClaudeHarness) -> None:
    c.claude("crash", [{"crash": 3}], depends_on=[], max_attempts=1)
    assert c.run() == 1
    status, reason = c.tasks_status()["crash"]
    assert status == "failed"
    assert reason is not None and reason.startswith("Claude Code exited 3 without a result")
    log = (c.root / ".prompter" / "logs" / "crash.log").read_text()
    assert "stderr: Error: something inside Claude Code broke" in log


@pytest.mark.parametrize("ignores_sigterm", [False, True], ids=["plain", "ignores-sigterm"])
def test_timeout_kills_the_cli_and_its_tool_processes_within_the_grace(
    c: ClaudeHarness, ignores_sigterm: bool
) -> None:
    step = {"hang": True, "ignore_term": ignores_sigterm}
    c.claude("stuck", [step], depends_on=[], timeout=1.5, max_attempts=1)
    started = time.monotonic()
    assert c.run() == 1
    # The timeout, the 2 s SIGTERM grace when the CLI ignores it, and start-up: the SDK's own
    # clean-up (5 s for stdin EOF, 5 s after SIGTERM) must not come on top.
    assert time.monotonic() - started < 1.5 + (2 if ignores_sigterm else 0) + 2.5
    assert c.tasks_status()["stuck"] == ("failed", "agent timed out after 1.5 s")
    (call,) = c.claude_calls("stuck")
    child = int((c.claude_state / f"hang-{call['pid']}").read_text())
    assert not alive(call["pid"]) and not alive(child)


def test_a_timeout_while_the_cli_starts_stops_it_too(c: ClaudeHarness) -> None:
    # The deadline passes before the CLI has written its pid: nothing to signal yet.
    c.claude("early", [{"hang": True}], depends_on=[], timeout=0.001, max_attempts=1)
    started = time.monotonic()
    assert c.run() == 1
    assert time.monotonic() - started < 4
    assert c.tasks_status()["early"] == ("failed", "agent timed out after 0.001 s")
    for call in c.claude_calls("early"):  # it may not even have got as far as the plan
        assert not alive(call["pid"])
    for hang in c.claude_state.glob("hang-*"):
        assert not alive(int(hang.read_text()))


def test_a_cli_whose_output_stays_open_after_its_result_passes_without_waiting_for_the_timeout(
    c: ClaudeHarness,
) -> None:
    # A tool process left running in the background keeps the CLI's stdout open.
    step = {"linger": True, "write": {"ok": "1"}}
    c.claude("lingers", [step], depends_on=[], timeout=60, verify_command="test -f ok")
    started = time.monotonic()
    assert c.run() == 0
    assert time.monotonic() - started < claude.AFTER_RESULT_S + 5
    assert c.tasks_status()["lingers"] == ("passed", None)
    (call,) = c.claude_calls("lingers")
    child = int((c.claude_state / f"linger-{call['pid']}").read_text())
    assert not alive(child)


def test_a_stream_json_line_of_several_megabytes_is_read(c: ClaudeHarness) -> None:
    c.claude("image", [{"big": 3 * 1024 * 1024}], depends_on=[], max_attempts=1)
    assert c.run() == 0
    assert c.tasks_status()["image"] == ("passed", None)


# Graph mode (`depends_on`) queues a refused session behind the run's agent limit; sequential
# mode (one task at a time) waits it out within the attempt.
MODES = {"graph": {"depends_on": []}, "sequential": {}}


@pytest.mark.parametrize("mode", MODES)
def test_rate_limited_twice_then_succeeds_without_using_an_attempt(
    c: ClaudeHarness, quick_rate_limit_backoff: None, mode: str
) -> None:
    c.claude(
        "busy",
        [{"error": 429}, {"error": 529}, {"write": {"ok": "1"}, "cost": 0.3}],
        max_attempts=1,
        verify_command="test -f ok",
        **MODES[mode],
    )
    assert c.run() == 0
    calls = c.claude_calls("busy")
    assert len(calls) == 3
    # Each retry continues the session the limit interrupted.
    assert calls[0]["resume"] is None
    assert calls[1]["resume"] == calls[0]["session_id"] == calls[2]["resume"]
    task = c.status()["tasks"]["busy"]
    assert task["status"] == "passed" and len(task["attempts"]) == 1
    log = (c.root / ".prompter" / "logs" / "busy.log").read_text()
    said = (
        "the API refused the agent session" if mode == "graph" else "agent rate-limited; retrying"
    )
    assert log.count(said) == 2


@pytest.mark.parametrize("mode", MODES)
def test_a_usage_limit_without_http_status_is_retried_when_it_lifts(
    c: ClaudeHarness, quick_rate_limit_backoff: None, mode: str
) -> None:
    c.claude("hourly", [{"usage_limit": 2}, {}], max_attempts=1, **MODES[mode])
    started = time.monotonic()
    assert c.run() == 0
    assert len(c.claude_calls("hourly")) == 2
    # It waited for the time the CLI gave, not for the (here very short) backoff: resetsAt is
    # in whole seconds (1 to 2 s away), honoured exactly in graph mode, plus 1 s sequentially.
    assert time.monotonic() - started > (1.0 if mode == "graph" else 1.5)
    log = (c.root / ".prompter" / "logs" / "hourly.log").read_text()
    assert "rate limit: rejected (seven_day)" in log
    if mode == "graph":
        assert re.search(r"the API refused the agent session \(it said: retry in [12] s\)", log)
    else:
        assert re.search(r"agent rate-limited; retrying in [23] s", log)


def test_a_usage_limit_that_lifts_in_hours_stops_the_run_at_once(
    c: ClaudeHarness, quick_rate_limit_backoff: None
) -> None:
    c.claude("weekly", [{"usage_limit": True}, {}], depends_on=[], max_attempts=3)
    c.claude("later", [{}], depends_on=[], priority=-1)
    assert c.run("--no-parallel") == 1
    assert len(c.claude_calls("weekly")) == 1  # no retries, no further attempts
    status = c.tasks_status()
    state, reason = status["weekly"]
    assert state == "failed" and reason is not None
    assert "usage limit" in reason and "the limit lifts at" in reason
    assert status["later"][0] == "skipped" and status["later"][1].startswith("run stopped: ")


def test_no_rate_limit_retry_that_the_agent_timeout_would_cut_short(c: ClaudeHarness) -> None:
    # The first backoff is 5–15 s: it does not fit into what is left of 3 s.
    assert attempts.RATE_LIMIT_BASE_S * 0.5 > 3
    # One task at a time waits a refusal out within the attempt (graph mode queues it).
    c.claude("busy", [{"error": 429}], max_attempts=1, timeout=3)
    started = time.monotonic()
    assert c.run() == 1
    assert time.monotonic() - started < 3
    assert len(c.claude_calls("busy")) == 1
    status, reason = c.tasks_status()["busy"]
    assert status == "failed" and reason is not None and "HTTP 429" in reason
    assert reason.endswith("; no time left to retry within the agent timeout (3 s)")


def test_rate_limit_retries_share_the_agent_timeout(
    c: ClaudeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(attempts, "RATE_LIMIT_BASE_S", 0.4)  # retries fit, a few of them
    c.claude("busy", [{"error": 429}], max_attempts=1, timeout=1.5)  # sequential: see above
    started = time.monotonic()
    assert c.run() == 1
    # Each retry gets what is left, not the whole timeout again (5 retries: 12 s of backoff).
    assert time.monotonic() - started < 1.5 + 2.5
    assert len(c.claude_calls("busy")) < attempts.RATE_LIMIT_RETRIES + 1
    status, reason = c.tasks_status()["busy"]
    assert status == "failed" and reason is not None
    # Cut either by the deadline during a call, or before a retry that would not fit.
    assert reason == "agent timed out after 1.5 s" or reason.endswith(
        "; no time left to retry within the agent timeout (1.5 s)"
    )


@pytest.mark.parametrize("mode", MODES)
def test_rate_limit_that_never_ends_fails_after_bounded_retries(
    c: ClaudeHarness, quick_rate_limit_backoff: None, mode: str
) -> None:
    c.claude("busy", [{"error": 429}], max_attempts=1, **MODES[mode])
    assert c.run() == 1
    # Graph mode: the first refusal cuts the agent limit to 1 and queues the task again at
    # once; each refusal after that pauses new sessions, RATE_LIMIT_RETRIES times at most.
    extra = 1 if mode == "graph" else 0
    assert len(c.claude_calls("busy")) == attempts.RATE_LIMIT_RETRIES + 1 + extra
    status, reason = c.tasks_status()["busy"]
    assert status == "failed" and reason is not None and "HTTP 429" in reason


def test_authentication_failure_stops_the_run_and_names_the_variables(
    c: ClaudeHarness,
) -> None:
    c.claude("first", [{"error": 401}], depends_on=[], max_attempts=3)
    c.claude("other", [{}], depends_on=["first"])
    c.claude("third", [{}], depends_on=[], priority=-1)
    assert c.run("--no-parallel") == 1
    status = c.tasks_status()
    state, reason = status["first"]
    assert state == "failed" and reason is not None
    assert "ANTHROPIC_API_KEY" in reason and "CLAUDE_CODE_OAUTH_TOKEN" in reason
    assert len(c.claude_calls("first")) == 1  # not retried: it cannot work
    assert status["third"][0] == "skipped" and status["third"][1].startswith("run stopped: ")


def test_cost_budget_stops_new_work_and_skips_the_rest(c: ClaudeHarness) -> None:
    c.settings["max_cost_usd"] = 1.0
    for name in ("t1", "t2", "t3", "t4"):
        c.claude(name, [{"cost": 0.6}], depends_on=[])
    assert c.run("--no-parallel") == 1
    status = c.tasks_status()
    ran = [n for n, (s, _) in status.items() if s == "passed"]
    assert ran == ["t1", "t2"]
    for name in ("t3", "t4"):
        assert status[name] == ("skipped", "cost budget of $1.00 reached")
    # Each query is capped by what is left of the run's budget.
    assert c.claude_calls("t1")[0]["flags"]["max-budget-usd"] == "1.0"
    assert float(c.claude_calls("t2")[0]["flags"]["max-budget-usd"]) == pytest.approx(0.4)
    assert c.status()["total_cost_usd"] == pytest.approx(1.2)


def test_cost_budget_in_sequential_mode(c: ClaudeHarness) -> None:
    c.settings["max_cost_usd"] = 0.5
    c.claude("s1", [{"cost": 0.5}])
    c.claude("s2", [{"cost": 0.5}])
    assert c.run() == 1
    assert c.tasks_status() == {
        "s1": ("passed", None),
        "s2": ("skipped", "cost budget of $0.50 reached"),
    }


def test_the_api_key_never_reaches_a_file_the_run_writes(
    c: ClaudeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("PROMPTER_EXTRA", "visible-value")
    # A leaky agent says the key; a leaky verify command prints it and fails, so it would land
    # in the log, the state's output tail, and the next prompt.
    c.claude("leak", [{"echo_env": ["ANTHROPIC_API_KEY", "PROMPTER_EXTRA"]}], depends_on=[])
    c.task("leak2", verify_command='echo "key=$ANTHROPIC_API_KEY"; exit 1', depends_on=[])
    assert c.run() == 1
    written = [p for p in (c.root / ".prompter").rglob("*") if p.is_file()]
    written += [p for p in c.work.rglob("*") if p.is_file()]
    assert any(p.name == "leak.log" for p in written)
    for path in written:
        data = path.read_bytes()
        assert SECRET.encode() not in data, path
    log = (c.root / ".prompter" / "logs" / "leak.log").read_text()
    assert "ANTHROPIC_API_KEY=***" in log and "PROMPTER_EXTRA=visible-value" in log
    assert "key=***" in (c.root / ".prompter" / "logs" / "leak2.log").read_text()
    # The agent did receive the key: masking is about what we write, not what it gets.
    assert c.claude_calls("leak")[0]["env"] is not None


def test_secrets_given_in_agent_env_are_masked_too(c: ClaudeHarness) -> None:
    c.settings["agent_env"] = {"DEPLOY_API_KEY": "agentenv-secret-987654"}
    c.claude("leak", [{"echo_env": ["DEPLOY_API_KEY", "TASK_TOKEN"]}], depends_on=[])
    c.tasks[-1]["agent_env"] = {"TASK_TOKEN": "task-level-secret-123"}
    assert c.run() == 0
    log = (c.root / ".prompter" / "logs" / "leak.log").read_text()
    assert "DEPLOY_API_KEY=***" in log and "TASK_TOKEN=***" in log
    assert "agentenv-secret-987654" not in log and "task-level-secret-123" not in log


def test_missing_cli_is_a_clear_usage_error(
    c: ClaudeHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    c.settings["claude_cli_path"] = "no/such/claude"
    c.claude("a", [{}], depends_on=[])
    assert c.run() == 2
    err = capsys.readouterr().err
    assert "Claude Code CLI not found: claude_cli_path" in err and "Traceback" not in err
    assert not c.claude_calls()


def test_cli_path_from_the_environment(c: ClaudeHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    del c.settings["claude_cli_path"]
    monkeypatch.setenv("PROMPTER_CLAUDE_CLI", str(FAKE_CLAUDE))
    c.claude("a", [{}], depends_on=[])
    assert c.run() == 0
    assert len(c.claude_calls("a")) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: prompter only switches users as root")
def test_as_root_on_a_root_owned_tree_the_cli_gets_is_sandbox(
    c: ClaudeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IS_SANDBOX", raising=False)
    c.claude("a", [{}], depends_on=[])
    assert c.run() == 0
    (call,) = c.claude_calls("a")
    assert call["uid"] == 0 and call["env"]["IS_SANDBOX"] == "1"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: prompter only switches users as root")
def test_as_root_the_cli_runs_as_the_owner_of_the_work_tree(
    shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IS_SANDBOX", raising=False)
    c = ClaudeHarness(shared_dir)
    fake = shared_dir / "fake_claude.py"
    shutil.copy(FAKE_CLAUDE, fake)
    fake.chmod(0o755)
    c.settings["claude_cli_path"] = str(fake)
    c.claude_state.mkdir()
    c.claude_state.chmod(0o777)
    os.chown(c.work, 65534, 65534)
    c.claude("a", [{"write": {"made.txt": "x"}}], depends_on=[], verify_command="test -f made.txt")
    assert c.run() == 0
    (call,) = c.claude_calls("a")
    assert call["uid"] == 65534 and call["env"]["IS_SANDBOX"] is None
    home = Path(call["env"]["HOME"])
    assert home.stat().st_uid == 65534
    made = c.work / "made.txt"
    assert made.stat().st_uid == 65534  # the owner's file, not root's
    assert stat.S_ISREG(made.stat().st_mode)


def test_sigterm_during_claude_tasks_stops_every_cli_and_tool_process(c: ClaudeHarness) -> None:
    c.claude("c1", [{"hang": True}], depends_on=[])
    c.claude("c2", [{"hang": True, "ignore_term": True}], depends_on=[])
    proc = c.spawn()

    def both_hanging() -> bool:
        return len(list(c.claude_state.glob("hang-*"))) == 2 if c.claude_state.exists() else False

    deadline = time.monotonic() + 30
    while not both_hanging():
        assert time.monotonic() < deadline, "the fake CLIs never started"
        time.sleep(0.05)
    pids = [call["pid"] for call in c.claude_calls()]
    pids += [int(p.read_text()) for p in c.claude_state.glob("hang-*")]
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    # GitHub gives 10 s; c2's CLI ignores SIGTERM, so this is its 2 s grace and the SIGKILL.
    assert time.monotonic() - sent < 6
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "Fatal error" not in err
    assert not [pid for pid in pids if alive(pid)]
    status = c.tasks_status()
    assert status == {n: ("interrupted", "interrupted by SIGTERM") for n in ("c1", "c2")}
