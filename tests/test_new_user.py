"""Issue 15 item 9: smaller things a new user hit, each through the real CLI where it shows."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from .harness import Harness, prompter_cli


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


def _suites(junit: Path) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    import xml.etree.ElementTree as ET

    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    props = {p.get("name", ""): p.get("value", "") for p in suite.iter("property")}
    return dict(root.attrib), dict(suite.attrib), props


def test_junit_suite_time_is_the_runs_wall_time_not_the_sum(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.settings["max_parallel_tasks"] = 3
    for name in "abc":  # three at once, 0.6 s each: about 0.6 s of wall time, 1.8 s of task time
        h.task(name, verify_command="sleep 0.6")
    h.task("d", depends_on=["a"])  # graph mode: a task with depends_on
    assert h.cli("run", "--progress", "none", str(h.write())).returncode == 0
    root, suite, props = _suites(tmp_path / ".prompter" / "junit.xml")
    assert suite["time"] == root["time"] == props["wall_time_s"]
    wall, summed = float(props["wall_time_s"]), float(props["task_time_s"])
    assert summed >= 1.8 and wall < summed - 0.5, (wall, summed)


def test_a_run_with_nothing_to_do_keeps_the_last_timeline_and_critical_path(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path)
    h.task("a")
    h.task("b", depends_on=["a"])
    assert h.cli("run", "--progress", "none", str(h.write())).returncode == 0
    first = json.loads(h.cli("status", "--json").stdout)["runs"]
    again = h.cli("run", "--progress", "plain", str(h.workflow))
    assert again.returncode == 0 and "nothing to do" in again.stdout
    md = (tmp_path / ".prompter" / "summary.md").read_text("utf-8")
    assert "Critical path: a → b (" in md
    assert "```mermaid\ngantt" in md and "✓ a :crit" in md and "✓ b :crit" in md
    assert "No attempts ran in this run" not in md
    assert "Nothing ran in this run" in md and f"run {first[-1]['run_id']}, started" in md


def test_status_with_a_broken_workflow_still_shows_the_state(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.task("a")
    h.task("b", depends_on=["a"])
    assert h.cli("run", "--progress", "none", str(h.write())).returncode == 0
    h.workflow.write_text(h.workflow.read_text() + "\n[[tasks]\nname = \n")  # a syntax error
    done = h.cli("status", str(h.workflow))
    assert done.returncode == 2
    assert f"{h.workflow}:" in done.stderr and "error" in done.stderr
    assert "prompter: note:" in done.stderr and "recorded state is shown" in done.stderr
    assert "a" in done.stdout and "passed" in done.stdout and "b" in done.stdout
    as_json = h.cli("status", "--json", str(h.workflow))
    assert as_json.returncode == 2
    assert set(json.loads(as_json.stdout)["tasks"]) == {"a", "b"}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def _interrupted_run_left_behind(repo: Path, files: int) -> None:
    """A git repository where run `earlier` was interrupted after a task that wrote `files`
    files passed: its work waits, parked, for the next run or `prompter clean` to land it."""
    import anyio

    from prompter.worktrees import Integration, Merged

    if not (repo / ".git").exists():
        _git(repo, "init", "-q")
        _git(repo, "config", "user.email", "u@example.com")
        _git(repo, "config", "user.name", "User")
        (repo / "README").write_text("hi\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", "initial")
    line = Integration(repo, "earlier")

    async def go() -> None:
        await line.start()
        tree = await line.checkout("t", 1)
        for i in range(files):
            (tree / f"f{i:02}.txt").write_text(f"{i}\n")
        commit = await line.commit("t", tree)
        assert commit and isinstance(await line.merge("t", commit), Merged)
        await line.park()

    anyio.run(go)


def test_clean_says_which_files_of_an_earlier_run_it_landed(tmp_path: Path) -> None:
    _interrupted_run_left_behind(tmp_path, 23)
    done = prompter_cli("clean", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "f22.txt").read_text() == "22\n"
    shown = ", ".join(f"f{i:02}.txt" for i in range(20))
    assert done.stdout == (
        "landed the passed work of earlier run earlier: 23 files changed in your working tree, "
        f"uncommitted: {shown}, … and 3 more\nremoved worktrees and refs of 1 run\n"
    )


def test_a_resumed_run_says_which_files_of_an_earlier_run_it_landed(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.settings["isolation"] = "worktree"
    h.task("a")
    h.task("b", depends_on=["a"])
    h.write()
    (tmp_path / ".gitignore").write_text(".prompter/\nagent.jsonl\nplan.json\n")
    _interrupted_run_left_behind(tmp_path, 2)
    done = h.cli("run", "--progress", "plain", str(h.workflow))
    assert done.returncode == 0, done.stderr
    assert (
        "worktrees: landed the passed work of earlier run earlier: 2 files changed in your "
        "working tree, uncommitted: f00.txt, f01.txt\n"
    ) in done.stdout
