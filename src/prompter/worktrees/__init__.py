"""Isolation: a git worktree per task, merged back one at a time into an integration line.

At the start, the user's working tree as it is — HEAD plus uncommitted and untracked (not
ignored) changes — is committed (with a private index, touching nothing of the user's:
`snapshot.py`) as the base of an integration line under `refs/prompter/<run>/tip`
(`integration.py`). A task gets a detached worktree at the tip of that moment, so it sees what
its dependencies produced (`runner.py` runs its attempts there). When it passes, its changes
are committed and merged into the tip (`git merge-tree --write-tree`, never touching a working
tree); a conflict names the file and the task whose merge brought the other side. At the end,
the tip's content is written into the user's working tree as uncommitted changes, HEAD and the
index staying as they were (`landing.py`); what an ended run left is finished by `recovery.py`.
"""

from .confinement import Unconfined, confined_source
from .dependencies import DEPENDENCIES_KEY, DEPENDENCY_FOLDERS, Dependencies, dependency_links
from .git import GitError, git, git_bytes, git_dir, not_ignored, shown, toplevel
from .integration import Conflict, Integration, Merged, worktrees_unfit
from .landing import Landing
from .recovery import Recovered, recover
from .runner import isolated
from .runs import KEPT_ROOT, REF_ROOT
from .snapshot import snapshot_tree

__all__ = [
    "DEPENDENCIES_KEY",
    "DEPENDENCY_FOLDERS",
    "KEPT_ROOT",
    "REF_ROOT",
    "Conflict",
    "Dependencies",
    "GitError",
    "Integration",
    "Landing",
    "Merged",
    "Recovered",
    "Unconfined",
    "confined_source",
    "dependency_links",
    "git",
    "git_bytes",
    "git_dir",
    "isolated",
    "not_ignored",
    "recover",
    "shown",
    "snapshot_tree",
    "toplevel",
    "worktrees_unfit",
]
