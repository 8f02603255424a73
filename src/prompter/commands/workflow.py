"""The commands that read a workflow and run nothing: `validate`, `graph`, `plan`, and `init`,
which proposes one."""

from __future__ import annotations

import sys

from .. import exits
from .shared import LIST_LIMIT, load, state_path

TYPE_CHECKING = False  # not from typing: importing it costs start-up time (see cli.py)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from pathlib import Path

    from ..config import Workflow
    from ..forecast import Forecast
    from ..planning import Plan
    from ..records import State


def cmd_validate(args: argparse.Namespace) -> int:
    workflow = load(args.workflow)
    from ..words import count

    detail = f"{count(len(workflow.tasks), 'task')}, {workflow.mode} mode"
    if workflow.mode == "graph":
        waves = workflow.graph.waves()
        # What can run at once: the widest wave (what the plan starts together, one unit per
        # task), capped by the slots; not the slots alone (a chain of two runs one at a time).
        width = min(workflow.slots, max(map(len, waves), default=0))
        detail += (
            f", {count(workflow.graph.edge_count, 'dependency', 'dependencies')}, "
            f"{count(len(waves), 'wave')}, up to {width} in parallel"
        )
        if width < workflow.slots:
            detail += f" ({count(workflow.slots, 'slot')})"
    if warnings := len(workflow.warnings):
        detail += f", {count(warnings, 'warning')}"
    print(f"{args.workflow}: valid ({detail})")
    return exits.OK


def cmd_graph(args: argparse.Namespace) -> int:
    from ..report.graph_view import render

    sys.stdout.write(render(load(args.workflow), args.format))
    return exits.OK


def cmd_plan(args: argparse.Namespace) -> int:
    import json

    from ..forecast import forecast
    from ..planning import make_plan
    from ..state import StateError

    workflow = load(args.workflow)
    try:
        state = _history(args, workflow)
    except StateError as exc:
        print(f"prompter: {exc}", file=sys.stderr)
        return exits.USAGE
    measured = state.durations()
    durations = {t.name: measured[t.name] for t in workflow.tasks if t.name in measured}
    if args.jobs is not None:
        return _plan_jobs(args, workflow, durations)
    plan = make_plan(workflow, max_parallel=args.max_parallel, durations=durations)
    ahead = forecast(state, [plan.names[i] for i in plan.order])
    if args.json:
        out = plan.to_json()
        out["estimate"].update(ahead.to_json())
        print(json.dumps({**out, "working_directory": str(workflow.workdir)}, indent=2))
    else:
        sys.stdout.write(_plan_text(args.workflow, plan, workflow.workdir))
        sys.stdout.write(_forecast_text(ahead))
    return exits.OK


def _plan_jobs(args: argparse.Namespace, workflow: Workflow, durations: dict[str, float]) -> int:
    """`plan --jobs N`: the jobs `ci generate --max-jobs N` writes, simulated on CI."""
    import json

    from ..fanout.ci_workflow import job_ids
    from ..fanout.plan import make_jobs_plan
    from ..text import console_line
    from ..words import count

    if workflow.mode != "graph":
        print(f"{args.workflow}: --jobs needs graph mode", file=sys.stderr)
        return exits.USAGE
    plan = make_jobs_plan(workflow, args.jobs, durations)
    ids = job_ids([plan.names[g[0]] for g in plan.grouping.groups])
    if args.json:
        print(json.dumps(plan.to_json(ids), indent=2))
        return exits.OK
    c = plan.costs
    lines = [
        f"{args.workflow}: {count(len(plan.names), 'task')} in "
        f"{count(len(ids), 'job')} (at most {args.jobs}), "
        f"{count(plan.grouping.edge_count, 'need')} between them"
    ]
    for g, tasks in enumerate(plan.grouping.groups):
        needs = ", ".join(ids[n] for n in plan.grouping.needs[g])
        lines.append(
            console_line(f"  {ids[g]}: {_names_of(plan.names, tasks)}")
            + (f" (needs {needs})" if needs else "")
        )
    lines.append(
        f"estimate: {plan.makespan / 60:.1f} min on CI ({c.overhead:g} s start-up per job, "
        f"{c.concurrency} jobs at once, {c.slots} task{'s' * (c.slots != 1)} at once per job); "
        f"one machine {plan.one_machine / 60:.1f} min; lower bound {plan.lower_bound / 60:.1f} min"
    )
    if not plan.measured:
        lines.append("  (5 min per task: no measured durations yet)")
    print("\n".join(lines))
    return exits.OK


def _names_of(names: Sequence[str], tasks: Sequence[int]) -> str:
    shown = ", ".join(names[i] for i in tasks[:LIST_LIMIT])
    more = len(tasks) - LIST_LIMIT
    return shown + (f", … and {more} more" if more > 0 else "")


def _history(args: argparse.Namespace, workflow: Workflow) -> State:
    """The state `run` keeps, whose measurements the plan and the forecast use: empty when there
    is none, and a warning (planning goes on) when it cannot be read. A state of another
    workflow is a StateError (exit 2): its measurements are not this workflow's."""
    from ..records import State
    from ..state import StateError, StateStore, check_owner

    path = state_path(args)
    try:
        state = StateStore(path).load()
    except StateError as exc:
        print(f"prompter: warning: {exc}; planned without measured durations", file=sys.stderr)
        return State()
    check_owner(state, workflow.identity, args.workflow, path)
    return state


def _forecast_text(ahead: Forecast) -> str:
    """The forecast's lines under the plan: the total, each task with history, the unknown."""
    from ..text import console_line
    from ..words import count

    cost, time = ahead.cost_usd, ahead.duration_s
    unknown = ahead.unknown
    lines = []
    if cost is None:
        lines.append("forecast: no cost history yet")
    else:
        lines.append(
            f"forecast: cost ${cost.expected:.2f} expected, ${cost.high:.2f} high "
            "(from each task's last recorded attempts)"
        )
        if time is not None:
            lines.append(
                f"  task time {time.expected:.1f} s expected, {time.high:.1f} s high "
                "(one task after another)"
            )
        known = [t for t in ahead.tasks if t.cost_usd is not None]
        for task in known[:LIST_LIMIT]:
            assert task.cost_usd is not None
            took = f", {task.duration_s.expected:.1f} s" if task.duration_s else ""
            lines.append(
                console_line(
                    f"  {task.name}: ${task.cost_usd.expected:.2f} (high ${task.cost_usd.high:.2f})"
                    f"{took}, {count(task.attempts, 'attempt')}"
                )
            )
        if len(known) > LIST_LIMIT:
            lines.append(f"  … and {count(len(known) - LIST_LIMIT, 'more task')}")
    if unknown:
        names = ", ".join(unknown[:LIST_LIMIT])
        more = len(unknown) - LIST_LIMIT
        names += f", … and {more} more" if more > 0 else ""
        lines.append(
            console_line(
                f"  unknown (no cost history, not counted): {count(len(unknown), 'task')}: {names}"
            )
        )
    return "\n".join(lines) + "\n"


def _names(plan: Plan, tasks: Sequence[int], sep: str = ", ") -> str:
    shown = sep.join(plan.names[i] for i in tasks[:LIST_LIMIT])
    more = len(tasks) - LIST_LIMIT
    return shown + (f"{sep}… and {more} more" if more > 0 else "")


def _plan_text(path: str, plan: Plan, workdir: Path) -> str:
    from ..text import console_line
    from ..words import count

    u = plan.unit

    def amount(x: float) -> str:
        return f"{x:.1f} s" if u == "s" else f"{x:g} {u}"  # measured: not to the microsecond

    lines = [f"{path}: {count(len(plan.names), 'task')}, {plan.mode} mode"]
    lines.append(console_line(f"working directory: {workdir}"))
    if plan.mode == "graph":
        lines.append(f"order: {_names(plan, plan.order)}")
        lines.append(f"waves ({len(plan.waves)}):")
        lines += [
            f"  {i + 1}. {_names(plan, wave)}" for i, wave in enumerate(plan.waves[:LIST_LIMIT])
        ]
        if len(plan.waves) > LIST_LIMIT:
            lines.append(f"  … and {count(len(plan.waves) - LIST_LIMIT, 'more wave')}")
    else:
        lines.append(f"order when every task passes: {_names(plan, plan.order, ' -> ')}")
    if plan.prechecked:
        which = "every task" if len(plan.prechecked) == len(plan.names) else None
        lines.append(
            f"verify first: {which or _names(plan, plan.prechecked)} (the verify command runs "
            "before any agent; a task it passes needs none)"
        )
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


def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..places import default_report_dir
    from ..workflow_draft import InitError, run_init

    try:
        run_init(
            Path(args.file),
            yes=args.yes,
            force=args.force,
            model=args.model,
            report_dir=Path(args.report_dir) if args.report_dir else default_report_dir(args.file),
        )
    except InitError as exc:
        print(f"prompter init: {exc}", file=sys.stderr)
        return exc.exit_code
    return exits.OK
