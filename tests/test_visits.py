"""Visits of sequential mode in the durable state: sessions resumed across visits, reports and
JUnit figures of a looped task, a kill inside a loop, a state from before visits, what the
action counts, a state that could not be written."""

from __future__ import annotations

import json
import random
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .harness import ClaudeHarness, Harness, fail_journal_writes, prompter_cli


def _state(root: Path) -> dict:
    return json.loads((root / ".prompter" / "state.json").read_text())


# -- sessions ---------------------------------------------------------------------------------


def test_repeat_with_resume_previous_session_resumes_the_previous_visit(tmp_path: Path) -> None:
    # README: a revisit (a jump back, `repeat`) is a new execution: "a new session, or the
    # previous task's with resume_previous_session". For `repeat`, the previous task is the
    # task itself: its second visit should continue the first visit's session.
    c = ClaudeHarness(tmp_path)
    c.settings.update(allow_infinite_loops=True, max_iterations=2)
    c.claude("poll", [{}], on_success="repeat", resume_previous_session=True)
    c.run()
    calls = c.claude_calls("poll")
    assert len(calls) == 2
    assert calls[1]["resume"] == calls[0]["session_id"], [
        (x["resume"], x["session_id"]) for x in calls
    ]


# -- budget and skipped revisits --------------------------------------------------------------


def test_summary_of_a_loop_skipped_at_a_revisit_does_not_say_no_attempts_ran(
    tmp_path: Path,
) -> None:
    c = ClaudeHarness(tmp_path)
    c.settings.update(allow_infinite_loops=True, max_iterations=10, max_cost_usd=1.0)
    c.claude("poll", [{"cost": 0.4}], on_success="repeat")
    assert c.run() == 1
    assert len(c.claude_calls("poll")) == 3  # 0.4, 0.8, 1.2: then the budget is spent
    status = c.status()
    poll = status["tasks"]["poll"]
    assert poll["status"] == "skipped"
    assert poll["cost_usd"] == pytest.approx(1.2)
    summary = (tmp_path / ".prompter" / "summary.md").read_text()
    assert "No attempts ran in this run" not in summary, summary


def test_junit_figures_of_a_looped_task_are_the_latest_visits_with_the_total_cost(
    tmp_path: Path,
) -> None:
    # A looped task: a testcase's cost, tokens and attempts all describe the same (latest)
    # visit; how many visits and what all of them cost come on top.
    c = ClaudeHarness(tmp_path)
    c.settings.update(allow_infinite_loops=True, max_iterations=3)
    c.claude("poll", [{"cost": 0.5, "tokens": [100, 10, 0, 0]}], on_success="repeat")
    c.run()
    assert len(c.claude_calls("poll")) == 3
    case = ET.parse(tmp_path / ".prompter" / "junit.xml").find(".//testcase[@name='poll']")
    assert case is not None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert float(props["cost_usd"]) == pytest.approx(0.5)
    assert props["input_tokens"] == "100" and props["attempts"] == "1", props
    assert props["visits"] == "3" and float(props["total_cost_usd"]) == pytest.approx(1.5)


# -- SIGKILL during a loop --------------------------------------------------------------------


def _loop(h: Harness, rounds: int) -> None:
    h.settings.update(allow_infinite_loops=True, max_iterations=10_000)
    h.task("work", [{"exit": 1}, {"sleep": 0.01}], on_failure="retry", max_attempts=2)
    h.task(
        "check",
        [{}],
        verify_command=f"echo x >> n; test $(wc -l < n) -ge {rounds}",
        on_failure="work",
        on_success="next",
        max_attempts=1,
    )
    h.task("final", [{}])


def test_sigkill_in_a_sequential_loop_then_status_report_and_rerun(h: Harness) -> None:
    rng = random.Random(7)
    _loop(h, rounds=60)
    for _ in range(6):
        proc = h.spawn()
        time.sleep(rng.uniform(0.3, 1.5))
        proc.kill()
        proc.communicate()
        if h.status_or_none() is None:
            continue
        data = h.status()
        for name, task in data["tasks"].items():
            numbers = [a["number"] for a in task["attempts"]]
            assert numbers == list(range(1, len(numbers) + 1)), (name, numbers)
        for args in (["status"], ["report"]):
            done = prompter_cli(*args, cwd=h.root)
            assert done.returncode == 0, done.stderr
            assert "Traceback" not in done.stderr
    h.plan["work"] = [{}]
    assert h.run() == 0
    data = h.status()
    assert data["counts"] == {"passed": 3}, data["counts"]
    state = _state(h.root)
    assert state["tasks"]["work"]["visits"] >= 1


def test_a_state_without_visits_loads_reports_and_resumes(h: Harness) -> None:
    h.settings.update(allow_infinite_loops=True)
    h.task("a", [{}])
    h.task("b", verify_command="test -f ok", on_failure="fix", on_success="stop")
    h.task("fix", [{"write": {"ok": "1"}}], on_success="b")
    h.plan["fix"] = [{"exit": 1}]
    assert h.run() == 1
    path = h.root / ".prompter" / "state.json"
    doc = json.loads(path.read_text())
    for record in doc["tasks"].values():
        record.pop("visits", None)
        record.pop("earlier_cost_usd", None)
    path.write_text(json.dumps(doc))
    for args in (["status"], ["status", "--json"], ["report"]):
        done = prompter_cli(*args, cwd=h.root)
        assert done.returncode == 0, done.stderr
    h.plan["fix"] = [{"write": {"ok": "1"}}]
    assert h.run() == 0
    assert h.status()["counts"] == {"passed": 3}
    assert [c["task"] for c in h.calls()][-3:] == ["b", "fix", "b"]
    state = _state(h.root)
    assert state["tasks"]["b"]["visits"] == 2
    assert [a["number"] for a in state["tasks"]["b"]["attempts"]] == [1]


def _run_result(h: Harness, capsys: pytest.CaptureFixture[str] | None = None):  # type: ignore[no-untyped-def]
    import os

    from prompter.config import load_workflow
    from prompter.places import default_report_dir
    from prompter.progress import PlainProgress
    from prompter.run import RunOptions, run_workflow

    path = h.write()
    old_cwd, old_env = Path.cwd(), dict(os.environ)
    os.chdir(h.root)
    os.environ.update(h.env())
    try:
        options = RunOptions(report_dir=default_report_dir(path))
        return run_workflow(load_workflow(path), options, listeners=[PlainProgress()])
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)


def test_action_counts_a_reused_pass_that_ran_again_once(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    from prompter.github.action import _counts

    # Run 1: a, b, c pass. b's prompt changes. Run 2: a's pass stands; b runs; c runs again
    # (README: what follows a task that runs again runs again too). 3 tasks, 3 passed.
    h.task("a", [{}])
    h.task("b", [{}])
    h.task("c", [{}])
    assert h.run() == 0
    h.tasks[1]["prompt"] = "do b differently"
    capsys.readouterr()
    result = _run_result(h)
    assert result.exit_code == 0
    assert [c["task"] for c in h.calls()] == ["a", "b", "c", "b", "c"]
    out = capsys.readouterr().out
    counts = _counts(result.records, result.reused)
    assert counts["passed"] == "3", (counts, result.reused, out)


def test_a_run_whose_state_could_not_be_written_does_not_report_passed(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every task passed, then the journal line of the run's end could not be written: exit 2,
    # and the action's `status` output (RunResult.status) said `passed` for the failed step.
    fail_journal_writes(monkeypatch, lambda n: n == 4)  # run start, a started, a passed, run end
    h.task("a", depends_on=[])
    result = _run_result(h)
    assert result.records["a"].status.value == "passed"
    assert result.exit_code == 2
    assert result.error is not None and "the state could not be written" in result.error
    assert result.status == "failed", result
