"""One table of exit codes (prompter.exits): the README says it, the code uses it, and no
module spells an exit code as a number of its own."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import signal
from pathlib import Path

import prompter
from prompter import exits
from prompter.exits import PrompterError

ROOT = Path(__file__).parents[1]
SRC = ROOT / "src" / "prompter"
README = ROOT / "README.md"

# What a literal exit code looks like where it would be one.
EXITING_CALLS = {"exit", "_exit", "emergency_exit"}  # sys.exit, os._exit, processes.…
EXIT_CODE_FUNCTIONS = re.compile(r"cmd_\w+|main|run|run_action")  # return the process's code


def readme_exit_codes() -> dict[int, str]:
    """`code: meaning` from the README's "Exit codes:" paragraph (`130` / `143` share one)."""
    text = README.read_text(encoding="utf-8")
    paragraph = text[text.index("\nExit codes: ") :].split("\n\n", 1)[0]
    paragraph = " ".join(paragraph.split())
    codes: dict[int, str] = {}
    parts = re.split(r"(?:^|; )((?:`\d+`(?: / )?)+) ", paragraph.removeprefix("Exit codes: "))
    for numbers, meaning in zip(parts[1::2], parts[2::2], strict=True):
        for number in re.findall(r"`(\d+)`", numbers):
            codes[int(number)] = meaning
    return codes


def test_readme_table_is_the_exits_module() -> None:
    codes = readme_exit_codes()
    assert sorted(codes) == sorted(
        {exits.OK, exits.FAILED, exits.USAGE, exits.INTERNAL, exits.SIGINT, exits.SIGTERM}
    )
    assert codes[exits.OK].startswith("every task passed")
    assert codes[exits.FAILED].startswith("a task failed or was skipped")
    assert codes[exits.USAGE].startswith("invalid workflow or usage")
    assert codes[exits.INTERNAL].startswith("internal error")
    assert codes[exits.SIGINT] == codes[exits.SIGTERM]
    assert codes[exits.SIGINT].startswith("interrupted by SIGINT / SIGTERM")
    assert exits.SIGINT == exits.signalled(signal.SIGINT) == 130
    assert exits.SIGTERM == exits.signalled(signal.SIGTERM) == 143


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _all_subclasses(sub)
    return found


def test_every_prompter_error_exits_with_a_code_of_the_readme() -> None:
    for module in pkgutil.walk_packages(prompter.__path__, "prompter."):
        if module.name != "prompter.__main__":  # runs the CLI
            importlib.import_module(module.name)
    errors = {f"{e.__module__}.{e.__name__}": e for e in _all_subclasses(PrompterError)}
    assert sorted(errors) == [
        "prompter.agents.AgentUnavailable",
        "prompter.diagnostics.WorkflowError",
        "prompter.github.carry.CarryError",
        "prompter.github.inputs.InputError",
        "prompter.launch.RunError",
        "prompter.statefile.StateError",
        "prompter.workflow_draft.InitError",
    ]
    codes = readme_exit_codes()
    carry = errors.pop("prompter.github.carry.CarryError")  # a fan-out job's export: exit 1
    assert carry.exit_code == exits.FAILED
    assert "an export that could not be fetched or uploaded" in codes[carry.exit_code]
    for error in errors.values():
        assert error.exit_code == exits.USAGE, error
        assert codes[error.exit_code].startswith("invalid workflow or usage")
    # `init`: "2 usage", "1 not written" (README), or ended by a signal.
    from prompter.workflow_draft import InitError

    assert InitError("x", usage=True).exit_code == exits.USAGE
    assert InitError("x").exit_code == exits.FAILED
    assert InitError("x", exit_code=exits.SIGTERM).exit_code in codes
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert f"{exits.FAILED} not written" in text and f"{exits.USAGE} usage" in text


def _literal_exit_codes(path: Path) -> list[str]:
    """Where `path` spells an exit code as a number: an `EXIT_…` constant of its own, a number
    given to sys.exit / os._exit / emergency_exit, `128 + signal`, a number assigned to an
    `exit_code`, or returned by a function whose result is the process's exit code."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []

    def is_int(node: ast.AST | None) -> bool:
        return isinstance(node, ast.Constant) and type(node.value) is int

    def say(node: ast.AST, what: str) -> None:
        found.append(f"{path.name}:{getattr(node, 'lineno', '?')}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id.startswith("EXIT_"):
            say(node, node.id)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in EXITING_CALLS and any(is_int(a) for a in node.args):
                say(node, f"{name}(<int>)")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            if any(isinstance(n, ast.Constant) and n.value == 128 for n in (node.left, node.right)):
                say(node, "128 + …")
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute | ast.Name) and is_int(node.value):
                    name = target.attr if isinstance(target, ast.Attribute) else target.id
                    if name in ("exit_code", "code"):
                        say(node, f"{name} = <int>")
        elif isinstance(node, ast.FunctionDef) and EXIT_CODE_FUNCTIONS.fullmatch(node.name):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Return) and is_int(inner.value):
                    say(inner, f"return <int> in {node.name}")
    return found


def test_no_module_spells_an_exit_code_of_its_own() -> None:
    found = [
        where
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "exits.py"
        for where in _literal_exit_codes(path)
    ]
    assert found == []


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "probe.py"
    bad.write_text(
        "EXIT_USAGE = 2\n"
        "def cmd_x():\n    return 2\n"
        "def main():\n    sys.exit(130)\n"
        "def handler(signum):\n    processes.emergency_exit(128 + signum)\n"
        "def other():\n    result.exit_code = 2\n    return 1\n",
        encoding="utf-8",
    )
    found = {where.split(": ", 1)[1] for where in _literal_exit_codes(bad)}
    assert found == {
        "EXIT_USAGE",
        "return <int> in cmd_x",
        "exit(<int>)",
        "128 + …",
        "exit_code = <int>",
    }
