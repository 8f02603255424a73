"""The lints of a loaded workflow: one small function per rule (a new lint is one function).

A rule reads a valid `[settings]` (and one task, for a task rule) and returns its `Lint`s, most
often `()`: where in the file (a `Loc`, located by the loader), the message, and its severity.
The loader runs `SETTINGS_RULES` once, then `TASK_RULES` on each task in file order, so the
messages come out in the same order for the same file. A lint a task inherits from
`[settings]` stands on one line of the file: it is reported once, not once per task.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from .config import CLAUDE_KEYS, MAX_PROCESS_STRING_BYTES, PLACEHOLDERS, worktree_path_problem
from .diagnostics import Severity, did_you_mean
from .toml_positions import Loc

if TYPE_CHECKING:
    from .config import Mode, Settings, Task


class Lint(NamedTuple):
    loc: Loc
    message: str
    severity: Severity = Severity.ERROR


SettingsRule = Callable[["Settings", "Mode"], Sequence[Lint]]
TaskRule = Callable[["Task", int, "Settings", "Mode"], Sequence[Lint]]

EMPTY_PROGRAM = (
    "the program to run, agent_command[0], is empty: name an executable, "
    'e.g. agent_command = ["my-agent", "{prompt}"]'
)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def unknown_placeholders(argv: Sequence[str]) -> Iterator[str]:
    """The names in `{name}` that look like a mistyped placeholder (close to one, not one)."""
    for arg in argv:
        for m in _PLACEHOLDER.finditer(arg):
            if m.group(0) not in PLACEHOLDERS and did_you_mean(m.group(0), PLACEHOLDERS):
                yield m.group(1)


# -- [settings] ------------------------------------------------------------------------------
# A rule returns its lints, most often `()`: no generator per rule and task, as validating a file
# of 100,000 tasks calls each task rule 100,000 times.


def max_retries_is_obsolete(settings: Settings, mode: Mode) -> Sequence[Lint]:
    """Warns that `max_retries` is read but ignored: kept so Prompter 0.10 files still load,
    while retries are now `max_attempts` on each task."""
    if "max_retries" not in settings.model_fields_set:
        return ()
    return (
        Lint(
            ("settings", "max_retries"),
            "max_retries has no effect (kept for Prompter 0.10 files); "
            "set max_attempts on each task instead",
            Severity.WARNING,
        ),
    )


def more_agents_than_tasks(settings: Settings, mode: Mode) -> Sequence[Lint]:
    """Warns that `max_parallel_agents` above `max_parallel_tasks` cannot be reached: a task
    runs one agent at a time, so the task limit caps the agents too."""
    agents, tasks = settings.max_parallel_agents, settings.max_parallel_tasks
    if agents is None or agents <= tasks:
        return ()
    return (
        Lint(
            ("settings", "max_parallel_agents"),
            f"max_parallel_agents = {agents} exceeds max_parallel_tasks "
            f"= {tasks}; at most {tasks} will run",
            Severity.WARNING,
        ),
    )


def settings_program_is_empty(settings: Settings, mode: Mode) -> Sequence[Lint]:
    """Errs on `[settings]` `agent_command` whose first item is "": there is no program to run
    (it would fail only when the first task starts)."""
    if settings.agent_command and not settings.agent_command[0]:
        return (Lint(("settings", "agent_command"), EMPTY_PROGRAM),)
    return ()


def worktree_paths_outside(settings: Settings, mode: Mode) -> Sequence[Lint]:
    """Errs on a `worktree_copy` / `worktree_link` entry that is not a path inside the
    repository (empty, absolute, `..`, the root, `.git`): a worktree must stay confined."""
    found = []
    for key in ("worktree_copy", "worktree_link"):
        for i, item in enumerate(getattr(settings, key)):
            if problem := worktree_path_problem(item):
                shown = json.dumps(item, ensure_ascii=False)
                found.append(Lint(("settings", key, i), f"{key}[{i}] = {shown} {problem}"))
    return found


def settings_rate_limit_pattern_is_invalid(settings: Settings, mode: Mode) -> Sequence[Lint]:
    """Errs on a `[settings]` `rate_limit_pattern` that is no regular expression (it would fail
    only when the first command agent fails)."""
    problem = pattern_problem(settings.rate_limit_pattern)
    return (Lint(("settings", "rate_limit_pattern"), problem),) if problem else ()


def pattern_problem(pattern: str | None) -> str | None:
    """Why `rate_limit_pattern` cannot be used: not a regular expression (Python's `re`), or
    None."""
    if pattern is None:
        return None
    try:
        re.compile(pattern)
    except re.error as exc:
        where = "" if exc.pos is None else f" at position {exc.pos}"
        return f"rate_limit_pattern is not a valid regular expression: {exc.msg}{where}"
    return None


# -- each [[tasks]] ------------------------------------------------------------------------


def task_program_is_empty(task: Task, i: int, settings: Settings, mode: Mode) -> Sequence[Lint]:
    """Errs on a task's own `agent_command` whose first item is "": no program to run."""
    command = task.agent_command
    if command and not command[0] and "agent_command" in task.model_fields_set:
        return (Lint(("tasks", i, "agent_command"), EMPTY_PROGRAM),)
    return ()


def command_agent_without_command(
    task: Task, i: int, settings: Settings, mode: Mode
) -> Sequence[Lint]:
    """Errs on `agent = "command"` with no `agent_command` in the task or `[settings]`: there
    is nothing to run."""
    if task.agent != "command" or task.agent_command is not None:
        return ()
    return (
        Lint(
            ("tasks", i, "agent") if "agent" in task.model_fields_set else ("tasks", i),
            f'task `{task.name}` uses agent = "command" but no agent_command is set '
            '(in the task or in [settings]), e.g. agent_command = ["my-agent", "{prompt}"]',
        ),
    )


def verify_command_is_empty(task: Task, i: int, settings: Settings, mode: Mode) -> Sequence[Lint]:
    """Warns on an empty `verify_command`: the task passes whatever the agent does, most
    likely not what was meant (`"true"` says so on purpose)."""
    if task.verify_command.strip():
        return ()
    return (
        Lint(
            ("tasks", i, "verify_command"),
            f"verify_command is empty: task `{task.name}` always passes, whatever the "
            'agent does (write verify_command = "true" to say so)',
            Severity.WARNING,
        ),
    )


def process_string_too_long(task: Task, i: int, settings: Settings, mode: Mode) -> Sequence[Lint]:
    """Errs on a system prompt (and a command agent's prompt) over `MAX_PROCESS_STRING_BYTES`:
    Linux refuses such an argument or environment string when the agent starts."""
    # UTF-8 takes at most 4 bytes a character: a short text is not encoded to be measured
    short = MAX_PROCESS_STRING_BYTES // 4
    passed_on = [("system_prompt", task.system_prompt)]
    if task.agent == "command":
        passed_on.append(("prompt", task.prompt))
    found = []
    for key, text in passed_on:
        if text is None or len(text) <= short:
            continue
        size = len(text.encode("utf-8"))
        if size > MAX_PROCESS_STRING_BYTES:
            found.append(
                Lint(
                    ("tasks", i, key),
                    f"`{key}` of task `{task.name}` is {size:,} bytes: "
                    f"at most {MAX_PROCESS_STRING_BYTES:,} can be passed to the agent "
                    "(Linux refuses a single argument or environment string over 128 KiB); "
                    "put the long part in a file and point the prompt at it",
                )
            )
    return found


def claude_keys_on_command_agent(
    task: Task, i: int, settings: Settings, mode: Mode
) -> Sequence[Lint]:
    """Warns on keys only the `claude` backend reads (and `resume_previous_session`) set on a
    task that uses `agent = "command"`: they are ignored."""
    if task.agent != "command":
        return ()
    ignored = list(CLAUDE_KEYS)
    if task.resume_previous_session:  # a command agent has no session to resume
        ignored.append("resume_previous_session")
    return [
        Lint(
            ("tasks", i, key),
            f'{key} has no effect: task `{task.name}` uses agent = "command"',
            Severity.WARNING,
        )
        for key in ignored
        if key in task.model_fields_set
    ]


def mistyped_placeholder(task: Task, i: int, settings: Settings, mode: Mode) -> Sequence[Lint]:
    """Warns on `{name}` in `agent_command` close to a placeholder but not one (`{promt}`): it
    is passed as is, not replaced. Located in `[settings]` when the task inherits it."""
    if not task.agent_command:
        return ()
    key = "agent_command"
    where = ("tasks", i, key) if key in task.model_fields_set else ("settings", key)
    return [
        Lint(
            where,
            f"agent_command has `{{{typo}}}`, which is not a placeholder"
            f"{did_you_mean('{' + typo + '}', PLACEHOLDERS)} (it is passed as is)",
            Severity.WARNING,
        )
        for typo in unknown_placeholders(task.agent_command)
    ]


def task_rate_limit_pattern(task: Task, i: int, settings: Settings, mode: Mode) -> Sequence[Lint]:
    """Errs on a task's own `rate_limit_pattern` that is no regular expression, and warns when
    the task's agent is not a `command` one: only that reads it."""
    if "rate_limit_pattern" not in task.model_fields_set:
        return ()
    loc = ("tasks", i, "rate_limit_pattern")
    problem = pattern_problem(task.rate_limit_pattern)
    if problem:
        return (Lint(loc, problem),)
    if task.agent != "command":
        message = f'task `{task.name}` uses agent = "{task.agent}"'
        return (Lint(loc, f"rate_limit_pattern has no effect: {message}", Severity.WARNING),)
    return ()


def scheduling_keys_in_sequential_mode(
    task: Task, i: int, settings: Settings, mode: Mode
) -> Sequence[Lint]:
    """Warns on graph-mode scheduling keys in a file without `depends_on` (sequential mode),
    which runs one task at a time in file order: they change nothing."""
    if mode != "sequential":
        return ()
    return [
        Lint(
            ("tasks", i, key),
            f"{key} has no effect in sequential mode (no task has depends_on)",
            Severity.WARNING,
        )
        for key in ("priority", "exclusive", "cpu_required", "memory_required")
        if key in task.model_fields_set
    ]


SETTINGS_RULES: tuple[SettingsRule, ...] = (
    max_retries_is_obsolete,
    more_agents_than_tasks,
    settings_program_is_empty,
    worktree_paths_outside,
    settings_rate_limit_pattern_is_invalid,
)
TASK_RULES: tuple[TaskRule, ...] = (
    task_program_is_empty,
    command_agent_without_command,
    verify_command_is_empty,
    process_string_too_long,
    claude_keys_on_command_agent,
    mistyped_placeholder,
    task_rate_limit_pattern,
    scheduling_keys_in_sequential_mode,
)


def lint(
    settings: Settings,
    tasks: Sequence[Task | None],
    mode: Mode,
    settings_rules: Sequence[SettingsRule] | None = None,
    task_rules: Sequence[TaskRule] | None = None,
) -> Iterator[Lint]:
    """Every rule's lints: the settings rules, then the task rules on each task in file order
    (`tasks` by file index: a task that did not validate is None and is skipped). The rules
    default to this module's `SETTINGS_RULES` and `TASK_RULES` as they are at the call."""
    if settings_rules is None:
        settings_rules = SETTINGS_RULES
    if task_rules is None:
        task_rules = TASK_RULES
    for settings_rule in settings_rules:
        yield from settings_rule(settings, mode)
    inherited: set[tuple[Loc, str]] = set()  # one line in the file: one message, not one per
    for i, task in enumerate(tasks):  # task that inherits it
        if task is None:
            continue
        for task_rule in task_rules:
            lints = task_rule(task, i, settings, mode)
            if not lints:  # the usual case: `()`
                continue
            for found in lints:
                if found.loc[0] == "settings":
                    if (found.loc, found.message) in inherited:
                        continue
                    inherited.add((found.loc, found.message))
                yield found
