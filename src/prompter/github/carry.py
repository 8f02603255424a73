"""What travels between the jobs of a fan-out: each job's export (`prompter-fanout-<job>`: its
state file and its own `changes.patch`), fetched, applied onto the checkout and merged.

Primitives only; `fanout.py` puts them in the order a group job and the final job need.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..changes import PATCH_NAME
from ..exits import FAILED, PrompterError
from ..records import State
from ..state import StateError, check_owner
from ..state_merge import merge_at
from ..statefile import read_state
from .artifact import (
    ArtifactError,
    ArtifactMissing,
    download_artifact,
    replace_earlier,
    upload_folder,
)

EXPORT_PREFIX = "prompter-fanout-"
# Set by the host action (host/action.yml): the exports were downloaded by the step before
# (actions/download-artifact, one folder per artifact, named after it) into this folder.
IMPORTS_DIR = "PROMPTER_FANOUT_IMPORTS_DIR"
STATE_NAME = "state.json"
GIT_TIMEOUT_S = 300


class CarryError(PrompterError):
    """An export could not be fetched or sent: the job cannot go on (exit 1)."""

    exit_code = FAILED


def export_name(job: str) -> str:
    return EXPORT_PREFIX + job


@dataclass(frozen=True)
class Imported:
    """One upstream job's export, as fetched."""

    job: str
    state: State | None  # None: the job left no export (it never got that far)
    patch: Path | None  # None: it changed nothing (or left no export)
    missing: str | None = None  # why there is no export


def fetch(
    jobs: Sequence[str], into: Path, env: Mapping[str, str], identity: str, workflow: str
) -> list[Imported]:
    """The exports of `jobs` of this workflow run, unpacked under `into` (one folder each), or
    read where the host action's step before downloaded them (IMPORTS_DIR). A job without one
    is listed with `missing`; any other failure is a CarryError."""
    downloaded = env.get(IMPORTS_DIR)
    into.mkdir(parents=True, exist_ok=True)
    found = []
    for job in jobs:
        folder = into / job
        try:
            if downloaded:
                folder = _downloaded(Path(downloaded), job)
            else:
                download_artifact(export_name(job), folder, env)
        except ArtifactMissing as exc:
            found.append(Imported(job, None, None, missing=str(exc)))
            continue
        except ArtifactError as exc:
            raise CarryError(f"changes of job `{job}` not fetched: {exc}") from None
        found.append(Imported(job, _their_state(folder, job, identity, workflow), _patch(folder)))
    return found


def _downloaded(imports: Path, job: str) -> Path:
    """The folder actions/download-artifact unpacked the export of `job` into."""
    folder = imports / export_name(job)
    if folder.is_symlink() or not folder.is_dir():
        raise ArtifactMissing(f"no artifact {export_name(job)} downloaded into {imports}")
    return folder


def _their_state(folder: Path, job: str, identity: str, workflow: str) -> State:
    path = folder / STATE_NAME
    try:
        state = read_state(path, path.with_name(STATE_NAME + ".journal")).state
        check_owner(state, identity, workflow, path)
    except StateError as exc:
        raise CarryError(f"the state of job `{job}`: {exc}") from None
    # Where another checkout's changes.patch started: meaningless here, and a resumed start
    # taken from it would put the imported changes in this job's own patch.
    runs = [r.model_copy(update={"base_tree": None}) for r in state.runs]
    return state.model_copy(update={"runs": runs})


def _patch(folder: Path) -> Path | None:
    patch = folder / PATCH_NAME
    return patch if patch.is_file() and patch.stat().st_size > 0 else None


# -- applying ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotApplied:
    """A job's changes that do not apply onto the checkout as it stands."""

    job: str
    files: tuple[str, ...]
    detail: str  # git's own words, one line

    def reason(self) -> str:
        where = ", ".join(self.files) if self.files else self.detail
        return f"changes of job `{self.job}` do not apply: {where}"


_GIT_SAYS = (
    "does not exist in index",
    "already exists in index",
    "already exists in working directory",
    "does not match index",
    "No such file or directory",
    "patch does not apply",
)
_NAMED = (
    re.compile(r"^error: patch failed: (.+):\d+$"),
    re.compile(r"^error: (.+): (?:" + "|".join(_GIT_SAYS) + r")$"),
    re.compile(r"^U (.+)$"),
)


def repository(workdir: Path) -> Path:
    """The root of the git repository `workdir` is in (CarryError outside one)."""
    return Path(_git(workdir, "rev-parse", "--show-toplevel").stdout.strip())


def apply_all(repo: Path, imported: Sequence[Imported]) -> NotApplied | None:
    """Apply the patches in order onto the working tree (`git apply --binary`, falling back to
    a three-way merge), through a private index: the checkout's index is left as it is. The
    first that does not apply stops it (its files may then hold conflict markers)."""
    git_dir = _git(repo, "rev-parse", "--absolute-git-dir").stdout.strip()
    index = Path(git_dir) / f"prompter-fanout-index-{os.getpid()}"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    try:
        own = Path(git_dir) / "index"
        if own.is_file():
            shutil.copyfile(own, index)
        else:
            _git(repo, "read-tree", "HEAD", env=env)
        _git(repo, "update-index", "-q", "--refresh", env=env, check=False)
        for found in imported:
            if found.patch is None:
                continue
            failed = _apply(repo, found, env)
            if failed is not None:
                return failed
    finally:
        index.unlink(missing_ok=True)
    return None


def _apply(repo: Path, found: Imported, env: Mapping[str, str]) -> NotApplied | None:
    assert found.patch is not None
    patch = str(found.patch.resolve())
    plain = _git(repo, "apply", "--binary", "--index", patch, env=env, check=False)
    if plain.returncode == 0:
        return None
    merged = _git(repo, "apply", "--binary", "--3way", patch, env=env, check=False)
    if merged.returncode == 0:
        return None
    said = (plain.stderr + "\n" + merged.stderr).splitlines()
    files = []
    for line in said:
        for pattern in _NAMED:
            match = pattern.match(line.strip())
            if match and match.group(1) not in files:
                files.append(match.group(1))
    detail = " ".join((merged.stderr or plain.stderr).split())[:300] or "git apply failed"
    return NotApplied(found.job, tuple(files), detail)


def _git(
    repo: Path, *args: str, env: Mapping[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise CarryError(f"git {args[0]}: {exc}") from None
    if check and done.returncode != 0:
        raise CarryError(f"git {args[0]} failed: {' '.join(done.stderr.split())[:300]}")
    return done


# -- states ------------------------------------------------------------------------------------


def merge_into(path: Path, imported: Sequence[Imported], identity: str, workflow: str) -> State:
    """Merge the imported states into the state at `path` (`state_merge.merge_at`: one durable
    snapshot, nothing written when the state there is another workflow's); the merged state."""
    states = [i.state for i in imported if i.state is not None]
    merged, _ = merge_at(path, states, lambda own: check_owner(own, identity, workflow, path))
    return merged


# -- the export --------------------------------------------------------------------------------


def export(job: str, state_path: Path, report_dir: Path, env: Mapping[str, str]) -> str:
    """Upload `prompter-fanout-<job>`: the state file and this job's own changes.patch (when it
    changed anything), in place of an earlier attempt's on a re-run. The artifact's id;
    CarryError when it could not be uploaded."""
    with tempfile.TemporaryDirectory(prefix="prompter-export-") as temp:
        folder = stage_export(job, state_path, report_dir, Path(temp))
        try:
            replace_earlier(export_name(job), env)
            uploaded = upload_folder(folder, export_name(job), env)
        except ArtifactError as exc:
            raise CarryError(f"export of job `{job}` not uploaded: {exc}") from None
    return uploaded.artifact_id


def stage_export(job: str, state_path: Path, report_dir: Path, folder: Path) -> Path:
    """The export's files copied into `folder` (made if need be): what `export` uploads, and
    what the host action's next step uploads with actions/upload-artifact."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if state_path.is_file():
            shutil.copyfile(state_path, folder / STATE_NAME)
        patch = report_dir / PATCH_NAME
        if patch.is_file():
            shutil.copyfile(patch, folder / PATCH_NAME)
    except OSError as exc:
        raise CarryError(f"export of job `{job}`: {exc.strerror or exc}") from None
    return folder
