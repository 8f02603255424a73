"""`prompter` in a GitHub Actions step: nothing it prints becomes a workflow command.

The runner reads a step's stdout and stderr for commands (`::name::` at the start of a line, or
the old `##[name]` anywhere in it). prompter's lines quote task names and reasons; in a job they
go through one filter (github/commands.py `InertWriter`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .runner_model import commands

PROMPTER = Path(sys.executable).with_name("prompter")


def test_progress_and_status_lines_in_a_job_are_never_commands(tmp_path: Path) -> None:
    (tmp_path / "wf.toml").write_text(
        "[settings]\n"
        'agent = "command"\n'
        'agent_command = ["true"]\n'
        "retry_delay = 0\n"
        "[[tasks]]\n"
        'name = "a ##[error title=Injected;]by name"\n'
        'prompt = "x"\n'
        'verify_command = "exit 3"\n'
        "max_attempts = 2\n"
        "[[tasks]]\n"
        'name = "b ##[stop-commands]tok"\n'
        'prompt = "x"\n'
        'verify_command = "true"\n'
        'depends_on = ["a ##[error title=Injected;]by name"]\n',
        encoding="utf-8",
    )
    env = {**os.environ, "GITHUB_ACTIONS": "true"}
    runs = [
        ["run", "wf.toml", "--progress", "plain"],
        ["status", "wf.toml"],
        ["plan", "wf.toml"],
        ["graph", "wf.toml", "--format", "text"],
    ]
    for argv in runs:
        done = subprocess.run(
            [str(PROMPTER), *argv],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode in (0, 1), done.stderr
        assert "by name" in done.stdout  # the names are shown ...
        assert commands(done.stdout) == [] and commands(done.stderr) == []  # ... as text only
    # Outside a job the output is left exactly as it was.
    plain = subprocess.run(
        [str(PROMPTER), "status", "wf.toml"],
        cwd=tmp_path,
        env={k: v for k, v in env.items() if k != "GITHUB_ACTIONS"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "a ##[error title=Injected;]by name" in plain.stdout
