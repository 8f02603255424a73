"""`agent = "command"` with a program that cannot start: `run` says so before anything runs and
exits 2 (an unavailable agent), as the Claude backend does for a missing CLI, instead of failing
every attempt through retries and backoff. `validate` stays a check of the file alone."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from .harness import prompter_cli, toml_value


def workflow(root: Path, settings: dict[str, Any], *tasks: dict[str, Any]) -> Path:
    """settings first, one key a line, then the tasks: line numbers are predictable. Were the
    program tried anyway, its retries would show (and take a second each)."""
    lines = ["[settings]", 'agent = "command"', "retry_delay = 1", "max_parallel_tasks = 1"]
    lines += [f"{k} = {toml_value(v)}" for k, v in settings.items()]
    for keys in tasks or ({"name": "a"},):
        lines.append("[[tasks]]")
        task = {"prompt": "p", "verify_command": "true", **keys}
        lines += [f"{k} = {toml_value(v)}" for k, v in task.items()]
    path = root / "wf.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def executable(path: Path, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def assert_refused_before_running(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"prompter: {message}\n"
    assert "attempt" not in done.stdout + done.stderr  # not one attempt, so no retry either


def test_program_not_on_path(tmp_path: Path) -> None:
    path = workflow(tmp_path, {"agent_command": ["prompter-no-such-agent", "{prompt}"]})
    assert prompter_cli("validate", str(path), cwd=tmp_path).returncode == 0  # the file is fine
    for args in (["run"], ["run", "--dry-run"]):
        assert_refused_before_running(
            prompter_cli(*args, str(path), cwd=tmp_path),
            f"{path}:5:1: error: task `a` cannot start its agent: "
            "agent_command[0] `prompter-no-such-agent` is not on PATH",
        )


@pytest.mark.parametrize(
    ("program", "why"),
    [
        ("./missing.sh", "does not exist ({work}/missing.sh)"),
        ("tools/", "is a directory ({work}/tools)"),
        (
            "./tools/plain.sh",
            "is not executable ({work}/tools/plain.sh): chmod +x it, or run it through its "
            "interpreter",
        ),
    ],
)
def test_program_path_resolved_in_the_working_directory(
    tmp_path: Path, program: str, why: str
) -> None:
    work = tmp_path / "work"
    executable(work / "tools" / "plain.sh", 0o644)
    path = workflow(tmp_path, {"working_directory": "work", "agent_command": [program]})
    why = why.format(work=work).replace("tools//", "tools/")
    assert_refused_before_running(
        prompter_cli("run", str(path), cwd=tmp_path),
        f"{path}:6:1: error: task `a` cannot start its agent: agent_command[0] `{program}` {why}",
    )


def test_file_on_path_that_is_not_executable(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    executable(bin_dir / "my-agent", 0o644)
    path = workflow(tmp_path, {"agent_command": ["my-agent"], "agent_env": {"PATH": str(bin_dir)}})
    assert_refused_before_running(
        prompter_cli("run", str(path), cwd=tmp_path),
        f"{path}:5:1: error: task `a` cannot start its agent: agent_command[0] `my-agent` is "
        f"not an executable program on PATH ({bin_dir}/my-agent is not executable) "
        "(PATH as agent_env sets it)",
    )


def test_a_task_override_is_checked_and_located_at_the_task(tmp_path: Path) -> None:
    path = workflow(
        tmp_path,
        {"agent_command": ["true"]},
        {"name": "good"},
        {"name": "bad", "agent_command": ["prompter-no-such-agent"], "depends_on": ["good"]},
        {"name": "other", "depends_on": []},
    )
    assert_refused_before_running(
        prompter_cli("run", str(path), cwd=tmp_path),
        f"{path}:14:1: error: task `bad` cannot start its agent: "
        "agent_command[0] `prompter-no-such-agent` is not on PATH",
    )


def test_path_is_the_one_the_agent_gets(tmp_path: Path) -> None:
    # `sh` is on prompter's PATH, but the task's agent_env gives the agent another PATH.
    path = workflow(
        tmp_path,
        {"agent_command": ["sh", "-c", "exit 0"]},
        {"name": "a", "agent_env": {"PATH": str(tmp_path / "empty")}},
    )
    assert_refused_before_running(
        prompter_cli("run", str(path), cwd=tmp_path),
        f"{path}:5:1: error: task `a` cannot start its agent: agent_command[0] `sh` is not on "
        "PATH (PATH as agent_env sets it)",
    )


def test_what_the_agent_can_start_is_not_refused(tmp_path: Path) -> None:
    # Refused while one task's program is missing; once it is there, every form the agent can
    # start runs: a path relative to working_directory (not to where prompter runs), a name on
    # agent_env's PATH only, and a placeholder in argv[0] (known only per attempt, not checked).
    work = tmp_path / "work"
    work.mkdir()
    bin_dir = tmp_path / "private-bin"
    tasks: list[dict[str, Any]] = [
        {"name": "relative", "agent_command": ["./agent.sh"]},
        {"name": "on-agent-path", "agent_command": ["only-here"]},
        {"name": "placeholder", "agent_command": ["{prompt}"], "prompt": "./agent.sh"},
    ]
    settings = {"working_directory": "work", "agent_env": {"PATH": f"{bin_dir}:/usr/bin:/bin"}}
    path = workflow(tmp_path, settings, *tasks)
    done = prompter_cli("run", str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert "agent_command[0] `./agent.sh` does not exist" in done.stderr
    executable(work / "agent.sh")
    executable(bin_dir / "only-here")
    done = prompter_cli("run", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_only_the_tasks_this_run_starts_are_checked(tmp_path: Path) -> None:
    # `bad` cannot start, but a run of `good` alone (or with `bad` already passed) never needs it.
    path = workflow(
        tmp_path,
        {"agent_command": ["true"]},
        {"name": "good", "depends_on": []},
        {"name": "bad", "agent_command": ["prompter-no-such-agent"], "depends_on": []},
    )
    done = prompter_cli("run", str(path), "--task", "good", "--only", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = prompter_cli("run", str(path), cwd=tmp_path)  # now `bad` would start: refused
    assert done.returncode == 2 and "task `bad` cannot start its agent" in done.stderr


def test_backoff_after_very_many_attempts_is_capped_not_an_overflow() -> None:
    from prompter.attempts import MAX_BACKOFF_S, backoff_delay

    assert backoff_delay(2.0, 5000) == MAX_BACKOFF_S
