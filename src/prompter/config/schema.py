"""The workflow file's schema: `[settings]`, `[[tasks]]` and the validated `Workflow`.

The pydantic models below are the single source of keys, types and defaults (the README's
reference is checked against them by the tests); the limits and keywords the loader and the
lints share are defined here too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from ..diagnostics import Diagnostic
from ..graph import DependencyGraph
from ..places import default_working_directory, workflow_identity
from ..toml_positions import SourceMap

RESERVED_NAMES = frozenset({"next", "stop", "retry", "repeat"})
AgentKind = Literal["claude", "command"]
# Claude Code's permission modes (claude-agent-sdk `PermissionMode`).
PermissionMode = Literal["default", "acceptEdits", "bypassPermissions", "plan", "dontAsk", "auto"]
# Keys that only the `claude` backend reads (a `command` task setting them is warned about).
CLAUDE_KEYS = ("model", "max_turns", "allowed_tools", "disallowed_tools", "permission_mode")
# Keys that only the `command` backend reads (a `claude` task setting them is warned about).
COMMAND_KEYS = ("rate_limit_pattern",)
# Task keys that take the `[settings]` value when the task does not set them.
INHERITED_KEYS = (
    "agent",
    "agent_command",
    *COMMAND_KEYS,
    "verify_timeout",
    "verify_first",
    *CLAUDE_KEYS,
)
PLACEHOLDERS = ("{prompt}", "{task}", "{attempt}")
SUCCESS_KEYWORDS = ("next", "stop", "repeat")
FAILURE_KEYWORDS = ("retry", "next", "stop")

Mode = Literal["graph", "sequential"]
Isolation = Literal["auto", "worktree", "shared"]
MAX_CHECK_INTERVAL_S = 3600.0  # a longer wait is a hung run, not a pause before verifying
MIN_TIMEOUT_S = 0.001  # a shorter limit runs out before any process has started
# Linux refuses any single argument or environment string over 128 KiB (MAX_ARG_STRLEN) with
# "Argument list too long". The command agent gets the prompt in $PROMPTER_PROMPT (plus up to
# ~7 KB of retry feedback) and both agents the system prompt in argv or the environment: keep
# them below that, with room for the feedback.
MAX_PROCESS_STRING_BYTES = 120 * 1024

# Strings that reach a process (argv, environment, paths) are C strings there: a NUL cannot be
# passed on, so it is refused here rather than when the process fails to start. The patterns run
# in pydantic-core, not in a Python validator per string.
NO_NUL_PATTERN = r"^[^\x00]*$"
ENV_NAME_PATTERN = r"^[^=\x00]+$"  # execve's `NAME=value`: the first `=` ends the name
Text = Annotated[str, StringConstraints(pattern=NO_NUL_PATTERN)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)]


class _Schema(BaseModel):
    # TOML is typed: "3" is not 3, and an unknown key is a typo until proven otherwise. TOML also
    # has inf and nan, which no count, duration or budget here can mean.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class Settings(_Schema):
    """`[settings]`: applies to the whole run."""

    check_interval: float = Field(
        0,
        ge=0,
        le=MAX_CHECK_INTERVAL_S,
        description="Seconds to wait between the agent finishing and the verify command.",
    )
    max_retries: int | None = Field(
        None,
        ge=0,
        description="Prompter 0.10 key, accepted and ignored (warns): use `max_attempts`.",
    )
    working_directory: Text | None = Field(
        None,
        description=(
            "Where agents and verify commands run; relative to the workflow file's folder. "
            "Default: the root of the git repository holding the workflow file, else its folder "
            "(`places.default_working_directory`)."
        ),
    )
    allow_infinite_loops: bool = Field(
        False, description="Sequential mode: allow jumps and `repeat` to revisit a task."
    )
    max_parallel_tasks: int = Field(4, ge=1, description="Graph mode: tasks running at once.")
    enable_parallel: bool = Field(
        True, description="`false` runs graph mode with one slot (same order rules)."
    )
    max_parallel_agents: int | None = Field(
        None, ge=1, description="Agent phases running at once (API rate limits); default: slots."
    )
    cpu_budget: float | None = Field(
        None, gt=0, description="CPUs shared by running tasks' `cpu_required`; default: CPU count."
    )
    memory_budget_mb: float | None = Field(
        None, gt=0, description="MB shared by running tasks' `memory_required`; default: RAM."
    )
    max_iterations: int = Field(
        1000,
        ge=1,
        description="Sequential mode: cap on task executions; reaching it fails the run.",
    )
    verify_timeout: float = Field(
        300, ge=MIN_TIMEOUT_S, description="Seconds a verify command may run."
    )
    verify_first: bool = Field(
        False,
        description="Run each task's verify command before its first attempt; if it passes, "
        "the task passes as already satisfied and no agent starts.",
    )
    retry_delay: float = Field(
        2, ge=0, description="Base seconds of exponential backoff (with jitter) between attempts."
    )
    agent: AgentKind = Field("claude", description='Agent backend: "claude" or "command".')
    agent_command: list[Text] | None = Field(
        None,
        min_length=1,
        description="argv template of the `command` agent; `{prompt}`, `{task}`, `{attempt}`.",
    )
    rate_limit_pattern: Text | None = Field(
        None,
        min_length=1,
        description="Command agent: a regular expression that, found in the output of an agent "
        "that failed, marks it rate-limited (group `seconds`: the wait); exit 75 does too.",
    )
    agent_env: dict[EnvName, Text] = Field(
        default_factory=dict, description="Extra environment variables for every agent."
    )
    model: Text | None = Field(
        None, min_length=1, description="Claude model; default: Claude Code's default."
    )
    max_turns: int | None = Field(
        None, ge=1, description="Claude: turns per attempt before it stops; no limit when absent."
    )
    allowed_tools: list[Text] = Field(
        default_factory=list, description="Claude: tools allowed without asking."
    )
    disallowed_tools: list[Text] = Field(
        default_factory=list, description="Claude: tools removed from the model's reach."
    )
    permission_mode: PermissionMode = Field(
        "bypassPermissions", description="Claude Code permission mode (CI cannot answer prompts)."
    )
    claude_cli_path: Text | None = Field(
        None,
        min_length=1,
        description="The `claude` executable; default: $PROMPTER_CLAUDE_CLI, else the bundled one.",
    )
    max_cost_usd: float | None = Field(
        None, gt=0, description="Run spend at which nothing new starts; the rest is skipped."
    )
    isolation: Isolation = Field(
        "auto",
        description="`worktree`: a git worktree per task, merged back; `shared`: one tree; "
        "`auto`: worktree in a git repository (no submodules, working directory not "
        "ignored) when tasks can run at once.",
    )
    worktree_copy: list[Text] = Field(
        default_factory=list,
        description="Ignored paths (from the repository root) copied into each worktree.",
    )
    worktree_link: list[Text] = Field(
        default_factory=list,
        description="Ignored paths symlinked into each worktree (shared, e.g. node_modules).",
    )
    worktree_link_dependencies: bool = Field(
        True,
        description="Symlink git-ignored dependency folders (.venv, venv, node_modules, …) "
        "that exist in the user's tree into each worktree.",
    )


class Task(_Schema):
    """One `[[tasks]]` table. The keys in `INHERITED_KEYS` default to `[settings]`."""

    name: str = Field(description="Unique name; not `next`, `stop`, `retry` or `repeat`.")
    prompt: Text = Field(description="The instruction for the agent.")
    verify_command: Text = Field(description="Shell command (`/bin/sh -c`) that decides success.")
    verify_success_code: int = Field(
        0, ge=0, le=255, description="Exit code of `verify_command` that means success."
    )
    on_success: str = Field(
        "next",
        description="Graph mode: `next`. Sequential: `next`, `stop`, `repeat` or a task name.",
    )
    on_failure: str = Field(
        "retry",
        description="`retry`, `next` or `stop`; sequential mode also takes a task name.",
    )
    max_attempts: int = Field(3, ge=1, description='Attempts when `on_failure = "retry"`.')
    timeout: float | None = Field(
        None, ge=MIN_TIMEOUT_S, description="Seconds the agent phase may run; no limit when absent."
    )
    system_prompt: Text | None = Field(None, description="Added to the agent's system prompt.")
    resume_previous_session: bool = Field(
        False, description="Continue the previous agent session instead of a new one."
    )
    depends_on: list[str] | None = Field(
        None, description="Tasks that must pass first; any task having this key means graph mode."
    )
    cpu_required: float = Field(0, ge=0, description="CPUs counted against `cpu_budget`.")
    memory_required: float = Field(0, ge=0, description="MB counted against `memory_budget_mb`.")
    priority: int = Field(0, description="Graph mode: higher starts first among ready tasks.")
    exclusive: bool = Field(False, description="Graph mode: runs alone.")
    agent: AgentKind = Field(None, validate_default=True, description="Overrides `[settings]`.")
    agent_command: list[Text] | None = Field(
        None, min_length=1, validate_default=True, description="Overrides `[settings]`."
    )
    rate_limit_pattern: Text | None = Field(
        None, min_length=1, validate_default=True, description="Overrides `[settings]`."
    )
    verify_timeout: float = Field(
        None, ge=MIN_TIMEOUT_S, validate_default=True, description="Overrides `[settings]`."
    )
    verify_first: bool = Field(None, validate_default=True, description="Overrides `[settings]`.")
    agent_env: dict[EnvName, Text] = Field(
        default_factory=dict, description="Added to (and overriding) `[settings]` `agent_env`."
    )
    model: Text | None = Field(
        None, min_length=1, validate_default=True, description="Overrides `[settings]`."
    )
    max_turns: int | None = Field(
        None, ge=1, validate_default=True, description="Overrides `[settings]`."
    )
    allowed_tools: list[Text] = Field(
        None, validate_default=True, description="Overrides `[settings]`."
    )
    disallowed_tools: list[Text] = Field(
        None, validate_default=True, description="Overrides `[settings]`."
    )
    permission_mode: PermissionMode = Field(
        None, validate_default=True, description="Overrides `[settings]`."
    )

    @field_validator(*INHERITED_KEYS, mode="before")
    @classmethod
    def _inherit_from_settings(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.context is not None:
            return getattr(info.context["settings"], info.field_name or "")
        return value


@dataclass(frozen=True)
class Workflow:
    """A validated workflow: settings, tasks in file order, and their dependency graph."""

    path: Path
    settings: Settings
    tasks: tuple[Task, ...]
    mode: Mode
    graph: DependencyGraph
    warnings: tuple[Diagnostic, ...] = ()
    text: str = field(default="", repr=False)

    @cached_property
    def index(self) -> Mapping[str, int]:
        return {t.name: i for i, t in enumerate(self.tasks)}

    @cached_property
    def workdir(self) -> Path:
        """Where agents and verify commands run, resolved: `working_directory` relative to the
        workflow file's folder, or by default (`places.default_working_directory`) the root of
        the git repository holding the file, else its folder."""
        written = self.settings.working_directory
        if written is None:
            return default_working_directory(self.path)
        return (self.path.parent / written).resolve()

    @property
    def identity(self) -> str:
        """Which workflow a state belongs to (see `places.workflow_identity`)."""
        return workflow_identity(self.path)

    @property
    def slots(self) -> int:
        return self.settings.max_parallel_tasks if self.settings.enable_parallel else 1

    @cached_property
    def task_lines(self) -> tuple[int, ...]:
        """Line of each task's `[[tasks]]` header (for reports and annotations)."""
        if '"""' in self.text or "'''" in self.text:
            # A `[[tasks]]` line may be inside a multi-line string: match strings and comments
            # too, so that they are passed over, and count only the headers.
            headers = [m.start("h") for m in _TASK_HEADER_OR_STRING.finditer(self.text) if m["h"]]
        else:
            headers = [m.start() for m in _TASK_HEADER.finditer(self.text)]
        if len(headers) == len(self.tasks):  # the common case, no scanner needed
            lines, pos, count = [], 0, 1
            for offset in headers:
                count += self.text.count("\n", pos, offset)
                pos = offset
                lines.append(count)
            return tuple(lines)
        source = SourceMap(self.text)
        return tuple(source.locate(("tasks", i))[0] for i in range(len(self.tasks)))


_TASK_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*tasks[ \t]*\]\]", re.M)
# The string bodies are possessive (`*+`, `++`): each character can be consumed only one way, and
# without them Python's `re` kept a state per character of a long string to backtrack into (a
# 5 MB multi-line prompt: 650 MB for `graph --format json`).
_TASK_HEADER_OR_STRING = re.compile(
    r"""(?P<h>^[ \t]*\[\[[ \t]*tasks[ \t]*\]\])"""
    r'''|"""(?:[^"\\]++|\\[\s\S]|"(?!""))*+""""{0,2}'''  # multi-line basic string
    r"""|'''[\s\S]*?''''{0,2}"""  # multi-line literal string
    r"""|"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"|'[^'\n]*+'|\#[^\n]*+""",  # string, literal, comment
    re.M,
)


def with_settings(workflow: Workflow, **updates: Any) -> Workflow:
    """The workflow with `[settings]` keys replaced (values already checked by the caller);
    tasks that inherited a replaced key follow, those that set it themselves keep theirs."""
    settings = workflow.settings.model_copy(update=updates)
    tasks = tuple(
        task.model_copy(
            update={
                key: value
                for key, value in updates.items()
                if key in INHERITED_KEYS and key not in task.model_fields_set
            }
        )
        for task in workflow.tasks
    )
    return replace(workflow, settings=settings, tasks=tasks)
