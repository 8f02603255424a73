"""The `prompter` command: parse arguments, dispatch to a command of `commands/`, and map
what ends it (a Ctrl-C, a broken pipe, an invalid workflow, a bug) to exit codes.

Kept import-light (nothing but os, sys, the exit codes of `exits` and the command modules, which
follow the same rule, at module level) so the CLI starts fast, and so that almost all of the
start-up, imports included, runs where `run()` handles Ctrl-C; each command imports what it
needs when it runs.
"""

from __future__ import annotations

import os
import sys

from . import __version__, exits
from .commands.ci import cmd_ci_generate
from .commands.merging import cmd_state_merge
from .commands.record import cmd_clear_state, cmd_report, cmd_status
from .commands.running import cmd_clean, cmd_run
from .commands.workflow import cmd_graph, cmd_init, cmd_plan, cmd_validate

TYPE_CHECKING = False  # not from typing: importing it costs start-up time outside run()
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from types import FrameType
    from typing import Any


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _max_jobs(text: str) -> int:
    import argparse

    value = _positive_int(text)
    if value > 150:  # fanout.grouping.MAX_JOBS: not imported, to keep start-up light
        raise argparse.ArgumentTypeError(f"must be at most 150, got {value}")
    return value


def _path(text: str) -> str:
    """A path option's value: an empty one would quietly mean the current directory."""
    import argparse

    if not text:
        raise argparse.ArgumentTypeError("must not be empty (use . for the current directory)")
    return text


def _job(text: str) -> str:
    """A fan-out job id (`records.JOB_ID`)."""
    import argparse

    from .records import check_job

    try:
        return check_job(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    plan.add_argument(
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="the grouping `ci generate --max-jobs N` writes and its estimate on CI",
    )
    _state_args(plan, "the state whose measured durations it uses")
    plan.set_defaults(handler=cmd_plan)

    ci = commands.add_parser("ci", help="CI workflows that fan the tasks out over jobs")
    ci_commands = ci.add_subparsers(dest="ci_command", metavar="CI_COMMAND", required=True)
    generate = ci_commands.add_parser(
        "generate",
        help="write a GitHub Actions workflow: a job per group of tasks, then a merge",
        description=CI_GENERATE_HELP,
    )
    generate.add_argument("workflow", metavar="WORKFLOW", help="workflow TOML file (graph mode)")
    generate.add_argument(
        "-o", "--output", type=_path, metavar="FILE", help="write FILE (default: stdout)"
    )
    generate.add_argument(
        "--max-jobs",
        type=_max_jobs,
        default=50,
        metavar="N",
        help="at most N group jobs (default: 50, at most 150)",
    )
    generate.add_argument(
        "--uses",
        default="org/prompter-action@v1",
        metavar="REF",
        help="the action the jobs run (default: org/prompter-action@v1; ./ for a checkout)",
    )
    generate.add_argument(
        "--runs-on", default="ubuntu-latest", metavar="LABEL", help="default: ubuntu-latest"
    )
    generate.add_argument(
        "--check",
        action="store_true",
        help="write nothing: exit 0 if FILE is what would be written, else 1",
    )
    generate.set_defaults(handler=cmd_ci_generate)

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
        "--strict-budget",
        action="store_true",
        help="exit 2 before anything runs when the forecast's expected cost exceeds max_cost_usd",
    )
    run.add_argument(
        "--keep-worktrees",
        action="store_true",
        help="isolation = worktree: keep the run's worktrees for inspection",
    )
    run.add_argument(
        "--job",
        type=_job,
        metavar="ID",
        help="the fan-out job this run is part of, recorded for the reports' lanes and costs",
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
        "report",
        help="rebuild junit.xml, summary.md and report.html from the state of the last run",
    )
    report.add_argument(
        "workflow", metavar="WORKFLOW", nargs="?", help="its reports (default report directory)"
    )
    _state_args(report)
    report.add_argument(
        "--format",
        choices=("junit", "markdown", "html", "all"),
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

    state = commands.add_parser("state", help="work on state files (merge)")
    state_commands = state.add_subparsers(dest="state_command", metavar="ACTION", required=True)
    merge = state_commands.add_parser(
        "merge",
        help="merge the states of partial runs (the jobs of a fan-out) into one",
        description=MERGE_HELP,
    )
    merge.add_argument("states", metavar="STATE", nargs="+", type=_path, help="state files")
    merge.add_argument(
        "-o", "--output", required=True, type=_path, metavar="OUT", help="the merged state file"
    )
    merge.add_argument(
        "--workflow",
        type=_path,
        metavar="FILE",
        help="refuse states that are not of this workflow file",
    )
    merge.set_defaults(handler=cmd_state_merge)

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
MERGE_HELP = (
    "Merge state files of one workflow: per task the latest record, every run once. OUT, if it "
    "exists, is merged too; it is written atomically under its lock, and only when every STATE "
    "loads and all are of one workflow (--workflow FILE: of that one)."
)
CI_GENERATE_HELP = (
    "Write a GitHub Actions workflow that runs WORKFLOW's tasks over several jobs: chains of "
    "tasks collapsed, groups merged so that each job's start-up does not dominate, `needs` the "
    "transitive reduction between groups, then one job that merges changes, state and reports. "
    "The file carries a fingerprint of WORKFLOW and these options; --check exits 1 when the file "
    "at -o is no longer what would be written."
)
_DEFAULT_DIR_HELP = ".prompter for prompter.toml, .prompter/NAME for NAME.toml"
COMMANDS = (
    "validate",
    "graph",
    "plan",
    "ci",
    "run",
    "status",
    "clear-state",
    "report",
    "state",
    "clean",
    "init",
)


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
_RUN_VALUED = frozenset(
    {"--task", "--max-parallel", "--state-file", "--report-dir", "--progress", "--job"}
)


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
