"""The action's metadata, workflows and Dockerfile pass the linters GitHub users would run, and
action.yml declares exactly the documented inputs and outputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from .action_files import (
    ACTION,
    HOST_ACTION,
    INPUTS,
    OUTPUTS,
    REPO,
    WORKFLOWS,
    readme_dockerfile,
    tool,
)


def lint(*argv: str) -> None:
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)}\n{proc.stdout}\n{proc.stderr}"


def test_action_yml_matches_github_schema() -> None:
    lint(tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(ACTION))


def test_host_and_test_stand_in_actions_match_github_schema() -> None:
    stand_ins = sorted((REPO / "tests" / "act").rglob("action.yml"))
    assert len(stand_ins) == 4, stand_ins  # upload, download, cache restore and save
    lint(
        tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.github-actions",
        str(HOST_ACTION),
        *map(str, stand_ins),
    )


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


# The host action (host/action.yml) has the root action's inputs and outputs, plus these inputs.
HOST_ONLY_INPUTS = ["drop_sudo"]
# Inputs whose description says what differs on the host.
HOST_DESCRIBED = {"agent_user"}


def test_host_action_has_the_same_inputs_and_outputs() -> None:
    root = load_action()
    host = yaml.safe_load(HOST_ACTION.read_text("utf-8"))
    root_inputs, host_inputs = root["inputs"], host["inputs"]
    assert isinstance(root_inputs, dict) and isinstance(host_inputs, dict)
    assert list(host_inputs) == [*root_inputs, *HOST_ONLY_INPUTS]
    for name, spec in root_inputs.items():
        mine = host_inputs[name]
        assert str(mine.get("default", "")) == str(spec.get("default", "")), name
        assert mine.get("required", False) == spec.get("required", False), name
        if name not in HOST_DESCRIBED:
            assert mine["description"] == spec["description"], name
    assert host_inputs["drop_sudo"]["default"] == "true"
    root_outputs, host_outputs = root["outputs"], host["outputs"]
    assert isinstance(root_outputs, dict) and isinstance(host_outputs, dict)
    assert list(host_outputs) == list(root_outputs)
    for name, spec in root_outputs.items():
        assert host_outputs[name]["description"] == spec["description"], name
        source = (
            "steps.upload.outputs.artifact-id"
            if name == "artifact_id"
            else f"steps.run.outputs.{name}"
        )
        assert host_outputs[name]["value"] == f"${{{{ {source} }}}}", name


def test_host_action_runs_the_entry_point_with_every_input() -> None:
    """The same code path as the container: `prompter-action`, each input as INPUT_<NAME>, the
    upload left to actions/upload-artifact (PROMPTER_DEFER_UPLOAD)."""
    host = yaml.safe_load(HOST_ACTION.read_text("utf-8"))
    runs = host["runs"]
    assert runs["using"] == "composite"
    steps = {step.get("id"): step for step in runs["steps"]}
    run = steps["run"]
    assert run["run"] == 'exec "$PROMPTER_BIN/prompter-action"'
    expected = {
        f"INPUT_{name.upper()}": f"${{{{ inputs.{name} }}}}"
        for name in load_action()["inputs"]  # type: ignore[union-attr]
    }
    env = run["env"]
    assert {k: v for k, v in env.items() if k.startswith("INPUT_")} == expected
    assert env["PROMPTER_DEFER_UPLOAD"] == "true"
    upload = steps["upload"]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["include-hidden-files"] is True
    assert upload["with"]["name"] == "${{ steps.run.outputs.upload_name }}"
    assert upload["with"]["overwrite"] == "${{ github.run_attempt != '1' }}"
    # A fan-out job: the exports downloaded before the run (prompter reads the folder), this
    # job's own uploaded after it, both by the maintained actions (no artifact credentials).
    names = [step.get("uses", step.get("run", "")) for step in runs["steps"]]
    download = runs["steps"][names.index(next(n for n in names if "download-artifact" in n))]
    assert download["uses"].startswith("actions/download-artifact@")
    assert download["with"]["pattern"] == "prompter-fanout-*"
    assert download["with"]["merge-multiple"] is False
    assert download["with"]["path"] == env["PROMPTER_FANOUT_IMPORTS_DIR"]
    assert runs["steps"].index(download) < runs["steps"].index(run)
    export = next(s for s in runs["steps"] if s.get("name") == "Upload the fan-out export")
    assert export["uses"].startswith("actions/upload-artifact@")
    assert export["with"]["name"] == "prompter-fanout-${{ inputs.fanout_job }}"
    assert export["with"]["path"] == "${{ steps.run.outputs.export_dir }}"
    assert export["with"]["overwrite"] is True
    assert "!cancelled()" in export["if"]
    # The python check comes first, before anything is installed.
    assert "check-python.sh" in runs["steps"][0]["run"]
    for script in ("check-python.sh", "install.sh", "drop-sudo.sh"):
        assert (HOST_ACTION.parent / script).is_file(), script


def test_readme_dockerfile_recipe_passes_hadolint(tmp_path: Path) -> None:
    recipe = tmp_path / "Dockerfile"
    recipe.write_text(readme_dockerfile(), "utf-8")
    lint(tool("hadolint"), str(recipe))


def test_a_release_pins_the_published_image(tmp_path: Path) -> None:
    """What the release job does to action.yml: the image it published instead of the
    Dockerfile, and the result is still a valid action; anything unexpected is refused."""
    pinned = tmp_path / "action.yml"
    pinned.write_text(ACTION.read_text())
    image = "ghcr.io/org/prompter-action"

    def pin(*args: str | Path) -> subprocess.CompletedProcess[str]:
        script = ACTION.parent / "scripts" / "pin-action-image"
        return subprocess.run([script, *args], capture_output=True, text=True, check=False)

    done = pin(image, "1.2.3", pinned)
    assert done.returncode == 0, done.stderr
    before, after = ACTION.read_text().splitlines(), pinned.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [("  image: Dockerfile", f"  image: docker://{image}:1.2.3")]
    lint(tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(pinned))
    again = pin(image, "1.2.4", pinned)
    assert again.returncode == 1 and "expected exactly one line" in again.stderr
    for args in ([image, "latest"], ["Not/An/Image", "1.2.3"], [image]):
        bad = pin(*args, pinned)
        assert bad.returncode == 2, (args, bad.stderr)
    assert pinned.read_text().splitlines() == after  # refusals change nothing
