"""The action's metadata, workflows and Dockerfile pass the linters GitHub users would run, and
action.yml declares exactly the documented inputs and outputs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ACTION = REPO / "action.yml"
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
    "upload_artifact": "true",
    "artifact_name": "prompter-report",
    "github_token": "${{ github.token }}",
    "agent_user": "owner",
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
]


def tool(name: str) -> str:
    """A linter from the `test` extra: next to this interpreter, else on PATH."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: pip install -e '.[test]' installs it", pytrace=False)
    return found


def lint(*argv: str) -> None:
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)}\n{proc.stdout}\n{proc.stderr}"


def test_action_yml_matches_github_schema() -> None:
    lint(tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(ACTION))


def test_workflows_pass_actionlint() -> None:
    assert WORKFLOWS, "no workflows found"
    lint(tool("actionlint"), "-no-color", *map(str, WORKFLOWS))


def test_workflows_match_github_schema() -> None:
    lint(
        tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.github-workflows",
        *map(str, WORKFLOWS),
    )


def test_dockerfile_passes_hadolint() -> None:
    lint(tool("hadolint"), str(REPO / "Dockerfile"))


def load_action() -> dict[str, object]:
    data = yaml.safe_load(ACTION.read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def test_inputs_are_exactly_the_documented_set_with_their_defaults() -> None:
    inputs = load_action()["inputs"]
    assert isinstance(inputs, dict)
    assert list(inputs) == list(INPUTS)
    for name, spec in inputs.items():
        assert spec["description"].strip(), name
        assert str(spec.get("default", "")) == INPUTS[name], name
        # The runner keeps hyphens in INPUT_<NAME>; underscores keep the variables usable.
        assert "-" not in name and name == name.lower(), name


def test_outputs_are_exactly_the_documented_set() -> None:
    outputs = load_action()["outputs"]
    assert isinstance(outputs, dict)
    assert list(outputs) == OUTPUTS
    for name, spec in outputs.items():
        assert spec["description"].strip(), name


def test_runs_the_dockerfile_without_args() -> None:
    action = load_action()
    assert action["runs"] == {"using": "docker", "image": "Dockerfile"}
    branding = action["branding"]
    assert isinstance(branding, dict) and {"icon", "color"} <= set(branding)


def test_dockerfile_keeps_the_runner_contract() -> None:
    lines = [
        line.split()
        for line in (REPO / "Dockerfile").read_text("utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    instructions = [words[0] for words in lines]
    assert instructions[:2] == ["ARG", "FROM"]
    assert lines[0][1] == "BASE_IMAGE=python:3.12-slim" and lines[1][1] == "${BASE_IMAGE}"
    # The runner passes --workdir /github/workspace and runs as root: no USER, no WORKDIR.
    assert "USER" not in instructions and "WORKDIR" not in instructions
    # tini as PID 1 reaps the orphans agents leave (test_container.py runs that).
    entrypoint = [
        "ENTRYPOINT",
        '["/usr/bin/tini",',
        '"--",',
        '"/opt/prompter/bin/prompter-action"]',
    ]
    assert entrypoint in lines
