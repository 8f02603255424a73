"""The CLI as a user meets it: a real subprocess, exit codes, and a light start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from prompter.cli import main

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "pipeline.toml"


def prompter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prompter", *args], capture_output=True, text=True, check=False
    )


def test_importing_the_cli_loads_no_heavy_module() -> None:
    # Startup cost is import cost: the CLI module must not pull in pydantic, anyio, rich, httpx.
    code = (
        "import sys, prompter.cli; "
        "print(sorted(m for m in ('pydantic', 'anyio', 'rich', 'httpx', 'claude_agent_sdk', "
        "'tomllib', 'json') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_version_and_help() -> None:
    assert prompter("--version").stdout.startswith("prompter ")
    helped = prompter("--help")
    assert helped.returncode == 0
    for command in ("validate", "graph", "plan"):
        assert command in helped.stdout


def test_usage_error_exits_2() -> None:
    for args in ([], ["frobnicate"], ["plan", "--max-parallel", "0", str(EXAMPLE)], ["validate"]):
        done = prompter(*args)
        assert done.returncode == 2, args
        assert "Traceback" not in done.stderr


def test_bundled_example_validates_and_plans() -> None:
    done = prompter("validate", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout
        == f"{EXAMPLE}: valid (4 tasks, graph mode, 3 dependencies, 2 waves, up to 3 in parallel)\n"
    )
    plan = json.loads(prompter("plan", "--json", str(EXAMPLE)).stdout)
    assert plan["estimate"]["parallel"] == 2 and plan["estimate"]["sequential"] == 4


def test_invalid_workflow_exits_2_through_a_real_process(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "v"\ndepends_on = ["a"]\n'
    )
    done = prompter("plan", str(bad))
    assert done.returncode == 2
    assert done.stderr == f"{bad}:5:1: error: task `a` depends on itself\n{bad}: 1 error\n"
    assert done.stdout == ""


def test_graph_formats(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["graph", "--format", "dot", str(EXAMPLE)]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith("digraph workflow {") and "t0 -> t3;" in dot
    assert main(["graph", "--format", "json", str(EXAMPLE)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mode"] == "graph"
    bundle = next(t for t in data["tasks"] if t["name"] == "bundle")
    assert bundle["depends_on"] == ["add_greeting", "add_farewell", "add_notice"]
    assert bundle["wave"] == 1 and bundle["line"] == 36
    assert {"from": "add_greeting", "to": "bundle", "kind": "dependency"} in data["edges"]
    assert main(["graph", "--format", "text", str(EXAMPLE)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split() == ["wave", "task", "depends", "on"]
    assert text[-1].split()[:2] == ["1", "bundle"]


def test_sequential_graph_shows_transitions(capsys) -> None:  # type: ignore[no-untyped-def]
    path = ROOT / "tests" / "compat" / "prompter-0.10" / "examples" / "task-jumping.toml"
    assert main(["graph", "--format", "json", str(path)]) == 0
    edges = json.loads(capsys.readouterr().out)["edges"]
    assert {"from": "build", "to": "fix_build_errors", "kind": "failure"} in edges
    assert {"from": "alert_team", "to": None, "kind": "success"} in edges


def test_broken_pipe_is_not_an_error(tmp_path: Path) -> None:
    wide = tmp_path / "wide.toml"
    wide.write_text(
        "".join(
            f'[[tasks]]\nname = "task_number_{i:06d}"\nprompt = "p"\n'
            'verify_command = "v"\ndepends_on = []\n'
            for i in range(8000)
        )
    )
    done = subprocess.run(
        f"{sys.executable} -m prompter graph --format text {wide} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.split() == ["wave", "task", "depends", "on"]
    assert "Traceback" not in done.stderr and "Error" not in done.stderr
