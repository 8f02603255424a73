"""Sequential mode: loops through an exhausted retry, sessions on revisits and after a resume,
the run's counts and reports, the plan and graph of a loop, dry runs, option order."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from prompter import state as state_module

from .harness import ClaudeHarness, Harness, prompter_cli


def test_validate_warns_of_a_loop_through_an_exhausted_retry(h: Harness) -> None:
    # README "Two modes": "A jump or `repeat` that revisits a task needs allow_infinite_loops =
    # true (validation warns when transitions can loop)". `retry` (the default on_failure) that
    # runs out moves on to the next task (README "Sequential mode"), so
    # `gate` -> (fails) -> `fix` -> `gate` is a loop: validation must warn before the run fails
    # on the revisit.
    h.task("gate", verify_command="exit 1", on_success="stop", max_attempts=1)
    h.task("fix", on_success="gate")
    done = prompter_cli("validate", str(h.write()), cwd=h.root)
    assert done.returncode == 0
    assert h.run() == 1
    assert [c["task"] for c in h.calls()] == ["gate", "fix"]  # then: `gate` would run again
    assert "transitions can revisit a task" in done.stderr, done.stderr


# -- plan and dry run of a sequential workflow ----------------------------------------------------


def test_plan_of_a_loop_without_allow_infinite_loops_says_what_the_run_does(h: Harness) -> None:
    # README: without allow_infinite_loops a revisit "stops the run with a failure"; the plan's
    # note must say so, not that the path loops until max_iterations.
    h.task("a", on_success="b")
    h.task("b", on_success="a")
    done = prompter_cli("plan", "--json", str(h.write()), cwd=h.root)
    (note,) = json.loads(done.stdout)["notes"]
    assert h.run() == 1  # the run: a, b, then fails at the revisit of a
    assert [c["task"] for c in h.calls()] == ["a", "b"]
    assert "max_iterations" not in note, note


def test_a_repeat_starts_a_new_session_unless_told_to_resume(tmp_path: Path) -> None:
    # README [[tasks]]: resume_previous_session (default false) "Continue the previous agent
    # session instead of starting a new one"; only "a retry always continues its own session".
    # A `repeat` is a new execution, not a retry (Prompter 0.10 started a new session for it):
    # resuming its own session would grow a monitoring loop's context with every iteration.
    c = ClaudeHarness(tmp_path)
    c.settings.update(allow_infinite_loops=True, max_iterations=3)
    c.claude("poll", [{}], on_success="repeat")
    assert c.run() == 1  # max_iterations
    calls = c.claude_calls("poll")
    assert len(calls) == 3
    assert [call["resume"] for call in calls] == [None, None, None]


def test_a_revisit_with_resume_previous_session_resumes_the_previous_task(tmp_path: Path) -> None:
    # README: resume_previous_session = true continues, "in sequential mode the previous
    # task's" session. On its second visit `build` comes after `fix`, but resumes its own.
    c = ClaudeHarness(tmp_path)
    c.settings.update(allow_infinite_loops=True)
    c.claude(
        "build",
        [{}, {"write": {"built": "1"}}],
        verify_command="test -f built",
        on_failure="fix",
        on_success="stop",
        resume_previous_session=True,
    )
    c.claude("fix", [{}], on_success="build")
    assert c.run() == 0
    build = c.claude_calls("build")
    (fix,) = c.claude_calls("fix")
    assert len(build) == 2
    assert build[1]["resume"] == fix["session_id"], (build[1]["resume"], build[0]["session_id"])


def test_the_final_line_counts_tasks_not_executions(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    # A task that failed and then passed on a revisit is passed (status, junit, exit code): the
    # run's last line counts tasks by how they ended, not executions ("2 passed, 1 failed" for
    # 2 tasks that both passed).
    h.settings.update(allow_infinite_loops=True)
    h.task("a", verify_command="test -f ok", on_failure="b", on_success="stop")
    h.task("b", [{"write": {"ok": "1"}}], on_success="a")
    assert h.run() == 0
    assert h.status()["counts"] == {"passed": 2}
    last = next(line for line in capsys.readouterr().out.splitlines() if "run passed" in line)
    assert "2 passed" in last and "failed" not in last, last


def test_resume_previous_session_after_a_task_that_passed_in_an_earlier_run(
    tmp_path: Path,
) -> None:
    # planning-workflow.toml (0.10): `review_plan` has resume_previous_session = true after
    # `analyze_codebase`. When review_plan fails and the workflow is run again, analyze_codebase
    # is not run again (its pass stands) and review_plan must continue its session (README:
    # "in sequential mode the previous task's"; 0.10 read it from the state file): the session
    # comes from the state, not only from this run's records.
    c = ClaudeHarness(tmp_path)
    c.claude("analyze", [{}])
    c.claude(
        "review",
        [{}],
        verify_command="test -f reviewed",
        on_failure="stop",
        resume_previous_session=True,
    )
    assert c.run() == 1
    analyze_session = c.claude_calls("analyze")[0]["session_id"]
    assert c.claude_calls("review")[0]["resume"] == analyze_session  # first run: as documented
    (c.work / "reviewed").write_text("yes")
    assert c.run() == 0
    assert len(c.claude_calls("analyze")) == 1  # its pass stood
    again = c.claude_calls("review")[1]
    assert again["resume"] is not None, "the second run's review started from nothing"


def test_a_passing_run_does_not_report_a_failure_from_a_branch_it_did_not_take(h: Harness) -> None:
    import xml.etree.ElementTree as ET

    # task-jumping.toml's shape: `build` jumps to `fix` on failure. Run 1: build fails, fix fails
    # (on_failure = stop): exit 1. Run 2 (--fresh): build passes and jumps over `fix`: exit 0,
    # "every task passed" (README exit codes). Its junit.xml must not carry run 1's failure of
    # `fix` (a branch this run never took): a JUnit check of the green run would be red.
    h.task("build", verify_command="test -f ok", on_success="ship", on_failure="fix")
    h.task("fix", verify_command="exit 1", on_failure="stop")
    h.task("ship", on_success="stop")
    assert h.run() == 1
    (h.work / "ok").write_text("")
    assert h.run("--fresh") == 0
    suite = ET.parse(h.root / ".prompter" / "junit.xml").getroot()
    assert suite.get("failures") == "0" and suite.get("errors") == "0", ET.tostring(
        suite, "unicode"
    )


def test_graph_draws_where_an_exhausted_retry_goes(h: Harness) -> None:
    # README `graph`: "in sequential mode, the transitions (solid: on success, dotted: on
    # failure ...)". After its last attempt a `retry` task moves on to the next one: the graph
    # (and the summary's flowchart) must show that failure edge.
    h.task("gate", verify_command="exit 1", on_success="stop", max_attempts=1)
    h.task("fix", on_success="stop")
    assert h.run() == 1
    assert [c["task"] for c in h.calls()] == ["gate", "fix"]
    done = prompter_cli("graph", "--format", "json", str(h.write()), cwd=h.root)
    edges = json.loads(done.stdout)["edges"]
    assert {"from": "gate", "to": "fix", "kind": "failure"} in edges, edges


# -- a loop's state ---------------------------------------------------------------------------


def _journal_bytes(h: Harness, monkeypatch: pytest.MonkeyPatch, iterations: int) -> int:
    written = [0]
    real = state_module._write_all

    def counting(fd: int, data: bytes) -> None:
        written[0] += len(data)
        real(fd, data)

    monkeypatch.setattr(state_module, "_write_all", counting)
    h.settings.update(allow_infinite_loops=True, max_iterations=iterations)
    h.tasks.clear()
    # A fast agent (`true`) and a check that prints ~1 KB, as a monitoring loop would.
    h.task(
        "poll",
        on_success="repeat",
        agent_command=["true"],
        verify_command="head -c 1000 /dev/zero | tr '\\0' x",
    )
    assert h.run("--fresh", "--progress", "none") == 1  # ends on max_iterations
    return written[0]


def test_state_io_of_a_loop_is_linear_in_its_iterations(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The state's total I/O is linear in the number of events, not a full rewrite per event
    # (the journal, see state.py). Each execution of a loop is two events (start, end): four times
    # the iterations must write about four times the bytes (it was 15.6 times).
    small = _journal_bytes(h, monkeypatch, 40)
    large = _journal_bytes(h, monkeypatch, 160)
    assert large / small < 6, (
        f"{small} B for 40 iterations, {large} B for 160 (x{large / small:.1f})"
    )


def test_a_revisit_is_a_new_visit_whose_attempts_start_at_one_and_costs_add_up(
    tmp_path: Path,
) -> None:
    c = ClaudeHarness(tmp_path)
    c.settings.update(allow_infinite_loops=True, max_iterations=3)
    c.claude("poll", [{"cost": 0.25}], on_success="repeat")
    assert c.run() == 1  # max_iterations
    assert len(c.claude_calls("poll")) == 3
    task = c.status()["tasks"]["poll"]
    assert [a["number"] for a in task["attempts"]] == [1]  # the latest visit's
    assert task["cost_usd"] == pytest.approx(0.75)  # every visit's
    record = c.state()["tasks"]["poll"]
    assert record["visits"] == 3


# -- resume and dry run ------------------------------------------------------------------------


def test_a_resumed_loop_never_skips_the_task_between_two_runs_of_another(h: Harness) -> None:
    # continuous-monitoring.toml's shape: `check` then `wait`, which jumps back to `check`. Run 1
    # runs check, wait, check, and stops there (check fails, on_failure = "stop"). Run 2 runs
    # check (it failed); run 1's pass of `wait` came after a `check` this run has replaced, so
    # it does not stand: check never runs twice in a row without a wait between.
    h.settings.update(allow_infinite_loops=True, max_iterations=4)
    # The check fails the second time it runs, counting in a file that outlives the run.
    counted = "n=$(($(cat n 2>/dev/null || echo 0) + 1)); echo $n > n; [ $n -ne 2 ]"
    h.task("check", verify_command=counted, on_failure="stop")
    h.task("wait", on_success="check")
    assert h.run() == 1
    assert [c["task"] for c in h.calls()] == ["check", "wait", "check"]
    assert h.run() == 1  # max_iterations
    second = [c["task"] for c in h.calls()][3:]
    assert second == ["check", "wait", "check", "wait"]


def test_after_a_changed_task_the_tasks_after_it_run_again(h: Harness) -> None:
    h.task("one")
    h.task("two")
    h.task("three")
    assert h.run() == 0
    h.tasks[1]["prompt"] = "do two, differently"
    assert h.run() == 0
    # `one` stands; `two` changed, and `three` came after it: the order is its dependency.
    assert [c["task"] for c in h.calls()] == ["one", "two", "three", "two", "three"]


def test_dry_run_of_a_sequential_workflow_prints_the_path(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    # README: "`--dry-run` prints what would run"; Prompter 0.10's dry run walked the transitions.
    h.task("build", on_success="deploy")
    h.task("never_on_the_path")
    h.task("deploy", on_success="stop")
    assert h.run("--dry-run") == 0
    out = capsys.readouterr().out
    lines = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert lines == ["build", "deploy"], out
    assert not (h.root / ".prompter" / "state.json").exists()


# -- the 0.10 command line ----------------------------------------------------------------------


def test_prompter_10_options_before_the_workflow(h: Harness) -> None:
    # 0.10's parser took options anywhere: `prompter --task NAME config.toml` ran.
    h.task("a")
    h.task("b")
    workflow = h.write()
    env = {**os.environ, **h.env()}
    done = prompter_cli("--task", "b", str(workflow), "--progress", "none", cwd=h.root, env=env)
    assert done.returncode == 0, done.stderr
    assert [c["task"] for c in h.calls()] == ["b"]
    # An option's value that ends in .toml is not taken for the workflow file.
    done = prompter_cli("--state-file", "x.toml", cwd=h.root, env=env)
    assert done.returncode == 2 and "unrecognized arguments: --state-file" in done.stderr
