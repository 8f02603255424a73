"""The `prompter` command: parse arguments, call the library, map results to exit codes.

Kept import-light (argparse only at module level) so the CLI starts fast; each command
imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    from .config import Workflow
    from .planning import Plan

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERNAL = 70
EXIT_SIGINT = 130

_LIST_LIMIT = 20  # names shown per line in text output; --json has them all


def _load(path: str) -> Workflow:
    """Load or raise; warnings go to stderr either way."""
    from .config import load_workflow

    workflow = load_workflow(path)
    for warning in workflow.warnings:
        print(warning.format(), file=sys.stderr)
    return workflow


def cmd_validate(args: argparse.Namespace) -> int:
    workflow = _load(args.workflow)
    n = len(workflow.tasks)
    detail = f"{n} task{'s' * (n != 1)}, {workflow.mode} mode"
    if workflow.mode == "graph":
        detail += (
            f", {workflow.graph.edge_count} dependencies, {len(workflow.graph.waves())} waves, "
            f"up to {workflow.slots} in parallel"
        )
    warnings = len(workflow.warnings)
    if warnings:
        detail += f", {warnings} warning{'s' * (warnings != 1)}"
    print(f"{args.workflow}: valid ({detail})")
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from .report.graph_view import render

    sys.stdout.write(render(_load(args.workflow), args.format))
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    import json

    from .planning import make_plan

    plan = make_plan(_load(args.workflow), max_parallel=args.max_parallel)
    if args.json:
        print(json.dumps(plan.to_json(), indent=2))
    else:
        sys.stdout.write(_plan_text(args.workflow, plan))
    return EXIT_OK


def _names(plan: Plan, tasks: Sequence[int], sep: str = ", ") -> str:
    shown = sep.join(plan.names[i] for i in tasks[:_LIST_LIMIT])
    more = len(tasks) - _LIST_LIMIT
    return shown + (f"{sep}… and {more} more" if more > 0 else "")


def _plan_text(path: str, plan: Plan) -> str:
    u = plan.unit

    def amount(x: float) -> str:
        return f"{x:g} {u}"

    lines = [f"{path}: {len(plan.names)} tasks, {plan.mode} mode"]
    if plan.mode == "graph":
        lines.append(f"order: {_names(plan, plan.order)}")
        lines.append(f"waves ({len(plan.waves)}):")
        lines += [
            f"  {i + 1}. {_names(plan, wave)}" for i, wave in enumerate(plan.waves[:_LIST_LIMIT])
        ]
        if len(plan.waves) > _LIST_LIMIT:
            lines.append(f"  … and {len(plan.waves) - _LIST_LIMIT} more waves")
    else:
        lines.append(f"order when every task passes: {_names(plan, plan.order, ' -> ')}")
    chain = _names(plan, plan.critical_path, " -> ")
    lines.append(f"critical path: {chain} ({amount(plan.critical_length)})")
    slots = f" with {plan.slots} slot{'s' * (plan.slots != 1)}" if plan.mode == "graph" else ""
    lines.append(
        f"estimate{slots}: sequential {amount(plan.sequential)}, parallel {amount(plan.parallel)}, "
        f"speedup {plan.speedup:.2f}x (lower bound {amount(plan.lower_bound)})"
    )
    if plan.unit == "units":
        lines.append("  (1 unit per task: no measured durations yet)")
    lines += [f"note: {note}" for note in plan.notes]
    return "\n".join(lines) + "\n"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prompter",
        description="Run AI coding agents over a graph of tasks, each checked by a shell command.",
        epilog="Exit codes: 0 ok, 1 a task failed, 2 invalid workflow or usage, 70 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"prompter {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = commands.add_parser(
        "validate", help="check a workflow file and report every problem at once"
    )
    validate.add_argument("workflow", metavar="WORKFLOW", help="workflow TOML file")
    validate.set_defaults(handler=cmd_validate)

    graph = commands.add_parser("graph", help="print the dependency graph")
    graph.add_argument("workflow", metavar="WORKFLOW", help="workflow TOML file")
    graph.add_argument(
        "--format",
        choices=("mermaid", "dot", "json", "text"),
        default="mermaid",
        help="output format (default: mermaid)",
    )
    graph.set_defaults(handler=cmd_graph)

    plan = commands.add_parser(
        "plan", help="show order, waves, critical path and estimated parallel time"
    )
    plan.add_argument("workflow", metavar="WORKFLOW", help="workflow TOML file")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument(
        "--max-parallel",
        type=_positive_int,
        metavar="N",
        help="slots to plan for (default: max_parallel_tasks)",
    )
    plan.set_defaults(handler=cmd_plan)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .diagnostics import WorkflowError

    try:
        code: int = args.handler(args)
        sys.stdout.flush()
        return code
    except WorkflowError as exc:
        print("\n".join(d.format() for d in exc.diagnostics), file=sys.stderr)
        n = len(exc.errors)
        print(f"{args.workflow}: {n} error{'s' * (n != 1)}", file=sys.stderr)
        return EXIT_INVALID
    except BrokenPipeError:  # `prompter graph … | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_SIGINT
    except Exception as exc:
        if os.environ.get("PROMPTER_DEBUG"):
            raise
        print(
            f"prompter: internal error: {type(exc).__name__}: {exc} "
            "(a bug: please report it; PROMPTER_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def run() -> None:
    sys.exit(main())
