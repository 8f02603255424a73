"""One run of a workflow, as a short pipeline of named stages:

    load → select → agents → prepare isolation → engine → land → outcome → reports

`run_workflow` reads as that list; each stage is a function of its own, those before the run is
recorded (checks, selection, forecast, agents) in `launch`. The engines
(`scheduler` for graph mode, `sequential`) follow `engines.Engine`, and `choose_engine` is the
one place that looks at the workflow's mode to pick one. Signals are `signals`', worktrees
`isolation`'s.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import anyio

from . import changes, exits, identity, isolation, processes
from .admission import Limits, limits_for, task_weights
from .agents import Agent
from .attempts import AttemptContext, AttemptRunner, run_attempt
from .budget import CostBudget
from .config import Workflow
from .diagnostics import innermost
from .engines import Engine, EngineResult
from .events import Listener, RunFinished, RunStarted
from .fingerprints import fingerprints
from .launch import (
    RunError,
    RunOptions,
    agents_for_run,
    check_job_id,
    check_logs_dir,
    check_workdir,
    forecast_budget,
    open_state,
    select_tasks,
)
from .ledger import Ledger
from .recorder import Recorder
from .records import (
    TERMINAL,
    RunForecast,
    RunRecord,
    RunStatus,
    State,
    TaskRecord,
    TaskStatus,
)
from .redaction import Redactor
from .scheduler import GraphScheduler
from .selection import Selection, describe_dry_run
from .sequential import SequentialRunner
from .signals import finish_after_the_loop, watch_signals
from .state import StateError, StateStore, check_owner
from .worktrees import Integration, Landing, isolated

Job = Callable[[], Coroutine[Any, Any, None]]  # a background task that lives as long as the run


@dataclass
class RunResult:
    run_id: str
    status: RunStatus
    exit_code: int
    reason: str | None
    records: dict[str, TaskRecord] = field(default_factory=dict)
    reused: tuple[str, ...] = ()
    not_run: tuple[str, ...] = ()
    landed: tuple[str, ...] = ()  # worktree isolation: paths changed in the user's tree
    isolation: str = "shared"
    # About the user's files: edits made during a run that landing kept (see Landing.warning).
    warnings: tuple[str, ...] = ()
    state_error: StateError | None = None  # a write of the state failed: the run was stopped
    # What made the run exit 2 after it ran (the state could not be written); its results,
    # landing and warnings are still reported.
    error: str | None = None
    changes: changes.Changes = field(default_factory=changes.Changes)  # changes.patch
    # Worktree isolation: the passed work of earlier runs (interrupted, killed) that landed in
    # the user's tree before this run started, as (run id, paths).
    recovered: tuple[tuple[str, tuple[str, ...]], ...] = ()


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def run_workflow(
    workflow: Workflow,
    options: RunOptions,
    listeners: Sequence[Listener] = (),
    background: Sequence[Job] = (),
    out: TextIO | None = None,
) -> RunResult:
    """Run the workflow to the end (or until a signal), keeping state; see RunResult."""
    check_job_id(options.job)
    check_workdir(workflow)
    # As root, agents, verify commands and git run as the tree's owner from here on.
    identity.settle(workflow.workdir, keep_root=options.agents_as_root)
    store = StateStore(options.state_path)
    if options.dry_run:
        return _dry_run(workflow, options, store, out or sys.stdout)
    check_logs_dir(options.report_dir / "logs", workflow)
    open_state(store, workflow, options)
    hidden = changes.ignore_report_dir(options.report_dir, workflow.workdir)
    with store as state:
        prints = fingerprints(workflow)
        selection = select_tasks(workflow, state, options, prints)
        budget = forecast_budget(workflow, state, selection, options)  # exit 2 over a strict budget
        agents = agents_for_run(workflow, selection)  # before the run is recorded: exit 2 is clean
        run = _Run(
            workflow=workflow,
            options=options,
            store=store,
            state=state,
            prints=prints,
            selection=selection,
            agents=agents,
            forecast=budget.forecast,
            budget_warning=budget.warning,
            listeners=listeners,
            background=background,
        )
        result = anyio.run(_execute, run)
        finish_after_the_loop()
        closed = _close(store)
    return _after_close(result, store, closed, hidden)


# -- dry run -----------------------------------------------------------------------------------


def _dry_run(workflow: Workflow, options: RunOptions, store: StateStore, out: TextIO) -> RunResult:
    """Select and check as a run would, say what it would do; run nothing, write nothing."""
    state = store.load()
    check_owner(state, workflow.identity, str(workflow.path), options.state_path)
    selection = select_tasks(workflow, state, options, fingerprints(workflow))
    problems: list[str] = []  # what a dry run tells but does not stop at (credentials)
    try:
        if warning := forecast_budget(workflow, state, selection, options).warning:
            problems.append(warning)
    except RunError as exc:
        problems.append(f"a run would stop here (exit 2): {exc}")
    agents_for_run(workflow, selection, problems)
    describe_dry_run(workflow, selection, out, only_start=bool(options.tasks))
    return RunResult(
        run_id="dry-run",
        status=RunStatus.PASSED,
        exit_code=exits.OK,
        reason=None,
        warnings=tuple(problems),
    )


# -- the engine --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineChoice:
    """The engine the workflow's mode calls for, before it is built (it needs the attempt
    runner, which needs the worktrees, which need to know how many tasks run at once)."""

    slots: int  # tasks at once
    planned: tuple[str, ...]  # what the run announces it will try
    # Earlier passes that stand, as far as known before the run (graph mode; sequential mode
    # finds them as it goes: `EngineResult.answered`).
    reused: tuple[str, ...]
    build: Callable[[AttemptContext, Ledger, AttemptRunner], Engine]


def choose_engine(
    workflow: Workflow, selection: Selection, limits: Limits, state: State, only_start: bool
) -> EngineChoice:
    """The one place that picks the engine by the workflow's mode."""
    names = [t.name for t in workflow.tasks]
    if workflow.mode == "graph":
        weights = task_weights(workflow, state.durations())

        def graph(ctx: AttemptContext, ledger: Ledger, runner: AttemptRunner) -> Engine:
            return GraphScheduler(
                workflow=workflow,
                selected=selection.run,
                ctx=ctx,
                ledger=ledger,
                limits=limits,
                weights=weights,
                attempt_runner=runner,
                max_agents=min(limits.slots, workflow.settings.max_parallel_agents or limits.slots),
            )

        return EngineChoice(
            slots=limits.slots,
            planned=tuple(names[i] for i in selection.run),
            reused=tuple(names[i] for i in sorted(selection.reused)),
            build=graph,
        )

    def sequential(ctx: AttemptContext, ledger: Ledger, runner: AttemptRunner) -> Engine:
        return SequentialRunner(
            workflow=workflow,
            start=selection.start,
            ctx=ctx,
            ledger=ledger,
            reused=selection.reused,
            only_start=only_start,
            attempt_runner=runner,
        )

    return EngineChoice(slots=1, planned=tuple(names), reused=(), build=sequential)


# -- the run -----------------------------------------------------------------------------------


@dataclass
class _Run:
    """What the stages of one run share: its inputs, and what it has to tell the user."""

    workflow: Workflow
    options: RunOptions
    store: StateStore
    state: State
    prints: dict[str, str]
    selection: Selection
    agents: dict[str, Agent]
    forecast: RunForecast
    budget_warning: str | None  # said as the run starts, and with the warnings at its end
    listeners: Sequence[Listener]
    background: Sequence[Job]
    run_id: str = field(default_factory=new_run_id)
    warnings: list[str] = field(default_factory=list)
    signals: list[int] = field(default_factory=list)  # the signals that stopped it

    def __post_init__(self) -> None:
        if self.budget_warning:
            self.warnings.append(self.budget_warning)


@dataclass(frozen=True)
class Ending:
    """How the run ended, as its status, exit code and reason say it."""

    status: RunStatus
    exit_code: int
    reason: str | None


async def _execute(run: _Run) -> RunResult:
    """The stages from the run's start to its result, in order."""
    limits = _limits(run)
    start, record = await _begin(run)
    recorder = Recorder(run.store, record)
    ledger = Ledger(
        run.run_id,
        run.prints,
        recorder,
        run.listeners,
        history=run.state.tasks,
        persist_limit=recorder.agent_limit,
    )
    ctx = _attempt_context(run, ledger)
    choice = choose_engine(run.workflow, run.selection, limits, run.state, bool(run.options.tasks))
    prepared = await _prepare_isolation(run, choice.slots)
    integration = prepared.integration
    engine = choice.build(ctx, ledger, _attempt_runner(run.workflow, integration))
    _announce(run, ledger, choice)
    landing = await _run_engine(run, engine, recorder, ledger, integration)
    delivered = await _deliver(run, start, integration, landing)
    result = engine.result()
    ending = outcome(run.signals, result)
    isolated = "shared" if integration is None else "worktree"
    _record_end(run, ending, delivered, recorder, ledger, isolated)
    names = [t.name for t in run.workflow.tasks]
    reused = choice.reused + tuple(names[i] for i in result.answered)
    records = ledger.records
    standing = set(reused)
    return RunResult(
        run_id=run.run_id,
        status=ending.status,
        exit_code=ending.exit_code,
        reason=ending.reason,
        records=dict(records),
        reused=reused,
        not_run=tuple(n for n in choice.planned if n not in records and n not in standing),
        landed=landing.landed,
        isolation=isolated,
        warnings=tuple(run.warnings),
        state_error=recorder.error,
        changes=delivered,
        recovered=prepared.recovered,
    )


def _limits(run: _Run) -> Limits:
    """The run's limits; a task's demand above a budget is a warning (and clamped)."""
    parallel = 1 if run.options.no_parallel else run.options.max_parallel
    limits, clamped = limits_for(run.workflow, parallel)
    run.warnings.extend(clamped)
    return limits


async def _begin(run: _Run) -> tuple[changes.Start, RunRecord]:
    """Note where the user's tree stands (for `changes.patch`) and record the run's start."""
    options, store, workflow = run.options, run.store, run.workflow
    changes.forget(options.report_dir)
    own = (options.report_dir, store.path, store.journal_path, store.lock_path, store.temp_path)
    selection = run.selection
    start = await changes.begin(workflow.workdir, run.state.runs, bool(selection.reused), own)
    record = RunRecord(
        run_id=run.run_id,
        workflow=str(workflow.path),
        workflow_at=str(workflow.path.absolute()),
        workflow_id=workflow.identity,
        started_at=time.time(),
        base_commit=start.base.commit if start.base else None,
        base_tree=start.base.tree if start.base else None,
        job=options.job,
        forecast=run.forecast,
    )
    store.begin_run(record)
    if start.warning:
        run.warnings.append(start.warning)
    return start, record


def _attempt_context(run: _Run, ledger: Ledger) -> AttemptContext:
    workflow = run.workflow
    s = workflow.settings
    return AttemptContext(
        workdir=workflow.workdir,
        logs_dir=run.options.report_dir / "logs",
        check_interval=s.check_interval,
        agents=run.agents,
        budget=CostBudget(s.max_cost_usd),
        redactor=Redactor.from_environ(
            os.environ, s.agent_env, *(t.agent_env for t in workflow.tasks)
        ),
        emit=ledger.emit,
    )


async def _prepare_isolation(run: _Run, slots: int) -> isolation.Prepared:
    """Worktrees for the tasks, or none (a shared tree); a refusal is exit 2."""
    try:
        prepared = await isolation.prepare(run.workflow, run.run_id, slots, run.options.report_dir)
    except isolation.Refused as exc:
        raise RunError(str(exc)) from None
    run.warnings.extend(prepared.warnings)
    return prepared


def _attempt_runner(workflow: Workflow, integration: Integration | None) -> AttemptRunner:
    if integration is None:
        return run_attempt
    return isolated(integration, workflow.workdir.relative_to(integration.repo), run_attempt)


async def _run_engine(
    run: _Run,
    engine: Engine,
    recorder: Recorder,
    ledger: Ledger,
    integration: Integration | None,
) -> Landing:
    """The engine stage, with the background jobs and the watch on signals and on the state's
    writes beside it; then, whatever happened, the land stage (worktree isolation)."""
    landing = Landing()
    # Prompter becomes the subreaper of all it starts: a daemon an agent or a check starts
    # (setsid, a double fork) is found and killed when its command ends, or at the latest
    # here, at the end of the run.
    async with processes.owning_descendants():
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch_signals, run.signals, engine)
                tg.start_soon(recorder.stop_on_failure, engine)
                for job in run.background:
                    tg.start_soon(job)
                await engine.run()
                tg.cancel_scope.cancel()
        except Exception as exc:
            _close_running(ledger, f"prompter stopped by an internal error ({_leaf(exc)})")
            raise
        finally:
            if integration is not None:
                # After a signal the user's tree stays as it was; the next run lands the work.
                landing = await isolation.land(
                    integration, bool(run.signals), run.options.keep_worktrees, run.warnings
                )
    return landing


async def _deliver(
    run: _Run, start: changes.Start, integration: Integration | None, landing: Landing
) -> changes.Changes:
    """What the run changed in the user's tree, as `changes.patch`."""
    if warning := landing.warning():
        run.warnings.append(warning)
    landed = None
    if integration is not None:
        landed = changes.Landed(integration.base, integration.tip, landing.paths)
    delivered = await changes.finish(start, run.options.report_dir, landed)
    if delivered.warning:
        run.warnings.append(delivered.warning)
    return delivered


def _announce(run: _Run, ledger: Ledger, choice: EngineChoice) -> None:
    ledger.emit(
        RunStarted(
            run_id=run.run_id,
            workflow=str(run.workflow.path),
            mode=run.workflow.mode,
            tasks=choice.planned,
            reused=choice.reused,
            slots=choice.slots,
            warnings=(run.budget_warning,) if run.budget_warning else (),
        )
    )


def outcome(signals: Sequence[int], result: EngineResult) -> Ending:
    """The run's status, exit code and reason: a signal's, else the engine's verdict."""
    if signals:
        return Ending(
            status=RunStatus.INTERRUPTED,
            exit_code=exits.signalled(signals[0]),
            reason=f"interrupted by {signal.Signals(signals[0]).name}",
        )
    if result.failed:
        return Ending(status=RunStatus.FAILED, exit_code=exits.FAILED, reason=result.reason)
    return Ending(status=RunStatus.PASSED, exit_code=exits.OK, reason=result.reason)


def _record_end(
    run: _Run,
    ending: Ending,
    delivered: changes.Changes,
    recorder: Recorder,
    ledger: Ledger,
    isolated: str,
) -> None:
    """The run's end, in the state and then as an event."""
    try:  # also after a failed write: the store keeps the line for close() to try again
        ended = {
            "finished_at": time.time(),
            "status": ending.status,
            "reason": ending.reason,
            "changed_files": len(delivered.files) if delivered.patch else None,
            "isolation": isolated,
        }
        run.store.end_run(recorder.run.model_copy(update=ended))
    except StateError as exc:
        recorder.error = recorder.error or exc
    ledger.emit(RunFinished(run_id=run.run_id, status=ending.status, reason=ending.reason))


def _close_running(ledger: Ledger, reason: str) -> None:
    """Give every task still running a terminal record: a crash must not leave one "running"
    in the state for good."""
    for name, record in list(ledger.records.items()):
        if record.status not in TERMINAL:
            ledger.finish(name, TaskStatus.INTERRUPTED, reason)


def _leaf(exc: BaseException) -> str:
    """`Type: message` of the error inside a group of one (anyio wraps what a task raised)."""
    exc = innermost(exc)
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


# -- after the state is closed -----------------------------------------------------------------


def _close(store: StateStore) -> str | None:
    """Close the store at the end of a run; why it failed, or None. It fails only at the
    compaction: the journal still holds what it held, so the state loads as it is."""
    try:
        store.close()
    except StateError as exc:
        return str(exc)
    return None


def _after_close(
    result: RunResult, store: StateStore, closed: str | None, hidden: str | None
) -> RunResult:
    """A state that could not be written makes the run exit 2 (its results still reported);
    one that could not be compacted, and a report folder left visible, are warnings."""
    if result.state_error is not None:
        saved = (
            f"not all of this run's records could be saved in full ({closed})"
            if store.unsaved
            else "every record was saved at the end"
        )
        result.error = f"the state could not be written: {result.state_error}; {saved}"
        result.exit_code = exits.USAGE
        # What reads the status (the action's output) sees exit 2.
        if result.status == RunStatus.PASSED:
            result.status, result.reason = RunStatus.FAILED, result.error
    elif closed is not None:
        result.warnings += (
            f"the state was not compacted ({closed}); its journal holds this run's records",
        )
    if hidden:
        result.warnings += (hidden,)
    return result
