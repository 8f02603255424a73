"""Where a workflow's things are: where its tasks run by default, where its state and reports go
by default, what a task's log file is called, and which workflow a state belongs to. Each is
decided here and nowhere else.

Import-light (standard library only): the CLI uses it before it loads anything.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

DEFAULT_REPORT_ROOT = ".prompter"
LOGS_FOLDER = "logs"  # the task logs, in the report folder (report.html links to them)
# The workflow file whose state, logs and reports are `.prompter/` itself; any other one gets a
# folder inside it.
MAIN_WORKFLOW_NAME = "prompter.toml"
# Names a folder of another workflow cannot take inside `.prompter/`: the main workflow's own.
_TAKEN = frozenset({"", ".", "..", LOGS_FOLDER})


def _folder(workflow: str | os.PathLike[str]) -> Path:
    """The workflow file's folder, absolute and with symlinks resolved (the file itself is not
    resolved: a link to a workflow stands where the link is)."""
    return Path(workflow).absolute().parent.resolve()


def repository_root(folder: Path) -> Path | None:
    """The top of the git work tree holding `folder`: the nearest of `folder` and its parents
    that has a `.git` (a folder, or the file of a linked worktree or submodule); None outside
    git. Read from the file system, not asked of git: the same answer whoever runs it (git
    refuses a repository another user owns) and whether git is installed or not."""
    for candidate in (folder, *folder.parents):
        if os.path.lexists(candidate / ".git"):
            return candidate
    return None


def default_working_directory(workflow: str | os.PathLike[str]) -> Path:
    """Where the tasks of a workflow file without `working_directory` run: the root of the git
    repository holding the file, else the file's folder."""
    folder = _folder(workflow)
    return repository_root(folder) or folder


def workflow_identity(workflow: str | os.PathLike[str]) -> str:
    """Which workflow a state belongs to: the file's path from the root of its git repository
    (so a clone elsewhere, or a state moved as an artifact, is still the same workflow), else
    its absolute path."""
    folder = _folder(workflow)
    path = folder / Path(workflow).name
    root = repository_root(folder)
    return path.relative_to(root).as_posix() if root is not None else str(path)


def default_report_dir(workflow: str | os.PathLike[str] | None) -> Path:
    """Where state, logs and reports go when no `--report-dir` is given (relative to the
    current directory): `.prompter` for `prompter.toml` (in any folder) or when no workflow is
    named; `.prompter/NAME` for any other workflow file NAME.toml (the whole file name when
    NAME would be empty, `.`, `..` or `logs`, which holds the task logs of `.prompter`)."""
    root = Path(DEFAULT_REPORT_ROOT)
    if workflow is None:
        return root
    name = Path(workflow).name
    if name == MAIN_WORKFLOW_NAME:
        return root
    key = name.removesuffix(".toml")
    return root / (name if key in _TAKEN else key)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_HASH_DIGITS = 16
# A name used as it is: lower case (one file also where case folds), not hidden, short, and
# not ending the way a hashed name does (so no task name is another one's hashed log name).
_PLAIN = re.compile(rf"(?![.])[a-z0-9._-]{{1,80}}(?<!-[0-9a-f]{{{_HASH_DIGITS}}})")


def log_name(task_name: str) -> str:
    """A file name for the task's log: readable, and distinct for distinct task names, also on
    a case-insensitive file system (macOS, Windows). A plain name is used as it is; any other
    gets `-` and 16 hex digits of its hash, which no plain name ends with. Either way only
    `A-Z a-z 0-9 . _ -`, not starting with a dot: never a path out of the logs folder."""
    if _PLAIN.fullmatch(task_name):
        return task_name + ".log"
    safe = _UNSAFE.sub("_", task_name)[:80].lstrip(".") or "task"
    digest = hashlib.sha256(task_name.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{safe}-{digest[:_HASH_DIGITS]}.log"
