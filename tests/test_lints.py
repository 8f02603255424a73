"""The lints as a list of small rules: each rule one function, and a table per rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from prompter import lints
from prompter.config import MAX_PROCESS_STRING_BYTES, Settings, Task, load_workflow
from prompter.diagnostics import Severity, WorkflowError
from prompter.lints import Lint

RULES = (*lints.SETTINGS_RULES, *lints.TASK_RULES)


def diagnostics(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "wf.toml"
    path.write_text(text, encoding="utf-8")
    try:
        found = load_workflow(path).warnings
    except WorkflowError as e:
        found = e.diagnostics
    return [d.format() for d in found]


def test_each_rule_is_its_own_documented_function() -> None:
    assert len({rule.__name__ for rule in RULES}) == len(RULES) == 13
    for rule in RULES:
        assert rule.__module__ == "prompter.lints", rule
        assert rule.__doc__ and len(rule.__doc__.split()) >= 8, rule.__name__
        assert rule.__doc__.split()[0] in ("Warns", "Errs"), rule.__name__


def test_a_rule_added_to_the_list_is_run(tmp_path: Path) -> None:
    (tmp_path / "wf.toml").write_text(TASK, encoding="utf-8")
    wf = load_workflow(tmp_path / "wf.toml")
    settings, (task,) = wf.settings, wf.tasks

    def everything_is_suspicious(settings: Settings, mode: str) -> list[Lint]:
        """Warns always (a test rule)."""
        return [Lint(("settings",), "suspicious", Severity.WARNING)]

    def every_task_too(task: Task, i: int, settings: Settings, mode: str) -> list[Lint]:
        """Warns on every task (a test rule)."""
        return [Lint(("tasks", i), f"task `{task.name}`", Severity.WARNING)]

    found = list(
        lints.lint(
            settings,
            [task, None, task],
            "graph",
            (*lints.SETTINGS_RULES, everything_is_suspicious),
            (*lints.TASK_RULES, every_task_too),
        )
    )
    assert [f.message for f in found] == ["suspicious", "task `a`", "task `a`"]
    assert [f.loc for f in found] == [("settings",), ("tasks", 0), ("tasks", 2)]


TASK = '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "true"\n'
COMMAND = '[settings]\nagent = "command"\nagent_command = ["my-agent", "{prompt}"]\n\n'
BIG = "x" * (MAX_PROCESS_STRING_BYTES + 1)

# rule -> (a file that triggers it, its exact messages after `wf.toml:`), (one that does not)
CASES = {
    "max_retries_is_obsolete": (
        "[settings]\nmax_retries = 3\n\n" + TASK,
        [
            "2:1: warning: max_retries has no effect (kept for Prompter 0.10 files); "
            "set max_attempts on each task instead"
        ],
        "[settings]\nmax_parallel_tasks = 3\n\n" + TASK,
    ),
    "more_agents_than_tasks": (
        "[settings]\nmax_parallel_tasks = 2\nmax_parallel_agents = 3\n\n" + TASK,
        [
            "3:1: warning: max_parallel_agents = 3 exceeds max_parallel_tasks = 2; "
            "at most 2 will run"
        ],
        "[settings]\nmax_parallel_tasks = 3\nmax_parallel_agents = 3\n\n" + TASK,
    ),
    "settings_program_is_empty": (
        '[settings]\nagent_command = ["", "{prompt}"]\n\n' + TASK,
        ["2:1: error: " + lints.EMPTY_PROGRAM],
        '[settings]\nagent_command = ["a", ""]\n\n' + TASK,
    ),
    "worktree_paths_outside": (
        '[settings]\nworktree_copy = ["ok", "../up"]\nworktree_link = [".git"]\n\n' + TASK,
        [
            '2:1: error: worktree_copy[1] = "../up" has a `..` component, which can lead out '
            "of the repository: name a path inside the repository, relative to its root",
            '3:1: error: worktree_link[0] = ".git" is git\'s own data (`.git`), which a '
            "task's worktree must not copy or share",
        ],
        '[settings]\nworktree_copy = ["ok", "a/b"]\n\n' + TASK,
    ),
    "settings_rate_limit_pattern_is_invalid": (
        "[settings]\nrate_limit_pattern = '(?P<seconds>\\d+'\n\n" + TASK,
        [
            "2:1: error: rate_limit_pattern is not a valid regular expression: "
            "missing ), unterminated subpattern at position 0"
        ],
        "[settings]\nrate_limit_pattern = 'retry in (?P<seconds>\\d+)'\n\n" + TASK,
    ),
    "task_program_is_empty": (
        TASK + 'agent = "command"\nagent_command = ["", "{prompt}"]\n',
        ["6:1: error: " + lints.EMPTY_PROGRAM],
        TASK + 'agent = "command"\nagent_command = ["x", "{prompt}"]\n',
    ),
    "command_agent_without_command": (
        TASK + 'agent = "command"\n',
        [
            '5:1: error: task `a` uses agent = "command" but no agent_command is set (in the '
            'task or in [settings]), e.g. agent_command = ["my-agent", "{prompt}"]'
        ],
        COMMAND + TASK,
    ),
    "verify_command_is_empty": (
        '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = " "\n',
        [
            "4:1: warning: verify_command is empty: task `a` always passes, whatever the "
            'agent does (write verify_command = "true" to say so)'
        ],
        TASK,
    ),
    "process_string_too_long": (
        COMMAND + '[[tasks]]\nname = "a"\nverify_command = "true"\nprompt = "' + BIG + '"\n',
        [
            f"8:1: error: `prompt` of task `a` is {len(BIG):,} bytes: at most "
            f"{MAX_PROCESS_STRING_BYTES:,} can be passed to the agent (Linux refuses a single "
            "argument or environment string over 128 KiB); put the long part in a file and "
            "point the prompt at it"
        ],
        '[[tasks]]\nname = "a"\nverify_command = "true"\nprompt = "' + BIG + '"\n',
    ),
    "claude_keys_on_command_agent": (
        COMMAND + TASK + 'model = "opus"\nresume_previous_session = true\n',
        [
            '9:1: warning: model has no effect: task `a` uses agent = "command"',
            '10:1: warning: resume_previous_session has no effect: task `a` uses agent = "command"',
        ],
        TASK + 'model = "opus"\nresume_previous_session = true\n',
    ),
    "mistyped_placeholder": (
        '[settings]\nagent = "command"\nagent_command = ["x", "{promt}"]\n\n'
        + TASK
        + "\n"
        + TASK.replace('"a"', '"b"')
        + 'agent_command = ["x", "{tsak}"]\n',
        [
            "3:1: warning: agent_command has `{promt}`, which is not a placeholder; "
            "did you mean `{prompt}`? (it is passed as is)",
            "14:1: warning: agent_command has `{tsak}`, which is not a placeholder; "
            "did you mean `{task}`? (it is passed as is)",
        ],
        COMMAND + TASK + 'agent_command = ["x", "{task}", "{attempt}", "{HOME}"]\n',
    ),
    "task_rate_limit_pattern": (
        COMMAND
        + TASK
        + "rate_limit_pattern = '[a-'\n\n"
        + TASK.replace('"a"', '"b"')
        + "agent = \"claude\"\nrate_limit_pattern = 'slow'\n",
        [
            "9:1: error: rate_limit_pattern is not a valid regular expression: "
            "unterminated character set at position 0",
            '16:1: warning: rate_limit_pattern has no effect: task `b` uses agent = "claude"',
        ],
        COMMAND + TASK + "rate_limit_pattern = 'slow'\n",
    ),
    "scheduling_keys_in_sequential_mode": (
        TASK + "priority = 2\nexclusive = true\n",
        [
            "5:1: warning: priority has no effect in sequential mode (no task has depends_on)",
            "6:1: warning: exclusive has no effect in sequential mode (no task has depends_on)",
        ],
        TASK + "priority = 2\n\n" + TASK.replace('"a"', '"b"') + 'depends_on = ["a"]\n',
    ),
}


def test_every_rule_has_a_table_case() -> None:
    assert set(CASES) == {rule.__name__ for rule in RULES}


@pytest.mark.parametrize("name", list(CASES))
def test_a_rule_finds_its_case_and_nothing_else(tmp_path: Path, name: str) -> None:
    triggers, expected, quiet = CASES[name]
    path = tmp_path / "wf.toml"
    assert diagnostics(tmp_path, triggers) == [f"{path}:{message}" for message in expected]
    assert diagnostics(tmp_path, quiet) == []


@pytest.mark.parametrize("name", list(CASES))
def test_without_its_rule_a_case_is_not_found(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for rules in ("SETTINGS_RULES", "TASK_RULES"):
        kept = tuple(rule for rule in getattr(lints, rules) if rule.__name__ != name)
        monkeypatch.setattr(lints, rules, kept)
    triggers, expected, _ = CASES[name]
    path = tmp_path / "wf.toml"
    found = diagnostics(tmp_path, triggers)
    assert not {f"{path}:{message}" for message in expected} & set(found)


def test_a_rule_appended_to_the_module_list_is_run_by_the_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def tasks_named_a(task: Task, i: int, settings: Settings, mode: str) -> list[Lint]:
        """Warns on a task named `a` (a test rule)."""
        if task.name != "a":
            return []
        return [Lint(("tasks", i, "name"), "a task named `a`", Severity.WARNING)]

    monkeypatch.setattr(lints, "TASK_RULES", (*lints.TASK_RULES, tasks_named_a))
    path = tmp_path / "wf.toml"
    assert diagnostics(tmp_path, TASK) == [f"{path}:2:1: warning: a task named `a`"]
