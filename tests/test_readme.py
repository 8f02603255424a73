"""The README's references stay true to the code: keys, defaults, commands and options."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from prompter.cli import build_parser
from prompter.config import INHERITED_KEYS, Settings, Task

README = (Path(__file__).parents[1] / "README.md").read_text("utf-8")


def section(title: str) -> str:
    m = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ )", README + "\n# end", re.S | re.M)
    assert m, f"README has no section {title!r}"
    return m.group(1)


def table_defaults(title: str) -> dict[str, str]:
    rows = re.findall(r"^\| `([a-z_]+)` \| [^|]+ \| ([^|]+) \|", section(title), re.M)
    return {key: default.strip() for key, default in rows}


def expected_default(model: type[BaseModel], key: str) -> str:
    field = model.model_fields[key]
    if model is Task and key in INHERITED_KEYS:
        return "from `[settings]`"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        return f"`{value!r}`".replace("'", '"')
    if field.default is PydanticUndefined:
        return "required"
    value = field.default
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"


@pytest.mark.parametrize(("title", "model"), [("`[settings]`", Settings), ("`[[tasks]]`", Task)])
def test_reference_lists_every_key_with_its_default(title: str, model: type[BaseModel]) -> None:
    documented = table_defaults(title)
    assert list(documented) == list(model.model_fields)
    for key, default in documented.items():
        assert default == expected_default(model, key), key


def test_quick_start_has_exactly_two_commands() -> None:
    blocks = re.findall(r"```[a-z]*\n(.*?)```", section("Quick start"), re.S)
    assert len(blocks) == 2
    install, tests = (b.strip() for b in blocks)
    assert "prompter run --fresh examples/pipeline.toml" in install
    assert tests == "./scripts/test"
    script = (Path(__file__).parents[1] / "scripts" / "test").read_text("utf-8")
    assert "npm ci --prefix tests/render" in script
    assert '.venv/bin/python -m pytest "$@"' in script


def test_ci_runs_the_readme_test_command() -> None:
    """The README's test command is scripts/test, and CI runs it as it stands there."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", section("Quick start"), re.S)
    command = blocks[1].strip()
    assert command == "./scripts/test"
    repo = Path(__file__).parents[1]
    assert os.access(repo / "scripts" / "test", os.X_OK)
    ci = (repo / ".ci" / "run").read_text("utf-8").splitlines()
    assert command in ci, "a line of .ci/run is the README's test command, verbatim"


def test_the_test_script_names_what_is_missing_at_once(tmp_path: Path) -> None:
    """Without the system tools the tests need (and no apt-get to install them), scripts/test
    names each of them and stops at once: nothing installed, no venv made, no test run."""
    bare = tmp_path / "bin"
    bare.mkdir()
    for name in ("bash", "dirname", "id"):
        found = shutil.which(name)
        assert found, name
        (bare / name).symlink_to(found)
    (bare / "python3").symlink_to(Path(sys.executable).resolve())  # has venv: not reported
    script = Path(__file__).parents[1] / "scripts" / "test"
    env = {"PATH": str(bare), "HOME": str(tmp_path), "PROMPTER_CHROMIUM": str(tmp_path / "no")}
    for argv in ([str(script), "--check"], [str(script), "tests/test_readme.py"]):
        started = time.monotonic()
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=30, check=False
        )
        assert time.monotonic() - started < 10
        assert done.returncode == 1, done.stderr
        missing = next(line for line in done.stderr.splitlines() if "missing:" in line)
        for tool in ("PROMPTER_CHROMIUM", "git", "xmllint", "cmark-gfm", "node", "npm", "podman"):
            assert tool in missing, (tool, done.stderr)
        assert "python3" not in missing
        assert "apt-get install --no-install-recommends" in done.stderr
        assert "nothing was run" in done.stderr
        assert done.stdout == ""


def test_cli_reference_names_every_command_and_option() -> None:
    cli = section("CLI")
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        assert re.search(rf"^prompter {re.escape(name)}( |$)", cli, re.M), name
        for action in sub._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert flag in cli, f"{name} {flag}"


def test_action_inputs_and_outputs_are_documented() -> None:
    import yaml

    action = yaml.safe_load((Path(__file__).parents[1] / "action.yml").read_text("utf-8"))
    table = re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \|", section("GitHub Action"), re.M)
    documented = {name: default.strip() for name, default in table}
    assert list(documented) == list(action["inputs"])
    for name, spec in action["inputs"].items():
        default = str(spec.get("default", ""))
        assert documented[name] == (f"`{default}`" if default else "—"), name
    outputs = section("GitHub Action").split("Outputs:", 1)[1].split("\n\n", 1)[0]
    for name in action["outputs"]:
        assert f"`{name}`" in outputs, name
