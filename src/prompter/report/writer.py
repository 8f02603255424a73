"""Writing `junit.xml`, `summary.md` and `report.html`: find the workflow and the repository,
build, write.

The builders (`junit.build_junit`, `summary.build_summary`, `html.build_html`) are pure; this
module does the
I/O around them for `prompter run` (after every run) and `prompter report` (any time later).
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ..config import Workflow
from ..places import DEFAULT_REPORT_ROOT
from ..records import State
from ..regular import make_dir, open_regular, refusal
from ..text import report_line
from .view_model import analyse

Format = Literal["junit", "markdown", "html"]
FORMATS: tuple[Format, ...] = ("junit", "markdown", "html")
FILES: dict[Format, str] = {"junit": "junit.xml", "markdown": "summary.md", "html": "report.html"}


def repo_relative(path: Path) -> str:
    """`path` relative to the root of its git repository (else to its own folder)."""
    path = path.resolve()
    root = path.parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=path.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if done.returncode == 0 and done.stdout.strip():
            root = Path(done.stdout.strip()).resolve()
    except (OSError, subprocess.SubprocessError):
        pass  # no git, or not a repository: the workflow's folder is the root
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def workflow_for(state: State, report_dir: Path | None = None) -> tuple[Workflow | None, list[str]]:
    """The workflow of the state's latest run, if it still loads; else notes saying why not."""
    from ..config import load_workflow
    from ..diagnostics import WorkflowError

    lacking = "junit.xml has no file/line and the summary no dependency graph"
    if not state.runs:
        return None, [f"the state names no workflow (no run recorded): {lacking}"]
    run = state.runs[-1]
    recorded = Path(run.workflow)
    candidates = [Path(run.workflow_at)] if run.workflow_at else [recorded]
    if report_dir is not None and not recorded.is_absolute():
        # The run's folder, by default: a state moved as an artifact, or one from before
        # `workflow_at`. The default folder of a workflow other than prompter.toml is one
        # level further down (`.prompter/NAME`, see places.default_report_dir).
        candidates.append(report_dir.parent / recorded)
        if report_dir.parent.name == DEFAULT_REPORT_ROOT:
            candidates.append(report_dir.parent.parent / recorded)
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return None, [f"workflow {report_line(str(recorded), 200)} not found: {lacking}"]
    try:
        workflow = load_workflow(path)
    except WorkflowError as exc:
        first = report_line(exc.diagnostics[0].format(), 200) if exc.diagnostics else "invalid"
        return None, [f"workflow {path} no longer loads ({first}): {lacking}"]
    return workflow, []


def _write(path: Path, text: str) -> None:
    """Write the whole file or leave the old one: a temporary file renamed over it."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        _refuse_special(path)
        fd = open_regular(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temp, path)
    except OSError as exc:  # the report is what the user asked for, not our temporary file
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    finally:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)


def _refuse_special(path: Path) -> None:
    """A FIFO, socket or device where a report goes is the user's, not a report to replace.
    (A directory is refused by the rename itself.)"""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise refusal(path, mode)


def write_reports(
    state: State,
    report_dir: Path,
    workflow: Workflow | None = None,
    notes: Sequence[str] = (),
    formats: Sequence[Format] = FORMATS,
) -> list[Path]:
    """Build the reports from `state` and write them into `report_dir`; the paths written."""
    from .html import build_html
    from .junit import build_junit
    from .summary import build_summary

    facts = analyse(state, workflow, notes)
    make_dir(report_dir)
    written = []
    for fmt in formats:
        if fmt == "junit":
            file = repo_relative(workflow.path) if workflow is not None else None
            text = build_junit(state, workflow, file=file, facts=facts)
        elif fmt == "html":
            text = build_html(state, workflow, facts=facts)
        else:
            text = build_summary(state, workflow, facts=facts)
        path = report_dir / FILES[fmt]
        _write(path, text)
        written.append(path)
    return written


def reports_after_run(
    state_path: Path, report_dir: Path, workflow: Workflow
) -> tuple[list[Path], str | None]:
    """junit.xml, summary.md and report.html at the end of a run: (paths written, None) or
    ([], why not).

    Never raises: a report that cannot be written must not change the run's outcome.
    """
    try:
        from ..state import StateStore

        return write_reports(StateStore(state_path).load(), report_dir, workflow), None
    except Exception as exc:  # noqa: BLE001 - reports must never change the run's outcome
        if isinstance(exc, OSError) and exc.filename is not None:
            return [], report_line(f"{exc.filename}: {exc.strerror or exc}", 300)
        return [], " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
