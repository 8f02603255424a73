"""Issue 15 item 9: smaller things a new user hit, each through the real CLI where it shows."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .engine import Harness, prompter_cli


def test_a_misspelled_command_gets_a_suggestion_not_no_such_file(tmp_path: Path) -> None:
    done = prompter_cli("stauts", "x.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert "usage: prompter" in done.stderr
    assert "invalid choice: 'stauts' (did you mean status?)" in done.stderr
    assert "no such file" not in done.stderr
    # A path is no typo: a missing plan.toml is still "no such file".
    missing = prompter_cli("plan.toml", cwd=tmp_path)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert "did you mean" not in missing.stderr


def test_a_workflow_file_named_like_a_typo_still_runs(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.task("a")
    h.write()
    shutil.copy(h.workflow, tmp_path / "stauts")
    done = h.cli("stauts", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "dry run: sequential mode, from a" in done.stdout


def test_an_unknown_dependency_in_other_case_suggests_the_task(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.task("a")
    h.task("b", depends_on=["A"])
    done = h.cli("validate", str(h.write()))
    assert done.returncode == 2
    assert "unknown dependency `A`; did you mean `a`?" in done.stderr


def test_a_placeholder_typo_in_settings_warns_once_not_once_per_task(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.settings["agent_command"] = [sys.executable, "-c", "pass", "{promt}"]
    for name in ("a", "b", "c"):
        h.task(name)
    h.task("own", agent_command=["true", "{promt}"])  # its own line: its own warning
    done = h.cli("validate", str(h.write()))
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "`{promt}`" in line]
    assert len(warnings) == 2, done.stderr
    assert "did you mean `{prompt}`?" in warnings[0]
    assert "2 warnings" in done.stdout


def test_validate_counts_in_the_singular_and_says_the_real_width(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.settings["max_parallel_tasks"] = 4
    h.task("a")
    h.task("b", depends_on=["a"])
    done = h.cli("validate", str(h.write()))
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"{h.workflow}: valid (2 tasks, graph mode, 1 dependency, 2 waves, "
        "up to 1 in parallel (4 slots))\n"
    )
    h.tasks.clear()
    for name in "abcdef":
        h.task(name)
    h.task("g", depends_on=list("abcdef"))
    done = h.cli("validate", str(h.write()))
    assert "6 dependencies, 2 waves, up to 4 in parallel)" in done.stdout


def test_counts_of_one_are_singular_in_the_run_and_plan_output(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.task("a")
    h.task("b", depends_on=["a"])
    dry = h.cli("run", str(h.write()), "--dry-run", "--task", "a", "--only")
    assert "dry run: would run 1 task in graph mode" in dry.stdout, dry.stdout
    run = h.cli("run", "--progress", "plain", str(h.workflow))
    assert run.returncode == 0, run.stderr
    assert ": wf.toml, graph mode, 2 tasks, " in run.stdout or "2 tasks, " in run.stdout
    for line in (dry.stdout + run.stdout + run.stderr).splitlines():
        assert "(s)" not in line and not line.startswith("1 tasks"), line
