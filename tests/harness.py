"""Harnesses for runs: a workflow in a temp dir, its agents tests/agents/fake_agent.py (`Harness`)
or the real claude-agent-sdk against tests/agents/fake_claude.py (`ClaudeHarness`); the CLI as a
real process (`prompter_cli`); and checks about processes and users the run tests share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from prompter.cli import main

from .toml_text import toml_value

FAKE_AGENT = Path(__file__).parent / "agents" / "fake_agent.py"
FAKE_CLAUDE = Path(__file__).parent / "agents" / "fake_claude.py"
# What a user sets for Claude Code (the fake CLI takes any): a run checks that some credential
# is there before any agent starts.
FAKE_KEY = "sk-ant-api03-fake-key-for-the-fake-cli"


def prompter_cli(
    *args: str, cwd: Path | None = None, timeout: float = 60, **popen: Any
) -> subprocess.CompletedProcess[str]:
    """`python -m prompter ARGS` as a real process, output as text; a hang fails the test."""
    return subprocess.run(
        [sys.executable, "-m", "prompter", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=timeout,
        **popen,
    )


@dataclass
class Harness:
    root: Path
    settings: dict[str, Any] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    plan: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.work = self.root / "work"
        self.work.mkdir(exist_ok=True)
        # prompter.toml: its state, logs and reports are `.prompter/` (places.default_report_dir)
        self.workflow = self.root / "prompter.toml"
        self.agent_log = self.root / "agent.jsonl"
        self.plan_file = self.root / "plan.json"

    def task(self, name: str, steps: list[dict[str, Any]] | None = None, **keys: Any) -> None:
        keys.setdefault("prompt", f"do {name}")
        keys.setdefault("verify_command", "true")
        self.tasks.append({"name": name, **keys})
        if steps is not None:
            self.plan[name] = steps

    def write(self) -> Path:
        settings = {
            "working_directory": "work",
            "agent": "command",
            "agent_command": [sys.executable, str(FAKE_AGENT), "{task}", "{attempt}", "{prompt}"],
            "retry_delay": 0,
            **self.settings,
        }
        lines = ["[settings]"] + [f"{k} = {toml_value(v)}" for k, v in settings.items()]
        for task in self.tasks:
            lines.append("\n[[tasks]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in task.items()]
        self.workflow.write_text("\n".join(lines) + "\n")
        self.plan_file.write_text(json.dumps(self.plan))
        return self.workflow

    def env(self) -> dict[str, str]:
        return {"FAKE_AGENT_PLAN": str(self.plan_file), "FAKE_AGENT_LOG": str(self.agent_log)}

    def run(self, *args: str) -> int:
        """`prompter run` in-process, from the harness root."""
        self.write()
        old_cwd, old_env = Path.cwd(), dict(os.environ)
        os.chdir(self.root)
        os.environ.update(self.env())
        try:
            return main(["run", "--progress", "plain", str(self.workflow), *args])
        finally:
            os.chdir(old_cwd)
            os.environ.clear()
            os.environ.update(old_env)

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """The real CLI in a process of its own, from the harness root; a hang (past `timeout`)
        fails the test, and so does a traceback or an internal error."""
        done = prompter_cli(*args, cwd=self.root, timeout=timeout, env={**os.environ, **self.env()})
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
        return done

    def spawn(self, *args: str, **popen: Any) -> subprocess.Popen[str]:
        """`prompter run` as a real process (for signals)."""
        self.write()
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prompter",
                "run",
                "--progress",
                "plain",
                str(self.workflow),
                *args,
            ],
            cwd=self.root,
            env={**os.environ, **self.env()},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **popen,
        )

    def status(self) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "prompter", "status", "--json"],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def status_or_none(self) -> dict[str, Any] | None:
        """The status, or None while no state exists yet."""
        if (
            not (self.root / ".prompter" / "state.json").exists()
            and not (self.root / ".prompter" / "state.json.journal").exists()
        ):
            return None
        return self.status()

    def wait_until(self, task: str, status: str = "passed", timeout: float = 30) -> None:
        """Until the state of a spawned run records `task` as `status` (with worktrees: merged
        into the run's line, which comes before the pass is recorded) — an event, not a sleep."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.status_or_none()
            if state and state["tasks"].get(task, {}).get("status") == status:
                return
            assert time.monotonic() < deadline, f"`{task}` not {status} in {timeout} s: {state}"
            time.sleep(0.05)

    def tasks_status(self) -> dict[str, tuple[str, str | None]]:
        return {n: (t["status"], t["reason"]) for n, t in self.status()["tasks"].items()}

    def calls(self) -> list[dict[str, Any]]:
        if not self.agent_log.exists():
            return []
        return [json.loads(line) for line in self.agent_log.read_text().splitlines()]


class ClaudeHarness(Harness):
    """Tasks default to the claude agent; the fake CLI's plan is keyed by task name."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.claude_plan: dict[str, list[dict[str, Any]]] = {}
        self.claude_state = self.root / "claude-state"
        self.settings["claude_cli_path"] = str(FAKE_CLAUDE)

    def claude(self, name: str, steps: list[dict[str, Any]], **keys: Any) -> None:
        keys.setdefault("agent", "claude")
        keys.setdefault("prompt", f"[[fake:{name}]] do {name}")
        self.claude_plan[name] = steps
        self.task(name, **keys)

    def write(self) -> Path:
        path = super().write()
        (self.root / "claude-plan.json").write_text(json.dumps(self.claude_plan))
        return path

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "FAKE_CLAUDE_PLAN": str(self.root / "claude-plan.json"),
            "FAKE_CLAUDE_STATE": str(self.claude_state),
            "ANTHROPIC_API_KEY": os.environ.get("ANTHROPIC_API_KEY", FAKE_KEY),
        }

    def claude_calls(self, key: str | None = None) -> list[dict[str, Any]]:
        log = self.claude_state / "calls.jsonl"
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [c for c in calls if key is None or c["key"] == key]

    def state(self) -> dict[str, Any]:
        return json.loads((self.root / ".prompter" / "state.json").read_text())  # type: ignore[no-any-return]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes; only its parent can reap it.
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test runs prompter as root (CI does: .ci/run)", pytrace=False)


def fail_journal_writes(monkeypatch: pytest.MonkeyPatch, fails: Callable[[int], bool]) -> None:
    """The state journal's n-th write (from 1) fails as on a full disk when `fails(n)`;
    `monkeypatch.undo()` (or the test's end) makes writes work again."""
    from prompter import state as state_module

    real = state_module._write_all
    writes = [0]

    def write(fd: int, data: bytes) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".journal"):
            writes[0] += 1
            if fails(writes[0]):
                raise OSError(28, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(state_module, "_write_all", write)
