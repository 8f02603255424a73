"""The commands on the record runs keep: `status`, `report` and `clear-state`."""

from __future__ import annotations

import sys

from .. import exits
from .shared import check_owner, load, report_dir, state_path

TYPE_CHECKING = False  # not from typing: importing it costs start-up time (see cli.py)
if TYPE_CHECKING:
    import argparse


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from ..state import StateError, StateStore
    from ..status import status_json, status_text

    store = StateStore(state_path(args))
    try:
        state = store.load()
        check_owner(args, state, store.path)
        holder = store.holder()  # also finds a lock file that is no file
    except StateError as exc:
        print(f"prompter: {exc}", file=sys.stderr)
        return exits.USAGE
    from ..diagnostics import WorkflowError
    from ..words import count

    workflow = None
    broken = False
    try:
        workflow = load(args.workflow) if args.workflow else None
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
        sys.stdout.write(status_text(state, workflow, state_path(args), holder))
    return exits.USAGE if broken else exits.OK


def cmd_clear_state(args: argparse.Namespace) -> int:
    from ..state import StateError, StateStore

    path = state_path(args)
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
                check_owner(args, state, path)
        store.clear()
    except StateError as exc:
        print(f"prompter: {exc}", file=sys.stderr)
        return exits.USAGE
    print(f"state cleared: {path}")
    return exits.OK


def cmd_report(args: argparse.Namespace) -> int:
    from ..report.writer import FORMATS, Format, workflow_for, write_reports
    from ..state import StateError, StateStore

    path = state_path(args)
    try:
        state = StateStore(path).load()
        check_owner(args, state, path)
    except StateError as exc:
        print(f"prompter: {exc}", file=sys.stderr)
        return exits.USAGE
    if not state.tasks:
        print(f"prompter: no task state in {path}: nothing to report yet", file=sys.stderr)
        return exits.USAGE
    folder = report_dir(args)
    workflow, notes = workflow_for(state, folder)
    for note in notes:
        print(f"prompter: note: {note}", file=sys.stderr)
    formats: tuple[Format, ...] = FORMATS if args.format == "all" else (args.format,)
    try:
        written = write_reports(state, folder, workflow, notes, formats)
    except OSError as exc:
        where = exc.filename or folder
        print(f"prompter: {where}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return exits.USAGE
    for report in written:
        print(f"wrote {report}")
    return exits.OK
