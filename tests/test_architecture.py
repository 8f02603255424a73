"""The import rules of docs/architecture.md: the data flows one way."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "prompter"
MODEL = (
    "toml_positions",
    "diagnostics",
    "places",
    "config",
    "config.schema",
    "config.loader",
    "config.messages",
    "lints",
    "graph",
    "admission",
    "planning",
    "fanout",
    "fanout.jobs",
    "fanout.grouping",
    "fanout.ci_workflow",
    "fanout.plan",
    "words",
    "exits",
    "text",
    "agent_limit",
)
SKINS = ("cli", "commands", "workflow_draft", "github")


def imports(module: str) -> set[str]:
    """The prompter modules `module` (dotted, below prompter) imports, at any depth of its code."""
    path = SRC / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = SRC / module.replace(".", "/") / "__init__.py"
    package = module.split(".")[: -1 if path.name != "__init__.py" else None]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                found.add(".".join([*base, node.module]))
            else:
                found |= {".".join([*base, alias.name]) for alias in node.names}
    return found - {"__version__"}


def modules() -> list[str]:
    return [
        ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        for p in sorted(SRC.rglob("*.py"))
        if p.name != "__main__.py"
    ]


def test_the_model_knows_nothing_of_the_engine() -> None:
    for module in MODEL:
        assert imports(module) <= set(MODEL), module


def test_only_a_skin_imports_a_skin() -> None:
    def skin(name: str) -> bool:
        return name.split(".", maxsplit=1)[0] in SKINS

    for module in modules():
        if not skin(module):
            assert not {m for m in imports(module) if skin(m)}, module


def test_the_document_names_every_module() -> None:
    text = (SRC.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    for path in SRC.iterdir():
        if path.suffix == ".py" and not path.name.startswith("__"):
            assert f"`{path.name}`" in text, path.name
        elif path.is_dir() and (path / "__init__.py").exists():
            assert f"`{path.name}/`" in text, path.name


ENGINES = ("scheduler", "sequential")


def test_only_the_run_picks_an_engine() -> None:
    # Everything else reaches an engine through the `engines.Engine` protocol.
    for module in modules():
        if module != "run":
            assert not imports(module) & set(ENGINES), module


def test_no_test_file_imports_another() -> None:
    """Shared fixtures live in conftest.py and shared helpers in helper modules (harness.py,
    junit_read.py, …): a test file imported by another would run its tests twice and tie the
    two files' histories together."""
    tests = Path(__file__).parent
    found = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.rsplit(".", 1)[-1].startswith("test_"):
                    found.append(f"{path.name}:{node.lineno}: imports {name}")
    assert found == []
