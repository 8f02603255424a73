"""One run of a workflow: selection, resume, state, signals, progress, and the exit code.

Wiring only: the scheduling lives in `scheduler` (graph mode) and `sequential`; this module
connects them to the state store, the console and the process's signals.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import anyio

from . import changes, exits, identity, processes
from .admission import limits_for, task_weights
from .agents import Agent, AgentUnavailable, agent_for
from .attempts import AttemptContext, AttemptRunner, log_name, run_attempt
from .budget import CostBudget
from .config import Workflow
from .diagnostics import innermost
from .events import Listener, RunFinished, RunStarted
from .fingerprints import fingerprints
from .ledger import Ledger
from .places import DEFAULT_REPORT_ROOT
from .planning import happy_path
from .records import TERMINAL, RunRecord, RunStatus, State, TaskRecord, TaskStatus
from .redaction import Redactor
from .regular import make_dir, refusal
from .scheduler import GraphScheduler
from .sequential import SequentialRunner
from .source import SourceMap
from .state import StateError, StateStore, check_owner
from .text import console_line
from .words import count
from .worktrees import (
    GitError,
    Integration,
    Landing,
    Unconfined,
    confined_source,
    dependency_links,
    git_dir,
    isolated,
    recover,
    toplevel,
    worktrees_unfit,
)

Job = Callable[[], Coroutine[Any, Any, None]]  # a background task that lives as long as the run


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

    @property
    def state_path(self) -> Path:
        return self.state_file or self.report_dir / "state.json"


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


@dataclass(frozen=True)
class Selection:
    """What this run will try, and what an earlier run already did."""

    run: tuple[int, ...]  # graph mode: tasks to run; sequential: the start task alone
    reused: frozenset[int]  # passed before with an unchanged definition
    start: int = 0  # sequential mode


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def select(
    workflow: Workflow, state: State, options: RunOptions, prints: dict[str, str]
) -> Selection:
    index = workflow.index
    unknown = [name for name in options.tasks if name not in index]
    if unknown:
        from .diagnostics import did_you_mean

        name = unknown[0]
        raise RunError(
            f"{options.tasks_from}: no such task `{name}` in {workflow.path}"
            f"{did_you_mean(name, index)}"
        )
    reused: set[int] = set()
    if not options.fresh:
        for i, task in enumerate(workflow.tasks):
            record = state.tasks.get(task.name)
            if (
                record is not None
                and record.status is TaskStatus.PASSED
                and record.fingerprint == prints[task.name]
            ):
                reused.add(i)
    if workflow.mode == "graph":
        # A pass counts only while everything it was built on stands: a dependency that runs
        # again (it failed, was skipped, changed, or a pass under --only came before it)
        # makes its dependents run after it.
        deps = workflow.graph.deps
        for i in workflow.graph.order:
            if i in reused and any(d not in reused for d in deps[i]):
                reused.discard(i)
    named = [index[n] for n in options.tasks]
    if workflow.mode == "sequential":
        start = named[0] if named else 0
        if len(named) > 1:
            raise RunError(
                f"{options.tasks_from}: sequential mode runs from one task, not {len(named)}"
            )
        if options.only:
            raise RunError(
                "--only has no meaning in sequential mode: --task NAME starts there and the "
                "transitions decide what runs after it"
            )
        return Selection(run=(start,), reused=frozenset(reused - set(named)), start=start)
    if not named:  # every task that did not pass, in file order (no set of thousands of ints)
        run = tuple(i for i in range(len(workflow.tasks)) if i not in reused)
        return Selection(run=run, reused=frozenset(reused))
    if options.only:
        chosen = set(named)
    else:  # the named tasks, plus whatever they need that has not passed yet
        chosen = set(named)
        stack = list(named)
        while stack:
            for dep in workflow.graph.deps[stack.pop()]:
                if dep not in chosen and dep not in reused:
                    chosen.add(dep)
                    stack.append(dep)
    return Selection(run=tuple(sorted(chosen)), reused=frozenset(reused - chosen))


def _agents(
    workflow: Workflow, selection: Selection, problems: list[str] | None = None
) -> dict[str, Agent]:
    """The agents the run needs, each checked before anything runs: exit 2 (RunError) when
    one cannot work here. A Claude task without credentials is that too, unless `problems`
    is given (a dry run): then the message goes there."""
    needed = {workflow.tasks[i].agent for i in selection.run}
    if workflow.mode == "sequential":  # jumps may reach any task
        needed = {t.agent for t in workflow.tasks}
    try:
        # Graph mode checks only the tasks this run starts; jumps may reach any task.
        tasks = selection.run if workflow.mode == "graph" else None
        agents: dict[str, Agent] = {k: agent_for(k, workflow, tasks) for k in sorted(needed)}
    except AgentUnavailable as exc:
        raise RunError(str(exc)) from None
    from .agents.claude import ClaudeAgent

    claude = agents.get("claude")
    if isinstance(claude, ClaudeAgent) and (why := claude.missing_credentials(workflow, tasks)):
        message = f"{workflow.path}: {why}; nothing was run"
        if problems is None:
            raise RunError(message)
        problems.append(f"a run would stop here (exit 2): {message}")
    return agents


def describe_dry_run(
    workflow: Workflow, selection: Selection, out: TextIO, only_start: bool = False
) -> None:
    names = [t.name for t in workflow.tasks]
    if workflow.mode == "graph":
        if len(selection.run) == len(workflow.tasks):  # all of them: no set of their indices
            order: Sequence[int] = workflow.graph.order
        else:
            chosen = set(selection.run)
            order = [i for i in workflow.graph.order if i in chosen]
        out.write(f"dry run: would run {count(len(order), 'task')} in graph mode:\n")
        for i in order:
            deps = [names[d] for d in workflow.graph.deps[i]]
            out.write(f"  {names[i]}" + (f"  (after {', '.join(deps)})" if deps else "") + "\n")
        for i in sorted(selection.reused):
            out.write(f"  {names[i]}: passed in an earlier run, unchanged: not run again\n")
    else:
        path, note = happy_path(workflow, selection.start, only_start)
        out.write(
            f"dry run: sequential mode, from {names[selection.start]}; if every task passes "
            "at its first attempt, in this order:\n"
        )
        reusing = True  # an earlier pass stands until the run executes a task
        for i in path:
            reusing = reusing and i in selection.reused
            why = "  (passed in an earlier run, unchanged: not run again)" if reusing else ""
            out.write(f"  {names[i]}{why}\n")
        if note:
            out.write(f"  then {note}\n")
    out.write(f"dry run: tasks would run in {console_line(str(workflow.workdir))}\n")
    out.write("dry run: nothing was run and no state was written\n")


async def _watch_signals(stop: list[int], engine: GraphScheduler | SequentialRunner) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals, _backstop():
        if _interrupted_before():
            stop.append(signal.SIGINT)
            engine.stop("interrupted by SIGINT")
        async for signum in signals:
            if stop:  # a second signal: no more grace
                processes.emergency_exit(exits.signalled(signum))
            stop.append(signum)
            engine.stop(f"interrupted by {signal.Signals(signum).name}")


def _interrupted_before() -> bool:
    """Whether the `prompter` command had a Ctrl-C before the run's handlers took over that did
    not end it: one Python could not raise where it landed (a weakref callback while importing;
    see cli._unraisable). The run stops at once, as on a Ctrl-C now."""
    cli = sys.modules.get("prompter.cli")
    return bool(getattr(cli, "_interrupts", None))


STOP_WITHIN_S = 5.0


def _give_up(signum: int) -> None:
    """What a second signal does: kill every child, exit at once (the state is as SIGKILL
    leaves it: every record written so far, loadable)."""
    processes.emergency_exit(exits.signalled(signum))


@contextlib.contextmanager
def _backstop() -> Iterator[None]:
    """A deadline behind the orderly stop on a signal, which is the event loop's work: should
    the loop be stuck in a system call (a write to a console pipe nobody reads), it never gets
    to the signal, and Ctrl-C or SIGTERM would go unanswered for good.

    Python runs a signal's handler in the main thread even then: the stuck call is interrupted,
    the handler runs, the call is retried. Put over the event loop's handler (which only wakes
    the loop), this one also starts a timer: a run not stopped STOP_WITHIN_S after the signal
    exits as on a second signal, and a second signal does at once, loop or no loop.
    """
    sigs = (signal.SIGINT, signal.SIGTERM)
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in sigs}
    timers: list[threading.Timer] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if timers:
            _give_up(signum)
        timer = threading.Timer(STOP_WITHIN_S, _give_up, (signum,))
        timer.daemon = True
        timers.append(timer)
        timer.start()
        chained = previous[signum]
        if callable(chained):
            chained(signum, frame)

    for sig in sigs:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for timer in timers:
            timer.cancel()
        for signum, held in previous.items():
            signal.signal(signum, held)


class _Recorder:
    """The ledger's writes into the store. The first failed write (a full disk) stops the run
    rather than crashing it: what runs is interrupted, nothing new starts, and the store keeps
    every record it could not write for `close()` to try again (see `state`)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.error: StateError | None = None
        self.failed = anyio.Event()

    def __call__(self, record: TaskRecord, durable: bool) -> None:
        try:
            self.store.record(record, durable=durable)
        except StateError as exc:
            if self.error is None:
                self.error = exc
                self.failed.set()

    async def stop_on_failure(self, engine: GraphScheduler | SequentialRunner) -> None:
        await self.failed.wait()  # not from inside the write: the engine is mid-step there
        engine.stop(f"run stopped: the state cannot be written ({self.error})")


def _close_running(ledger: Ledger, reason: str) -> None:
    """Give every task still running a terminal record: a crash must not leave one "running"
    in the state for good."""
    for name, record in list(ledger.records.items()):
        if record.status not in TERMINAL:
            ledger.finish(name, TaskStatus.INTERRUPTED, reason)


async def _execute(
    workflow: Workflow,
    selection: Selection,
    prints: dict[str, str],
    options: RunOptions,
    store: StateStore,
    state: State,
    listeners: Sequence[Listener],
    background: Sequence[Job],
    agents: dict[str, Agent],
) -> RunResult:
    run_id = new_run_id()
    changes.forget(options.report_dir)
    own = (options.report_dir, store.path, store.journal_path, store.lock_path, store.temp_path)
    start = await changes.begin(workflow.workdir, state.runs, bool(selection.reused), own)
    run = RunRecord(
        run_id=run_id,
        workflow=str(workflow.path),
        workflow_at=str(workflow.path.absolute()),
        workflow_id=workflow.identity,
        started_at=time.time(),
        base_commit=start.base.commit if start.base else None,
        base_tree=start.base.tree if start.base else None,
    )
    store.begin_run(run)
    recorder = _Recorder(store)
    ledger = Ledger(run_id, prints, recorder, listeners, history=state.tasks)
    limits, clamped = limits_for(workflow, 1 if options.no_parallel else options.max_parallel)
    s = workflow.settings
    agent_limit = min(limits.slots, s.max_parallel_agents or limits.slots)
    ctx = AttemptContext(
        workdir=workflow.workdir,
        logs_dir=options.report_dir / "logs",
        check_interval=s.check_interval,
        agents=agents,
        # A limiter that cannot bind would only cost time on every attempt.
        agent_slots=anyio.CapacityLimiter(agent_limit) if agent_limit < limits.slots else None,
        budget=CostBudget(s.max_cost_usd),
        redactor=Redactor.from_environ(
            os.environ, s.agent_env, *(t.agent_env for t in workflow.tasks)
        ),
        emit=ledger.emit,
    )
    names = [t.name for t in workflow.tasks]
    # Graph mode knows up front what an earlier pass answers; sequential mode only as it goes
    # (a pass stands until the run executes a task): its RunStarted names none.
    reused = tuple(names[i] for i in sorted(selection.reused)) if workflow.mode == "graph" else ()
    slots = limits.slots if workflow.mode == "graph" else 1
    warnings: list[str] = list(clamped)  # demands above a budget (admission.limits_for)
    if start.warning:
        warnings.append(start.warning)
    recovered: list[tuple[str, tuple[str, ...]]] = []
    line = await _integration(workflow, run_id, slots, options.report_dir, warnings, recovered)
    runner: AttemptRunner = run_attempt
    if line is not None:
        subdir = workflow.workdir.relative_to(line.repo)
        runner = isolated(line, subdir, run_attempt)
    engine: GraphScheduler | SequentialRunner
    if workflow.mode == "graph":
        weights = task_weights(workflow, state.durations())
        engine = GraphScheduler(
            workflow, selection.run, ctx, ledger, limits, weights, attempt_runner=runner
        )
        planned = tuple(names[i] for i in selection.run)
    else:
        engine = SequentialRunner(
            workflow,
            selection.start,
            ctx,
            ledger,
            selection.reused,
            only_start=bool(options.tasks),
            attempt_runner=runner,
        )
        planned = tuple(names)
    ledger.emit(
        RunStarted(
            run_id=run_id,
            workflow=str(workflow.path),
            mode=workflow.mode,
            tasks=planned,
            reused=reused,
            slots=slots,
        )
    )
    signals: list[int] = []
    landing = Landing()
    # Prompter becomes the subreaper of all it starts: a daemon an agent or a check starts
    # (setsid, a double fork) is found and killed when its command ends, or at the latest
    # here, at the end of the run.
    async with processes.owning_descendants():
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_signals, signals, engine)
                tg.start_soon(recorder.stop_on_failure, engine)
                for job in background:
                    tg.start_soon(job)
                await engine.run()
                tg.cancel_scope.cancel()
        except Exception as exc:
            _close_running(ledger, f"prompter stopped by an internal error ({_leaf(exc)})")
            raise
        finally:
            if line is not None:
                with anyio.CancelScope(shield=True):
                    await _last_refs_check(line, warnings)
                    if signals:  # the user's tree stays as it was; the next run lands it
                        await line.park()
                    else:
                        landing = await line.apply()
                        await line.cleanup(keep_worktrees=options.keep_worktrees)
    if warning := landing.warning():
        warnings.append(warning)
    landed = None if line is None else changes.Landed(line.base, line.tip, landing.paths)
    delivered = await changes.finish(start, options.report_dir, landed)
    if delivered.warning:
        warnings.append(delivered.warning)

    records = ledger.records
    failed = any(r.status is not TaskStatus.PASSED for r in records.values())
    reason: str | None = None
    if signals:
        status, code = RunStatus.INTERRUPTED, exits.signalled(signals[0])
        reason = f"interrupted by {signal.Signals(signals[0]).name}"
    elif isinstance(engine, SequentialRunner):
        sequential_failed = engine.failed_run or any(
            r.status is TaskStatus.FAILED for r in records.values()
        )
        status, code = (
            (RunStatus.FAILED, exits.FAILED) if sequential_failed else (RunStatus.PASSED, exits.OK)
        )
        reason = engine.stop_reason
    else:
        status, code = (RunStatus.FAILED, exits.FAILED) if failed else (RunStatus.PASSED, exits.OK)
        reason = engine.stop_reason
    try:  # also after a failed write: the store keeps the line for close() to try again
        ended = {
            "finished_at": time.time(),
            "status": status,
            "reason": reason,
            "changed_files": len(delivered.files) if delivered.patch else None,
        }
        store.end_run(run.model_copy(update=ended))
    except StateError as exc:
        recorder.error = recorder.error or exc
    ledger.emit(RunFinished(run_id=run_id, status=status, reason=reason))
    if isinstance(engine, SequentialRunner):
        reused = tuple(names[i] for i in engine.answered)
    not_run = tuple(n for n in planned if n not in records and n not in reused)
    isolation = "worktree" if line is not None else "shared"
    return RunResult(
        run_id,
        status,
        code,
        reason,
        dict(records),
        reused,
        not_run,
        landing.landed,
        isolation,
        tuple(warnings),
        recorder.error,
        changes=delivered,
        recovered=tuple(recovered),
    )


async def _last_refs_check(line: Integration, warnings: list[str]) -> None:
    """What no attempt's check saw (an attempt cut short by a signal or an error) is undone
    too, and said as a warning."""
    if line.guard is None:
        return
    try:
        what = await line.guard.check(line.root)
    except GitError as exc:
        warnings.append(f"the repository's refs changed during the run and {exc}")
        return
    if what is not None:
        warnings.append(
            f"the repository's refs changed during the run: {what}; undone (their values are "
            f"kept under {line.guard.undone_root}/)"
        )


def _leaf(exc: BaseException) -> str:
    """`Type: message` of the error inside a group of one (anyio wraps what a task raised)."""
    exc = innermost(exc)
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


async def _integration(
    workflow: Workflow,
    run_id: str,
    slots: int,
    report_dir: Path,
    warnings: list[str],
    recovered: list[tuple[str, tuple[str, ...]]],
) -> Integration | None:
    """The integration line when tasks run in worktrees, else None (a shared tree). What the
    recovery of earlier runs has to tell the user goes to `warnings`, and the files it landed
    to `recovered`."""
    s = workflow.settings
    if s.isolation == "shared":
        return None
    repo = await toplevel(workflow.workdir)
    if repo is None:
        if s.isolation == "worktree":
            raise RunError(
                f'{workflow.path}: isolation = "worktree" needs a git repository, and '
                f'{workflow.workdir} is not in one (git init, or isolation = "shared")'
            )
        return None
    if s.isolation == "auto" and slots < 2:
        return None
    if why := await worktrees_unfit(repo, workflow.workdir):
        if s.isolation == "worktree":
            raise RunError(f'{workflow.path}: isolation = "worktree" cannot work here: {why}')
        warnings.append(f"tasks share the working tree (no worktrees): {why}")
        return None
    own = report_dir.resolve()
    shared = Path(DEFAULT_REPORT_ROOT).resolve()  # other workflows' folders: not work either
    if own.is_relative_to(shared):
        own = shared
    exclude = (own.relative_to(repo).as_posix(),) if own.is_relative_to(repo) else ()
    line = Integration(repo, run_id, tuple(s.worktree_copy), tuple(s.worktree_link), exclude)
    try:
        common = await git_dir(repo)
        _confine(workflow, repo, common)
        if s.worktree_link_dependencies:
            listed = (*s.worktree_copy, *s.worktree_link)
            subdir = workflow.workdir.relative_to(repo)
            found = await dependency_links(repo, subdir, listed, common)
            line.deps = found.linked
            warnings.extend(found.warnings)
        for earlier in await recover(repo):
            if earlier.landing.landed:
                recovered.append((earlier.run_id, earlier.landing.landed))
            if warning := earlier.landing.warning():
                warnings.append(f"landing the work of interrupted run {earlier.run_id}: {warning}")
        await line.start()
    except GitError as exc:
        raise RunError(f"{repo}: cannot set up worktrees: {exc}") from None
    return line


def _confine(workflow: Workflow, repo: Path, common: Path) -> None:
    """Refuse (exit 2, at the entry's line) a `worktree_copy` / `worktree_link` entry that leads
    out of the repository through a symlink: checked here, before anything is created, and
    again at each checkout (see `worktrees.confined_source`)."""
    problems = []
    for key in ("worktree_copy", "worktree_link"):
        for index, item in enumerate(getattr(workflow.settings, key)):
            try:
                confined_source(repo, common, key, index, item)
            except Unconfined as exc:
                line = SourceMap(workflow.text).locate(("settings", key, index))[0]
                problems.append(f"{workflow.path}:{line}: {exc}")
    if problems:
        raise RunError("\n".join(problems))


def run_workflow(
    workflow: Workflow,
    options: RunOptions,
    listeners: Sequence[Listener] = (),
    background: Sequence[Job] = (),
    out: TextIO | None = None,
) -> RunResult:
    """Run the workflow to the end (or until a signal), keeping state; see RunResult."""
    if not workflow.workdir.is_dir():
        written = workflow.settings.working_directory
        what = "its working directory" if written is None else f"working_directory {written!r}"
        raise RunError(f"{workflow.path}: {what} is not a directory ({workflow.workdir})")
    # As root, agents, verify commands and git run as the tree's owner from here on.
    identity.settle(workflow.workdir, keep_root=options.agents_as_root)
    store = StateStore(options.state_path)
    if options.dry_run:
        state = store.load()
        check_owner(state, workflow.identity, str(workflow.path), options.state_path)
        selection = select(workflow, state, options, fingerprints(workflow))
        problems: list[str] = []  # what a dry run tells but does not stop at (credentials)
        _agents(workflow, selection, problems)
        describe_dry_run(workflow, selection, out or sys.stdout, only_start=bool(options.tasks))
        return RunResult("dry-run", RunStatus.PASSED, exits.OK, None, warnings=tuple(problems))
    _check_logs_dir(options.report_dir / "logs", workflow)
    state = store.open()
    try:
        check_owner(state, workflow.identity, str(workflow.path), options.state_path)
    except StateError:
        store.abandon()  # the other workflow's state stays exactly as it is
        raise
    hidden = changes.ignore_report_dir(options.report_dir, workflow.workdir)
    with store as state:
        prints = fingerprints(workflow)
        selection = select(workflow, state, options, prints)
        agents = _agents(workflow, selection)  # before the run is recorded: exit 2 leaves none
        result = anyio.run(
            _execute,
            workflow,
            selection,
            prints,
            options,
            store,
            state,
            listeners,
            background,
            agents,
        )
        closed = _close(store)
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


def _close(store: StateStore) -> str | None:
    """Close the store at the end of a run; why it failed, or None. It fails only at the
    compaction: the journal still holds what it held, so the state loads as it is."""
    try:
        store.close()
    except StateError as exc:
        return str(exc)
    return None


def _check_logs_dir(logs: Path, workflow: Workflow) -> None:
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
