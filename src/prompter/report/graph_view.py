"""`prompter graph`: the workflow's graph as mermaid, dot, json or a text table.

Graph mode draws dependencies (an arrow from a dependency to its dependent). Sequential mode
draws transitions: solid for on_success, dotted for on_failure, into a `stop` node where the
run ends.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ..config import Workflow
from . import mermaid

Format = Literal["mermaid", "dot", "json", "text"]
LinkKind = Literal["dependency", "success", "failure"]
STOP = -1  # the pseudo-task where a sequential run ends


@dataclass(frozen=True, slots=True)
class Link:
    source: int
    target: int  # STOP for the end of the run
    kind: LinkKind


def links(workflow: Workflow) -> list[Link]:
    if workflow.mode == "graph":
        return [
            Link(dep, task, "dependency")
            for task, deps in enumerate(workflow.graph.deps)
            for dep in deps
        ]
    out: list[Link] = []
    last = len(workflow.tasks) - 1
    for i, task in enumerate(workflow.tasks):
        transitions: tuple[tuple[LinkKind, str], ...] = (
            ("success", task.on_success),
            ("failure", task.on_failure),
        )
        for kind, value in transitions:
            # `retry` stays on the task, and once its attempts are used up moves on as `next`:
            # that is the edge (sequential mode; in graph mode there are no transitions).
            if value in ("next", "retry"):
                target = i + 1 if i < last else STOP
            elif value == "stop":
                target = STOP
            elif value == "repeat":
                target = i
            else:
                target = workflow.index[value]
            out.append(Link(i, target, kind))
    return out


def render(workflow: Workflow, fmt: Format) -> str:
    return {"mermaid": to_mermaid, "dot": to_dot, "json": to_json, "text": to_text}[fmt](workflow)


def _node_id(task: int) -> str:
    return "stop" if task == STOP else f"t{task}"


def flowchart(
    workflow: Workflow,
    tasks: Collection[int] | None = None,
    css: Mapping[int, str] | None = None,
    class_defs: Mapping[str, str] | None = None,
    thick: Collection[tuple[int, int]] = (),
) -> str:
    """The workflow's mermaid flowchart (or the part of it over `tasks`); raises `TooLarge`.

    Shared by `prompter graph` and the run summary, which colours nodes (`css`: task index ->
    class name defined in `class_defs`) and draws the critical path's edges thick.
    """
    keep = None if tasks is None else set(tasks)
    edges = [
        link
        for link in links(workflow)
        if keep is None or (link.source in keep and (link.target == STOP or link.target in keep))
    ]
    css = css or {}
    thick_edges = set(thick)
    nodes = [
        mermaid.Node(_node_id(i), t.name, css.get(i))
        for i, t in enumerate(workflow.tasks)
        if keep is None or i in keep
    ]
    if any(link.target == STOP for link in edges):
        nodes.append(mermaid.Node("stop", "stop", rounded=True))
    return mermaid.flowchart(
        nodes,
        [
            mermaid.Edge(
                _node_id(link.source),
                _node_id(link.target),
                None if link.kind == "dependency" else link.kind,
                dotted=link.kind == "failure",
                thick=(link.source, link.target) in thick_edges,
            )
            for link in edges
        ],
        class_defs,
    )


def to_mermaid(workflow: Workflow) -> str:
    try:
        return flowchart(workflow)
    except mermaid.TooLarge as too_large:
        return f"%% too large for mermaid ({too_large}); text table instead:\n" + to_text(workflow)


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(workflow: Workflow) -> str:
    lines = ["digraph workflow {", "  rankdir=LR;", "  node [shape=box];"]
    edges = links(workflow)
    lines += [
        f"  {_node_id(i)} [label={_dot_quote(t.name)}];" for i, t in enumerate(workflow.tasks)
    ]
    if any(link.target == STOP for link in edges):
        lines.append('  stop [label="stop", shape=oval];')
    for link in edges:
        attrs = "" if link.kind == "dependency" else f" [label={link.kind}"
        attrs += ", style=dashed]" if link.kind == "failure" else ("]" if attrs else "")
        lines.append(f"  {_node_id(link.source)} -> {_node_id(link.target)}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_json(workflow: Workflow) -> str:
    levels = workflow.graph.levels if workflow.mode == "graph" else range(len(workflow.tasks))
    lines = workflow.task_lines
    tasks = [
        {
            "name": t.name,
            "line": lines[i],
            "depends_on": [workflow.tasks[d].name for d in workflow.graph.deps[i]],
            "wave": levels[i],
            "on_success": t.on_success,
            "on_failure": t.on_failure,
        }
        for i, t in enumerate(workflow.tasks)
    ]
    edges = [
        {
            "from": workflow.tasks[link.source].name,
            "to": None if link.target == STOP else workflow.tasks[link.target].name,
            "kind": link.kind,
        }
        for link in links(workflow)
    ]
    return json.dumps({"mode": workflow.mode, "tasks": tasks, "edges": edges}, indent=2) + "\n"


def to_text(workflow: Workflow) -> str:
    names = [t.name for t in workflow.tasks]
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    if workflow.mode == "graph":
        header = ("wave", "task", "depends on")
        order = workflow.graph.order
        levels = workflow.graph.levels
        rows = [
            (str(levels[i]), names[i], ", ".join(names[d] for d in workflow.graph.deps[i]) or "-")
            for i in order
        ]
    else:
        header = ("#", "task", "on success", "on failure")
        by_source: dict[int, dict[str, str]] = {}
        for link in links(workflow):
            target = "stop" if link.target == STOP else names[link.target]
            by_source.setdefault(link.source, {})[link.kind] = target
        rows = [
            (
                str(i + 1),
                names[i],
                by_source.get(i, {}).get("success", "-"),
                by_source.get(i, {}).get("failure", workflow.tasks[i].on_failure),
            )
            for i in range(len(names))
        ]
    return _table(header, rows)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    out = []
    for row in [header, *rows]:
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(out) + "\n"
