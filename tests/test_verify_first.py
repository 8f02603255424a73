"""`verify_first`: a task's verify command before its first attempt. A pass needs no agent (the
fake CLIs' logs prove none started); a failure runs the agent as before, told what the check
said. Both modes, resume and --fresh, worktrees, the agent limit, plan, dry run and reports."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from prompter.admission import Admission, Demand, Limits
from prompter.records import ALREADY_SATISFIED

from .git_repos import git_harness, sh
from .harness import ClaudeHarness, Harness, prompter_cli
from .init_session import VALID, answer, init


def _properties(junit: Path, task: str) -> dict[str, str]:
    for case in ElementTree.fromstring(junit.read_bytes()).iter("testcase"):
        if case.get("name") == task:
            return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
    raise AssertionError(f"no testcase {task}")


# -- the fake Claude CLI -------------------------------------------------------------------------


def test_claude_a_task_already_satisfied_starts_no_cli_and_costs_nothing(c: ClaudeHarness) -> None:
    c.settings["verify_first"] = True
    (c.work / "done.txt").write_text("yes\n")
    c.claude("done", [{"cost": 0.5}], verify_command="test -f done.txt", depends_on=[])
    c.claude("after", [{"cost": 0.25}], verify_command="true", depends_on=["done"])
    c.claude("todo", [{"write": {"t.txt": "x"}, "cost": 0.5}], verify_command="test -f t.txt")
    c.tasks[-1]["depends_on"] = []
    assert c.run() == 0
    assert c.claude_calls("done") == []  # no CLI process started for it
    # `after` (verify `true`) is satisfied too; `todo` ran its agent once.
    assert c.claude_calls("after") == []
    (call,) = c.claude_calls("todo")
    tasks = c.state()["tasks"]
    assert tasks["done"]["status"] == "passed"
    assert tasks["done"]["reason"] == ALREADY_SATISFIED
    assert tasks["done"]["attempts"] == []
    assert tasks["done"]["precheck"]["ok"] is True and tasks["done"]["precheck"]["number"] == 0
    assert tasks["done"]["precheck"].get("cost_usd") is None
    assert c.status()["tasks"]["done"]["cost_usd"] == 0
    assert c.status()["total_cost_usd"] == pytest.approx(0.5)
    # The failed check is recorded, and what it said reaches the first attempt's prompt.
    assert tasks["todo"]["precheck"]["ok"] is False
    assert len(tasks["todo"]["attempts"]) == 1 and tasks["todo"].get("reason") is None
    assert call["resume"] is None
    assert "Before you started, the check (the shell command `test -f t.txt`)" in call["prompt"]
    assert "did not pass: verify_command exited 1 (expected 0)" in call["prompt"]


def test_claude_without_verify_first_the_prompt_and_the_agent_are_as_before(
    c: ClaudeHarness,
) -> None:
    (c.work / "done.txt").write_text("yes\n")
    c.claude("done", [{}], verify_command="test -f done.txt", depends_on=[])
    assert c.run() == 0
    (call,) = c.claude_calls("done")
    assert call["prompt"] == "[[fake:done]] do done"
    record = c.state()["tasks"]["done"]
    assert record.get("reason") is None and record.get("precheck") is None
    assert c.status()["tasks"]["done"]["already_satisfied"] is False


def test_claude_a_task_can_opt_out_of_the_setting(c: ClaudeHarness) -> None:
    c.settings["verify_first"] = True
    c.claude("own", [{}], verify_command="true", depends_on=[], verify_first=False)
    assert c.run() == 0
    assert len(c.claude_calls("own")) == 1
    assert c.state()["tasks"]["own"].get("precheck") is None


# -- the command agent: graph mode -------------------------------------------------------------


def test_command_agent_satisfied_and_not_satisfied(h: Harness) -> None:
    h.settings["verify_first"] = True
    (h.work / "here.txt").write_text("x")
    h.task("here", verify_command="test -f here.txt", depends_on=[])
    h.task("make", [{"write": {"made.txt": "x"}}], verify_command="test -f made.txt", depends_on=[])
    h.task("then", verify_command="test -f made.txt", depends_on=["here", "make"])
    assert h.run() == 0
    # `then`'s check passes once `make` made the file: neither it nor `here` ran an agent.
    assert [c["task"] for c in h.calls()] == ["make"]
    assert [c["attempt"] for c in h.calls()] == [1]
    status = h.tasks_status()
    assert status["here"] == ("passed", ALREADY_SATISFIED)
    assert status["then"] == ("passed", ALREADY_SATISFIED)
    assert status["make"] == ("passed", None)
    log = (h.root / ".prompter" / "logs" / "here.log").read_text()
    assert "verify first passed: already satisfied, no agent runs" in log


def test_a_failing_check_does_not_use_an_attempt_and_retries_are_not_prechecked(
    h: Harness,
) -> None:
    h.settings["verify_first"] = True
    # Fails the check, then attempt 1; attempt 2 writes the file.
    h.task("t", [{}, {"write": {"t.txt": "x"}}], verify_command="test -f t.txt", max_attempts=2)
    h.tasks[-1]["depends_on"] = []
    assert h.run() == 0
    assert [c["attempt"] for c in h.calls()] == [1, 2]
    first, second = h.calls()
    assert "Before you started, the check" in first["prompt"]
    assert "Attempt 1 did not pass" in second["prompt"]
    assert "Before you started" not in second["prompt"]
    record = h.status()["tasks"]["t"]
    assert [a["number"] for a in record["attempts"]] == [1, 2]
    assert record["precheck"]["ok"] is False


def test_a_check_that_cannot_run_yet_is_no_environment_error(h: Harness) -> None:
    h.settings["verify_first"] = True
    script = "printf '#!/bin/sh\\nexit 0\\n' > check.sh && chmod +x check.sh"
    h.task("build", agent_command=["sh", "-c", script], verify_command="./check.sh")
    h.tasks[-1]["depends_on"] = []
    assert h.run() == 0  # exit 127 before the agent: not satisfied, the agent runs
    record = h.status()["tasks"]["build"]
    assert record["precheck"]["verify_exit_code"] == 127
    assert record["precheck"]["environment_error"] is False
    assert len(record["attempts"]) == 1


def test_prechecks_take_no_agent_session(h: Harness) -> None:
    # One agent session at once, three slots: while `slow`'s agent holds the only session, the
    # satisfied tasks' checks still run (and pass) in the free slots.
    h.settings.update(verify_first=True, max_parallel_tasks=3, max_parallel_agents=1)
    h.task("slow", [{"sleep": 1.5}], verify_command="true", verify_first=False, depends_on=[])
    h.task("a", verify_command="sleep 0.2", depends_on=[], priority=-1)
    h.task("b", verify_command="sleep 0.2", depends_on=[], priority=-1)
    assert h.run() == 0
    (call,) = h.calls()
    assert call["task"] == "slow"
    tasks = h.status()["tasks"]
    for name in "ab":
        assert tasks[name]["already_satisfied"] is True
        assert tasks[name]["precheck"]["finished_at"] < call["end"]


def test_admission_starts_unmetered_tasks_where_the_agent_limit_has_no_room() -> None:
    admission = Admission(Limits(slots=3, cpu=4, memory=1e9), [Demand()] * 4, [3, 2, 1, 0], [0] * 4)
    for i in range(4):
        admission.add_ready(i)
    # No session free: the two tasks needing one wait, the pre-checks (2, 3) start.
    assert admission.take(0, unmetered={2, 3}) == [2, 3]
    assert admission.take(1, unmetered=set()) == [0]  # one slot left
    assert len(admission) == 1


# -- resume and --fresh --------------------------------------------------------------------------


def test_a_rerun_after_a_failure_checks_again_and_finds_the_work_done(h: Harness) -> None:
    h.settings["verify_first"] = True
    h.task("t", [{"exit": 1}], verify_command="test -f t.txt", depends_on=[], max_attempts=1)
    assert h.run() == 1
    assert len(h.calls()) == 1
    (h.work / "t.txt").write_text("fixed by hand\n")  # someone did it meanwhile
    assert h.run() == 0
    assert len(h.calls()) == 1  # no agent the second time
    assert h.tasks_status()["t"] == ("passed", ALREADY_SATISFIED)


def test_a_run_stopped_during_the_agent_checks_again_when_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_PIDS", str(tmp_path / "pids"))
    h = Harness(tmp_path)
    h.settings["verify_first"] = True
    h.task("t", [{"sleep": 30}], verify_command="test -f t.txt", depends_on=[])
    proc = h.spawn()
    deadline = time.monotonic() + 20
    while not (tmp_path / "pids" / "t-1").exists():
        assert time.monotonic() < deadline, "the agent never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 143, err
    assert h.tasks_status()["t"] == ("interrupted", "interrupted by SIGTERM")
    (h.work / "t.txt").write_text("done meanwhile\n")
    assert h.run() == 0
    assert h.tasks_status()["t"] == ("passed", ALREADY_SATISFIED)
    assert not (tmp_path / "pids" / "t-2").exists()


def test_fresh_checks_again_and_a_standing_pass_is_not_checked(h: Harness) -> None:
    h.settings["verify_first"] = True
    h.task("t", [{"write": {"t.txt": "x"}}], verify_command="test -f t.txt", depends_on=[])
    assert h.run() == 0
    assert len(h.calls()) == 1 and h.tasks_status()["t"] == ("passed", None)
    assert h.run() == 0  # the pass stands: nothing runs, not even the check
    assert h.status()["tasks"]["t"]["precheck"]["ok"] is False  # the first run's record
    assert h.run("--fresh") == 0
    assert len(h.calls()) == 1
    assert h.tasks_status()["t"] == ("passed", ALREADY_SATISFIED)


def test_turning_verify_first_on_reruns_no_pass(h: Harness) -> None:
    h.task("t", depends_on=[])
    assert h.run() == 0
    h.settings["verify_first"] = True
    assert h.run() == 0
    assert len(h.calls()) == 1
    assert h.tasks_status()["t"] == ("passed", None)


# -- sequential mode -----------------------------------------------------------------------------


def test_sequential_satisfied_task_follows_on_success(h: Harness) -> None:
    h.settings["verify_first"] = True
    h.task("first", verify_command="true")
    h.task("second", [{"write": {"s.txt": "x"}}], verify_command="test -f s.txt")
    assert h.run() == 0
    assert [c["task"] for c in h.calls()] == ["second"]
    assert h.tasks_status()["first"] == ("passed", ALREADY_SATISFIED)
    assert "Before you started, the check" in h.calls()[0]["prompt"]


def test_sequential_a_revisit_is_not_prechecked(h: Harness) -> None:
    # `impl`'s check passes after its first visit; when `test` fails and jumps back, the loop
    # came back for the agent's work: the revisit runs the agent, not the check.
    h.settings.update(verify_first=True, allow_infinite_loops=True)
    h.task(
        "impl",
        agent_command=["sh", "-c", "echo x >> impl.calls && touch impl.done"],
        verify_command="test -f impl.done",
    )
    h.task(
        "test",
        agent_command=["sh", "-c", "if [ -f once ]; then touch ok; else touch once; fi"],
        verify_command="test -f ok",
        on_failure="impl",
        verify_first=False,
    )
    assert h.run() == 0
    assert (h.work / "impl.calls").read_text() == "x\nx\n"
    record = h.status()["tasks"]["impl"]
    assert record["status"] == "passed" and record["reason"] is None
    assert record["precheck"] is None  # the latest visit's record: no check on a revisit


def test_sequential_resume_checks_the_task_that_runs_again(h: Harness) -> None:
    h.settings["verify_first"] = True
    h.task("a", [{"write": {"a.txt": "x"}}], verify_command="test -f a.txt")
    h.task("b", [{"exit": 1}], verify_command="test -f b.txt", max_attempts=1)
    assert h.run() == 1
    (h.work / "b.txt").write_text("by hand\n")
    assert h.run() == 0
    assert [c["task"] for c in h.calls()] == ["a", "b"]
    assert h.tasks_status()["b"] == ("passed", ALREADY_SATISFIED)
    assert h.tasks_status()["a"] == ("passed", None)  # its pass stood


# -- worktree isolation --------------------------------------------------------------------------


def test_worktree_the_check_runs_in_the_tasks_fresh_worktree(tmp_path: Path) -> None:
    h = git_harness(tmp_path)
    h.settings.update(isolation="worktree", verify_first=True)
    where = tmp_path / "where.txt"
    h.task(
        "done",
        agent_command=["sh", "-c", "exit 1"],
        verify_command=f"pwd >> {where} && test -f app.py",
        depends_on=[],
    )
    h.task(
        "todo",
        agent_command=["sh", "-c", "echo new > new.txt"],
        verify_command="test -f new.txt",
        depends_on=[],
    )
    head = sh(tmp_path, "rev-parse", "HEAD")
    assert h.run() == 0
    status = h.tasks_status()
    assert status["done"] == ("passed", ALREADY_SATISFIED)
    assert status["todo"] == ("passed", None)
    (ran_in,) = where.read_text().splitlines()
    assert Path(ran_in) != h.work and Path(ran_in).resolve() != h.work.resolve()
    # Nothing to merge for the satisfied task; the other's work landed; the user's kept.
    assert (h.work / "new.txt").read_text() == "new\n"
    assert (h.work / "app.py").read_text() == "line 1\nline 2 (user)\nline 3\n"
    assert (h.work / "scratch.txt").read_text() == "the user's untracked file\n"
    assert sh(tmp_path, "rev-parse", "HEAD") == head
    assert h.status()["tasks"]["done"]["attempts"] == []


# -- plan, dry run, reports, status --------------------------------------------------------------


def test_plan_and_dry_run_name_the_tasks_that_check_first(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h.task("a", depends_on=[], verify_first=True)
    h.task("b", depends_on=["a"])
    path = h.write()
    plan = prompter_cli("plan", str(path), cwd=h.root)
    assert plan.returncode == 0, plan.stderr
    assert "verify first: a (the verify command runs before any agent" in plan.stdout
    as_json = json.loads(prompter_cli("plan", "--json", str(path), cwd=h.root).stdout)
    assert as_json["verify_first"] == ["a"]
    assert h.run("--dry-run") == 0
    out = capsys.readouterr().out
    assert "  a  (verify first)\n" in out and "  b  (after a)\n" in out
    assert "dry run: verify first: the task's verify command runs before its first attempt" in out
    assert h.calls() == []


def test_plan_and_dry_run_without_verify_first_are_as_before(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h.task("a")
    path = h.write()
    plan = prompter_cli("plan", str(path), cwd=h.root)
    assert "verify first" not in plan.stdout
    assert (
        json.loads(prompter_cli("plan", "--json", str(path), cwd=h.root).stdout)["verify_first"]
        == []
    )
    assert h.run("--dry-run") == 0
    assert "verify first" not in capsys.readouterr().out


def test_sequential_dry_run_marks_the_tasks_that_check_first(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h.settings["verify_first"] = True
    h.task("a")
    h.task("b", verify_first=False)
    assert h.run("--dry-run") == 0
    out = capsys.readouterr().out
    assert "  a  (verify first)\n  b\n" in out


def test_summary_junit_and_status_tell_already_satisfied_from_an_agents_pass(h: Harness) -> None:
    h.settings["verify_first"] = True
    h.task("here", verify_command="true", depends_on=[])
    h.task("made", [{"write": {"m.txt": "x"}}], verify_command="test -f m.txt", depends_on=[])
    assert h.run() == 0
    summary = (h.root / ".prompter" / "summary.md").read_text()
    assert "| here | ✅ passed (already satisfied) | 0 |" in summary
    assert "| made | ✅ passed | 1 |" in summary
    assert "Verify first saved: 1 task already satisfied, no agent started" in summary
    junit = h.root / ".prompter" / "junit.xml"
    here, made = _properties(junit, "here"), _properties(junit, "made")
    assert here["already_satisfied"] == "true" and here["attempts"] == "0"
    assert here["precheck"] == "passed"
    assert "already_satisfied" not in made and made["precheck"] == "failed"
    text = subprocess.run(
        [sys.executable, "-m", "prompter", "status"],
        cwd=h.root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (here_line,) = [line for line in text.splitlines() if line.startswith("here")]
    (made_line,) = [line for line in text.splitlines() if line.startswith("made")]
    assert "passed (already satisfied)" in here_line and ALREADY_SATISFIED in here_line
    assert "already satisfied" not in made_line
    status = h.status()["tasks"]
    assert status["here"]["already_satisfied"] is True
    assert status["made"]["already_satisfied"] is False
    html = (h.root / ".prompter" / "report.html").read_text()
    assert "already satisfied: its verify command passed before any agent ran" in html


# -- init ----------------------------------------------------------------------------------------


def test_init_adds_verify_first_unless_the_proposal_sets_it(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    without_settings = VALID.split("\n\n", 1)[1]  # the tasks alone
    done = init(tmp_path / "a", [{"result": answer(without_settings)}], "--yes")
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "a" / "prompter.toml").read_text()
    assert written == "[settings]\nverify_first = true\n\n" + without_settings
    (tmp_path / "b").mkdir()
    off = VALID.replace("[settings]\n", "[settings]\nverify_first = false\n")
    done = init(tmp_path / "b", [{"result": answer(off)}], "--yes")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "b" / "prompter.toml").read_text() == off
