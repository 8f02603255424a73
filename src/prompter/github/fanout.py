"""The action's part in a fan-out across GitHub Actions jobs (`prompter ci generate`).

A group job (`fanout_job`, `fanout_imports`): fetch the exports of the jobs it builds on, apply
their changes in order onto the checkout, merge their states into this job's, run its own tasks
(`--only`: the upstream tasks are reused from the merged state, or block their dependents), and
leave its export (`carry.export`, after the reports). A task whose dependency failed, was skipped
or never ran upstream is recorded skipped as a local run would skip it; changes that do not
apply fail every task of the job, naming the file and the job. A re-run of the job ("Re-run
failed jobs", GITHUB_RUN_ATTEMPT > 1) first takes back its own earlier export (`_resume`): the
tasks that passed then are reused, not run again, and their changes stay in its export.

The final job (`fanout_merge`): fetch every export, apply all the changes, merge all the states
into the report folder's, and answer as a run of the whole workflow would (reports, outputs,
`changes.patch` of everything).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import exits
from ..records import RunRecord, RunStatus, State, TaskRecord, TaskStatus
from ..words import count
from .artifact import run_attempt
from .carry import Imported, NotApplied, apply_all, fetch, merge_into, repository

if TYPE_CHECKING:
    from ..config import Workflow
    from ..launch import RunOptions
    from ..run import RunResult

Runner = Callable[["RunOptions"], "RunResult"]


def group_job(
    job: str,
    imports: Sequence[str],
    workflow: Workflow,
    options: RunOptions,
    env: Mapping[str, str],
    run: Runner,
    say: Callable[[str], None],
) -> RunResult:
    """Import, then run this job's tasks (`options.tasks`, all when empty)."""
    group = options.tasks or tuple(t.name for t in workflow.tasks)
    imported = _fetch(imports, workflow, env, say)
    failed = _apply(workflow, imported)
    own: list[Imported] = []
    if failed is None and run_attempt(env) > 1:
        own, failed = _resume(job, group, workflow, options, env, say)
    merged = merge_into(
        options.state_path, [*imported, *own], workflow.identity, str(workflow.path)
    )
    if failed is not None:
        say(failed.reason())
        reasons = dict.fromkeys(group, failed.reason())
        return _recorded(workflow, options, reasons, TaskStatus.FAILED, failed.reason(), job)
    blocked = blocked_tasks(workflow, merged, group)
    standing = standing_tasks(workflow, merged)  # on a re-run: what passed before stays
    runnable = tuple(n for n in group if n not in blocked and n not in standing)
    if not runnable:
        _keep_changes(own, options.report_dir)
        if not blocked:
            return _all_passed_before(merged, group, options.report_dir)
        why = f"every task of job `{job}` waits on upstream work that did not pass"
        return _recorded(workflow, options, blocked, TaskStatus.SKIPPED, why, job)
    result = run(dataclasses.replace(options, tasks=runnable, only=True, job=job))
    if not blocked or result.run_id == "dry-run":
        return result
    return _with_skips(result, workflow, options, blocked)


def final_job(
    jobs: Sequence[str],
    workflow: Workflow,
    options: RunOptions,
    env: Mapping[str, str],
    say: Callable[[str], None],
) -> RunResult:
    """Every job's changes applied and every state merged: the result of the whole fan-out."""
    import anyio

    from .. import changes
    from ..run import RunResult

    imported = _fetch(jobs, workflow, env, say)
    own = (options.report_dir, options.state_path)
    start = anyio.run(changes.begin, workflow.workdir, (), False, own)
    failed = _apply(workflow, imported)
    merged = merge_into(options.state_path, imported, workflow.identity, str(workflow.path))
    delivered = anyio.run(changes.finish, start, options.report_dir)
    warnings = [f"job `{i.job}` left no export: {i.missing}" for i in imported if i.missing]
    if failed is not None:
        warnings.append(failed.reason())
    records = {t.name: merged.tasks[t.name] for t in workflow.tasks if t.name in merged.tasks}
    missing = [t.name for t in workflow.tasks if t.name not in records]
    if missing:
        warnings.append(f"{count(len(missing), 'task')} no job recorded: {', '.join(missing)}")
    ok = all(r.status is TaskStatus.PASSED for r in records.values())
    ok = ok and not missing and failed is None
    return RunResult(
        run_id=merged.runs[-1].run_id if merged.runs else "fan-out",
        status=RunStatus.PASSED if ok else RunStatus.FAILED,
        exit_code=exits.OK if ok else exits.FAILED,
        reason=None if failed is None else failed.reason(),
        records=records,
        not_run=tuple(missing),
        warnings=tuple(warnings),
        changes=delivered,
    )


def blocked_tasks(workflow: Workflow, state: State, group: Sequence[str]) -> dict[str, str]:
    """The tasks of `group` that wait on a task of another job that did not pass with the
    definition it has now, each with the reason a local run would skip it for."""
    names = [t.name for t in workflow.tasks]
    graph = workflow.graph
    standing = _standing(workflow, state)
    inside = set(group)
    reasons: dict[int, str] = {}
    for i in graph.order:
        if names[i] not in inside:
            continue
        for d in graph.deps[i]:
            if names[d] in inside:
                if d in reasons:
                    reasons[i] = reasons[d]
                    break
            elif d not in standing:
                reasons[i] = _cause(d, state, names, graph.deps, standing)
                break
    return {names[i]: reason for i, reason in sorted(reasons.items())}


def standing_tasks(workflow: Workflow, state: State) -> frozenset[str]:
    """The tasks whose pass stands: passed with the definition they have now, on passes that
    stand (a run reuses them; naming them would run them again)."""
    names = [t.name for t in workflow.tasks]
    return frozenset(names[i] for i in _standing(workflow, state))


def _standing(workflow: Workflow, state: State) -> set[int]:
    from ..fingerprints import fingerprints
    from ..selection import standing_passes

    return standing_passes(workflow, state, fingerprints(workflow))


def _cause(
    i: int, state: State, names: list[str], deps: Sequence[Sequence[int]], standing: set[int]
) -> str:
    """Why a task of another job does not stand, in the words a local run skips with."""
    record = state.tasks.get(names[i])
    status = None if record is None else record.status
    if status in (TaskStatus.FAILED, TaskStatus.INTERRUPTED):
        return f"dependency `{names[i]}` failed"
    if record is not None and status is TaskStatus.SKIPPED and record.reason:
        return record.reason
    if status is TaskStatus.PASSED:  # passed, but on something that does not stand
        below = next((d for d in deps[i] if d not in standing), None)
        if below is not None:
            return _cause(below, state, names, deps, standing)
    return f"dependency `{names[i]}` did not run"


# -- helpers -----------------------------------------------------------------------------------


def _fetch(
    jobs: Sequence[str], workflow: Workflow, env: Mapping[str, str], say: Callable[[str], None]
) -> list[Imported]:
    """The exports, unpacked outside the workspace (the runner's temp folder)."""
    into = Path(tempfile.mkdtemp(prefix="prompter-imports-", dir=env.get("RUNNER_TEMP") or None))
    imported = fetch(jobs, into, env, workflow.identity, str(workflow.path))
    for found in imported:
        if found.missing:
            say(f"job `{found.job}` left no export ({found.missing}): its tasks did not run")
        else:
            what = "its changes" if found.patch else "no change"
            say(f"imported job `{found.job}`: its state and {what}")
    return imported


def _resume(
    job: str,
    group: Sequence[str],
    workflow: Workflow,
    options: RunOptions,
    env: Mapping[str, str],
    say: Callable[[str], None],
) -> tuple[list[Imported], NotApplied | None]:
    """A re-run of this job ("Re-run failed jobs") builds on its own earlier export, as a
    resumed local run builds on the checkout it left: its state (the tasks that passed are
    reused), and, when one of them passed, its changes, applied onto the checkout as it stands
    after the upstream changes. The run then continues the patch from there (the recorded
    start of its earlier run is that tree), so the new export holds the earlier work too."""
    import anyio

    from .. import changes
    from ..fingerprints import fingerprints

    into = Path(tempfile.mkdtemp(prefix="prompter-own-", dir=env.get("RUNNER_TEMP") or None))
    found = fetch((job,), into, env, workflow.identity, str(workflow.path))[0]
    if found.state is None:
        say(f"re-run: job `{job}` left no export before ({found.missing})")
        return [], None
    prints = fingerprints(workflow)
    passed = [
        name
        for name in group
        if (record := found.state.tasks.get(name)) is not None
        and record.status is TaskStatus.PASSED
        and record.fingerprint == prints.get(name)
    ]
    ours = [r for r in found.state.runs if r.job == job]
    if not passed or found.patch is None or not ours:
        say(f"re-run: imported job `{job}`'s earlier state ({count(len(passed), 'task')} passed)")
        return [dataclasses.replace(found, patch=None)], None
    own = (options.report_dir, options.state_path)
    start = anyio.run(changes.begin, workflow.workdir, (), False, own)
    if start.base is None:  # no snapshot to continue from: the changes would be lost
        say(f"re-run: job `{job}`'s earlier changes not applied ({start.note or start.warning})")
        return [dataclasses.replace(found, patch=None)], None
    failed = _apply(workflow, [found])
    last = max(ours, key=lambda r: (r.started_at, r.run_id))
    begun = last.model_copy(update={"base_tree": start.base.tree, "base_commit": start.base.commit})
    runs = [begun if r.run_id == last.run_id else r for r in found.state.runs]
    state = found.state.model_copy(update={"runs": runs})
    say(f"re-run: imported job `{job}`'s earlier state and changes ({', '.join(passed)} passed)")
    return [dataclasses.replace(found, state=state)], failed


def _keep_changes(own: Sequence[Imported], report_dir: Path) -> None:
    """A re-run that runs nothing still exports the changes its earlier attempt made: they
    are applied onto the checkout and are this job's work, so they are its changes.patch."""
    import shutil

    from ..changes import PATCH_NAME

    for found in own:
        if found.patch is not None:
            report_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found.patch, report_dir / PATCH_NAME)


def _all_passed_before(state: State, group: Sequence[str], report_dir: Path) -> RunResult:
    """A re-run of a job whose every task passed before (it failed after them): nothing runs."""
    from ..changes import PATCH_NAME, Changes
    from ..run import RunResult

    patch = report_dir / PATCH_NAME
    return RunResult(
        run_id=state.runs[-1].run_id if state.runs else "reused",
        status=RunStatus.PASSED,
        exit_code=exits.OK,
        reason=None,
        reused=tuple(group),
        changes=Changes(patch=patch) if patch.is_file() else Changes(note="no file changed"),
    )


def _apply(workflow: Workflow, imported: Sequence[Imported]) -> NotApplied | None:
    """`carry.apply_all` on the workflow's repository; as root, what git wrote is then given
    to the workspace's owner, as whom agent code works on it."""
    import os

    from .ownership import hand_over

    repo = repository(workflow.workdir)
    failed = apply_all(repo, imported)
    if os.geteuid() == 0:
        owner = repo.stat()
        if owner.st_uid != 0:
            hand_over(repo, 0, owner.st_uid, owner.st_gid)
    return failed


def _recorded(
    workflow: Workflow,
    options: RunOptions,
    reasons: Mapping[str, str],
    status: TaskStatus,
    why: str,
    job: str,
) -> RunResult:
    """A run of this job that ran nothing: its tasks recorded with `status` and their reason."""
    from ..fingerprints import fingerprints
    from ..run import RunResult, new_run_id

    prints, now = fingerprints(workflow), time.time()
    run = RunRecord(
        run_id=new_run_id(),
        workflow=str(workflow.path),
        workflow_at=str(workflow.path.absolute()),
        workflow_id=workflow.identity,
        started_at=now,
        finished_at=now,
        status=RunStatus.FAILED,
        reason=why,
        job=job,
    )
    records = {
        name: TaskRecord(
            name=name,
            fingerprint=prints[name],
            status=status,
            reason=reason,
            run_id=run.run_id,
            finished_at=now,
        )
        for name, reason in reasons.items()
    }
    _store(options.state_path, run, records.values())
    return RunResult(
        run_id=run.run_id,
        status=RunStatus.FAILED,
        exit_code=exits.FAILED,
        reason=why,
        records=records,
    )


def _with_skips(
    result: RunResult, workflow: Workflow, options: RunOptions, blocked: Mapping[str, str]
) -> RunResult:
    """The run's result with the blocked tasks recorded skipped in it, as its own skips are."""
    from ..fingerprints import fingerprints
    from ..state import StateStore

    prints, now = fingerprints(workflow), time.time()
    records = {
        name: TaskRecord(
            name=name,
            fingerprint=prints[name],
            status=TaskStatus.SKIPPED,
            reason=reason,
            run_id=result.run_id,
            finished_at=now,
        )
        for name, reason in blocked.items()
    }
    state = StateStore(options.state_path).load()
    run = next((r for r in state.runs if r.run_id == result.run_id), None)
    if run is not None and run.status is RunStatus.PASSED:
        run = run.model_copy(update={"status": RunStatus.FAILED})
    _store(options.state_path, run, records.values())
    failed = result.status is RunStatus.PASSED
    return dataclasses.replace(
        result,
        records={**result.records, **records},
        status=RunStatus.FAILED if failed else result.status,
        exit_code=exits.FAILED if result.exit_code == exits.OK else result.exit_code,
    )


def _store(path: Path, run: RunRecord | None, records: Iterable[TaskRecord]) -> None:
    """Record `run` (begun or updated) and `records` in the state at `path`."""
    from ..state import StateStore

    store = StateStore(path)
    store.open()
    try:
        if run is not None:
            store.end_run(run)
        for record in records:
            store.record(record, durable=True)
    finally:
        store.close()
