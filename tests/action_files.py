"""The repository's files about the action: action.yml and its documented inputs and outputs,
the CI workflows, the README's Dockerfile recipe; and the linters of the `test` extra."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ACTION = REPO / "action.yml"
HOST_ACTION = REPO / "host" / "action.yml"
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))

# name -> default, as the issue specifies them; the README's action section documents the same.
INPUTS = {
    "workflow": "prompter.toml",
    "tasks": "",
    "max_parallel": "",
    "dry_run": "false",
    "fresh": "false",
    "report_dir": "",  # empty: prompter's default for the workflow (places.default_report_dir)
    "fail_on_task_failure": "true",
    "anthropic_api_key": "",
    "claude_code_oauth_token": "",
    "model": "",
    "max_cost_usd": "",
    "strict_budget": "false",
    "upload_artifact": "true",
    "artifact_name": "prompter-report",
    "github_token": "${{ github.token }}",
    "agent_user": "owner",
    "fanout_job": "",
    "fanout_imports": "",
    "fanout_merge": "",
}
OUTPUTS = [
    "status",
    "passed",
    "failed",
    "skipped",
    "total_cost_usd",
    "junit_path",
    "summary_path",
    "state_path",
    "artifact_id",
    "changed_files",
    "patch_path",
]


def tool(name: str) -> str:
    """A linter from the `test` extra: next to this interpreter, else on PATH."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: pip install -e '.[test]' installs it", pytrace=False)
    return found


def readme_dockerfile() -> str:
    readme = (REPO / "README.md").read_text("utf-8")
    blocks = re.findall(r"```dockerfile\n(.*?)```", readme, re.S)
    assert len(blocks) == 1, "the README has one Dockerfile recipe"
    return str(blocks[0])
