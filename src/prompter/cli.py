"""The `prompter` command: parse arguments, call the library, map results to exit codes.

Kept import-light (nothing but os, sys and the exit codes of `exits` at module level) so the
CLI starts fast, and so that almost all of the start-up, imports included, runs where `run()`
handles Ctrl-C; each command imports what it needs when it runs.
"""

from __future__ import annotations

import os
import sys

from . import __version__, exits

TYPE_CHECKING = False  # not from typing: importing it costs start-up time outside run()
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from types import FrameType
    from typing import Any

    from .config import Workflow
    from .planning import Plan
    from .records import State
    from .run import RunOptions

_LIST_LIMIT = 20  # names shown per line in text output; --json has them all


def _load(path: str) -> Workflow:
    """Load or raise; warnings go to stderr either way."""
    import gc

    from .config import load_workflow
    from .heap import return_big_blocks

    return_big_blocks()  # a big prompt is copied a few times: each copy is returned when freed
    # A big workflow is hundreds of thousands of long-lived objects: the collector would scan
    # them again and again while they are built (~20% of load time), and they never die.
    gc.disable()
    try:
        workflow = load_workflow(path)
    finally:
        gc.freeze()
        gc.enable()
    for warning in workflow.warnings:
        print(warning.format(), file=sys.stderr)
    return workflow


def cmd_validate(args: argparse.Namespace) -> int:
    workflow = _load(args.workflow)
    from .words import count

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
    from .report.graph_view import render

    sys.stdout.write(render(_load(args.workflow), args.format))
    return exits.OK


def cmd_plan(args: argparse.Namespace) -> int:
    import json

    from .planning import make_plan
    from .state import StateError

    workflow = _load(args.workflow)
    try:
        durations = _durations(args, workflow)
    except StateError as exc:
        print(f"prompter: {exc}", file=sys.stderr)
        return exits.USAGE
    plan = make_plan(workflow, max_parallel=args.max_parallel, durations=durations)
    if args.json:
        print(json.dumps({**plan.to_json(), "working_directory": str(workflow.workdir)}, indent=2))
    else:
        sys.stdout.write(_plan_text(args.workflow, plan, workflow.workdir))
    return exits.OK


def _durations(args: argparse.Namespace, workflow: Workflow) -> dict[str, float]:
    """The last measured duration of each task of `workflow`, from the state `run` keeps; none
    when there is no state, and a warning (planning goes on) when it cannot be read. A state of
    another workflow is a StateError (exit 2): its durations are not this workflow's."""
    from .state import StateError, StateStore, check_owner

    path = _state_path(args)
    try:
        state = StateStore(path).load()
    except StateError as exc:
        print(f"prompter: warning: {exc}; planned without measured durations", file=sys.stderr)
        return {}
    check_owner(state, workflow.identity, args.workflow, path)
    measured = state.durations()
    return {t.name: measured[t.name] for t in workflow.tasks if t.name in measured}


def _names(plan: Plan, tasks: Sequence[int], sep: str = ", ") -> str:
    shown = sep.join(plan.names[i] for i in tasks[:_LIST_LIMIT])
    more = len(tasks) - _LIST_LIMIT
    return shown + (f"{sep}… and {more} more" if more > 0 else "")


def _plan_text(path: str, plan: Plan, workdir: Path) -> str:
    from .text import console_line
    from .words import count

    u = plan.unit

    def amount(x: float) -> str:
        return f"{x:.1f} s" if u == "s" else f"{x:g} {u}"  # measured: not to the microsecond

    lines = [f"{path}: {count(len(plan.names), 'task')}, {plan.mode} mode"]
    lines.append(console_line(f"working directory: {workdir}"))
    if plan.mode == "graph":
        lines.append(f"order: {_names(plan, plan.order)}")
        lines.append(f"waves ({len(plan.waves)}):")
        lines += [
            f"  {i + 1}. {_names(plan, wave)}" for i, wave in enumerate(plan.waves[:_LIST_LIMIT])
        ]
        if len(plan.waves) > _LIST_LIMIT:
            lines.append(f"  … and {count(len(plan.waves) - _LIST_LIMIT, 'more wave')}")
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


def cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .exits import PrompterError
    from .progress import choose
    from .run import RunOptions, run_workflow

    if args.only and not args.task:
        print("prompter: --only needs --task NAME: it runs the named tasks only", file=sys.stderr)
        return exits.USAGE
    workflow = _load(args.workflow)
    progress_mode = args.progress
    if args.no_progress:
        progress_mode = "none"
    elif args.simple_progress:
        progress_mode = "plain"
    progress = None if args.dry_run else choose(progress_mode)
    options = RunOptions(
        report_dir=_report_dir(args),
        state_file=Path(args.state_file) if args.state_file else None,
        max_parallel=args.max_parallel,
        no_parallel=args.no_parallel,
        tasks=tuple(args.task or ()),
        only=args.only,
        fresh=args.fresh,
        dry_run=args.dry_run,
        keep_worktrees=args.keep_worktrees,
    )
    try:
        result = run_workflow(
            workflow,
            options,
            listeners=[progress] if progress else [],
            background=[progress.heartbeat] if progress else [],
        )
    except PrompterError as exc:  # RunError, StateError: the run could not start
        print(f"prompter: {exc}", file=sys.stderr)
        return exc.exit_code
    from .records import RunStatus
    from .text import console_line  # what follows can name files an agent chose
    from .words import count

    reports = "" if args.dry_run else _reports_after_run(workflow, options)
    for warning in result.warnings:
        print(console_line(f"prompter: warning: {warning}"), file=sys.stderr)
    if result.error is not None:  # after the results: they happened, and the user needs them
        print(f"prompter: {result.error}", file=sys.stderr)
    if progress is not None:
        print(f"state: {options.state_path}  logs: {options.report_dir / 'logs'}/{reports}")
        if result.isolation == "worktree":
            for earlier, paths in result.recovered:
                print(console_line(f"worktrees: {_landed_earlier(earlier, paths)}"))
            n = len(result.landed)
            if n:
                print(
                    console_line(
                        f"worktrees: {count(n, 'file')} changed in your working tree, "
                        f"uncommitted: {_files(result.landed)}"
                    )
                )
            elif result.status == RunStatus.INTERRUPTED:  # parked, not landed (see worktrees.park)
                print(
                    "worktrees: your working tree is as it was; what passed lands at the next "
                    "run or `prompter clean`"
                )
            else:
                print("worktrees: no file changed in your working tree")
        print(console_line(result.changes.line()))
    return result.exit_code


def _files(paths: Sequence[str]) -> str:
    """`a, b, c`: the first `_LIST_LIMIT` paths, then how many more."""
    more = len(paths) - _LIST_LIMIT
    return ", ".join(paths[:_LIST_LIMIT]) + (f", … and {more} more" if more > 0 else "")


def _landed_earlier(run_id: str, paths: Sequence[str]) -> str:
    from .words import count

    return (
        f"landed the passed work of earlier run {run_id}: {count(len(paths), 'file')} changed "
        f"in your working tree, uncommitted: {_files(paths)}"
    )


def cmd_clean(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    import anyio

    from .worktrees import GitError, recover, toplevel

    where = Path(args.dir)
    if not where.is_dir():
        what = "not a directory" if where.exists() else "no such directory"
        print(f"prompter: {where}: {what}", file=sys.stderr)
        return exits.USAGE
    repo = anyio.run(toplevel, where)
    if repo is None and shutil.which("git") is None:
        print("prompter: git is not installed (not found on PATH): cannot clean", file=sys.stderr)
        return exits.USAGE
    if repo is None:
        print(f"prompter: {where} is not in a git repository: nothing to clean", file=sys.stderr)
        return exits.USAGE
    try:
        runs = anyio.run(recover, repo)
    except GitError as exc:  # the repository, not a task: a problem of the environment
        print(f"prompter: {exc}", file=sys.stderr)
        return exits.USAGE
    from .text import console_line
    from .words import count

    for run in runs:
        if run.landing.landed:  # it names files: one line, escapes escaped
            print(console_line(_landed_earlier(run.run_id, run.landing.landed)))
        if warning := run.landing.warning():
            print(console_line(f"prompter: warning: run {run.run_id}: {warning}"), file=sys.stderr)
    print(
        f"removed worktrees and refs of {count(len(runs), 'run')}" if runs else "nothing to clean"
    )
    return exits.OK


def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .init import InitError, run_init
    from .places import default_report_dir

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


def _reports_after_run(workflow: Workflow, options: RunOptions) -> str:
    """junit.xml and summary.md from the state; a failure warns and changes no exit code."""
    from .report.files import reports_after_run

    paths, error = reports_after_run(options.state_path, options.report_dir, workflow)
    if error is not None:
        print(f"prompter: warning: reports not written: {error}", file=sys.stderr)
        return ""
    return "  reports: " + " ".join(str(p) for p in paths)


def cmd_report(args: argparse.Namespace) -> int:
    from .report.files import Format, workflow_for, write_reports
    from .state import StateError, StateStore

    path = _state_path(args)
    try:
        state = StateStore(path).load()
        _check_owner(args, state, path)
    except StateError as exc:
        print(f"prompter: {exc}", file=sys.stderr)
        return exits.USAGE
    if not state.tasks:
        print(f"prompter: no task state in {path}: nothing to report yet", file=sys.stderr)
        return exits.USAGE
    report_dir = _report_dir(args)
    workflow, notes = workflow_for(state, report_dir)
    for note in notes:
        print(f"prompter: note: {note}", file=sys.stderr)
    formats: tuple[Format, ...] = ("junit", "markdown") if args.format == "all" else (args.format,)
    try:
        written = write_reports(state, report_dir, workflow, notes, formats)
    except OSError as exc:
        where = exc.filename or report_dir
        print(f"prompter: {where}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return exits.USAGE
    for report in written:
        print(f"wrote {report}")
    return exits.OK


def _report_dir(args: argparse.Namespace) -> Path:
    """`--report-dir`, else the default for the workflow named (`places.default_report_dir`)."""
    from pathlib import Path

    from .places import default_report_dir

    return Path(args.report_dir) if args.report_dir else default_report_dir(args.workflow)


def _state_path(args: argparse.Namespace) -> Path:
    from pathlib import Path

    return Path(args.state_file) if args.state_file else _report_dir(args) / "state.json"


def _check_owner(args: argparse.Namespace, state: State, path: Path) -> None:
    """With a WORKFLOW named: a StateError unless the state is that workflow's (or nobody's)."""
    from .places import workflow_identity
    from .state import check_owner

    if args.workflow:
        check_owner(state, workflow_identity(args.workflow), args.workflow, path)


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from .state import StateError, StateStore
    from .status import status_json, status_text

    store = StateStore(_state_path(args))
    try:
        state = store.load()
        _check_owner(args, state, store.path)
        holder = store.holder()  # also finds a lock file that is no file
    except StateError as exc:
        print(f"prompter: {exc}", file=sys.stderr)
        return exits.USAGE
    from .diagnostics import WorkflowError
    from .words import count

    workflow = None
    broken = False
    try:
        workflow = _load(args.workflow) if args.workflow else None
    except WorkflowError as exc:
        # A syntax error made while editing must not hide what the runs recorded: the state
        # alone is shown, the errors go above it, and the exit code says the file is invalid.
        print("\n".join(d.format() for d in exc.diagnostics), file=sys.stderr)
        print(
            f"prompter: note: {args.workflow} does not load ({count(len(exc.errors), 'error')}): "
            "the recorded state is shown without it (no tasks not run yet, no changed marks)",
            file=sys.stderr,
        )
        broken = True
    if args.json:
        print(json.dumps(status_json(state, workflow), indent=2))
    else:
        sys.stdout.write(status_text(state, workflow, _state_path(args), holder))
    return exits.USAGE if broken else exits.OK


def cmd_clear_state(args: argparse.Namespace) -> int:
    from .state import StateError, StateStore

    path = _state_path(args)
    store = StateStore(path)
    if not any(p.exists() or p.is_symlink() for p in (path, store.journal_path, store.temp_path)):
        # Nothing to forget; clearing would still create the folder (a mistyped
        # --report-dir) and a lock file in it.
        print(f"nothing to clear: no state at {path}")
        return exits.OK
    try:
        if args.workflow:
            try:
                state = store.load()
            except StateError:
                pass  # damaged: whose it is cannot be told; clear() decides what it deletes
            else:
                _check_owner(args, state, path)
        store.clear()
    except StateError as exc:
        print(f"prompter: {exc}", file=sys.stderr)
        return exits.USAGE
    print(f"state cleared: {path}")
    return exits.OK


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _path(text: str) -> str:
    """A path option's value: an empty one would quietly mean the current directory."""
    import argparse

    if not text:
        raise argparse.ArgumentTypeError("must not be empty (use . for the current directory)")
    return text


def build_parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="prompter",
        description="Run AI coding agents over a graph of tasks, each checked by a shell command.",
        epilog=(
            f"Exit codes: {exits.OK} ok, {exits.FAILED} a task failed or was skipped, "
            f"{exits.USAGE} invalid workflow or usage, {exits.INTERNAL} internal error, "
            f"{exits.SIGINT}/{exits.SIGTERM} interrupted by SIGINT/SIGTERM."
        ),
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
    _state_args(plan, "the state whose measured durations it uses")
    plan.set_defaults(handler=cmd_plan)

    run = commands.add_parser(
        "run", help="run the workflow (also: prompter WORKFLOW)", description=RUN_HELP
    )
    run.add_argument("workflow", metavar="WORKFLOW", help="workflow TOML file")
    run.add_argument(
        "--max-parallel",
        type=_positive_int,
        metavar="N",
        help="slots (default: max_parallel_tasks)",
    )
    run.add_argument("--no-parallel", action="store_true", help="one task at a time")
    run.add_argument(
        "--task",
        action="append",
        metavar="NAME",
        help="run this task and the dependencies it needs that have not passed (repeatable)",
    )
    run.add_argument("--only", action="store_true", help="with --task: without dependencies")
    run.add_argument("--dry-run", action="store_true", help="print what would run; write nothing")
    run.add_argument("--fresh", action="store_true", help="ignore earlier runs' results")
    run.add_argument(
        "--keep-worktrees",
        action="store_true",
        help="isolation = worktree: keep the run's worktrees for inspection",
    )
    _state_args(run)
    run.add_argument(
        "--progress",
        choices=("auto", "rich", "plain", "none"),
        default="auto",
        help="live table on a terminal, timestamped lines elsewhere (default: auto)",
    )
    run.add_argument("--no-progress", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("--simple-progress", action="store_true", help=argparse.SUPPRESS)
    run.set_defaults(handler=cmd_run)

    status = commands.add_parser("status", help="show the tasks' state from earlier runs")
    status.add_argument(
        "workflow", metavar="WORKFLOW", nargs="?", help="also list tasks not run yet"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _state_args(status)
    status.set_defaults(handler=cmd_status)

    report = commands.add_parser(
        "report", help="rebuild junit.xml and summary.md from the state of the last run"
    )
    report.add_argument(
        "workflow", metavar="WORKFLOW", nargs="?", help="its reports (default report directory)"
    )
    _state_args(report)
    report.add_argument(
        "--format",
        choices=("junit", "markdown", "all"),
        default="all",
        help="which report to write (default: all)",
    )
    report.set_defaults(handler=cmd_report)

    clear = commands.add_parser("clear-state", help="forget earlier runs' results")
    clear.add_argument(
        "workflow", metavar="WORKFLOW", nargs="?", help="its state (default report directory)"
    )
    _state_args(clear)
    clear.set_defaults(handler=cmd_clear_state)

    clean = commands.add_parser(
        "clean", help="remove worktrees and refs that earlier runs left (isolation = worktree)"
    )
    clean.add_argument(
        "dir", metavar="DIR", nargs="?", default=".", help="inside the repository (default: .)"
    )
    clean.set_defaults(handler=cmd_clean, workflow=None)

    init = commands.add_parser(
        "init",
        help="let Claude study this repository and propose a workflow",
        description=INIT_HELP,
    )
    init.add_argument(
        "file",
        metavar="FILE",
        nargs="?",
        default="prompter.toml",
        type=_path,
        help="default: prompter.toml",
    )
    init.add_argument("--yes", action="store_true", help="write without asking")
    init.add_argument("--force", action="store_true", help="replace an existing FILE")
    init.add_argument("--model", metavar="M", help="Claude model (default: Claude Code's)")
    init.add_argument(
        "--report-dir",
        type=_path,
        metavar="D",
        help=f"where the transcript goes: D/logs/init.log (default: {_DEFAULT_DIR_HELP})",
    )
    init.set_defaults(handler=cmd_init, workflow=None)
    return parser


RUN_HELP = (
    "Run the workflow: independent tasks in parallel (graph mode) or the 0.10 state machine "
    "(sequential mode). Tasks that passed in an earlier run with an unchanged definition are "
    "not run again unless --fresh is given."
)
INIT_HELP = (
    "Claude reads the repository (read-only tools) and proposes a workflow; prompter validates "
    "it (sending errors back, at most 3 rounds), shows it with its plan, and writes FILE only "
    "if it is valid and confirmed (--yes when unattended). An existing FILE needs --force."
)
_DEFAULT_DIR_HELP = ".prompter for prompter.toml, .prompter/NAME for NAME.toml"
COMMANDS = ("validate", "graph", "plan", "run", "status", "clear-state", "report", "clean", "init")


def _state_args(
    parser: argparse.ArgumentParser, what: str = "where state, logs and reports go"
) -> None:
    parser.add_argument(
        "--report-dir",
        type=_path,
        metavar="D",
        help=f"{what} (default: {_DEFAULT_DIR_HELP})",
    )
    parser.add_argument(
        "--state-file",
        type=_path,
        metavar="P",
        help="state file (default: REPORT_DIR/state.json)",
    )


def compat_argv(argv: Sequence[str]) -> list[str]:
    """Prompter 0.10's command line: `prompter FILE [--dry-run]`, `--status`, `--clear-state`."""
    args = list(argv)
    for flag, command in (("--status", "status"), ("--clear-state", "clear-state")):
        if flag in args and not (args and args[0] in COMMANDS):
            args.remove(flag)  # 0.10's config file, if given, names the workflow: its state
            return [command, *args]
    if args and args[0] not in COMMANDS and not args[0].startswith("-"):
        return ["run", *args]
    if args and args[0].startswith("-") and args[0] not in _GLOBAL and _names_a_workflow(args):
        return ["run", *args]  # 0.10 took options before the file: `prompter --task b wf.toml`
    return args


_GLOBAL = frozenset({"-h", "--help", "--version", "--"})
# `run`'s options that take a value: that value is not the workflow file.
_RUN_VALUED = frozenset({"--task", "--max-parallel", "--state-file", "--report-dir", "--progress"})


def _names_a_workflow(args: Sequence[str]) -> bool:
    """Whether a positional argument (not an option's value) is a `.toml` file."""
    return any(
        a.endswith(".toml") and not a.startswith("-") and (i == 0 or args[i - 1] not in _RUN_VALUED)
        for i, a in enumerate(args)
    )


def _misspelled_command(first: str) -> str | None:
    """The command `first` is a typo of (`stauts` -> `status`), when `first` names no file: a
    bare workflow path is `run`, so a misspelled command would otherwise be "no such file"."""
    import difflib

    if first in COMMANDS or first.startswith("-") or any(c in first for c in "./\\"):
        return None  # a path (`plan.toml` is no typo of `plan`)
    if os.path.lexists(first):  # a workflow file without a suffix: `prompter FILE` runs it
        return None
    match = difflib.get_close_matches(first.lower(), COMMANDS, n=1, cutoff=0.6)
    return match[0] if match else None


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = build_parser()
    if argv and (command := _misspelled_command(argv[0])) is not None:
        parser.error(f"argument COMMAND: invalid choice: {argv[0]!r} (did you mean {command}?)")
    args = compat_argv(argv)
    if args and args[0].startswith("-") and args[0] not in ("-h", "--help", "--version", "--"):
        # Else argparse says "COMMAND is required", which hides the actual mistake.
        parser.error(f"unrecognized arguments: {args[0]}")
    return parser.parse_args(args)


def main(argv: Sequence[str] | None = None) -> int:
    args: argparse.Namespace | None = None
    try:
        # Parsed in here, where a Ctrl-C is handled, not before.
        args = _parse(sys.argv[1:] if argv is None else argv)
        code: int = args.handler(args)
        sys.stdout.flush()
        if _interrupts:
            # A Ctrl-C whose KeyboardInterrupt Python could not raise (see _unraisable): the
            # command went on, but it was interrupted all the same.
            return exits.SIGINT
        return code
    except BrokenPipeError:  # `prompter graph … | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exits.OK
    except KeyboardInterrupt:
        return exits.SIGINT
    except Exception as exc:
        if _interrupts:
            # A Ctrl-C inside an extension (pydantic-core building a validator) can come out
            # wrapped in another exception: the interrupt is the cause, not a bug.
            return exits.SIGINT
        from .diagnostics import WorkflowError, innermost

        if isinstance(exc, WorkflowError):
            print("\n".join(d.format() for d in exc.diagnostics), file=sys.stderr)
            n = len(exc.errors)
            where = (args and args.workflow) or "workflow"
            print(f"{where}: {n} error{'s' * (n != 1)}", file=sys.stderr)
            return exits.USAGE
        if os.environ.get("PROMPTER_DEBUG"):
            raise
        leaf = innermost(exc)  # what a task of a task group raised says what went wrong
        print(
            f"prompter: internal error: {type(leaf).__name__}: {leaf} "
            "(a bug: please report it; PROMPTER_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return exits.INTERNAL


_interrupts: list[int] = []


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if _interrupts:  # a second Ctrl-C: no more grace (as during a run)
        # Children exist only once the processes module is loaded (no import in a handler).
        running = sys.modules.get("prompter.processes")
        if running is not None:
            running.emergency_exit(exits.SIGINT)
        os._exit(exits.SIGINT)
    _interrupts.append(signum)
    raise KeyboardInterrupt


def _unraisable(hook: Callable[[Any], object]) -> Callable[[Any], None]:
    """Python's hook for an exception it cannot raise, wrapped: a Ctrl-C landing in a weakref
    callback or a `__del__` (importlib drops a module lock in one while prompter imports) is
    printed as "Exception ignored" with a traceback, and the program goes on. _on_sigint has
    recorded it: the run answers it as soon as its own handlers are in place, and any other
    command ends with 130 (see main). Nothing to print."""

    def handle(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and _interrupts:
            return
        hook(unraisable)

    return handle


def _escape_what_the_console_cannot_show() -> None:
    """Task names, reasons and output are anyone's text: on a console whose encoding lacks a
    character (PYTHONIOENCODING=ascii, a Latin-1 or C locale) it is printed as an escape
    (`\\u2713`), not an error that ends the run. stderr does this by default; stdout does not."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", None) in (
            "strict",
            "surrogateescape",
        ):
            reconfigure(errors="backslashreplace")


def run() -> None:
    """The `prompter` command. A Ctrl-C at any moment, also while a command is still being
    parsed or is importing what it needs, ends it with 130 and no traceback."""
    try:
        import signal

        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored
            sys.unraisablehook = _unraisable(sys.unraisablehook)
            signal.signal(signal.SIGINT, _on_sigint)
        _escape_what_the_console_cannot_show()
        if os.environ.get("GITHUB_ACTIONS") == "true":
            # The runner reads our output for workflow commands; what we print quotes task names,
            # reasons and file names that an agent may have chosen.
            from .github.commands import InertWriter

            sys.stdout = InertWriter(sys.stdout)
            sys.stderr = InertWriter(sys.stderr)
        code = main()
    except KeyboardInterrupt:
        code = exits.SIGINT
    except BaseException:
        # An interrupt inside an extension module's import can come out as another exception
        # (pydantic_core: a pyo3 PanicException, not an Exception): the interrupt is the cause.
        if not _interrupts:
            raise
        code = exits.SIGINT
    sys.exit(code)
