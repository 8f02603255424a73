"""Recovery: what ended runs left in the repository (work not landed, worktrees, refs),
finished and removed at the start of the next run or by `prompter clean`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .git import git, git_dir
from .integration import Integration
from .landing import Landing, land
from .runs import REF_ROOT, belongs_here, lock_run, run_home_path, unlock_run


@dataclass(frozen=True)
class Recovered:
    run_id: str
    landing: Landing  # what of its work landed now (nothing when it had landed already)


async def recover(repo: Path) -> list[Recovered]:
    """Finish what ended runs left: a landing cut short is completed, the passed work of a run
    that was interrupted (`pending`) or killed before landing (only its `tip` is left) lands —
    the state says those tasks passed — and their worktrees and refs go. A run still going
    (another prompter process in this repository) is left alone, and so is one that started
    in another linked worktree of the repository (it lands there)."""
    refs = await _refs(repo)
    runs = {ref.removeprefix(REF_ROOT + "/").split("/")[0] for ref in refs}
    common = await git_dir(repo)
    if (common / "prompter").exists():
        runs |= {p.name for p in (common / "prompter").iterdir() if p.is_dir()}
    cleaned = []
    for run in sorted(runs):
        if not belongs_here(common, run, repo):
            continue  # another linked worktree's run: its own next run lands it
        alive = lock_run(common, run)
        if alive is None:  # its process holds the lock: not ended
            continue
        try:
            ref = f"{REF_ROOT}/{run}"
            # A run that ends normally deletes its refs after landing; a tip left behind holds
            # work that has not landed (landing it again is harmless: see `land`).
            tip = (
                refs.get(f"{ref}/applying") or refs.get(f"{ref}/pending") or refs.get(f"{ref}/tip")
            )
            base = refs.get(f"{ref}/base")
            landing = await land(repo, run, base, tip) if tip and base else Landing()
            await git(repo, "update-ref", "-d", f"{ref}/pending", ok=(0, 1))
            await Integration(repo, run, git_dir=common).cleanup()
            run_home_path(common, run).unlink(missing_ok=True)
        finally:
            unlock_run(common, run, alive)
        cleaned.append(Recovered(run, landing))
    return cleaned


async def _refs(repo: Path) -> dict[str, str]:
    _, out = await git(repo, "for-each-ref", "--format=%(refname) %(objectname)", REF_ROOT)
    return dict(line.split(" ", 1) for line in out.splitlines() if line)
