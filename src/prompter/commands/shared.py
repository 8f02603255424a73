"""What the commands share: loading the workflow named, and where its state and reports are."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not from typing: importing it costs start-up time (see cli.py)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from pathlib import Path

    from ..config import Workflow
    from ..records import State

LIST_LIMIT = 20  # names shown per line in text output; --json has them all


def load(path: str) -> Workflow:
    """Load or raise; warnings go to stderr either way."""
    import gc

    from ..config import load_workflow
    from ..heap import return_big_blocks

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


def report_dir(args: argparse.Namespace) -> Path:
    """`--report-dir`, else the default for the workflow named (`places.default_report_dir`)."""
    from pathlib import Path

    from ..places import default_report_dir

    return Path(args.report_dir) if args.report_dir else default_report_dir(args.workflow)


def state_path(args: argparse.Namespace) -> Path:
    from pathlib import Path

    return Path(args.state_file) if args.state_file else report_dir(args) / "state.json"


def check_owner(args: argparse.Namespace, state: State, path: Path) -> None:
    """With a WORKFLOW named: a StateError unless the state is that workflow's (or nobody's)."""
    from ..places import workflow_identity
    from ..state import check_owner as check_state_owner

    if args.workflow:
        check_state_owner(state, workflow_identity(args.workflow), args.workflow, path)


def listed(paths: Sequence[str]) -> str:
    """`a, b, c`: the first `LIST_LIMIT` paths, then how many more."""
    more = len(paths) - LIST_LIMIT
    return ", ".join(paths[:LIST_LIMIT]) + (f", … and {more} more" if more > 0 else "")
