"""Git repositories for the worktree tests: `git` in a repository, a harness whose root is one,
and tasks whose agent is a shell script."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .harness import Harness


def sh(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def git_harness(tmp_path: Path) -> Harness:
    """A harness whose root is a git repository with a commit and some uncommitted work."""
    h = Harness(tmp_path)
    sh(tmp_path, "init", "-q")
    sh(tmp_path, "config", "user.email", "u@example.com")
    sh(tmp_path, "config", "user.name", "User")
    (tmp_path / ".gitignore").write_text(".prompter/\nagent.jsonl\nplan.json\nprompter.toml\n")
    (h.work / "app.py").write_text("line 1\nline 2\nline 3\n")
    sh(tmp_path, "add", "-A")
    sh(tmp_path, "commit", "-qm", "initial")
    (h.work / "app.py").write_text("line 1\nline 2 (user)\nline 3\n")  # uncommitted
    (h.work / "scratch.txt").write_text("the user's untracked file\n")
    return h


def shell_task(h: Harness, name: str, script: str, **keys: object) -> None:
    """A task whose agent is a shell script run in the task's working directory."""
    keys.setdefault("depends_on", [])
    keys.setdefault("max_attempts", 1)
    h.task(name, agent_command=["sh", "-c", script], **keys)
