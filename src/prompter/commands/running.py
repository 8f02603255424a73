"""The commands that run: `run`, and `clean`, which lands or removes what runs left behind."""

from __future__ import annotations

import sys

from .. import exits
from .shared import listed, load, report_dir

TYPE_CHECKING = False  # not from typing: importing it costs start-up time (see cli.py)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from ..config import Workflow
    from ..launch import RunOptions
    from ..run import RunResult


def cmd_run(args: argparse.Namespace) -> int:
    from ..exits import PrompterError
    from ..progress import choose
    from ..run import run_workflow

    if args.only and not args.task:
        print("prompter: --only needs --task NAME: it runs the named tasks only", file=sys.stderr)
        return exits.USAGE
    workflow = load(args.workflow)
    progress = None if args.dry_run else choose(_progress_mode(args))
    options = _run_options(args)
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
    from ..text import console_line  # what follows can name files an agent chose

    reports = "" if args.dry_run else _reports_after_run(workflow, options)
    for warning in result.warnings:
        print(console_line(f"prompter: warning: {warning}"), file=sys.stderr)
    if result.error is not None:  # after the results: they happened, and the user needs them
        print(f"prompter: {result.error}", file=sys.stderr)
    if progress is not None:
        print(f"state: {options.state_path}  logs: {options.report_dir / 'logs'}/{reports}")
        if result.isolation == "worktree":
            _say_what_landed(result)
        print(console_line(result.changes.line()))
    return result.exit_code


def _progress_mode(args: argparse.Namespace) -> str:
    """`--progress`, or what the hidden flags of older versions ask for."""
    if args.no_progress:
        return "none"
    if args.simple_progress:
        return "plain"
    return str(args.progress)


def _run_options(args: argparse.Namespace) -> RunOptions:
    from pathlib import Path

    from ..launch import RunOptions

    return RunOptions(
        report_dir=report_dir(args),
        state_file=Path(args.state_file) if args.state_file else None,
        max_parallel=args.max_parallel,
        no_parallel=args.no_parallel,
        tasks=tuple(args.task or ()),
        only=args.only,
        fresh=args.fresh,
        dry_run=args.dry_run,
        keep_worktrees=args.keep_worktrees,
        job=args.job,
        strict_budget=args.strict_budget,
    )


def _say_what_landed(result: RunResult) -> None:
    """isolation = worktree: what came into the user's working tree (it names files an agent
    chose: one line each, escapes escaped)."""
    from ..records import RunStatus
    from ..text import console_line
    from ..words import count

    for earlier, paths in result.recovered:
        print(console_line(f"worktrees: {_landed_earlier(earlier, paths)}"))
    n = len(result.landed)
    if n:
        print(
            console_line(
                f"worktrees: {count(n, 'file')} changed in your working tree, "
                f"uncommitted: {listed(result.landed)}"
            )
        )
    elif result.status == RunStatus.INTERRUPTED:  # parked, not landed (see worktrees.park)
        print(
            "worktrees: your working tree is as it was; what passed lands at the next "
            "run or `prompter clean`"
        )
    else:
        print("worktrees: no file changed in your working tree")


def _landed_earlier(run_id: str, paths: Sequence[str]) -> str:
    from ..words import count

    return (
        f"landed the passed work of earlier run {run_id}: {count(len(paths), 'file')} changed "
        f"in your working tree, uncommitted: {listed(paths)}"
    )


def cmd_clean(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    import anyio

    from ..worktrees import GitError, recover, toplevel

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
    from ..text import console_line
    from ..words import count

    for run in runs:
        if run.landing.landed:  # it names files: one line, escapes escaped
            print(console_line(_landed_earlier(run.run_id, run.landing.landed)))
        if warning := run.landing.warning():
            print(console_line(f"prompter: warning: run {run.run_id}: {warning}"), file=sys.stderr)
    print(
        f"removed worktrees and refs of {count(len(runs), 'run')}" if runs else "nothing to clean"
    )
    return exits.OK


def _reports_after_run(workflow: Workflow, options: RunOptions) -> str:
    """junit.xml and summary.md from the state; a failure warns and changes no exit code."""
    from ..report.writer import reports_after_run

    paths, error = reports_after_run(options.state_path, options.report_dir, workflow)
    if error is not None:
        print(f"prompter: warning: reports not written: {error}", file=sys.stderr)
        return ""
    return "  reports: " + " ".join(str(p) for p in paths)
