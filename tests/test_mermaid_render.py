"""`prompter graph --format mermaid` output rendered by real mermaid 11 in headless Chromium.

Every diagram of this module is rendered in ONE Chromium run (the module fixture `batch`);
the tests then look up their diagram's verdict. The screenshot test runs Chromium on its own.
Needs Debian's `chromium` and `npm ci --prefix tests/render` (marker `render`): without them
the session stops before its first test and says what is missing (conftest.py); they never
skip (see tests/mermaid_render.py).
"""

from __future__ import annotations

import json
import struct
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from prompter.config import Workflow, load_workflow
from prompter.report import mermaid
from prompter.report.graph_view import links, to_mermaid

from . import mermaid_render
from .hostile_names import HOSTILE, ISOLATED_NAMES
from .mermaid_render import Verdict, render
from .toml_text import toml_value

TESTS = Path(__file__).resolve().parent
COMPAT = (
    TESTS / "compat" / "prompter-0.10"
    if (TESTS / "compat" / "prompter-0.10").is_dir()
    else Path("/work/shared/compat/prompter-0.10")
)
COMPAT_FILES = sorted(COMPAT.rglob("*.toml"))

pytestmark = pytest.mark.render


def _name_id(name: str) -> str:
    short = "".join(c if c.isascii() and c.isalnum() else "_" for c in name)[:20]
    return f"{(HOSTILE + ISOLATED_NAMES).index(name):02d}-{short or 'x'}"


# -- writing workflows -------------------------------------------------------------------------


@dataclass
class Case:
    key: str
    workflow: Workflow
    diagram: str


def write_workflow(
    path: Path, tasks: Sequence[dict[str, str | Sequence[str]]], **settings: bool
) -> Workflow:
    lines = []
    if settings:
        lines.append("[settings]")
        lines += [f"{k} = {toml_value(v)}" for k, v in settings.items()]
        lines.append("")
    for task in tasks:
        lines.append("[[tasks]]")
        fields = {"prompt": "do it", "verify_command": "true", **task}
        lines += [f"{k} = {toml_value(v)}" for k, v in fields.items()]
        lines.append("")
    path.write_text("\n".join(lines), "utf-8")
    workflow = load_workflow(path)
    assert [t.name for t in workflow.tasks] == [t["name"] for t in tasks], "TOML round trip"
    return workflow


def graph_tasks(names: Sequence[str]) -> list[dict[str, str | Sequence[str]]]:
    """Each task depends on the one or two before it: a ladder of dependency edges."""
    return [{"name": n, "depends_on": list(names[max(0, i - 2) : i])} for i, n in enumerate(names)]


def sequential_tasks(names: Sequence[str]) -> list[dict[str, str | Sequence[str]]]:
    """Jumps by name in both directions, plus next/stop/repeat, so every edge kind appears."""
    n = len(names)
    tasks: list[dict[str, str | Sequence[str]]] = []
    for i, name in enumerate(names):
        task: dict[str, str | Sequence[str]] = {"name": name}
        if i == n - 1:
            task["on_success"] = "stop"
        elif i % 3 == 0:
            task["on_success"] = names[min(i + 2, n - 1)]
        elif i % 3 == 1:
            task["on_success"] = "repeat"
        if i > 0:
            task["on_failure"] = names[i - 1] if i % 2 else "next"
        tasks.append(task)
    return tasks


def js_length(text: str) -> int:
    """`text.length` in JavaScript: UTF-16 code units (what mermaid's maxTextSize counts)."""
    return len(text.encode("utf-16-le")) // 2


def workflow_of_length(path: Path, target: int, pad: str = "x") -> Workflow:
    """A graph workflow (a dependency chain) whose mermaid text is exactly `target` characters."""

    def names(count: int, last: int) -> list[str]:
        out = [f"{i:04d} " + pad * 150 for i in range(count)]
        out[-1] = f"{count - 1:04d} " + pad * last
        return out

    def chain(ns: list[str]) -> list[dict[str, str | Sequence[str]]]:
        return [{"name": n, "depends_on": ns[i - 1 : i]} for i, n in enumerate(ns)]

    def size(ns: list[str]) -> int:
        # Same text as to_mermaid, without a file round trip (checked against it below).
        nodes = [mermaid.Node(f"t{i}", n) for i, n in enumerate(ns)]
        edges = [mermaid.Edge(f"t{i - 1}", f"t{i}") for i in range(1, len(ns))]
        mermaid_max, mermaid.MAX_TEXT = mermaid.MAX_TEXT, 10**9
        try:
            return len(mermaid.flowchart(nodes, edges))
        finally:
            mermaid.MAX_TEXT = mermaid_max

    count = 1
    while size(names(count + 1, 1)) <= target:
        count += 1
    ns = names(count, 1)
    missing = target - size(ns)
    assert 0 <= missing <= 194, missing
    ns = names(count, 1 + missing)
    workflow = write_workflow(path, chain(ns))
    assert len(to_mermaid(workflow)) == target or to_mermaid(workflow).startswith("%%")
    return workflow


# -- the one batch -----------------------------------------------------------------------------


def raw_flowchart(edges: int) -> str:
    lines = ["flowchart TD", *(f"  n{i} --> n{i + 1}" for i in range(edges))]
    return "\n".join(lines) + "\n"


def raw_text_of_length(length: int) -> str:
    """A plain flowchart of exactly `length` characters (wrapped labels, a few nodes)."""
    head = "flowchart TD\n"
    body: list[str] = []
    i = 0
    while len(head) + sum(len(b) for b in body) < length:
        body.append(f'  n{i}["' + "lorem ipsum " * 400 + '"]\n')
        i += 1
    text = head + "".join(body)
    over = len(text) - length
    last = body[-1]
    trimmed = last[: len(last) - 3 - over] + '"]\n'
    text = head + "".join(body[:-1]) + trimmed
    assert len(text) == length
    return text


def bipartite(sources: int, targets: int) -> list[dict[str, str | Sequence[str]]]:
    tops = [f"source {i}" for i in range(sources)]
    return [{"name": n, "depends_on": []} for n in tops] + [
        {"name": f"target {j}", "depends_on": tops} for j in range(targets)
    ]


def build_cases(tmp: Path) -> dict[str, Case]:
    cases: dict[str, Case] = {}

    def add(key: str, workflow: Workflow) -> None:
        cases[key] = Case(key, workflow, to_mermaid(workflow))

    for path in COMPAT_FILES:
        add(f"compat/{path.name}", load_workflow(path))
    for i, name in enumerate(ISOLATED_NAMES):
        neighbours = ["plain first", name, "plain last"]
        add(f"graph/{name}", write_workflow(tmp / f"g{i}.toml", graph_tasks(neighbours)))
        add(
            f"sequential/{name}",
            write_workflow(
                tmp / f"s{i}.toml",
                sequential_tasks(["plain first", "plain second", name, "plain last"]),
                allow_infinite_loops=True,
            ),
        )
    add("graph/all", write_workflow(tmp / "g-all.toml", graph_tasks(HOSTILE)))
    add(
        "sequential/all",
        write_workflow(tmp / "s-all.toml", sequential_tasks(HOSTILE), allow_infinite_loops=True),
    )
    add("edges/500", write_workflow(tmp / "e500.toml", bipartite(20, 25)))
    add("edges/501", write_workflow(tmp / "e501.toml", bipartite(3, 167)))
    add("text/50000", workflow_of_length(tmp / "t50000.toml", mermaid.MAX_TEXT))
    add("text/50001", workflow_of_length(tmp / "t50001.toml", mermaid.MAX_TEXT + 1))
    emoji = [{"name": f"{i:03d}" + "🚀" * 197, "depends_on": []} for i in range(130)]
    add("text/emoji", write_workflow(tmp / "emoji.toml", emoji))
    return cases


RAW = {
    "raw/end-node-id": "flowchart TD\n  end --> a\n",
    "raw/plain": "flowchart TD\n  a --> b\n",
    "raw/501-edges": raw_flowchart(501),
    "raw/text-50000": raw_text_of_length(50_000),
    "raw/text-50001": raw_text_of_length(50_001),
}


@dataclass
class Batch:
    cases: dict[str, Case]
    verdicts: dict[str, Verdict]


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    cases = build_cases(tmp_path_factory.mktemp("mermaid-workflows"))
    diagrams = {key: case.diagram for key, case in cases.items()}
    diagrams |= RAW
    to_render = {k: d for k, d in diagrams.items() if d.startswith("flowchart")}
    verdicts = render(list(to_render.values()))
    return Batch(cases, dict(zip(to_render, verdicts, strict=True)))


def rendered(batch: Batch, key: str) -> tuple[Case, Verdict]:
    case = batch.cases[key]
    assert case.diagram.startswith("flowchart "), f"{key}: not a flowchart:\n{case.diagram[:500]}"
    verdict = batch.verdicts[key]
    assert verdict.ok, f"{key}: mermaid failed: {verdict.error}\n--- diagram ---\n{case.diagram}"
    return case, verdict


def assert_node_literal(case: Case, verdict: Verdict, index: int) -> None:
    """Task `index`'s node shows its name exactly."""
    name = case.workflow.tasks[index].name
    shown = verdict.nodes.get(f"t{index}")
    odd = [unicodedata.name(c, hex(ord(c))) for c in name if not c.isalnum()][:8]
    assert shown == name, (
        f"{case.key}: node t{index} shows {shown!r}, the task is named {name!r} ({odd})\n"
        f"--- diagram ---\n{case.diagram}"
    )
    assert name in verdict.text


def assert_literal_labels(case: Case, verdict: Verdict) -> None:
    """Every task's node shows its name exactly; no HTML from a name reached the SVG."""
    for i in range(len(case.workflow.tasks)):
        assert_node_literal(case, verdict, i)
    kinds = {link.kind for link in links(case.workflow)}
    assert set(verdict.edge_labels) == kinds - {"dependency"}
    stray = {"script", "b", "i", "iframe", "img", "a"} & set(verdict.tags)
    assert not stray, f"{case.key}: a label became HTML elements {stray}\n{case.diagram}"


# -- (0) the harness itself --------------------------------------------------------------------


def test_pinned_mermaid_is_11() -> None:
    pinned = json.loads((TESTS / "render" / "package.json").read_text("utf-8"))
    version = pinned["dependencies"]["mermaid"]
    assert version.startswith("11."), version
    assert version[0].isdigit(), "pin an exact version, not a range"
    assert mermaid_render.mermaid_version() == version


def test_harness_fails_on_what_we_avoid(batch: Batch) -> None:
    assert batch.verdicts["raw/plain"].ok
    bad = batch.verdicts["raw/end-node-id"]
    assert not bad.ok and "Parse error" in bad.error, bad


def test_harness_refuses_to_run_without_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTER_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(RuntimeError, match="chromium not found: install Debian's chromium"):
        render(["flowchart TD\n  a --> b\n"])


def test_harness_refuses_to_run_without_mermaid(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(mermaid_render, "MERMAID_JS", tmp_path / "missing" / "mermaid.min.js")
    with pytest.raises(RuntimeError, match="mermaid not installed: run npm ci --prefix tests/r"):
        render(["flowchart TD\n  a --> b\n"])


# -- (a) the Prompter 0.10 examples ------------------------------------------------------------


@pytest.mark.parametrize("path", COMPAT_FILES, ids=lambda p: p.name)
def test_compat_workflow_renders(batch: Batch, path: Path) -> None:
    case, verdict = rendered(batch, f"compat/{path.name}")
    assert_literal_labels(case, verdict)


def test_compat_files_found() -> None:
    assert len(COMPAT_FILES) >= 5, COMPAT


# -- (b) hostile task names --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["graph", "sequential"])
def test_hostile_names_linked_to_each_other(batch: Batch, mode: str) -> None:
    """All HOSTILE names in one diagram: dependencies, or jumps by name, between them."""
    case, verdict = rendered(batch, f"{mode}/all")
    assert [t.name for t in case.workflow.tasks] == HOSTILE
    assert_literal_labels(case, verdict)


@pytest.mark.parametrize("mode", ["graph", "sequential"])
@pytest.mark.parametrize("name", HOSTILE, ids=_name_id)
def test_hostile_name_renders_literally(batch: Batch, name: str, mode: str) -> None:
    """One test per name, read from the shared diagram, to say which name failed."""
    case, verdict = rendered(batch, f"{mode}/all")
    index = HOSTILE.index(name)
    assert_node_literal(case, verdict, index)
    tag_like = {"script", "b"} & set(verdict.tags)
    assert not tag_like, f"{name!r}: the SVG has {tag_like} elements"


@pytest.mark.parametrize("mode", ["graph", "sequential"])
@pytest.mark.parametrize("name", ISOLATED_NAMES, ids=_name_id)
def test_directive_icon_and_joiner_names_render_literally(
    batch: Batch, name: str, mode: str
) -> None:
    case, verdict = rendered(batch, f"{mode}/{name}")
    assert_literal_labels(case, verdict)


# -- (c) size limits ---------------------------------------------------------------------------


def assert_fallback(case: Case) -> None:
    first, _, rest = case.diagram.partition("\n")
    assert first.startswith("%% too large for mermaid"), first
    assert not any(line.startswith("flowchart") for line in case.diagram.splitlines())
    for task in case.workflow.tasks:
        assert task.name in rest


def test_more_than_500_edges_falls_back_to_text(batch: Batch) -> None:
    case = batch.cases["edges/501"]
    assert len(links(case.workflow)) == 501
    assert_fallback(case)


def test_exactly_500_edges_renders(batch: Batch) -> None:
    case, verdict = rendered(batch, "edges/500")
    assert case.diagram.count(" --> ") == 500 == mermaid.MAX_EDGES
    assert len(verdict.nodes) == 45


def test_mermaid_really_rejects_501_edges(batch: Batch) -> None:
    verdict = batch.verdicts["raw/501-edges"]
    assert not verdict.ok and "Edge limit exceeded" in verdict.error, verdict.error


def test_mermaid_text_limit_is_50000(batch: Batch) -> None:
    assert batch.verdicts["raw/text-50000"].ok, batch.verdicts["raw/text-50000"].error
    over = batch.verdicts["raw/text-50001"]
    assert not over.ok and "Maximum text size" in over.error, over


def test_text_of_exactly_max_text_renders(batch: Batch) -> None:
    case, _ = rendered(batch, "text/50000")
    assert len(case.diagram) == mermaid.MAX_TEXT


def renders_or_falls_back(batch: Batch, key: str) -> None:
    """Too large for mermaid is fine if we said so (the fallback); a broken picture is not."""
    case = batch.cases[key]
    if case.diagram.startswith("%%"):
        assert_fallback(case)
        return
    verdict = batch.verdicts[key]
    assert verdict.ok, (
        f"{key}: to_mermaid gave a flowchart of {len(case.diagram):,} characters "
        f"({js_length(case.diagram):,} UTF-16 code units, mermaid's maxTextSize is 50,000) "
        f"instead of the fallback, and mermaid did not render it: {verdict.error}"
    )


def test_text_one_past_max_text_falls_back(batch: Batch) -> None:
    renders_or_falls_back(batch, "text/50001")


def test_astral_characters_count_twice_against_max_text(batch: Batch) -> None:
    case = batch.cases["text/emoji"]
    if case.diagram.startswith("flowchart"):  # the premise: only UTF-16 counting is over
        assert len(case.diagram) <= mermaid.MAX_TEXT < js_length(case.diagram)
    renders_or_falls_back(batch, "text/emoji")


# -- (d) a screenshot ---------------------------------------------------------------------------


def test_screenshot_of_an_ordinary_graph(tmp_path: Path) -> None:
    names = ["lint", "unit tests", "build", "integration tests", "package", "deploy"]
    tasks: list[dict[str, str | Sequence[str]]] = [
        {"name": "lint", "depends_on": []},
        {"name": "unit tests", "depends_on": []},
        {"name": "build", "depends_on": ["lint"]},
        {"name": "integration tests", "depends_on": ["build", "unit tests"]},
        {"name": "package", "depends_on": ["build"]},
        {"name": "deploy", "depends_on": ["integration tests", "package"]},
    ]
    workflow = write_workflow(tmp_path / "ordinary.toml", tasks)
    png = tmp_path / "out" / "ordinary-graph.png"
    (verdict,) = render([to_mermaid(workflow)], screenshot=png)
    assert verdict.ok, verdict.error
    assert sorted(verdict.nodes.values()) == sorted(names)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 1600)
    assert len(data) > 5 * 1024, f"{png}: {len(data)} bytes, expected a real picture"
