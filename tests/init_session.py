"""`prompter init` against tests/agents/fake_claude.py: its environment, a run of it, and a
valid proposal to answer with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .harness import FAKE_CLAUDE

VALID = """[settings]
agent = "claude"

[[tasks]]
name = "tests"
prompt = "Add tests for the parser."
verify_command = "true"
depends_on = []

[[tasks]]
name = "docs"
prompt = "Document the parser."
verify_command = "true"
depends_on = ["tests"]
"""


# What `init` writes for VALID: the same, with `verify_first = true` added to its [settings].
WRITTEN = VALID.replace("[settings]\n", "[settings]\nverify_first = true\n", 1)


def answer(toml: str) -> str:
    return f"Here is a workflow.\n\n```toml\n{toml}```\n"


def init_env(repo: Path, steps: list[dict[str, Any]]) -> dict[str, str]:
    """The environment of `prompter init` in `repo` whose fake Claude CLI answers with `steps`."""
    (repo / "plan.json").write_text(json.dumps({"init": steps}))
    return {
        "PATH": "/usr/bin:/bin",
        "PROMPTER_CLAUDE_CLI": str(FAKE_CLAUDE),
        "FAKE_CLAUDE_PLAN": str(repo / "plan.json"),
        "FAKE_CLAUDE_STATE": str(repo / "claude-state"),
        "FAKE_CLAUDE_DEFAULT_KEY": "init",
        "ANTHROPIC_API_KEY": "sk-ant-api03-fake-key-for-the-fake-cli",  # as a user sets it
        # The prompter under test, where a checkout other than the installed one is tested.
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
    }


def init(repo: Path, steps: list[dict[str, Any]], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prompter", "init", *args],
        cwd=repo,
        env=init_env(repo, steps),
        check=False,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
