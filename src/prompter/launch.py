"""Before a run is recorded: what it checks (the job id, the working directory, the state's
owner, the logs folder, the tasks named), what it selects, its forecast against the budget and
the agents it needs. Each refusal is a `RunError` (exit 2), and nothing has been written yet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import exits
from .agents import Agent, AgentUnavailable, agent_for
from .budget import over_budget
from .config import Workflow
from .forecast import forecast
from .places import log_name
from .records import RunForecast, State, check_job
from .regular import make_dir, refusal
from .selection import Selection, select, tried
from .state import StateError, StateStore, check_owner


class RunError(exits.PrompterError):
    """The run cannot start (bad selection, missing directory, unavailable agent): exit 2."""


@dataclass(frozen=True)
class RunOptions:
    # State, logs and reports; `places.default_report_dir(workflow.path)` unless the user chose.
    report_dir: Path
    state_file: Path | None = None
    max_parallel: int | None = None
    no_parallel: bool = False
    tasks: tuple[str, ...] = ()
    only: bool = False
    fresh: bool = False
    dry_run: bool = False
    keep_worktrees: bool = False  # keep the run's worktrees (one per slot) for inspection
    tasks_from: str = "--task"  # where `tasks` came from, as messages about them name it
    # As root: agent code runs as root too, instead of as the work tree's owner (identity.py).
    agents_as_root: bool = False
    # The fan-out job this run is part of (`records.JOB_ID`), recorded in its RunRecord.
    job: str | None = None
    # A forecast above max_cost_usd stops the run before it starts (exit 2), not only warns.
    strict_budget: bool = False

    @property
    def state_path(self) -> Path:
        return self.state_file or self.report_dir / "state.json"


# -- load --------------------------------------------------------------------------------------


def check_job_id(job: str | None) -> None:
    if job is not None:
        try:
            check_job(job)
        except ValueError as exc:
            raise RunError(f"--job: {exc}") from None


def check_workdir(workflow: Workflow) -> None:
    if not workflow.workdir.is_dir():
        written = workflow.settings.working_directory
        what = "its working directory" if written is None else f"working_directory {written!r}"
        raise RunError(f"{workflow.path}: {what} is not a directory ({workflow.workdir})")


def open_state(store: StateStore, workflow: Workflow, options: RunOptions) -> None:
    """Lock and load the state, refused (StateError) when it belongs to another workflow."""
    state = store.open()
    try:
        check_owner(state, workflow.identity, str(workflow.path), options.state_path)
    except StateError:
        store.abandon()  # the other workflow's state stays exactly as it is
        raise


def check_logs_dir(logs: Path, workflow: Workflow) -> None:
    """Create the logs directory and make sure files can be created in it: better now, with
    exit 2, than at the first task, after the run has started. A directory, FIFO, socket or
    device where a task's log goes is found now too (one that appears later fails that task)."""
    try:
        make_dir(logs)
    except NotADirectoryError as exc:
        raise RunError(f"{exc.filename}: not a directory (task logs go in {logs})") from None
    except OSError as exc:
        raise RunError(f"{logs}: cannot create the logs directory: {exc.strerror or exc}") from None
    if not os.access(logs, os.W_OK | os.X_OK):
        raise RunError(f"{logs}: not writable (task logs go there)")
    names = {log_name(t.name): t.name for t in workflow.tasks}
    try:
        with os.scandir(logs) as entries:  # one listing, not a stat per task
            for entry in entries:
                task = names.get(entry.name)
                if task is None or entry.is_file():
                    continue
                try:
                    mode = os.stat(entry.path).st_mode
                except OSError:  # gone, or a dangling link: the task's own open() will tell
                    continue
                raise RunError(
                    f"{entry.path}: {refusal(entry.path, mode).strerror} (the log of task "
                    f"`{task}` goes there); move it away"
                )
    except OSError as exc:
        raise RunError(f"{logs}: cannot list the logs directory: {exc.strerror or exc}") from None


# -- select ------------------------------------------------------------------------------------


def select_tasks(
    workflow: Workflow, state: State, options: RunOptions, prints: dict[str, str]
) -> Selection:
    """The selection (`selection.select`) of the tasks `options` name, once they are checked."""
    _check_named(workflow, options)
    return select(workflow, state, prints, options.tasks, options.only, options.fresh)


def _check_named(workflow: Workflow, options: RunOptions) -> None:
    """Exit 2 (RunError) for a --task that names no task, or that sequential mode cannot
    follow: it starts from one task, and the transitions decide the rest."""
    index = workflow.index
    unknown = [name for name in options.tasks if name not in index]
    if unknown:
        from .diagnostics import did_you_mean

        name = unknown[0]
        raise RunError(
            f"{options.tasks_from}: no such task `{name}` in {workflow.path}"
            f"{did_you_mean(name, index)}"
        )
    if workflow.mode != "sequential":
        return
    if len(options.tasks) > 1:
        raise RunError(
            f"{options.tasks_from}: sequential mode runs from one task, not {len(options.tasks)}"
        )
    if options.only:
        raise RunError(
            "--only has no meaning in sequential mode: --task NAME starts there and the "
            "transitions decide what runs after it"
        )


# -- forecast ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budgeted:
    forecast: RunForecast
    warning: str | None  # its expected cost exceeds max_cost_usd: said before anything starts


def forecast_budget(
    workflow: Workflow, state: State, selection: Selection, options: RunOptions
) -> Budgeted:
    """What the tasks the run will try are forecast to cost (`forecast.py`), against the budget;
    above it, a warning, or exit 2 (RunError) with `strict_budget`."""
    names = [workflow.tasks[i].name for i in tried(workflow, selection, bool(options.tasks))]
    recorded = forecast(state, names).record(workflow.settings.max_cost_usd)
    over = over_budget(recorded)
    if over is not None and options.strict_budget:
        raise RunError(f"{over}, and the budget is strict: nothing was run")
    warning = f"{over}: the run stops when the budget is reached" if over else None
    return Budgeted(forecast=recorded, warning=warning)


# -- agents ------------------------------------------------------------------------------------


def agents_for_run(
    workflow: Workflow, selection: Selection, problems: list[str] | None = None
) -> dict[str, Agent]:
    """The agents the run needs, each checked before anything runs: exit 2 (RunError) when
    one cannot work here. A Claude task without credentials is that too, unless `problems`
    is given (a dry run): then the message goes there."""
    reach = selection.reach
    tasks = workflow.tasks if reach is None else [workflow.tasks[i] for i in reach]
    needed = {t.agent for t in tasks}
    try:
        agents: dict[str, Agent] = {k: agent_for(k, workflow, reach) for k in sorted(needed)}
    except AgentUnavailable as exc:
        raise RunError(str(exc)) from None
    from .agents.claude import ClaudeAgent

    claude = agents.get("claude")
    if isinstance(claude, ClaudeAgent) and (why := claude.missing_credentials(workflow, reach)):
        message = f"{workflow.path}: {why}; nothing was run"
        if problems is None:
            raise RunError(message)
        problems.append(f"a run would stop here (exit 2): {message}")
    return agents
