"""The README's references stay true to the code: keys, defaults, commands and options."""

from __future__ import annotations

import argparse
import re
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
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```[a-z]*\n(.*?)```", section("Quick start"), re.S)
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text("utf-8")
    assert blocks[1].strip() in ci


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
