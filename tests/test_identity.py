"""As root, agent code runs as the work tree's owner, never as root (issue 14, item 1).

The same rule as in the action's container, on this machine: `prompter run` as root (CI runs
the suite as root) on a repository owned by another uid. The agent and the verify command print
their uid and try prompter's environment through /proc; git (worktrees, commits the agent
makes) works as that owner, and the work lands.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from prompter import identity

from .harness import needs_root

OWNER = 1001

WORKFLOW = """\
[settings]
agent = "command"
agent_command = ["sh", "-c", '''
id -u > "uid-$PROMPTER_TASK.txt"
if cat /proc/$PPID/environ > /dev/null 2>&1; then echo read > "parent-$PROMPTER_TASK.txt"
else echo denied > "parent-$PROMPTER_TASK.txt"; fi
git add "uid-$PROMPTER_TASK.txt" && git commit -qm "the agent's own commit" && echo committed
''']
max_parallel_tasks = 2
worktree_copy = ["local.env"]  # copied into each worktree: the owner's to change there

[[tasks]]
name = "one"
prompt = "go"
verify_command = "test $(id -u) = {owner} && ! cat /proc/$PPID/environ && test -O local.env"
depends_on = []

[[tasks]]
name = "two"
prompt = "go"
verify_command = "test $(id -u) = {owner}"
depends_on = ["one"]
"""


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder other users can pass through (pytest's own are root's alone, and another
    pytest process may make them so again at any time)."""
    folder = Path(tempfile.mkdtemp(prefix="prompter-identity-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def owned_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=u", "-c", "user.email=u@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (repo / "prompter.toml").write_text(WORKFLOW.replace("{owner}", str(OWNER)), "utf-8")
    (repo / ".gitignore").write_text("local.env\n.prompter/\n", "utf-8")
    (repo / "local.env").write_text("KEY=1\n", "utf-8")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    subprocess.run([*git, "config", "user.name", "agent"], check=True)
    subprocess.run([*git, "config", "user.email", "agent@example.com"], check=True)
    for root, dirs, files in os.walk(repo):
        for name in (*dirs, *files):
            os.lchown(os.path.join(root, name), OWNER, OWNER)
    os.lchown(repo, OWNER, OWNER)
    return repo


def test_as_root_agents_verify_and_git_run_as_the_trees_owner(shared_tmp: Path) -> None:
    needs_root()
    repo = owned_repo(shared_tmp)
    env = {**os.environ, "PROMPTER_CANARY_TOKEN": "canary-secret-3f9a1c"}
    proc = subprocess.run(
        [sys.executable, "-m", "prompter", "run", "--progress", "plain", "prompter.toml"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for task in ("one", "two"):
        assert (repo / f"uid-{task}.txt").read_text() == f"{OWNER}\n"
        assert (repo / f"parent-{task}.txt").read_text() == "denied\n"
    log = (repo / ".prompter" / "logs" / "one.log").read_text()
    assert "committed" in log, log
    # Every object, worktree and folder git or prompter made in the repository is the owner's
    # (the report folder is prompter's own, so agents cannot rewrite the record).
    wrong = [
        str(p.relative_to(repo))
        for p in [repo, *repo.rglob("*")]
        if p.lstat().st_uid != OWNER
        and ".prompter" not in p.relative_to(repo).parts
        and p.relative_to(repo).parts[:2] != (".git", "prompter")
    ]
    assert not wrong, wrong[:20]


def test_the_owner_decides_and_root_trees_stay_root(tmp_path: Path) -> None:
    needs_root()
    theirs, roots = tmp_path / "theirs", tmp_path / "roots"
    theirs.mkdir()
    roots.mkdir()
    os.chown(theirs, OWNER, OWNER + 1)
    user = identity.for_tree(theirs)
    assert user is not None and (user.uid, user.gid) == (OWNER, OWNER + 1)
    assert user.home is None or Path(user.home).stat().st_uid == OWNER
    # Root's tree, as root: agents run as root, as before (the action lends such a workspace
    # to an unprivileged uid first; see test_container_security.py).
    assert identity.for_tree(roots) is None
    assert identity.for_tree(tmp_path / "missing") is None


def test_writes_acting_as_the_user_cannot_be_turned_into_roots(shared_tmp: Path) -> None:
    """A worktree is the owner's: a symlink swapped in there must not make prompter (root)
    write where only root may."""
    needs_root()
    tree = shared_tmp / "tree"
    tree.mkdir()
    os.chown(tree, OWNER, OWNER)
    roots = shared_tmp / "roots"
    roots.mkdir(mode=0o700)
    (tree / "link").symlink_to(roots)
    try:
        assert identity.settle(tree) is not None
        with identity.acting_as_user(), pytest.raises(PermissionError):
            (tree / "link" / "planted").write_text("x")
        with identity.acting_as_user():
            (tree / "mine").write_text("x")
        assert os.geteuid() == 0  # and root again after
    finally:  # as the process was: nothing decided
        identity._children, identity._settled = None, False
    assert not (roots / "planted").exists()
    assert (tree / "mine").stat().st_uid == OWNER


def test_prompters_own_files_refuse_a_planted_symlink_while_agents_are_another_user(
    shared_tmp: Path,
) -> None:
    needs_root()
    from prompter.regular import NotARegularFile, open_regular

    tree = shared_tmp / "tree"
    (tree / ".prompter" / "logs").mkdir(parents=True)
    os.chown(tree, OWNER, OWNER)
    precious = shared_tmp / "precious"
    precious.write_text("root's\n")
    (tree / ".prompter" / "logs" / "task.log").symlink_to(precious)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    try:
        identity.settle(tree)
        with pytest.raises(NotARegularFile, match="symbolic link"):
            open_regular(tree / ".prompter" / "logs" / "task.log", flags)
    finally:
        identity._children, identity._settled = None, False
    assert precious.read_text() == "root's\n"
    os.close(open_regular(tree / ".prompter" / "logs" / "task.log", flags))  # as it was
