"""Git, run as prompter runs it: no hooks, no signing, file names as they are, as the tree's
owner when prompter is root; and the few queries the worktree modules share."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import anyio

from .. import identity

AUTHOR = {
    "GIT_AUTHOR_NAME": "prompter",
    "GIT_AUTHOR_EMAIL": "prompter@localhost",
    "GIT_COMMITTER_NAME": "prompter",
    "GIT_COMMITTER_EMAIL": "prompter@localhost",
}


class GitError(Exception):
    """A git command failed; the message says which and why, in one line."""


async def git(
    repo: Path,
    *args: str,
    env: dict[str, str] | None = None,
    ok: Sequence[int] = (0,),
    input: bytes | None = None,
) -> tuple[int, str]:
    """Run git in `repo`; (exit code, stdout). Exit codes outside `ok` raise GitError."""
    code, out = await git_bytes(repo, *args, env=env, ok=ok, input=input)
    return code, out.decode("utf-8", "replace")


async def git_bytes(
    repo: Path,
    *args: str,
    env: dict[str, str] | None = None,
    ok: Sequence[int] = (0,),
    input: bytes | None = None,
    stdout: int | None = None,
) -> tuple[int, bytes]:
    """`git`, with stdout as bytes: file names need not be UTF-8. With `stdout` (a file
    descriptor prompter opened), the output goes there instead, and b"" is returned."""
    full_env = {**os.environ, **AUTHOR, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    config = ["-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false"]
    config += ["-c", "core.quotePath=false"]  # file names as they are, not octal escapes
    # As the tree's owner when prompter is root: what git writes (worktrees, objects) is theirs,
    # and whatever an agent planted in .git runs with no more rights than the agent had.
    user = identity.children()
    if user is not None:
        full_env = user.environ(full_env)
    result = await anyio.run_process(
        ["git", *config, *args],
        cwd=repo,
        env=full_env,
        check=False,
        input=input,
        stdout=subprocess.PIPE if stdout is None else stdout,
        user=None if user is None else user.uid,
        group=None if user is None else user.gid,
        extra_groups=None if user is None else [],
    )
    if result.returncode not in ok:
        detail = " ".join(result.stderr.decode("utf-8", "replace").split())[:300]
        raise GitError(f"git {args[0]} failed ({result.returncode}): {detail}")
    return result.returncode, result.stdout or b""


def shown(path: str) -> str:
    """A file name (possibly not UTF-8: surrogate-escaped) as text that can be printed."""
    return os.fsencode(path).decode("utf-8", "replace")


async def git_dir(repo: Path) -> Path:
    """The common git directory (a linked worktree has a `.git` file, not a folder)."""
    _, common = await git(repo, "rev-parse", "--git-common-dir")
    return (repo / common.strip()).resolve()


async def not_ignored(repo: Path, paths: Sequence[str]) -> list[str]:
    """Those of `paths` git does not ignore (naming an ignored path to exclude is an error)."""
    kept = []
    for path in paths:
        code, _ = await git(repo, "check-ignore", "-q", "--", path, ok=(0, 1))
        if code == 1:
            kept.append(path)
    return kept


async def toplevel(path: Path) -> Path | None:
    """The repository's root, or None when `path` is not inside a git work tree."""
    try:
        _, out = await git(path, "rev-parse", "--show-toplevel")
    except (GitError, OSError):
        return None
    return Path(out.strip())


async def ignored_paths(repo: Path, paths: Sequence[str]) -> set[str]:
    """Those of `paths` (repository-relative) that git ignores, in one command."""
    names = b"".join(os.fsencode(p) + b"\0" for p in paths)
    args = ("check-ignore", "--stdin", "-z")
    _, out = await git(repo, *args, ok=(0, 1), input=names)
    return set(out.split("\0")) - {""}


def raw_entries(out: bytes) -> list[tuple[list[str], str]]:
    """`git diff --raw -z` output as (`:old_mode new_mode old_id new_id status` split, path),
    the path a file-system string (`os.fsdecode`: any bytes)."""
    fields = out.split(b"\0")
    return [
        (meta.decode().split(), os.fsdecode(path))
        for meta, path in zip(fields[0::2], fields[1::2], strict=False)
    ]
