"""The CLI as a user meets it: a real subprocess, exit codes, and a light start."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prompter.cli import main

from .harness import Harness, prompter_cli

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "pipeline.toml"


def test_importing_the_cli_loads_no_heavy_module() -> None:
    # Startup cost is import cost: the CLI module must not pull in pydantic, anyio, rich, httpx.
    code = (
        "import sys, prompter.cli; "
        "print(sorted(m for m in ('pydantic', 'anyio', 'rich', 'httpx', 'claude_agent_sdk', "
        "'tomllib', 'json') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_version_and_help() -> None:
    assert prompter_cli("--version").stdout.startswith("prompter ")
    helped = prompter_cli("--help")
    assert helped.returncode == 0
    for command in ("validate", "graph", "plan"):
        assert command in helped.stdout


def test_usage_error_exits_2() -> None:
    for args in ([], ["frobnicate"], ["plan", "--max-parallel", "0", str(EXAMPLE)], ["validate"]):
        done = prompter_cli(*args)
        assert done.returncode == 2, args
        assert "Traceback" not in done.stderr


def test_bundled_example_validates_and_plans(tmp_path: Path) -> None:
    done = prompter_cli("validate", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout
        == f"{EXAMPLE}: valid (4 tasks, graph mode, 3 dependencies, 2 waves, up to 3 in parallel)\n"
    )
    # Away from the state a run of the example may have left here: plan would use its times.
    plan = json.loads(prompter_in(tmp_path, "plan", "--json", str(EXAMPLE)).stdout)
    assert plan["estimate"]["parallel"] == 2 and plan["estimate"]["sequential"] == 4


def test_invalid_workflow_exits_2_through_a_real_process(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "v"\ndepends_on = ["a"]\n'
    )
    done = prompter_cli("plan", str(bad))
    assert done.returncode == 2
    assert done.stderr == f"{bad}:5:1: error: task `a` depends on itself\n{bad}: 1 error\n"
    assert done.stdout == ""


def test_graph_formats(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["graph", "--format", "dot", str(EXAMPLE)]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith("digraph workflow {") and "t0 -> t3;" in dot
    assert main(["graph", "--format", "json", str(EXAMPLE)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mode"] == "graph"
    bundle = next(t for t in data["tasks"] if t["name"] == "bundle")
    assert bundle["depends_on"] == ["add_greeting", "add_farewell", "add_notice"]
    assert bundle["wave"] == 1 and bundle["line"] == 36
    assert {"from": "add_greeting", "to": "bundle", "kind": "dependency"} in data["edges"]
    assert main(["graph", "--format", "text", str(EXAMPLE)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split() == ["wave", "task", "depends", "on"]
    assert text[-1].split()[:2] == ["1", "bundle"]


def test_sequential_graph_shows_transitions(capsys) -> None:  # type: ignore[no-untyped-def]
    path = ROOT / "tests" / "compat" / "prompter-0.10" / "examples" / "task-jumping.toml"
    assert main(["graph", "--format", "json", str(path)]) == 0
    edges = json.loads(capsys.readouterr().out)["edges"]
    assert {"from": "build", "to": "fix_build_errors", "kind": "failure"} in edges
    assert {"from": "alert_team", "to": None, "kind": "success"} in edges


def test_broken_pipe_is_not_an_error(tmp_path: Path) -> None:
    wide = tmp_path / "wide.toml"
    wide.write_text(
        "".join(
            f'[[tasks]]\nname = "task_number_{i:06d}"\nprompt = "p"\n'
            'verify_command = "v"\ndepends_on = []\n'
            for i in range(8000)
        )
    )
    done = subprocess.run(
        f"{sys.executable} -m prompter graph --format text {wide} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.split() == ["wave", "task", "depends", "on"]
    assert "Traceback" not in done.stderr and "Error" not in done.stderr


def prompter_in(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prompter", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_clear_state_deletes_nothing_that_is_not_a_state(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.task("a", depends_on=[])
    workflow = h.write()
    before = workflow.read_text()
    (tmp_path / "notes.txt").write_text("remember the milk\n")
    for args in (
        ["clear-state", "--state-file", "prompter.toml"],
        ["--clear-state", "--state-file", "prompter.toml"],  # 0.10's spelling, with a value kept
        ["clear-state", "--state-file", "notes.txt"],
    ):
        done = prompter_in(tmp_path, *args)
        assert done.returncode == 2, (args, done.stderr)
        name = args[-1]
        assert done.stderr.startswith(
            f"prompter: {name}: corrupt state, not a prompter state file ("
        ), args
        assert done.stderr.endswith(
            "; nothing deleted (clear-state deletes a prompter state only)\n"
        )
    assert workflow.read_text() == before
    assert (tmp_path / "notes.txt").read_text() == "remember the milk\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt",
        "plan.json",
        "prompter.toml",
        "work",
    ]
    # A real state still goes, also in 0.10's spelling with its config file argument.
    assert h.run() == 0
    done = prompter_in(tmp_path, "--clear-state", "prompter.toml")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / ".prompter" / "state.json").exists() and workflow.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--only", "wf.toml"], "prompter: --only needs --task NAME: it runs the named"),
        (["run", "--report-dir", "", "wf.toml"], "argument --report-dir: must not be empty"),
        (["run", "--state-file", "", "wf.toml"], "argument --state-file: must not be empty"),
        (["status", "--report-dir", ""], "argument --report-dir: must not be empty"),
        (["report", "--report-dir", ""], "argument --report-dir: must not be empty"),
        (["clear-state", "--report-dir", ""], "argument --report-dir: must not be empty"),
        (["init", "--report-dir", ""], "argument --report-dir: must not be empty"),
        (["--bogus"], "prompter: error: unrecognized arguments: --bogus"),
    ],
)
def test_usage_mistakes_are_named_and_nothing_is_written(
    tmp_path: Path, args: list[str], message: str
) -> None:
    h = Harness(tmp_path)
    h.task("a", depends_on=[])
    h.write()
    (tmp_path / "state.json").write_text("mine\n")  # what an empty --report-dir would replace
    done = prompter_in(tmp_path, *args, **h.env())
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".prompter").exists() and h.calls() == []
    assert (tmp_path / "state.json").read_text() == "mine\n"
    assert not (tmp_path / "junit.xml").exists()


def test_status_during_a_run_says_it_is_running_now(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.task("slow", [{"sleep": 30}], depends_on=[])
    proc = h.spawn()
    try:
        deadline = time.monotonic() + 15
        while "slow" not in (h.status_or_none() or {}).get("tasks", {}):
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        done = prompter_in(tmp_path, "status")
        assert re.search(r"^slow +running ", done.stdout, re.M), done.stdout
        assert re.search(rf"^last run: \S+ \(running now, pid {proc.pid}\)$", done.stdout, re.M)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    done = prompter_in(tmp_path, "status")
    assert "(interrupted by SIGTERM)" in done.stdout and "running now" not in done.stdout


def test_clean_exits_2_when_git_fails(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "init")
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=tmp_path,
        input="not a commit\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # What an ended run left, damaged: its base is no commit, so landing its work fails.
    git("update-ref", "refs/prompter/20250101T000000Z-aaaaaa/base", blob)
    git("update-ref", "refs/prompter/20250101T000000Z-aaaaaa/tip", "HEAD")
    done = prompter_in(tmp_path, "clean")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("prompter: git ") and len(done.stderr.splitlines()) == 1


def test_plan_uses_the_durations_the_last_run_measured(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.task("long", [{"sleep": 0.5}], depends_on=[])
    h.task("short", depends_on=[])
    h.task("last", depends_on=["long", "short"])
    h.write()
    before = json.loads(prompter_in(tmp_path, "plan", "--json", "prompter.toml").stdout)
    assert before["estimate"]["unit"] == "units"
    assert before["critical_path"]["length"] == 2
    assert h.run() == 0
    after = prompter_in(tmp_path, "plan", "--json", "prompter.toml")
    assert after.returncode == 0 and after.stderr == ""
    plan = json.loads(after.stdout)
    assert plan["estimate"]["unit"] == "s"
    assert plan["critical_path"]["tasks"] == ["long", "last"]
    assert plan["critical_path"]["length"] >= 0.5
    text = prompter_in(tmp_path, "plan", "prompter.toml").stdout
    assert "no measured durations" not in text
    assert re.search(r"^critical path: long -> last \(\d+\.\d s\)$", text, re.M), text
    # The state can be elsewhere; an unreadable one warns, and the plan goes on without it.
    (tmp_path / ".prompter").rename(tmp_path / "kept")
    moved = prompter_in(
        tmp_path, "plan", "--json", "--state-file", "kept/state.json", "prompter.toml"
    )
    assert json.loads(moved.stdout)["estimate"]["unit"] == "s"
    assert json.loads(prompter_in(tmp_path, "plan", "--json", "prompter.toml").stdout) == before
    broken = prompter_in(tmp_path, "plan", "--json", "--report-dir", "kept", "prompter.toml")
    assert broken.returncode == 0
    (tmp_path / "kept" / "state.json").write_text("{not json")
    broken = prompter_in(tmp_path, "plan", "--json", "--report-dir", "kept", "prompter.toml")
    assert broken.returncode == 0
    assert json.loads(broken.stdout) == before
    assert broken.stderr.startswith(
        f"prompter: warning: {Path('kept/state.json')}: corrupt state, not a prompter"
    )
    assert broken.stderr.endswith("; planned without measured durations\n")
