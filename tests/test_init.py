"""`prompter init`: the real SDK and fake CLI propose; our validator decides what is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .init_session import VALID, WRITTEN, answer, init

INVALID = VALID.replace("on_success", "x").replace(
    'depends_on = ["tests"]', 'depends_on = ["tset"]'
)


def calls(repo: Path) -> list[dict[str, Any]]:
    log = repo / "claude-state" / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_valid_proposal_is_shown_and_written_with_yes(tmp_path: Path) -> None:
    done = init(tmp_path, [{"result": answer(VALID), "cost": 0.12}], "--yes")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "prompter.toml").read_text() == WRITTEN
    assert "2 tasks, graph mode, 2 waves; Claude's cost $0.12" in done.stdout
    (call,) = calls(tmp_path)
    # Read-only: it may study the repository but not change it.
    assert set(call["flags"]["disallowedTools"].split(",")) >= {"Write", "Edit", "Bash"}
    assert "verify_command" in call["prompt"] and "depends_on" in call["prompt"]
    check = subprocess.run(
        [sys.executable, "-m", "prompter", "validate", "prompter.toml"], cwd=tmp_path, check=False
    )
    assert check.returncode == 0


def test_validator_errors_go_back_in_the_same_session(tmp_path: Path) -> None:
    steps = [{"result": answer(INVALID)}, {"result": answer(VALID)}]
    done = init(tmp_path, steps, "wf.toml", "--yes")
    assert done.returncode == 0, done.stderr
    first, second = calls(tmp_path)
    assert second["resume"] == first["session_id"]
    assert "wf.toml:14:1: error: unknown dependency `tset`" in second["prompt"]
    assert "the proposal is not valid yet" in done.stdout
    assert (tmp_path / "wf.toml").read_text() == WRITTEN


def test_never_valid_writes_nothing(tmp_path: Path) -> None:
    done = init(tmp_path, [{"result": "I would rather not."}], "--yes")
    assert done.returncode == 1
    assert "no valid workflow after 3 proposals" in done.stderr
    assert len(calls(tmp_path)) == 3
    assert not (tmp_path / "prompter.toml").exists()
    assert "Traceback" not in done.stderr


def test_an_existing_file_needs_force_and_claude_is_not_asked(tmp_path: Path) -> None:
    (tmp_path / "prompter.toml").write_text("mine\n")
    done = init(tmp_path, [{"result": answer(VALID)}], "--yes")
    assert done.returncode == 2
    assert "prompter.toml exists; use --force" in done.stderr
    assert (tmp_path / "prompter.toml").read_text() == "mine\n"
    assert calls(tmp_path) == []
    forced = init(tmp_path, [{"result": answer(VALID)}], "--yes", "--force")
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "prompter.toml").read_text() == WRITTEN


def test_unattended_without_yes_shows_but_does_not_write(tmp_path: Path) -> None:
    done = init(tmp_path, [{"result": answer(VALID)}])
    assert done.returncode == 1
    assert "confirm with --yes" in done.stderr
    assert VALID.splitlines()[0] in done.stdout
    assert not (tmp_path / "prompter.toml").exists()


def test_claude_failing_is_reported_in_one_line(tmp_path: Path) -> None:
    done = init(tmp_path, [{"error": 500}], "--yes")
    assert done.returncode == 1
    assert "Claude could not propose a workflow: Claude Code error (HTTP 500)" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("model", ["claude-x"])
def test_model_option_reaches_the_cli(tmp_path: Path, model: str) -> None:
    done = init(tmp_path, [{"result": answer(VALID)}], "--yes", "--model", model)
    assert done.returncode == 0, done.stderr
    assert calls(tmp_path)[0]["flags"]["model"] == model


@pytest.mark.parametrize("obstacle", ["report dir", "transcript"])
def test_an_unusable_report_dir_is_a_usage_error_before_claude_is_asked(
    tmp_path: Path, obstacle: str
) -> None:
    if obstacle == "report dir":
        (tmp_path / "notes").write_text("mine\n")
        expected = (
            "prompter init: notes: not a directory (the transcript goes to notes/logs/init.log)"
        )
    else:
        (tmp_path / "notes" / "logs" / "init.log").mkdir(parents=True)
        expected = "prompter init: notes/logs/init.log: cannot write the transcript: Is a directory"
    done = init(tmp_path, [{"result": answer(VALID)}], "--yes", "--report-dir", "notes")
    assert done.returncode == 2
    assert done.stderr == expected + "\n"
    assert calls(tmp_path) == []
    assert not (tmp_path / "prompter.toml").exists()
