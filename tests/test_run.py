"""`prompter run` end to end: real agent processes, real shell verify commands, real state."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from prompter.cli import main

from .harness import Harness, prompter_cli


def test_independent_tasks_run_in_parallel_then_the_dependent(h: Harness) -> None:
    for name in ("a", "b", "c"):
        h.task(name, [{"sleep": 0.6}], depends_on=[])
    h.task("d", depends_on=["a", "b", "c"])
    started = time.monotonic()
    assert h.run() == 0
    took = time.monotonic() - started
    calls = {c["task"]: c for c in h.calls()}
    first_end = min(calls[n]["end"] for n in "abc")
    assert max(calls[n]["start"] for n in "abc") < first_end, "a, b, c did not overlap"
    assert calls["d"]["start"] >= max(calls[n]["end"] for n in "abc")
    assert took < 1.8 * 0.6 + 1.5  # parallel, not 3 x 0.6 s in a row
    assert h.tasks_status() == {n: ("passed", None) for n in "abcd"}


def test_retry_prompt_carries_the_failed_verify_output(h: Harness) -> None:
    h.task(
        "fix",
        [{"write": {"out.txt": "wrong\n"}}, {"write": {"out.txt": "right\n"}}],
        verify_command="grep -q right out.txt || { echo 'out.txt says:'; cat out.txt; exit 3; }",
        depends_on=[],
    )
    assert h.run() == 0
    first, second = h.calls()
    assert second["attempt"] == 2
    assert "do fix" in second["prompt"]
    assert "Attempt 1 did not pass: verify_command exited 3 (expected 0)" in second["prompt"]
    assert "out.txt says:\nwrong" in second["prompt"]
    assert first["prompt"] == "do fix"
    status = h.status()["tasks"]["fix"]
    assert [a["ok"] for a in status["attempts"]] == [False, True]
    assert status["attempts"][0]["reason"] == "verify_command exited 3 (expected 0)"


def test_failure_skips_dependents_transitively_naming_the_root(h: Harness) -> None:
    h.task("a", verify_command="exit 1", depends_on=[], max_attempts=2)
    h.task("b", depends_on=["a"])
    h.task("c", depends_on=["b"])
    h.task("d", depends_on=["c", "e"])
    h.task("e", depends_on=[])
    started = time.monotonic()
    assert h.run() == 1
    assert time.monotonic() - started < 5
    status = h.tasks_status()
    assert status["a"] == ("failed", "verify_command exited 1 (expected 0)")
    for name in "bcd":
        assert status[name] == ("skipped", "dependency `a` failed")
    assert status["e"] == ("passed", None)
    assert [c["task"] for c in h.calls()].count("a") == 2
    assert {c["task"] for c in h.calls()} == {"a", "e"}


def test_on_failure_stop_interrupts_running_and_skips_the_rest(h: Harness) -> None:
    h.task("long", [{"sleep": 30}], depends_on=[])
    h.task("bad", [{"sleep": 0.3}], verify_command="exit 1", on_failure="stop", depends_on=[])
    h.task("later", depends_on=["bad"])
    h.task("other", depends_on=["long"])
    started = time.monotonic()
    assert h.run("--max-parallel", "2") == 1
    assert time.monotonic() - started < 10
    reason = "run stopped by `bad` (on_failure = stop)"
    assert h.tasks_status() == {
        "long": ("interrupted", reason),
        "bad": ("failed", "verify_command exited 1 (expected 0)"),
        "later": ("skipped", "dependency `bad` failed"),
        "other": ("skipped", reason),
    }


def test_on_failure_next_means_one_attempt(h: Harness) -> None:
    h.task("a", verify_command="exit 1", on_failure="next", max_attempts=5, depends_on=[])
    assert h.run() == 1
    assert len(h.calls()) == 1


def test_agent_failure_and_timeout_are_attempt_failures(h: Harness) -> None:
    h.task("crash", [{"exit": 4, "print": "boom"}], max_attempts=1, depends_on=[])
    h.task("slow", [{"sleep": 20}], timeout=0.5, max_attempts=1, depends_on=[])
    started = time.monotonic()
    assert h.run() == 1
    assert time.monotonic() - started < 8
    status = h.tasks_status()
    assert status["crash"] == ("failed", "agent exited 4")
    assert status["slow"] == ("failed", "agent timed out after 0.5 s")


def test_agent_gets_placeholders_environment_and_working_directory(h: Harness) -> None:
    h.task("a", system_prompt="be brief", depends_on=[])
    assert h.run() == 0
    (call,) = h.calls()
    assert call["attempt"] == 1 and call["prompt"] == "do a"
    assert call["cwd"] == str(h.work.resolve())
    # What it leaves running is found again by this token (processes.Enclosure).
    assert re.fullmatch("[0-9a-f]{16}", call["env"].pop("PROMPTER_PROCESS_TOKEN"))
    assert call["env"] == {
        "PROMPTER_PROMPT": "do a",
        "PROMPTER_TASK": "a",
        "PROMPTER_ATTEMPT": "1",
        "PROMPTER_SYSTEM_PROMPT": "be brief",
        "PROMPTER_WORKDIR": str(h.work.resolve()),
    }
    assert call["pgid"] == call["pid"], "the agent runs in its own process group"


def test_resume_skips_passed_unchanged_tasks_and_reruns_changed_ones(h: Harness) -> None:
    h.task("a", depends_on=[])
    h.task("b", depends_on=["a"])
    h.task("c", depends_on=[], verify_command="test -f flag")
    assert h.run() == 1  # c fails: no flag
    assert len(h.calls()) == 1 + 1 + 3
    (h.work / "flag").touch()
    assert h.run() == 0  # only c runs again
    assert [c["task"] for c in h.calls()[5:]] == ["c"]
    h.tasks[0]["prompt"] = "do a differently"  # a changed: a and its dependent b run again
    assert h.run() == 0
    assert sorted(c["task"] for c in h.calls()[6:]) == ["a", "b"]
    assert h.run("--fresh") == 0
    assert len(h.calls()) == 8 + 3


def test_task_selection_with_and_without_dependencies(h: Harness) -> None:
    h.task("a", depends_on=[])
    h.task("b", depends_on=["a"])
    h.task("c", depends_on=["b"])
    h.task("z", depends_on=[])
    assert h.run("--task", "b") == 0
    assert [c["task"] for c in h.calls()] == ["a", "b"]
    assert h.run("--task", "c", "--only") == 0
    assert [c["task"] for c in h.calls()][2:] == ["c"]
    assert h.run("--task", "c", "--fresh", "--only") == 0
    assert h.run("--task", "nope") == 2


def test_a_pass_under_only_does_not_stand_once_its_dependencies_run(h: Harness) -> None:
    h.task("a", depends_on=[])
    h.task("b", depends_on=["a"])
    h.task("c", depends_on=["b"])
    h.task("d", depends_on=[])
    h.task("e", depends_on=["c", "d"])
    assert h.run("--task", "c", "--only") == 0  # c passes with a and b never run
    assert h.run("--task", "d", "--only") == 0
    calls = len(h.calls())
    assert h.run() == 0
    # b runs, so c runs again after it, then e; d's pass stands (nothing under it ran).
    assert [c["task"] for c in h.calls()[calls:]] == ["a", "b", "c", "e"]


def test_what_the_agent_is_given_is_fingerprinted_the_retry_policy_is_not(h: Harness) -> None:
    h.task("a", depends_on=[])
    h.task("b", depends_on=["a"])
    assert h.run() == 0
    h.tasks[1]["max_attempts"] = 5  # how often to try: a pass stays a pass
    h.tasks[1]["on_failure"] = "next"
    assert h.run() == 0
    assert len(h.calls()) == 2
    h.tasks[0]["agent_env"] = {"MODE": "strict"}  # what the agent runs with: a and b again
    assert h.run() == 0
    assert [c["task"] for c in h.calls()[2:]] == ["a", "b"]
    h.settings["agent_env"] = {"OTHER": "1"}
    assert h.run() == 0
    assert [c["task"] for c in h.calls()[4:]] == ["a", "b"]


def test_a_demand_above_its_budget_is_reported_by_run(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h.settings["cpu_budget"] = 2
    h.task("big", depends_on=[], cpu_required=8)
    assert h.run() == 0
    assert (
        "prompter: warning: task `big`: cpu_required = 8 exceeds the budget of 2; "
        "it is clamped to the budget and runs alone" in capsys.readouterr().err
    )


def test_dry_run_writes_nothing(h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    h.task("a", depends_on=[])
    h.task("b", depends_on=["a"])
    assert h.run("--dry-run") == 0
    assert not (h.root / ".prompter").exists()
    assert h.calls() == []
    out = capsys.readouterr().out
    assert "would run 2 tasks" in out and "b  (after a)" in out


def test_missing_working_directory_is_a_usage_error(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h.settings["working_directory"] = "nowhere"
    h.task("a", depends_on=[])
    assert h.run() == 2
    assert "is not a directory" in capsys.readouterr().err


def test_limits_agents_and_exclusive(h: Harness) -> None:
    h.settings.update(max_parallel_tasks=3, max_parallel_agents=2)
    for name in "abcd":
        h.task(name, [{"sleep": 0.4}], depends_on=[])
    h.task("solo", [{"sleep": 0.2}], depends_on=[], exclusive=True, priority=-1)
    assert h.run() == 0
    calls = h.calls()
    for c in calls:
        overlapping = [o for o in calls if o["start"] < c["end"] and c["start"] < o["end"]]
        assert len(overlapping) <= 2, "more than max_parallel_agents agents at once"
        if c["task"] == "solo":
            assert overlapping == [c], "the exclusive task had company"


# -- sequential mode (Prompter 0.10 semantics, bugs fixed) -------------------------------------


def test_sequential_jumps_and_failure_jump_after_one_attempt(h: Harness) -> None:
    h.task("build", verify_command="exit 1", on_failure="fix", max_attempts=5)
    h.task("skipped_by_jump")
    h.task("fix", on_success="test")
    h.task("test", on_success="stop")
    h.task("never")
    assert h.run() == 1  # build failed (0.10 also exits 1 when a task failed)
    assert [c["task"] for c in h.calls()] == ["build", "fix", "test"]
    status = h.tasks_status()
    assert status["build"][0] == "failed" and status["test"] == ("passed", None)
    assert "never" not in h.status()["tasks"]


def test_sequential_retry_exhausted_moves_on_and_fails_the_run(h: Harness) -> None:
    h.task("a", verify_command="exit 1", max_attempts=2)
    h.task("b")
    assert h.run() == 1
    assert [c["task"] for c in h.calls()] == ["a", "a", "b"]


def test_sequential_revisit_needs_allow_infinite_loops(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h.task("a", on_success="b")
    h.task("b", on_success="a")
    assert h.run() == 1
    assert [c["task"] for c in h.calls()] == ["a", "b"]
    assert "`a` would run a second time" in capsys.readouterr().out


def test_sequential_max_iterations_fails_the_run(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h.settings.update(allow_infinite_loops=True, max_iterations=5)
    h.task("loop", on_success="repeat")
    assert h.run() == 1
    assert len(h.calls()) == 5
    assert "max_iterations (5) reached" in capsys.readouterr().out


def test_sequential_resume_answers_only_the_first_visit_from_history(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h.settings.update(allow_infinite_loops=True, max_iterations=4)
    h.task("check")
    h.task("wait", on_success="check")
    assert h.run("--task", "check") == 0  # `next` after a --task start ends the run
    assert [c["task"] for c in h.calls()] == ["check"]
    # check passed before: its first visit is answered from history; the loop's later visits
    # run it (they did not before: a resumed loop never checked again).
    assert h.run() == 1
    assert [c["task"] for c in h.calls()][1:] == ["wait", "check", "wait", "check"]
    assert "max_iterations (4) reached before `wait`" in capsys.readouterr().out


def test_sequential_only_is_a_usage_error(h: Harness) -> None:
    h.task("a")
    h.task("b")
    assert h.run("--task", "a", "--only") == 2
    assert h.calls() == []


def test_sequential_on_failure_stop(h: Harness) -> None:
    h.task("a", verify_command="exit 2", on_failure="stop")
    h.task("b")
    assert h.run() == 1
    assert [c["task"] for c in h.calls()] == ["a"]


# -- status, clear-state and the 0.10 command line ---------------------------------------------


def test_status_json_shape(h: Harness) -> None:
    h.task("a", depends_on=[])
    assert h.run() == 0
    data = h.status()
    a = data["tasks"]["a"]
    assert set(a) >= {"status", "reason", "attempts", "duration_s", "cost_usd"}
    assert a["status"] == "passed" and a["cost_usd"] == 0 and a["duration_s"] > 0
    assert a["attempts"][0]["verify_exit_code"] == 0
    assert data["counts"] == {"passed": 1} and len(data["runs"]) == 1
    h.task("b", depends_on=["a"])  # not run yet: pending, with the same keys as the others
    with_workflow = json.loads(prompter_cli("status", "--json", str(h.write()), cwd=h.root).stdout)
    assert set(with_workflow["tasks"]["b"]) == set(with_workflow["tasks"]["a"])
    assert with_workflow["tasks"]["b"]["run_id"] is None
    assert with_workflow["tasks"]["b"]["changed"] is False


def test_prompter_10_command_line(
    h: Harness, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    h.task("a")
    h.write()
    monkeypatch.chdir(h.root)
    monkeypatch.setenv("FAKE_AGENT_PLAN", str(h.plan_file))
    monkeypatch.setenv("FAKE_AGENT_LOG", str(h.agent_log))
    assert main([str(h.workflow), "--dry-run"]) == 0
    assert "dry run" in capsys.readouterr().out
    assert main([str(h.workflow), "--progress", "none"]) == 0
    assert main(["--status"]) == 0
    assert re.search(r"^a +passed +1 ", capsys.readouterr().out, re.M)
    assert main(["--clear-state"]) == 0
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["tasks"] == {}


HOSTILE_PRINTER = (
    "import sys\n"
    "chunk = (b'\\x00\\xff\\xfe\\x1b[31mred\\x1b[0m \\x1b]0;title\\x07'\n"
    "         + b'x' * 4000 + b'\\r\\n')\n"
    "block = chunk * (2**20 // len(chunk))\n"
    "for _ in range(100): sys.stdout.buffer.write(block)\n"
    "sys.exit(1)\n"
)
MEASURE = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    # a fresh child's peak, in KiB (this wrapper's own ru_maxrss would include pytest's)
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def test_verify_printing_100_mb_of_hostile_bytes_keeps_memory_and_state_sane(h: Harness) -> None:
    printer = h.root / "printer.py"
    printer.write_text(HOSTILE_PRINTER)
    h.task("loud", verify_command=f"{sys.executable} {printer}", max_attempts=1, depends_on=[])
    h.write()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE,
            sys.executable,
            "-m",
            "prompter",
            "run",
            str(h.workflow),
            "--progress",
            "plain",
        ],
        cwd=h.root,
        env={**os.environ, **h.env()},
        capture_output=True,
        text=True,
        check=True,
    )
    code, peak_kib = map(int, done.stdout.split())
    assert code == 1
    assert peak_kib < 100 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"
    print(f"peak RSS of prompter run: {peak_kib / 1024:.0f} MiB")
    log = (h.root / ".prompter" / "logs" / "loud.log").read_bytes()
    assert log.count(b"x" * 4000) >= 100 * (2**20 // 4030)  # every byte reached the log
    state_file = h.root / ".prompter" / "state.json"
    assert state_file.stat().st_size < 200 * 1024
    loud = h.status()["tasks"]["loud"]
    tail = loud["attempts"][0]["output_tail"]
    assert "bytes omitted" in tail and "\x00" not in tail and "\x1b" not in tail
    assert loud["reason"] == "verify_command exited 1 (expected 0)"
    # The reports written after the run are well-formed and small (see test_reports.py).
    junit_xml = h.root / ".prompter" / "junit.xml"
    assert junit_xml.stat().st_size < 64 * 1024
    lint = subprocess.run(["xmllint", "--noout", str(junit_xml)], capture_output=True, check=False)
    assert lint.returncode == 0, lint.stderr
    assert (h.root / ".prompter" / "summary.md").stat().st_size < 64 * 1024


def test_tasks_get_distinct_logs_also_on_a_case_insensitive_file_system(h: Harness) -> None:
    from prompter.places import log_name

    names = ["build", "Build", "BUILD", "a/b", "a_b", "..x", "x", "é"]
    files = [log_name(n) for n in names]
    assert len({f.casefold() for f in files}) == len(names)  # macOS and Windows fold case
    assert files[0] == "build.log" and files[6] == "x.log"  # plain names stay readable
    for name in ("build", "Build"):
        h.task(name, [{"print": f"I am {name}\n"}], depends_on=[])
    assert h.run() == 0
    for name in ("build", "Build"):
        text = (h.root / ".prompter" / "logs" / log_name(name)).read_text()
        assert f"I am {name}\n" in text and text.count("I am") == 1


def test_why_a_sequential_run_failed_is_in_the_state_and_the_reports(h: Harness) -> None:
    import xml.etree.ElementTree as ET

    h.settings.update(allow_infinite_loops=True, max_iterations=3)
    h.task("loop", on_success="repeat")
    assert h.run() == 1  # every execution passed; the run fails on max_iterations
    why = "max_iterations (3) reached before `loop`"
    assert h.status()["runs"][-1]["reason"] == why
    text = prompter_cli("status", cwd=h.root).stdout
    assert text.splitlines()[-1].endswith(f"(failed: {why})")
    report = h.root / ".prompter"
    suite = ET.parse(report / "junit.xml").getroot()
    assert suite.get("failures") == "1"  # not all green
    (case,) = [c for c in suite.iter("testcase") if c.get("name") == "(run)"]
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == why
    summary = (report / "summary.md").read_text()
    assert f"**Why:** {why}" in summary.replace("\\", "")


def test_feedback_tail_starts_at_a_line(h: Harness) -> None:
    from prompter.config import load_workflow
    from prompter.feedback import FEEDBACK_CHARS, Feedback, prompt_with_feedback

    h.task("t", depends_on=[], verify_command="make")
    (task,) = load_workflow(h.write()).tasks
    lines = "".join(f"line {i:05d}: error in step {i}\n" for i in range(20_000))
    prompt = prompt_with_feedback(task, Feedback(1, "verify_command exited 2", "make", lines))
    tail = prompt.split("```\n")[1].removesuffix("\n")  # between the fences
    assert tail.startswith("line ") and tail.endswith("line 19999: error in step 19999")
    assert len(tail) <= FEEDBACK_CHARS


def test_feedback_names_the_check_whenever_the_verify_phase_ran(h: Harness) -> None:
    from prompter.attempts import Feedback
    from prompter.config import load_workflow
    from prompter.records import AttemptRecord

    h.task("t", depends_on=[], verify_command="make check")
    (task,) = load_workflow(h.write()).tasks
    agent_failed = AttemptRecord(number=1, started_at=0, reason="agent exited 3")
    could_not_start = AttemptRecord(
        number=1, started_at=0, reason="verify_command could not start: x", verify_duration_s=0.0
    )
    timed_out = AttemptRecord(
        number=1, started_at=0, reason="timed out", verify_exit_code=-15, verify_duration_s=300
    )
    assert Feedback.of(task, agent_failed).verify_command is None
    assert Feedback.of(task, could_not_start).verify_command == "make check"
    assert Feedback.of(task, timed_out).verify_command == "make check"
