"""Reading a workflow file: TOML -> typed `Workflow`, or every problem at once as located
diagnostics.

Loading runs in phases, each collecting diagnostics instead of stopping at the first:
1. read bytes (missing, not a regular file, too large, not UTF-8) -> one error, stop
2. parse TOML (syntax error with line, column and caret)          -> one error, stop
3. shape: top-level keys, `[settings]`, each `[[tasks]]` table (pydantic, strict types)
4. meaning: names, dependencies, transitions, cycles (on whatever parsed in phase 3)
then the lints of `lints.py`. Positions come from `SourceMap`, built only if some message needs
one.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from ..diagnostics import (
    Diagnostic,
    Severity,
    Suggester,
    WorkflowError,
    did_you_mean,
    source_excerpt,
)
from ..graph import CycleError, DependencyGraph
from ..text import escape_controls
from ..toml_positions import Loc, SourceMap
from .messages import chain, explain, file_kind, name_problem, quoted
from .schema import FAILURE_KEYWORDS, SUCCESS_KEYWORDS, Mode, Settings, Task, Workflow

MAX_FILE_BYTES = 256 * 1024 * 1024
TOP_LEVEL_KEYS = ("settings", "tasks")
_TASKS = TypeAdapter(list[Task])
_CHUNK = 1024  # tasks validated in one call
_LONG_DECIMAL = re.compile(r"(?<![\w.])[+-]?[0-9](?:_?[0-9]){4000,}")


def load_workflow(path: str | os.PathLike[str]) -> Workflow:
    """Read, parse and validate a workflow file; raise `WorkflowError` with every problem."""
    return _Loader(Path(path)).load()


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
                    f"not a regular file ({file_kind(st.st_mode)}): "
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
                self.report(loc, explain(error, model))

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
            problem = name_problem(name)
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
                    else f"it must be one of {quoted(FAILURE_KEYWORDS)}"
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
            path = chain([names[i] for i in [*cycle, cycle[0]]])
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
                shown = escape_controls(value)  # a message is one line, whatever the value holds
                other_key = "on_failure" if key == "on_success" else "on_success"
                other = FAILURE_KEYWORDS if key == "on_success" else SUCCESS_KEYWORDS
                hint = (
                    f' ("{shown}" is only valid for {other_key})'
                    if value in other
                    else self.hint(value, [*keywords, *index])
                )
                self.report(
                    (*here, key),
                    f'{key} = "{shown}" is neither one of {quoted(keywords)} nor a task name{hint}',
                )
            if ref.on_success is None and ref.index + 1 < len(refs):
                targets.append(ref.index + 1)
            successors.append(targets)
        if settings is not None and not settings.allow_infinite_loops and refs:
            loop = DependencyGraph(successors).reachable_cycle(0)
            if loop:
                names = [r.name or f"#{r.index + 1}" for r in refs]
                path = chain([names[i] for i in [*loop, loop[0]]])
                self.report(
                    ("tasks", loop[-1]),
                    f"transitions can revisit a task ({path}); without allow_infinite_loops = "
                    "true the run stops with a failure when that happens",
                    Severity.WARNING,
                )

    def check_settings_use(self, settings: Settings, tasks: list[Task | None], mode: Mode) -> None:
        """The lints of `lints.py`: settings that do nothing, placeholder typos and the like."""
        from ..lints import lint  # lints.py reads the schema: imported once loaded

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
