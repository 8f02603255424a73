"""`prompter-action` run exactly as GitHub's runner runs a container action's entrypoint: the
environment, the file-command files and the workspace are what the runner provides
(actions/runner: every input as INPUT_<NAME>, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files);
stdout is read with a model of the runner's command parser (runner_model.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .harness import FAKE_AGENT
from .runner_model import Command, commands, outputs

ENTRYPOINT = Path(sys.executable).with_name("prompter-action")


@dataclass
class Step:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    commands: list[Command]
    workspace: Path

    def of(self, name: str) -> list[Command]:
        return [c for c in self.commands if c.name == name]


def workspace(tmp_path: Path, tasks: list[dict[str, Any]], plan: dict[str, Any]) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    argv = [sys.executable, str(FAKE_AGENT), "{task}", "{attempt}", "{prompt}"]
    lines = ["[settings]", 'agent = "command"', f"agent_command = {json.dumps(argv)}"]
    lines.append("retry_delay = 0")
    for task in tasks:
        lines.append("\n[[tasks]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in task.items()]
    (ws / "prompter.toml").write_text("\n".join(lines) + "\n")
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    return ws


def run_step(tmp_path: Path, ws: Path, inputs: dict[str, str], **extra_env: str) -> Step:
    files = tmp_path / "file_commands"
    files.mkdir(exist_ok=True)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GITHUB_ACTIONS": "true",
        "CI": "true",
        "GITHUB_WORKSPACE": str(ws),
        "GITHUB_OUTPUT": str(files / "set_output_1"),
        "GITHUB_STEP_SUMMARY": str(files / "step_summary_1"),
        "RUNNER_TEMP": str(tmp_path / "runner_temp"),
        "FAKE_AGENT_PLAN": str(tmp_path / "plan.json"),
        "FAKE_AGENT_LOG": str(tmp_path / "agent.jsonl"),
        # The fake agent runs on this venv's python, which lives where only root can reach it
        # (pyenv under /root): agents run as root here. The default (`owner`, never root) is
        # tested in the action's container (test_container_security.py) and by test_identity.
        "INPUT_AGENT_USER": "root",
        # A worktree's checkout under test, not the one the venv's editable install names.
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
        **{f"INPUT_{k.upper()}": v for k, v in inputs.items()},
        **extra_env,
    }
    done = subprocess.run(
        [str(ENTRYPOINT)], cwd=ws, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    out_file, summary_file = files / "set_output_1", files / "step_summary_1"
    return Step(
        done.returncode,
        done.stdout,
        done.stderr,
        outputs(out_file.read_text("utf-8")) if out_file.exists() else {},
        summary_file.read_text("utf-8") if summary_file.exists() else "",
        commands(done.stdout + "\n" + done.stderr),
        ws,
    )


# A workflow of three tasks: one passes, one fails, one is skipped after it.
TASKS = [
    {"name": "good", "prompt": "do good", "verify_command": "true", "depends_on": []},
    {
        "name": "bad",
        "prompt": "do bad",
        "verify_command": "echo '::warning file=x::from verify'; echo 'tail line'; exit 3",
        "max_attempts": 1,
        "depends_on": [],
    },
    {"name": "after", "prompt": "x", "verify_command": "true", "depends_on": ["bad"]},
]
