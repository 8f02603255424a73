"""The attempt runner of worktree isolation: each task in its own worktree, what passes
committed and merged, a failure explained (a ref the agent moved, a dependency git ignores)."""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .. import identity
from ..attempts import AttemptContext, AttemptRunner, named_by_shell
from ..config import Task
from ..feedback import Feedback
from ..records import AttemptRecord
from .confinement import Unconfined
from .dependencies import DEPENDENCIES_KEY, DEPENDENCY_FOLDERS
from .git import GitError, ignored_paths
from .integration import Integration, Merged


def _failed(number: int, started: float, reason: str) -> AttemptRecord:
    return AttemptRecord(number=number, started_at=started, finished_at=time.time(), reason=reason)


def _leads_out(tree: Path, subdir: Path) -> Path | None:
    """Where `subdir` of the worktree really is, when a symlink takes it out of the worktree."""
    root = tree.resolve()
    real = Path(os.path.realpath(root / subdir))
    return None if real.is_relative_to(root) else real


async def _refs_changed(line: Integration) -> str | None:
    """What the attempt changed of the user's refs, now undone (see `refguard`), or None."""
    if line.guard is None:
        return None
    try:
        what = await line.guard.check(line.root)
    except GitError as exc:
        return f"the repository's refs changed during the attempt and {exc}"
    if what is None:
        return None
    return (
        f"it changed the repository's refs, which are the user's: {what}; undone "
        "(commit in the task's own worktree only, without branches or tags)"
    )


def _refs_failure(record: AttemptRecord, refs: str) -> AttemptRecord:
    """The attempt, failed for what it did to the user's refs. A passed one is told as an
    agent failure (no verify duration: the feedback then quotes this text, not the check)."""
    if not record.ok:
        return record.model_copy(update={"reason": f"{record.reason or 'failed'}; and {refs}"})
    tail = (
        f"prompter: {refs}. The repository's branches, tags and HEAD belong to the user: "
        "leave them as they are. Your files are what counts: commits in your own worktree "
        "(detached HEAD) are fine, but no `git branch`, `git tag`, `git checkout -b`, "
        "`git switch` or `git update-ref`."
    )
    return record.model_copy(
        update={"ok": False, "reason": refs, "output_tail": tail, "verify_duration_s": None}
    )


async def _missing_hint(
    line: Integration, tree: Path, subdir: Path, task: Task, record: AttemptRecord
) -> str | None:
    """For a verify command that could not run in a task's worktree: when what it missed — a
    path the shell named, or that the command names — is in the user's tree but not in the
    worktree because git ignores it (a `.venv`, `node_modules`), how to bring it there."""
    try:
        words = shlex.split(task.verify_command)
    except ValueError:
        words = task.verify_command.split()
    named = named_by_shell(record.output_tail) + words[:1] + [w for w in words[1:] if "/" in w]
    root, user = tree.resolve(), line.repo.resolve()
    for name in dict.fromkeys(named):
        path = Path(name)
        if path.is_absolute():
            if not path.is_relative_to(root):
                continue
            rel = path.relative_to(root)
        else:
            rel = Path(os.path.normpath(subdir / path))
        if not rel.parts or rel.parts[0] == ".." or rel.parts[0] == ".git":
            continue
        if not os.path.lexists(user / rel) or os.path.lexists(root / rel):
            continue
        prefixes = [Path(*rel.parts[: n + 1]).as_posix() for n in range(len(rel.parts))]
        try:
            found = await ignored_paths(line.repo, prefixes)
        except GitError:
            return None
        ignored = [p for p in prefixes if p in found]
        if ignored:
            item = json.dumps(ignored[0], ensure_ascii=False)
            hint = (
                f"{item} is in your working tree but not in the task's worktree (git ignores "
                f"it, so worktrees do not get it): list it in worktree_link = [{item}] "
                f"(shared) or worktree_copy = [{item}] (copied)"
            )
            folder = ignored[0].rsplit("/", 1)[-1]
            if folder in {f.rsplit("/", 1)[-1] for f in DEPENDENCY_FOLDERS}:
                hint += f", or set {DEPENDENCIES_KEY} = true (the default), which links it"
            return hint
    return None


def isolated(line: Integration, subdir: Path, inner: AttemptRunner) -> AttemptRunner:
    """An attempt runner that runs each task in its own worktree and merges what passes.

    `subdir` is the working directory relative to the repository root. A retry after a failed
    check continues in the same worktree (the agent's session remembers those edits); a retry
    after a merge conflict starts from the new tip, with the conflict in its feedback. Worktrees
    of tasks that end failed are removed by `cleanup` (or kept for inspection).
    """
    trees: dict[str, Path] = {}  # task -> the worktree its next attempt continues in

    async def attempt(
        ctx: AttemptContext,
        task: Task,
        number: int,
        feedback: Feedback | None,
        resume: str | None,
    ) -> AttemptRecord:
        started = time.time()
        tree = trees.pop(task.name, None)
        if tree is None or not tree.exists():
            try:
                tree = await line.checkout(task.name, number)
            except (GitError, OSError, Unconfined) as exc:
                return _failed(number, started, f"worktree could not be created: {exc}")
        if outside := _leads_out(tree, subdir):
            trees[task.name] = tree
            reason = (
                f"the working directory {subdir.as_posix()} is, in the task's worktree, a "
                f"symlink to {outside}, outside it (a task committed it): not run there"
            )
            return _failed(number, started, reason)
        workdir = tree / subdir
        with identity.acting_as_user():
            workdir.mkdir(parents=True, exist_ok=True)  # git keeps no empty folders
        record = await inner(replace(ctx, workdir=workdir), task, number, feedback, resume)
        if refs := await _refs_changed(line):
            trees[task.name] = tree
            return _refs_failure(record, refs)
        if not record.ok:
            trees[task.name] = tree
            return await _explained(line, tree, subdir, task, record)
        try:  # the worktree has served its purpose, whatever the merge gives
            return await _merged(line, task.name, tree, record, ctx.redactor.text)
        finally:
            line.release(tree)

    return attempt


async def _explained(
    line: Integration, tree: Path, subdir: Path, task: Task, record: AttemptRecord
) -> AttemptRecord:
    """A failed attempt, with how to bring what its verify command missed into the worktree
    when that is a path git ignores (see `_missing_hint`)."""
    if record.environment_error and (hint := await _missing_hint(line, tree, subdir, task, record)):
        return record.model_copy(update={"reason": f"{record.reason}; {hint}"})
    return record


async def _merged(
    line: Integration, task: str, tree: Path, record: AttemptRecord, mask: Callable[[str], str]
) -> AttemptRecord:
    """A passed attempt with its changes committed and merged into the tip, and their diff when
    it is small (secrets masked by `mask`, as in the rest of the record); failed when they
    cannot be committed or merged, or conflict with what another task merged first."""
    try:
        commit = await line.commit(task, tree)
    except GitError as exc:
        reason = f"its changes cannot be committed: {exc}"
        return record.model_copy(update={"ok": False, "reason": reason})
    if commit is None:
        return record
    try:
        outcome = await line.merge(task, commit)
    except GitError as exc:
        return record.model_copy(update={"ok": False, "reason": f"merge failed: {exc}"})
    if isinstance(outcome, Merged):
        diff = await line.small_diff(commit, outcome.lines)
        update = {"changed_files": list(outcome.changes), "diff": diff and mask(diff)}
        return record.model_copy(update=update)
    other = f"`{outcome.with_task}`" if outcome.with_task else "another task"
    return record.model_copy(
        update={
            "ok": False,
            "reason": outcome.reason,
            "conflict": outcome.reason,
            "changed_files": list(outcome.changes),
            "output_tail": (
                f"Your change to {', '.join(outcome.paths)} conflicts with what "
                f"{other} changed there first."
            ),
        }
    )
