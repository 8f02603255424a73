"""`worktree_link_dependencies`: the installed-dependency folders (`.venv`, `node_modules` …)
of the user's tree that each task's worktree gets as symlinks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .confinement import Unconfined, confined_source
from .git import git, ignored_paths

DEPENDENCIES_KEY = "worktree_link_dependencies"
# Top-level folders of installed dependencies, linked into each worktree when the user's tree
# has them, git ignores them and git tracks nothing in them. Installed packages that a task's
# tools read, not what a build writes (`target`, `build`, `dist`, `.tox`, `.gradle`: parallel
# tasks would write there at once).
DEPENDENCY_FOLDERS = (
    ".venv",  # Python virtual environments (venv, uv, poetry's in-project setting)
    "venv",
    "__pypackages__",  # PEP 582 (pdm)
    "node_modules",  # npm, yarn, pnpm
    "vendor",  # Composer (PHP); a Go `vendor` folder is tracked, and so never linked
    "vendor/bundle",  # Bundler (`bundle config set path vendor/bundle`), when `vendor` is not
)


@dataclass(frozen=True)
class Dependencies:
    linked: tuple[str, ...]  # repository-relative folders to link into every worktree
    warnings: tuple[str, ...] = ()


async def dependency_links(
    repo: Path, subdir: Path, listed: Sequence[str], common: Path
) -> Dependencies:
    """The dependency folders (`DEPENDENCY_FOLDERS`) of the repository root and of the
    working directory (`subdir`, relative to the root) to link into each worktree: those that
    are folders in the user's tree, inside the repository (symlinks resolved), ignored by git,
    with nothing in them tracked, and not already in `listed` (`worktree_copy` /
    `worktree_link`, which the user chose). Two git commands in all."""
    places = [""] if subdir == Path(".") else ["", subdir.as_posix()]
    found: list[str] = []
    for place in places:
        for name in DEPENDENCY_FOLDERS:
            item = f"{place}/{name}" if place else name
            if any(_overlaps(item, other) for other in (*listed, *found)):
                continue
            if (repo / item).is_dir():
                found.append(item)
    if not found:
        return Dependencies(())
    ignored = await ignored_paths(repo, found)
    _, out = await git(repo, "ls-files", "-z", "--", *found)
    tracked = [path for path in out.split("\0") if path]
    linked: list[str] = []
    warnings: list[str] = []
    for item in found:
        if item not in ignored or any(_overlaps(item, path) for path in tracked):
            continue  # the user's work, in the base already, or git's: never linked
        try:
            confined_source(repo, common, DEPENDENCIES_KEY, 0, item)
        except Unconfined as exc:
            warnings.append(f"{item} is not linked into the worktrees: it {exc.problem}")
            continue
        linked.append(item)
        warnings += _editable_installs(repo, item)
    return Dependencies(tuple(linked), tuple(warnings))


def _overlaps(a: str, b: str) -> bool:
    """Whether one of two repository paths is the other or inside it."""
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _editable_installs(repo: Path, item: str) -> list[str]:
    """A warning for a linked virtual environment with editable installs of the user's tree
    (PEP 610's `direct_url.json`): in a task's worktree they still import the user's files."""
    root = repo.resolve()
    names = []
    for record in (repo / item).glob("lib/python*/site-packages/*.dist-info/direct_url.json"):
        try:
            data = json.loads(record.read_text("utf-8"))
            editable = data.get("dir_info", {}).get("editable") is True
            url = data.get("url", "")
        except (OSError, ValueError, AttributeError):
            continue
        if not (editable and isinstance(url, str) and url.startswith("file://")):
            continue
        where = Path(unquote(urlsplit(url).path))
        if where.resolve().is_relative_to(root):
            names.append(record.parent.name.split("-")[0])
    if not names:
        return []
    shown = ", ".join(sorted(set(names)))
    return [
        f"{item}, linked into every task's worktree, has an editable install of {shown} that "
        f"points at your working tree ({root}), not at the task's worktree: what imports it "
        "there gets your files, not the task's changes (put the worktree's code first, e.g. "
        "`PYTHONPATH=src` in verify_command, or set worktree_link_dependencies = false and "
        "install in the task)"
    ]
