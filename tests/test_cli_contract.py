"""The CLI as README describes it: report from elsewhere, init onto a directory or an empty
name, clean's messages, status of tasks the workflow lost, help, task options, sequential start
tasks, escaped file names."""

from __future__ import annotations

import json
from pathlib import Path

from .harness import Harness, prompter_cli
from .init_session import init_env

ONE_TASK = """[[tasks]]
name = "a"
prompt = "x"
verify_command = "true"
agent = "command"
agent_command = ["true"]
depends_on = []
"""


def test_report_from_another_directory_reads_the_runs_workflow_not_a_namesake(
    tmp_path: Path,
) -> None:
    # README: `report` "reads the workflow file the run recorded for file/line and the graph".
    proj, other = tmp_path / "proj", tmp_path / "other"
    proj.mkdir()
    other.mkdir()
    (proj / "wf.toml").write_text(ONE_TASK)
    done = prompter_cli("run", "--progress", "none", "wf.toml", cwd=proj)
    assert done.returncode == 0, done.stderr
    # An unrelated workflow of the same (relative) name where `report` is run from.
    (other / "wf.toml").write_text(
        "# another project\n\n\n\n" + ONE_TASK + '\n[[tasks]]\nname = "zzz"\nprompt = "y"\n'
        'verify_command = "true"\ndepends_on = ["a"]\n'
    )
    # wf.toml's reports are in .prompter/wf (places.default_report_dir)
    done = prompter_cli("report", "--report-dir", str(proj / ".prompter" / "wf"), cwd=other)
    assert done.returncode == 0, done.stderr
    junit = (proj / ".prompter" / "wf" / "junit.xml").read_text()
    summary = (proj / ".prompter" / "wf" / "summary.md").read_text()
    assert 'line="1"' in junit, junit  # the run's wf.toml has task `a` on line 1
    assert "changed_since" not in junit, junit  # nothing changed in the run's workflow
    assert "zzz" not in summary, summary  # a task of another project


VALID = (
    '[settings]\nagent = "claude"\n\n[[tasks]]\nname = "t"\nprompt = "x"\n'
    'verify_command = "true"\ndepends_on = []\n'
)


def test_init_force_onto_a_directory_is_a_usage_error_before_claude_is_asked(
    tmp_path: Path,
) -> None:
    # README: exit 2 "usage (FILE exists, …, a report directory that cannot hold the
    # transcript)", checked before Claude is asked; a directory can never be written as FILE.
    (tmp_path / "adir").mkdir()
    env = init_env(tmp_path, [{"result": f"ok\n\n```toml\n{VALID}```\n", "cost": 0.5}])
    done = prompter_cli("init", "adir", "--force", "--yes", cwd=tmp_path, env=env)
    asked = (tmp_path / "claude-state" / "calls.jsonl").exists()
    assert (done.returncode, asked) == (2, False), (done.returncode, asked, done.stderr)


def test_init_with_an_empty_file_argument_says_it_is_empty(tmp_path: Path) -> None:
    # Every other path argument rejects "" ("Neither may be empty"); init's FILE becomes ".".
    env = init_env(tmp_path, [])
    done = prompter_cli("init", "", "--yes", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert "empty" in done.stderr, done.stderr  # actual: "prompter init: . exists; use --force"


def test_clean_names_the_real_problem_with_dir(tmp_path: Path) -> None:
    # README: clean's exit 2 "when DIR is not in a git repository or git fails". A DIR that
    # does not exist, or is a file inside a repository, is reported as "not in a git repository".
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "file").write_text("")
    for bad, words in (("nosuch", ("no such", "does not exist")), ("file", ("not a directory",))):
        done = prompter_cli("clean", bad, cwd=tmp_path)
        assert done.returncode == 2
        assert any(w in done.stderr for w in words), done.stderr


def test_status_with_workflow_still_lists_every_task_the_state_holds(tmp_path: Path) -> None:
    # README: "`status` — every task's status … from the state file alone; with `WORKFLOW` it
    # also lists tasks that never ran and marks those changed since."
    h = Harness(tmp_path)
    h.task("a", depends_on=[])
    h.task("b", depends_on=[])
    assert h.run() == 0
    h.tasks = [t for t in h.tasks if t["name"] != "a"]  # `a` leaves the workflow
    h.write()
    done = prompter_cli("status", "--json", str(h.workflow), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "a" in json.loads(done.stdout)["tasks"], done.stdout  # actual: only `b`


def test_run_help_for_keep_worktrees_matches_readme() -> None:
    # README: "`run --keep-worktrees` … keeps the run's worktrees … (one per parallel slot; a
    # task that failed leaves its files in the one it ran in)"; worktrees.py:378 keeps them all.
    done = prompter_cli("run", "--help")
    assert "keep failed tasks' worktrees" not in " ".join(done.stdout.split()), done.stdout


def test_a_console_that_cannot_show_a_task_name_gets_escapes_not_an_internal_error(
    tmp_path: Path,
) -> None:
    # An ASCII console (PYTHONIOENCODING=ascii, a C or Latin-1 locale without UTF-8): printing a
    # task named by a person or an agent (`tâche ✓`) killed the run as an internal error (exit
    # 70), the task left `interrupted`; `status` failed the same way.
    import os

    (tmp_path / "wf.toml").write_text(
        '[[tasks]]\nname = "tâche_✓"\nprompt = "x"\nverify_command = "echo vérifié ✓"\n'
        'agent = "command"\nagent_command = ["true"]\ndepends_on = []\n',
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    for progress in ("plain", "rich", "none"):
        done = prompter_cli(
            "run", "--progress", progress, "--fresh", "wf.toml", cwd=tmp_path, env=env,
            encoding="ascii", errors="strict",
        )  # fmt: skip
        assert done.returncode == 0, (progress, done.stdout, done.stderr)
        assert "internal error" not in done.stderr
        if progress == "plain":
            assert "t\\xe2che_\\u2713" in done.stdout, done.stdout
    for command in (
        ["status", "--report-dir", ".prompter/wf"],
        ["status", "wf.toml"],
        ["plan", "wf.toml"],
        ["graph", "wf.toml"],
    ):
        done = prompter_cli(*command, cwd=tmp_path, env=env, encoding="ascii", errors="strict")
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert "t\\xe2che_\\u2713" in done.stdout, (command, done.stdout)


def test_an_unknown_task_says_which_option_named_it(tmp_path: Path) -> None:
    (tmp_path / "wf.toml").write_text(ONE_TASK)
    done = prompter_cli("run", "--task", "b", "wf.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == "prompter: --task: no such task `b` in wf.toml\n", done.stderr


def test_sequential_mode_takes_one_start_task(tmp_path: Path) -> None:
    two = ONE_TASK.replace("depends_on = []\n", "") + ONE_TASK.replace('"a"', '"b"').replace(
        "depends_on = []\n", ""
    )
    (tmp_path / "wf.toml").write_text(two)
    done = prompter_cli("run", "--task", "a", "--task", "b", "wf.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == ("prompter: --task: sequential mode runs from one task, not 2\n"), (
        done.stderr
    )


def test_the_landed_file_list_shows_an_agents_file_names_escaped(tmp_path: Path) -> None:
    # "worktrees: N file(s) changed …: NAMES" printed the names an agent chose raw: a name with
    # ESC [2J cleared the reader's terminal.
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@e", "commit",
         "-q", "--allow-empty", "-m", "init"],
        check=True,
    )  # fmt: skip
    (tmp_path / "wf.toml").write_text(
        '[settings]\nisolation = "worktree"\n\n[[tasks]]\nname = "a"\nprompt = "x"\n'
        'verify_command = "true"\nagent = "command"\n'
        'agent_command = ["sh", "-c", "printf x > \\"$(printf \'a\\\\033[2Jb\')\\""]\n'
        "depends_on = []\n"
    )
    done = prompter_cli("run", "--progress", "plain", "wf.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\x1b" not in done.stdout + done.stderr
    assert "worktrees: 1 file changed in your working tree, uncommitted: a\\x1b[2Jb" in (
        done.stdout
    ), done.stdout
