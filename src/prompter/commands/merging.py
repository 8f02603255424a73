"""`prompter state merge`: the states of a fan-out's jobs merged into one state file."""

from __future__ import annotations

import sys

from .. import exits

TYPE_CHECKING = False  # not from typing: importing it costs start-up time (see cli.py)
if TYPE_CHECKING:
    import argparse


def cmd_state_merge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..places import workflow_identity
    from ..state import StateError
    from ..state_merge import merge_files
    from ..text import console_line
    from ..words import count

    identity = None
    if args.workflow is not None:
        if not Path(args.workflow).is_file():
            print(f"prompter: {args.workflow}: no such workflow file", file=sys.stderr)
            return exits.USAGE
        identity = workflow_identity(args.workflow)
    try:
        merged = merge_files(
            Path(args.output), [Path(p) for p in args.states], identity, args.workflow
        )
    except StateError as exc:
        print(f"prompter: {exc}", file=sys.stderr)
        return exits.USAGE
    state = merged.state
    statuses: dict[str, int] = {}
    for record in state.tasks.values():
        statuses[record.status.value] = statuses.get(record.status.value, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    jobs = sorted({r.job for r in state.runs if r.job is not None})
    line = (
        f"merged {count(merged.inputs, 'state')} into {merged.path}: "
        f"{count(len(state.tasks), 'task')}"
        + (f" ({tally})" if tally else "")
        + f", {count(len(state.runs), 'run')}"
        + (f", {count(len(jobs), 'job')}: {', '.join(jobs)}" if jobs else "")
    )
    print(console_line(line))
    return exits.OK
