"""The workflow file: TOML -> typed `Workflow`, or every problem at once as located diagnostics.

One schema (the pydantic models below) is the single source of keys, types and defaults; the
README's reference is checked against it by the tests.

Loading runs in phases, each collecting diagnostics instead of stopping at the first:
1. read bytes (missing, not a regular file, too large, not UTF-8) -> one error, stop
2. parse TOML (syntax error with line, column and caret)          -> one error, stop
3. shape: top-level keys, `[settings]`, each `[[tasks]]` table (pydantic, strict types)
4. meaning: names, dependencies, transitions, cycles (on whatever parsed in phase 3)
Positions come from `SourceMap`, built only if some message needs one.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .diagnostics import (
    BIDI,
    CONTROL,
    Diagnostic,
    Severity,
    Suggester,
    WorkflowError,
    did_you_mean,
    source_excerpt,
)
from .graph import CycleError, DependencyGraph
from .places import default_working_directory, workflow_identity
from .source import Loc, SourceMap

MAX_FILE_BYTES = 256 * 1024 * 1024
RESERVED_NAMES = frozenset({"next", "stop", "retry", "repeat"})
AgentKind = Literal["claude", "command"]
# Claude Code's permission modes (claude-agent-sdk `PermissionMode`).
PermissionMode = Literal["default", "acceptEdits", "bypassPermissions", "plan", "dontAsk", "auto"]
# Keys that only the `claude` backend reads (a `command` task setting them is warned about).
CLAUDE_KEYS = ("model", "max_turns", "allowed_tools", "disallowed_tools", "permission_mode")
# Task keys that take the `[settings]` value when the task does not set them.
INHERITED_KEYS = ("agent", "agent_command", "verify_timeout", *CLAUDE_KEYS)
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
_NO_NUL = r"^[^\x00]*$"
_ENV_NAME = r"^[^=\x00]+$"  # execve's `NAME=value`: the first `=` ends the name
Text = Annotated[str, StringConstraints(pattern=_NO_NUL)]
EnvName = Annotated[str, StringConstraints(pattern=_ENV_NAME)]


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
    retry_delay: float = Field(
        2, ge=0, description="Base seconds of exponential backoff (with jitter) between attempts."
    )
    agent: AgentKind = Field("claude", description='Agent backend: "claude" or "command".')
    agent_command: list[Text] | None = Field(
        None,
        min_length=1,
        description="argv template of the `command` agent; `{prompt}`, `{task}`, `{attempt}`.",
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
    verify_timeout: float = Field(
        None, ge=MIN_TIMEOUT_S, validate_default=True, description="Overrides `[settings]`."
    )
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


_TASKS = TypeAdapter(list[Task])
_CHUNK = 1024  # tasks validated in one call
TOP_LEVEL_KEYS = ("settings", "tasks")


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


_LONG_DECIMAL = re.compile(r"(?<![\w.])[+-]?[0-9](?:_?[0-9]){4000,}")
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


def load_workflow(path: str | os.PathLike[str]) -> Workflow:
    """Read, parse and validate a workflow file; raise `WorkflowError` with every problem."""
    return _Loader(Path(path)).load()


def format_diagnostics(diagnostics: Sequence[Diagnostic]) -> str:
    return "\n".join(d.format() for d in diagnostics)


@dataclass(slots=True)
class _TaskRef:
    """What phase 4 needs of a task, taken from the raw table whether or not it validated."""

    index: int
    name: str | None
    depends_on: list[str] | None
    has_depends_key: bool
    on_success: str | None
    on_failure: str | None


class _Loader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)
        self.text = ""
        self.diagnostics: list[Diagnostic] = []
        self.suggest = Suggester()  # bounded: a file may name thousands of unknown tasks
        self.normalised: dict[str, int] = {}  # NFC of each task name -> its first task
        self.huge_integers: set[Loc] = set()

    @cached_property
    def source(self) -> SourceMap:
        return SourceMap(self.text)

    def report(
        self, loc: Loc, message: str, severity: Severity = Severity.ERROR, line: int | None = None
    ) -> None:
        col: int | None = None
        if line is None:
            line, col = self.source.locate(loc)
        self.diagnostics.append(Diagnostic(self.label, line, message, severity, col))

    def fail(
        self, message: str, line: int = 0, col: int | None = None, excerpt: str | None = None
    ) -> WorkflowError:
        return WorkflowError([Diagnostic(self.label, line, message, Severity.ERROR, col, excerpt)])

    # -- phase 1 and 2 -------------------------------------------------------------------------

    def read(self) -> str:
        try:
            st = self.path.stat()
            if stat.S_ISDIR(st.st_mode):
                raise self.fail("is a directory, not a workflow file")
            if not stat.S_ISREG(st.st_mode):
                # A device or a FIFO has no size to check: /dev/zero never ends, a FIFO without
                # a writer never answers. Not opened at all: opening some devices does things.
                raise self.fail(
                    f"not a regular file ({_file_kind(st.st_mode)}): "
                    "a workflow must be a file on disk"
                )
            if st.st_size > MAX_FILE_BYTES:
                raise self.fail(
                    f"file is {st.st_size / 2**20:.0f} MiB; workflow files are limited to "
                    f"{MAX_FILE_BYTES // 2**20} MiB"
                )
            data = _read_at_most(self.path, st.st_size, MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:  # it grew (or was replaced) since the stat
                raise self.fail(
                    f"file is over {MAX_FILE_BYTES // 2**20} MiB; workflow files are limited "
                    f"to {MAX_FILE_BYTES // 2**20} MiB"
                )
        except FileNotFoundError:
            raise self.fail("no such file") from None
        except PermissionError:
            raise self.fail("permission denied") from None
        except OSError as exc:
            raise self.fail(f"cannot read: {exc.strerror or exc}") from None
        try:
            return data.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            raise self.fail(
                f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded "
                "(workflow files must be UTF-8)",
                line,
                col,
            ) from None

    def parse(self) -> dict[str, Any]:
        if not self.text.strip():
            raise self.fail("the file is empty: a workflow needs at least one [[tasks]] table", 1)
        try:
            return tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
            if m:
                line, col = int(m.group(1)), int(m.group(2))
                message = message[: m.start()]
            else:
                line, col = self.source.line_count, None
                message = re.sub(r"\s*\(at end of document\)$", " at end of file", message)
            excerpt = source_excerpt(self.source.line_text(line), col)
            raise self.fail(f"invalid TOML: {message}", line, col, excerpt) from None
        except RecursionError:
            raise self.fail("invalid TOML: values nested too deeply", 1) from None
        except ValueError:  # Python's limit on converting a decimal string to an int
            m = _LONG_DECIMAL.search(self.text)
            line = self.text.count("\n", 0, m.start()) + 1 if m else 1
            col = m.start() - (self.text.rfind("\n", 0, m.start()) + 1) + 1 if m else None
            raise self.fail(
                "invalid TOML: an integer with thousands of digits "
                "(TOML integers are 64-bit: at most 9223372036854775807)",
                line,
                col,
                source_excerpt(self.source.line_text(line), col),
            ) from None

    # -- phase 3 -------------------------------------------------------------------------------

    def load(self) -> Workflow:
        self.text = self.read()
        doc = self.parse()
        self.check_integers(doc, ())
        for key in doc:
            if key not in TOP_LEVEL_KEYS:
                self.report(
                    (key,),
                    f"unknown top-level key `{key}`{did_you_mean(key, TOP_LEVEL_KEYS)} "
                    "(a workflow has [settings] and [[tasks]])",
                )
        settings = self.validate_settings(doc.get("settings", {}))
        raw_tasks = doc.get("tasks")
        tasks: list[Task | None] = []
        refs: list[_TaskRef] = []
        if raw_tasks is None:
            self.report((), "no tasks: add at least one [[tasks]] table", line=1)
        elif not isinstance(raw_tasks, list) or not all(isinstance(t, dict) for t in raw_tasks):
            self.report(("tasks",), "`tasks` must be an array of tables: write each as [[tasks]]")
        elif not raw_tasks:
            self.report(("tasks",), "no tasks: `tasks` is empty")
        else:
            _share_names(raw_tasks)
            refs = [_task_ref(i, raw) for i, raw in enumerate(raw_tasks)]
            tasks = self.validate_tasks(raw_tasks, settings)  # empties raw_tasks
        mode: Mode = "graph" if any(r.has_depends_key for r in refs) else "sequential"
        graph = self.check_meaning(refs, settings, mode)
        if settings is not None and tasks:
            self.check_settings_use(settings, tasks, mode)
        if any(d.severity is Severity.ERROR for d in self.diagnostics):
            self.diagnostics.sort(key=lambda d: (d.line, d.severity is not Severity.ERROR))
            raise WorkflowError(self.diagnostics)
        assert settings is not None and graph is not None
        return Workflow(
            path=self.path,
            settings=settings,
            tasks=tuple(t for t in tasks if t is not None),
            mode=mode,
            graph=graph,
            warnings=tuple(self.diagnostics),
            text=self.text,
        )

    def check_integers(self, table: dict[str, Any], loc: Loc) -> None:
        """Report integers TOML does not have: it has 64-bit ones, and says a parser must refuse
        the others (tomllib keeps them, as Python ints of any size)."""
        for key, value in table.items():
            if isinstance(value, dict):
                self.check_integers(value, (*loc, key))
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, dict):
                        self.check_integers(item, (*loc, key, i))
            elif type(value) is int and not -(2**63) <= value < 2**63:
                self.huge_integers.add((*loc, key))  # not reported again by the schema
                self.report(
                    (*loc, key),
                    f"`{key}` is an integer outside TOML's 64-bit range "
                    "(-9223372036854775808 to 9223372036854775807)",
                )

    def validate_settings(self, raw: Any) -> Settings | None:
        if not isinstance(raw, dict):
            self.report(("settings",), "`settings` must be a table: write it as [settings]")
            return None
        try:
            return Settings.model_validate(raw)
        except ValidationError as exc:
            self.report_validation(exc, ("settings",), Settings)
            return None

    def validate_tasks(
        self, raw: list[dict[str, Any] | None], settings: Settings | None
    ) -> list[Task | None]:
        """The tasks, None for each one that did not validate. Validated a chunk at a time, each
        table dropped from `raw` once its model is built: the parsed tables of a file of many
        small tasks (their dicts and key strings) took more memory than the models."""
        context = {"settings": settings or Settings()}
        shared = _Shared()
        tasks: list[Task | None] = []
        for start in range(0, len(raw), _CHUNK):
            chunk = raw[start : start + _CHUNK]
            raw[start : start + _CHUNK] = [None] * len(chunk)
            tasks += (shared(task) for task in self._validate_chunk(chunk, start, context))
            del chunk
        return tasks

    def _validate_chunk(
        self, chunk: list[Any], start: int, context: dict[str, Any]
    ) -> list[Task | None]:
        try:  # one call for the whole chunk: pydantic-core loops in Rust
            return list(_TASKS.validate_python(chunk, context=context))
        except ValidationError as exc:
            self.report_validation(exc, ("tasks",), Task, start)
            bad = {e["loc"][0] for e in exc.errors(include_url=False)}
        return [
            None if i in bad else Task.model_validate(t, context=context)
            for i, t in enumerate(chunk)
        ]

    def report_validation(
        self, exc: ValidationError, prefix: Loc, model: type[BaseModel], start: int = 0
    ) -> None:
        """Report each error of `exc`; `start`: the index of the chunk's first task."""
        for found in exc.errors(include_url=False):
            error = found
            if start:  # the index in the chunk -> in the file
                index, *rest = found["loc"]
                assert isinstance(index, int)
                error = {**found, "loc": (index + start, *rest)}
            loc = prefix + tuple(error["loc"])
            if loc not in self.huge_integers:
                self.report(loc, _explain(error, model))

    # -- phase 4 -------------------------------------------------------------------------------

    def hint(self, name: str, names: Iterable[str]) -> str:
        """What to add to a message about an unknown task `name`: the task it is mistaken for."""
        same = self.normalised.get(unicodedata.normalize("NFC", name))
        if same is not None:
            line = self.source.locate(("tasks", same, "name"))[0]
            return (
                f"; the task name at line {line} looks the same but is written with other "
                "Unicode code points (compare them in NFC form)"
            )
        return self.suggest(name, names)

    def check_meaning(
        self, refs: list[_TaskRef], settings: Settings | None, mode: Mode
    ) -> DependencyGraph | None:
        index: dict[str, int] = {}
        for ref in refs:
            name = ref.name
            if name is None:
                continue
            problem = _name_problem(name)
            if problem:
                self.report(("tasks", ref.index, "name"), problem)
            nfc = unicodedata.normalize("NFC", name)
            if name in index:
                first = self.source.locate(("tasks", index[name], "name"))[0]
                self.report(
                    ("tasks", ref.index, "name"),
                    f"duplicate task name `{name}` (first defined at line {first})",
                )
            elif nfc in self.normalised:
                # Canonically equivalent: the same text to the eye (and to a Mac's file
                # system), in other code points: `é` or `e` + a combining accent.
                first = self.source.locate(("tasks", self.normalised[nfc], "name"))[0]
                self.report(
                    ("tasks", ref.index, "name"),
                    f"duplicate task name `{name}`: the same as the name at line {first} "
                    "written with other Unicode code points (compare them in NFC form)",
                )
            else:
                index[name] = ref.index
                self.normalised[nfc] = ref.index
        if mode == "graph":
            return self.check_graph(refs, index)
        self.check_sequence(refs, index, settings)
        return DependencyGraph([[] for _ in refs])

    def check_graph(self, refs: list[_TaskRef], index: dict[str, int]) -> DependencyGraph:
        deps: list[tuple[int, ...]] = []  # tuples, as the graph keeps them: no copy
        for ref in refs:
            here = ("tasks", ref.index)
            mine: list[int] = []
            seen: set[str] = set()
            for dep in ref.depends_on or ():
                if dep in seen:
                    self.report(
                        (*here, "depends_on"),
                        f"`{dep}` is listed twice in depends_on",
                        Severity.WARNING,
                    )
                    continue
                seen.add(dep)
                target = index.get(dep)
                if dep == ref.name:
                    self.report((*here, "depends_on"), f"task `{dep}` depends on itself")
                elif target is None:
                    self.report(
                        (*here, "depends_on"),
                        f"unknown dependency `{dep}`{self.hint(dep, index)}",
                    )
                else:
                    mine.append(target)
            deps.append(tuple(mine))
            if ref.on_success is not None and ref.on_success != "next":
                self.report(
                    (*here, "on_success"),
                    f'on_success = "{ref.on_success}" is not allowed in graph mode (this workflow '
                    "uses depends_on): what runs after a task is decided by the tasks that depend "
                    'on it, so on_success must be "next"',
                )
            if ref.on_failure is not None and ref.on_failure not in FAILURE_KEYWORDS:
                why = (
                    "jumping to a task is sequential-mode only; in graph mode make the task "
                    "depend on it instead"
                    if ref.on_failure in index
                    else f"it must be one of {_quoted(FAILURE_KEYWORDS)}"
                    + did_you_mean(ref.on_failure, FAILURE_KEYWORDS)
                )
                self.report(
                    (*here, "on_failure"),
                    f'on_failure = "{ref.on_failure}" is not allowed in graph mode: {why}',
                )
        graph = DependencyGraph(deps)
        try:
            graph.order  # noqa: B018 - cached; a full order means no cycle to look for
            return graph
        except CycleError:
            pass
        names = [r.name or f"#{r.index + 1}" for r in refs]
        for cycle in graph.cycles():
            path = _chain([names[i] for i in [*cycle, cycle[0]]])
            self.report(
                ("tasks", cycle[0], "depends_on"),
                f"dependency cycle: {path} (each task depends on the next)",
            )
        return graph

    def check_sequence(
        self, refs: list[_TaskRef], index: dict[str, int], settings: Settings | None
    ) -> None:
        successors: list[list[int]] = []  # transitions that can revisit a task
        for ref in refs:
            here = ("tasks", ref.index)
            targets: list[int] = []
            for key, value, keywords in (
                ("on_success", ref.on_success, SUCCESS_KEYWORDS),
                ("on_failure", ref.on_failure, FAILURE_KEYWORDS),
            ):
                if value is None or value in keywords:
                    # `retry` (on_failure's default) moves on to the next task once its
                    # attempts are used up, as `next` does.
                    moves_on = value in ("next", "retry") or (value is None and key == "on_failure")
                    if value == "repeat":
                        targets.append(ref.index)
                    elif moves_on and ref.index + 1 < len(refs):
                        targets.append(ref.index + 1)
                    continue
                if value in index:
                    targets.append(index[value])
                    continue
                other_key = "on_failure" if key == "on_success" else "on_success"
                other = FAILURE_KEYWORDS if key == "on_success" else SUCCESS_KEYWORDS
                hint = (
                    f' ("{value}" is only valid for {other_key})'
                    if value in other
                    else self.hint(value, [*keywords, *index])
                )
                self.report(
                    (*here, key),
                    f'{key} = "{value}" is neither one of {_quoted(keywords)} '
                    f"nor a task name{hint}",
                )
            if ref.on_success is None and ref.index + 1 < len(refs):
                targets.append(ref.index + 1)
            successors.append(targets)
        if settings is not None and not settings.allow_infinite_loops and refs:
            loop = DependencyGraph(successors).reachable_cycle(0)
            if loop:
                names = [r.name or f"#{r.index + 1}" for r in refs]
                path = _chain([names[i] for i in [*loop, loop[0]]])
                self.report(
                    ("tasks", loop[-1]),
                    f"transitions can revisit a task ({path}); without allow_infinite_loops = "
                    "true the run stops with a failure when that happens",
                    Severity.WARNING,
                )

    def check_settings_use(self, settings: Settings, tasks: list[Task | None], mode: Mode) -> None:
        """The lints of `lints.py`: settings that do nothing, placeholder typos and the like."""
        from .lints import lint  # lints.py reads this module's schema: imported once loaded

        for found in lint(settings, tasks, mode):
            self.report(found.loc, found.message, found.severity)


def _read_at_most(path: Path, expected: int, limit: int) -> bytes:
    """Up to `limit` bytes of `path`, whose size was `expected` when checked. Bounded and
    non-blocking, should a device or a FIFO have taken the file's place since."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        chunks: list[bytes] = []
        size = 0
        want = expected + 1  # the usual file: one read for the data, one to see the end
        while size < limit:
            chunk = os.read(fd, min(want, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            want = 1 << 20
        return b"".join(chunks)
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "a pipe or FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((kind for test, kind in kinds if test(mode)), "another kind of file")


def worktree_path_problem(item: str) -> str | None:
    """Why a `worktree_copy` / `worktree_link` entry is not a path inside the repository (the
    rest of a message that starts with the entry), or None. Only the text is judged here; what
    the path leads to on disk is checked when a run starts (`worktrees.confined_source`)."""
    inside = "name a path inside the repository, relative to its root"
    if not item:
        return f"is empty: {inside}"
    if item.startswith("/"):
        return f"is an absolute path: {inside}"
    parts = [part for part in item.split("/") if part not in ("", ".")]
    if ".." in parts:
        return f"has a `..` component, which can lead out of the repository: {inside}"
    if not parts:
        return f"is the repository itself: {inside}"
    if any(part.casefold() == ".git" for part in parts):
        return "is git's own data (`.git`), which a task's worktree must not copy or share"
    return None


class _Shared:
    """Tasks' equal parts made one object: a file of small tasks holds thousands of models.

    - Tasks that set the same keys share one set of their names (a set of five or more strings
      takes 728 bytes, more than the rest of the model but its dict). A frozen model's set is
      never changed (`model_copy` copies it).
    - Equal lists of strings of the keys inherited from `[settings]` (`allowed_tools` is `[]`
      in nearly every task) and empty `agent_env` tables: one object each, not one per task
      (~70 bytes each). Prompter never changes a task's list or table in place: a frozen model's
      values are read only.
    """

    def __init__(self) -> None:
        self.fields_sets: dict[frozenset[str], set[str]] = {}
        self.lists: dict[tuple[str, ...], list[str]] = {}
        self.empty_env: dict[str, str] = {}

    def __call__(self, task: Task | None) -> Task | None:
        if task is None:
            return None
        own = task.__pydantic_fields_set__
        object.__setattr__(
            task, "__pydantic_fields_set__", self.fields_sets.setdefault(frozenset(own), own)
        )
        values = task.__dict__
        for key in _SHARED_LISTS:
            value = values[key]
            if value is not None:
                values[key] = self.lists.setdefault(tuple(value), value)
        if not values["agent_env"]:
            values["agent_env"] = self.empty_env
        return task


_SHARED_LISTS = ("allowed_tools", "disallowed_tools", "agent_command")


def _share_names(raw_tasks: list[dict[str, Any]]) -> None:
    """Make each task name in `name` and `depends_on` one string object: tomllib makes one per
    occurrence, and a file of small tasks names each about twice (~80 bytes a copy)."""
    names: dict[str, str] = {}
    for raw in raw_tasks:
        name = raw.get("name")
        if type(name) is str:
            raw["name"] = names.setdefault(name, name)
        deps = raw.get("depends_on")
        if type(deps) is list:
            for i, dep in enumerate(deps):
                if type(dep) is str:
                    deps[i] = names.setdefault(dep, dep)


def _task_ref(index: int, raw: Mapping[str, Any]) -> _TaskRef:
    def text(key: str) -> str | None:
        value = raw.get(key)
        return value if isinstance(value, str) else None

    deps = raw.get("depends_on")
    return _TaskRef(
        index=index,
        name=text("name"),
        depends_on=[d for d in deps if isinstance(d, str)] if isinstance(deps, list) else None,
        has_depends_key="depends_on" in raw,
        on_success=text("on_success"),
        on_failure=text("on_failure"),
    )


def _name_problem(name: str) -> str | None:
    if not name.strip():
        return "task name is empty"
    if name in RESERVED_NAMES:
        return (
            f"`{name}` is a reserved word and cannot be a task name "
            f"(reserved: {_quoted(sorted(RESERVED_NAMES))}, as they are transition keywords)"
        )
    if name != name.strip():
        return f"task name {name!r} has leading or trailing white space"
    if m := _CONTROL.search(name):
        return f"task name {name!r} contains a control character (U+{ord(m.group()):04X})"
    if m := _BIDI.search(name):
        return (
            f"task name {name!r} contains a bidirectional formatting character "
            f"(U+{ord(m.group()):04X}), which can reorder how it and the text around it display"
        )
    if len(name) > 200:
        return f"task name is {len(name)} characters long; the limit is 200"
    return None


_CONTROL = re.compile(f"[{CONTROL}]")
_BIDI = re.compile(f"[{BIDI}]")


def _chain(names: Sequence[str], keep: int = 10) -> str:
    """`a -> b -> c`, shortened in the middle past 2 * `keep` + 1 names (a cycle can go through
    thousands of tasks: one message line, not hundreds of kilobytes)."""
    if len(names) <= 2 * keep + 1:
        return " -> ".join(names)
    more = len(names) - 2 * keep
    return " -> ".join([*names[:keep], f"… ({more} more) …", *names[-keep:]])


def _quoted(words: Sequence[str]) -> str:
    return ", ".join(f'"{w}"' for w in words)


_TOML_TYPES = {
    str: "a string",
    int: "an integer",
    float: "a float",
    bool: "a boolean",
    dict: "a table",
    list: "an array",
}
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "an array",
    "tuple_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "int_from_float": "an integer",
}


def _env_name_problem(name: str) -> str:
    if not name:
        return "`agent_env` has an empty variable name"
    if "=" in name:
        # execve takes `NAME=value` strings: the first `=` would end the name.
        return f"`agent_env` variable name {name!r} contains `=`, which cannot be in a name"
    return f"`agent_env` variable name {name!r} contains a NUL character (U+0000)"


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _dotted(loc: Sequence[Any]) -> str:
    """A pydantic location as the TOML file writes it: `agent_command[1]`, `agent_env.PATH`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]" if out else ""  # a leading index is the task's: not in the file
        elif part != "[key]":  # pydantic's marker for an error in a table's key
            text = part if _BARE_KEY.fullmatch(part) else repr(part)
            out += f".{text}" if out else text
    return out


def _describe(value: Any) -> str:
    kind = next((v for t, v in _TOML_TYPES.items() if type(value) is t), "a date/time")
    if kind == "a date/time":  # as the file writes it, not as Python's repr
        shown = value.isoformat() if hasattr(value, "isoformat") else str(value)
    else:
        shown = _number(value) if kind == "an integer" else repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{kind} ({shown})" if kind not in ("a table", "an array") else kind


def _number(value: Any) -> str:
    if type(value) is int and value.bit_length() > 64:
        # repr() refuses ints of over 4300 digits, and a hexadecimal TOML integer can be one
        return f"{value.bit_length()} bits long"
    return f"{value:g}" if isinstance(value, float) else repr(value)


def _explain(error: Mapping[str, Any], model: type[BaseModel]) -> str:
    """One sentence for one pydantic error, in the words of the TOML file."""
    loc = error["loc"]
    kind = error["type"]
    ctx = error.get("ctx") or {}
    keys = [p for p in loc if isinstance(p, str)]
    key = keys[-1] if keys else "value"
    if len(loc) > 1 and isinstance(loc[-1], int):
        key = f"{loc[-2]}[{loc[-1]}]" if isinstance(loc[-2], str) else key
    if kind == "missing":
        return f"missing required key `{key}`"
    if kind == "extra_forbidden":
        if model is Settings and loc == ("tasks",):
            return (
                "`tasks` is inside [settings]: every key after a [settings] header belongs to it; "
                "write tasks as [[tasks]] tables, or put `tasks = [...]` before [settings]"
            )
        hint = did_you_mean(str(loc[-1]), model.model_fields)
        return f"unknown key `{loc[-1]}`{hint}"
    if kind in _EXPECTED:
        return f"`{key}` must be {_EXPECTED[kind]}, not {_describe(error.get('input'))}"
    if kind == "finite_number":
        return f"`{key}` must be a finite number, not {_number(error.get('input'))}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == _ENV_NAME:
        return _env_name_problem(error.get("input", ""))
    if kind == "string_pattern_mismatch":  # _NO_NUL, the only other pattern
        return (
            f"`{_dotted(loc)}` contains a NUL character (U+0000), which no process argument, "
            "environment variable or path can hold"
        )
    if kind == "literal_error":
        return f"`{key}` must be one of {ctx.get('expected')}, not {error.get('input')!r}"
    bounds = {
        "greater_than_equal": ("≥", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("≤", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        sign, name = bounds[kind]
        return f"`{key}` must be {sign} {_number(ctx.get(name))}, not {_number(error.get('input'))}"
    if kind in ("too_short", "string_too_short"):
        return f"`{key}` must not be empty"
    return f"`{key}`: {error.get('msg', 'invalid value')}"
