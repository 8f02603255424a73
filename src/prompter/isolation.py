"""A run's worktree isolation, from the run's side: whether its tasks get worktrees, setting up
the integration line they merge into (after landing what earlier runs left), and at the end
landing the line's work in the user's tree or parking it for the next run.

The mechanics (worktrees, merges, the refs guard) are `worktrees`'; a refusal here is a
`Refused`, which the run reports as a `RunError` (exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio

from .config import Workflow
from .places import DEFAULT_REPORT_ROOT
from .toml_positions import SourceMap
from .worktrees import (
    GitError,
    Integration,
    Landing,
    Unconfined,
    confined_source,
    dependency_links,
    git_dir,
    recover,
    toplevel,
    worktrees_unfit,
)


class Refused(Exception):
    """Worktree isolation was asked for and cannot work here; the message says why."""


@dataclass(frozen=True)
class Prepared:
    integration: Integration | None  # None: the tasks share the working tree
    warnings: tuple[str, ...] = ()  # what the user should know (recovery, a fallback)
    # The passed work of earlier runs (interrupted, killed) landed now, as (run id, paths).
    recovered: tuple[tuple[str, tuple[str, ...]], ...] = ()


async def prepare(workflow: Workflow, run_id: str, slots: int, report_dir: Path) -> Prepared:
    """The integration line when tasks run in worktrees (started, earlier runs' work landed),
    else none: `isolation = "shared"`, or "auto" where worktrees cannot help or cannot work."""
    s = workflow.settings
    if s.isolation == "shared":
        return Prepared(integration=None)
    repo = await toplevel(workflow.workdir)
    if repo is None:
        if s.isolation == "worktree":
            raise Refused(
                f'{workflow.path}: isolation = "worktree" needs a git repository, and '
                f'{workflow.workdir} is not in one (git init, or isolation = "shared")'
            )
        return Prepared(integration=None)
    if s.isolation == "auto" and slots < 2:
        return Prepared(integration=None)
    if why := await worktrees_unfit(repo, workflow.workdir):
        if s.isolation == "worktree":
            raise Refused(f'{workflow.path}: isolation = "worktree" cannot work here: {why}')
        return Prepared(
            integration=None, warnings=(f"tasks share the working tree (no worktrees): {why}",)
        )
    try:
        return await _start(workflow, repo, run_id, report_dir)
    except GitError as exc:
        raise Refused(f"{repo}: cannot set up worktrees: {exc}") from None


async def _start(workflow: Workflow, repo: Path, run_id: str, report_dir: Path) -> Prepared:
    s = workflow.settings
    own = report_dir.resolve()
    shared = Path(DEFAULT_REPORT_ROOT).resolve()  # other workflows' folders: not work either
    if own.is_relative_to(shared):
        own = shared
    exclude = (own.relative_to(repo).as_posix(),) if own.is_relative_to(repo) else ()
    integration = Integration(repo, run_id, tuple(s.worktree_copy), tuple(s.worktree_link), exclude)
    warnings: list[str] = []
    recovered: list[tuple[str, tuple[str, ...]]] = []
    common = await git_dir(repo)
    _confine(workflow, repo, common)
    if s.worktree_link_dependencies:
        listed = (*s.worktree_copy, *s.worktree_link)
        subdir = workflow.workdir.relative_to(repo)
        found = await dependency_links(repo, subdir, listed, common)
        integration.deps = found.linked
        warnings.extend(found.warnings)
    for earlier in await recover(repo):
        if earlier.landing.landed:
            recovered.append((earlier.run_id, earlier.landing.landed))
        if warning := earlier.landing.warning():
            warnings.append(f"landing the work of interrupted run {earlier.run_id}: {warning}")
    await integration.start()
    return Prepared(integration=integration, warnings=tuple(warnings), recovered=tuple(recovered))


def _confine(workflow: Workflow, repo: Path, common: Path) -> None:
    """Refuse (at the entry's line) a `worktree_copy` / `worktree_link` entry that leads out of
    the repository through a symlink: checked here, before anything is created, and again at
    each checkout (see `worktrees.confined_source`)."""
    problems = []
    for key in ("worktree_copy", "worktree_link"):
        for index, item in enumerate(getattr(workflow.settings, key)):
            try:
                confined_source(repo, common, key, index, item)
            except Unconfined as exc:
                line = SourceMap(workflow.text).locate(("settings", key, index))[0]
                problems.append(f"{workflow.path}:{line}: {exc}")
    if problems:
        raise Refused("\n".join(problems))


async def land(
    integration: Integration, interrupted: bool, keep_worktrees: bool, warnings: list[str]
) -> Landing:
    """The end of an isolated run, shielded from cancellation: the refs checked one last time,
    then the line's work landed in the user's tree and the worktrees removed, or after a signal
    parked for the next run to land (the user's tree stays as it was)."""
    landing = Landing()
    with anyio.CancelScope(shield=True):
        await _last_refs_check(integration, warnings)
        if interrupted:
            await integration.park()
        else:
            landing = await integration.apply()
            await integration.cleanup(keep_worktrees=keep_worktrees)
    return landing


async def _last_refs_check(integration: Integration, warnings: list[str]) -> None:
    """What no attempt's check saw (an attempt cut short by a signal or an error) is undone
    too, and said as a warning."""
    if integration.guard is None:
        return
    try:
        what = await integration.guard.check(integration.root)
    except GitError as exc:
        warnings.append(f"the repository's refs changed during the run and {exc}")
        return
    if what is not None:
        warnings.append(
            f"the repository's refs changed during the run: {what}; undone (their values are "
            f"kept under {integration.guard.undone_root}/)"
        )
