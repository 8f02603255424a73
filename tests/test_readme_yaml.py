"""Every ```yaml block of the README passes the linters a GitHub user would run on it: actionlint
and check-jsonschema with SchemaStore's schema (a workflow, or an action's metadata). A failure
names the block by its README line, and actionlint's positions are the README's own.

A block is a complete workflow (it has `jobs`) or an action's metadata (it has `runs`). A list of
steps alone is the one fragment this test completes: into a job `example` of a workflow run on
`push` (said in the failure message); anything else is an error. Prefer complete workflows: a
reader can copy them as they are.

The actions the examples and this repository's workflows use are at their current major
versions (MAJORS, as of December 2026: raise them when a new major comes out)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .action_files import REPO, WORKFLOWS, tool

README = REPO / "README.md"

# The current major of each action an example or a workflow of this repository may use.
MAJORS = {
    "actions/checkout": "v7",
    "actions/setup-python": "v7",
    "actions/setup-node": "v7",
    "actions/cache": "v6",
    "actions/upload-artifact": "v7",
    "actions/download-artifact": "v8",
    "peter-evans/create-pull-request": "v8",
    "docker/setup-buildx-action": "v4",
    "docker/login-action": "v4",
    "docker/metadata-action": "v6",
    "docker/build-push-action": "v7",
    "pypa/gh-action-pypi-publish": "release/v1",
}

# A list of steps becomes this workflow's job: the steps start at WRAP_LINES + 1.
WRAPPER = "name: example\non: push\njobs:\n  example:\n    runs-on: ubuntu-latest\n    steps:\n"
WRAP_LINES = WRAPPER.count("\n")


@dataclass(frozen=True)
class Block:
    line: int  # the README line of the block's first line of YAML
    text: str

    @property
    def where(self) -> str:
        return f"README.md:{self.line}"


def yaml_blocks(markdown: str) -> list[Block]:
    blocks = []
    lines = markdown.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)(`{3,}|~{3,})\s*(\S*)", lines[i])
        if not fence:
            i += 1
            continue
        indent, marks, lang = fence.groups()
        body, j = [], i + 1
        while j < len(lines) and not lines[j].strip().startswith(marks):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        if lang.lower() in ("yaml", "yml"):
            blocks.append(Block(line=i + 2, text="".join(body)))
        i = j + 1
    return blocks


BLOCKS = yaml_blocks(README.read_text("utf-8"))


def test_the_readme_has_yaml_examples() -> None:
    assert BLOCKS, "no ```yaml block found: is the fence still ```yaml?"


def test_fences_are_found_with_their_lines() -> None:
    text = "intro\n\n```yaml\na: 1\n```\n\n  ```yml\n  - run: x\n  ```\n```sh\nls\n```\n"
    assert yaml_blocks(text) == [Block(4, "a: 1\n"), Block(8, "- run: x\n")]


def prepare(block: Block, tmp_path: Path) -> tuple[Path, str, int]:
    """The file to lint, the schema, and how many lines precede the block in the file."""
    try:
        data = yaml.safe_load(block.text)
    except yaml.YAMLError as exc:
        pytest.fail(f"{block.where}: not YAML: {exc}", pytrace=False)
    if isinstance(data, dict) and "jobs" in data:
        text, schema, offset = block.text, "vendor.github-workflows", 0
    elif isinstance(data, dict) and "runs" in data:
        text, schema, offset = block.text, "vendor.github-actions", 0
    elif isinstance(data, list) and all(isinstance(s, dict) for s in data):
        lines = block.text.splitlines(keepends=True)
        indented = "".join(f"      {line}" if line.strip() else line for line in lines)
        text, schema, offset = WRAPPER + indented, "vendor.github-workflows", WRAP_LINES
    else:
        pytest.fail(
            f"{block.where}: a ```yaml block must be a complete workflow (with `jobs`), an "
            "action's metadata (with `runs`) or a list of steps",
            pytrace=False,
        )
    path = tmp_path / f"readme-{block.line}.yml"
    path.write_text(text, "utf-8")
    return path, schema, offset


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def problems(block: Block, tmp_path: Path) -> str:
    """What the linters say of a block, at README positions; empty if nothing."""
    path, schema, offset = prepare(block, tmp_path)
    found = []

    def to_readme(match: re.Match[str]) -> str:
        return f"README.md:{block.line + int(match.group(1)) - 1 - offset}:"

    if schema == "vendor.github-workflows":
        lint = run([tool("actionlint"), "-no-color", "-oneline", path.name], path.parent)
        if lint.returncode != 0:
            out = re.sub(
                rf"^{re.escape(path.name)}:(\d+):", to_readme, lint.stdout + lint.stderr, flags=re.M
            )
            found.append(f"actionlint:\n{out.strip()}")
    checked = run([tool("check-jsonschema"), "--builtin-schema", schema, path.name], path.parent)
    if checked.returncode != 0:
        out = (checked.stdout + checked.stderr).replace(f"{path.name}::", f"{block.where}: ")
        found.append(f"check-jsonschema ({schema}):\n{out.strip()}")
    if not found:
        return ""
    wrapped = " (a list of steps, linted as the job of a workflow run on push)" if offset else ""
    return f"{block.where}: the ```yaml block{wrapped}:\n" + "\n".join(found)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_yaml_block_passes_actionlint_and_the_schema(block: Block, tmp_path: Path) -> None:
    said = problems(block, tmp_path)
    assert not said, said


def test_a_broken_block_is_reported_at_its_readme_line(tmp_path: Path) -> None:
    workflow = "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - ru: x\n"
    said = problems(Block(100, workflow), tmp_path)
    assert said.startswith("README.md:100: the ```yaml block:\nactionlint:\nREADME.md:105:"), said
    assert "check-jsonschema" in said
    steps = "- uses: actions/checkout@v7\n- run: echo ${{ github.nope }}\n"
    said = problems(Block(40, steps), tmp_path)
    assert "(a list of steps" in said and "README.md:41:" in said, said
    assert "check-jsonschema" not in said


def uses(text: str) -> list[tuple[int, str, str]]:
    """(line, action, ref) of each `uses: owner/repo@ref` in a YAML text."""
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        m = re.search(r"\buses:\s*['\"]?([\w.-]+/[\w.-]+)(?:/[^@\s'\"]*)?@([^\s'\"#]+)", line)
        if m:
            found.append((n, m.group(1), m.group(2)))
    return found


def test_examples_and_workflows_use_current_major_versions() -> None:
    stale = []
    sources = [(b.where.split(":")[0], b.line, b.text) for b in BLOCKS]
    sources += [(str(w.relative_to(REPO)), 1, w.read_text("utf-8")) for w in WORKFLOWS]
    for name, first, text in sources:
        for n, action, ref in uses(text):
            if action in MAJORS and ref != MAJORS[action]:
                stale.append(f"{name}:{first + n - 1}: {action}@{ref}, not @{MAJORS[action]}")
    assert not stale, "\n".join(stale)


def test_the_readme_says_what_org_stands_for() -> None:
    text = README.read_text("utf-8")
    assert "org/prompter-action@v1" in text
    said = r"`org` stands for the owner .* of the GitHub repository that hosts"
    assert re.search(said, text, re.S)
