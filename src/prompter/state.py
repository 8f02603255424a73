"""Durable run state: per-task records, an append-only journal compacted into a snapshot.

On disk, next to each other (say in `.prompter/`):
- `state.json`          the snapshot: JSON of `State`, replaced atomically by `compact()`;
- `state.json.journal`  one JSON line per event since the last compaction,
                        `{"task": {...}}` or `{"run": {...}}`; a later line for the same task
                        (or run id) replaces the earlier one;
- `state.json.lock`     holds the `flock` of the one writer and that writer's pid.

Why a journal: a run with 10k tasks records tens of thousands of events; rewriting the whole
state on each would cost O(events x tasks) I/O. Appending one line per event keeps the total
linear, and one compaction at the end of the run keeps loading fast.

Crash safety (SIGKILL at any instant): a journal line is written with one `write` of the whole
line, so a kill leaves at most one torn line, always the last; `load()` ignores it and the next
writer cuts it off before appending. The fdatasync of a terminal record is batched on a
background thread (group commit, see `_Syncer`): a kill of prompter loses nothing, since the
`write` is done when `record()` returns; only an OS crash or power loss can lose the records of
the last ~50 ms. `compact()` makes the new snapshot durable (temp file,
fsync, rename, fsync of the directory) before it truncates the journal, and replaying a journal
over a snapshot that already contains it changes nothing, so no order of crash loses a record.

A write that fails (a full disk) raises, and the line waits in memory: later lines queue behind
it (a later line must not be overtaken by an earlier one), each append tries them all again, and
`close()` appends them or, failing that, folds them into the snapshot. Whatever the journal holds
at any moment is still a loadable state.

Records are mergeable: `merge()` unions the states of partial runs of a workflow.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Final, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticSerializationError

from .config import Workflow
from .exits import PrompterError
from .regular import NotARegularFile, open_regular, read_regular

_T = TypeVar("_T")

STATE_VERSION: Final = 1
FINGERPRINT_VERSION: Final = 2  # bump when the fingerprinted fields change: re-runs everything


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"


TERMINAL: Final = frozenset(
    {TaskStatus.PASSED, TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.INTERRUPTED}
)


def _scrub(text: str) -> str:
    # Process output decoded with surrogateescape can hold lone surrogates, which cannot be
    # encoded as UTF-8: one of them would make a record unwritable in the middle of a run.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")


Text = Annotated[str, AfterValidator(_scrub)]


class _Record(BaseModel):
    model_config = ConfigDict(
        # A newer prompter may add fields; an older one still reads its state.
        extra="ignore",
        # Default 'null' would write a NaN cost as null, which then fails to load as a float:
        # a record that can be written must be readable.
        ser_json_inf_nan="constants",
    )


RESULT_TEXT_CHARS = 16 * 1024


class AgentUsage(_Record):
    """What an agent backend reports about one turn: its session and what it cost."""

    session_id: Text | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    num_turns: int | None = None
    is_error: bool | None = None  # the backend's own verdict on its turn (Claude's `is_error`)
    result_text: Text | None = None  # its final answer, cut to RESULT_TEXT_CHARS


class AttemptRecord(AgentUsage):  # flat in the file: the usage fields sit beside the rest
    number: int
    started_at: float
    finished_at: float | None = None
    ok: bool = False
    reason: Text | None = None
    agent_exit_code: int | None = None
    agent_duration_s: float | None = None
    verify_exit_code: int | None = None
    verify_duration_s: float | None = None
    output_tail: Text = ""  # bounded by the caller
    fatal: bool = False  # the agent cannot work at all here (no CLI, no credentials): run stopped
    # The verify command could not run (exit 126/127, no shell): the environment's fault, not
    # the agent's; the task fails without another attempt and no agent is told of it.
    environment_error: bool = False
    changed_files: list[Text] | None = None  # "path +added -deleted" (worktree isolation)
    conflict: Text | None = None  # why its changes could not be merged (worktrees)


class TaskRecord(_Record):
    name: Text
    fingerprint: Text
    status: TaskStatus
    reason: Text | None = None
    attempts: list[AttemptRecord] = Field(default_factory=list)  # of the latest visit
    run_id: Text
    started_at: float | None = None
    finished_at: float | None = None
    # Sequential loops run a task again in the same run. Each visit starts a new attempts list
    # (a line of the journal repeats the record: keeping every visit's attempts made a loop's
    # state I/O quadratic); what the earlier visits cost stays in the total.
    visits: int = Field(1, ge=1)
    earlier_cost_usd: float = 0.0

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def cost_usd(self) -> float:
        own = sum(a.cost_usd for a in self.attempts if a.cost_usd is not None)
        return self.earlier_cost_usd + own


class RunRecord(_Record):
    run_id: Text
    workflow: Text  # as given on the command line: what reports show
    # Where it was: `report` may run from another directory, where a namesake may lie.
    workflow_at: Text | None = None
    # Which workflow the state belongs to (`places.workflow_identity`); None in states written
    # before it was recorded, which are taken as they are.
    workflow_id: Text | None = None
    started_at: float
    finished_at: float | None = None
    status: Text | None = None  # "passed" | "failed" | "interrupted"; None while running
    # Why it ended early or failed as a whole (a stop, max_iterations, a budget, a signal).
    reason: Text | None = None
    # What changes.patch is taken from (see changes.py): HEAD and the working tree's git tree
    # at the start (of the run this one resumed, if so); None outside git.
    base_commit: Text | None = None
    base_tree: Text | None = None
    changed_files: int | None = None  # how many paths changes.patch changes; None: no patch


class State(_Record):
    version: int = STATE_VERSION
    tasks: dict[str, TaskRecord] = Field(default_factory=dict)
    runs: list[RunRecord] = Field(default_factory=list)

    def durations(self) -> dict[str, float]:
        """Measured duration of each task that ran to an outcome, for critical-path weights.

        A state holds one record per task, its latest. Passed and failed records measured the
        task; skipped and interrupted ones did not (a skip takes no time, an interruption cuts
        the task short), so they leave the task to the scheduler's default weight.
        """
        out: dict[str, float] = {}
        for name, record in self.tasks.items():
            duration = record.duration_s
            if (
                record.status in (TaskStatus.PASSED, TaskStatus.FAILED)
                and duration is not None
                and math.isfinite(duration)
                and duration >= 0
            ):
                out[name] = duration
        return out

    def owner(self) -> RunRecord | None:
        """The latest run that recorded which workflow the state belongs to, if any."""
        return next((r for r in reversed(self.runs) if r.workflow_id is not None), None)


def check_owner(state: State, identity: str, workflow: str, path: Path) -> None:
    """Refuse (a StateError) the state at `path` unless it belongs to the workflow `identity`
    (given on the command line as `workflow`), or says nothing about whose it is (a state of an
    older prompter, or one no run has used yet): a state of another workflow would mix two
    workflows' records, and its tasks would look like ones no longer in this workflow."""
    owner = state.owner()
    if owner is None or owner.workflow_id == identity:
        return
    raise StateError(
        f"{path}: the state of another workflow ({owner.workflow_id}), not of {workflow} "
        f"({identity}); give each workflow its own --report-dir (or --state-file)"
    )


class _Entry(_Record):
    """One journal line."""

    task: TaskRecord | None = None
    run: RunRecord | None = None


class StateError(PrompterError):
    """The state files cannot be used; the message is one line that says what to do."""


# -- merging ------------------------------------------------------------------------------------


def _moment(value: float | None) -> tuple[int, float]:
    # Unknown (or NaN) times sort before every known time, so a finished record beats an
    # unfinished one and the order stays total.
    if value is None or math.isnan(value):
        return (0, 0.0)
    return (1, value)


def _later(a: TaskRecord | RunRecord, b: TaskRecord | RunRecord) -> bool:
    """Whether `a` wins over `b`: later finish, then later start, then (ties) larger JSON.

    The last rule makes the choice a total order on records, which is what makes `merge`
    commutative and associative; it is only evaluated on exact ties of both times.
    """
    key_a = (_moment(a.finished_at), _moment(a.started_at))
    key_b = (_moment(b.finished_at), _moment(b.started_at))
    if key_a != key_b:
        return key_a > key_b
    return a.model_dump_json() > b.model_dump_json()


def merge(states: Iterable[State]) -> State:
    """The union of the records of several states (say, partial runs in separate CI jobs).

    Per task, the record that finished last wins (then the one that started last). Runs are
    deduplicated by id the same way and listed by start time, so the result does not depend on
    the order of `states`.
    """
    tasks: dict[str, TaskRecord] = {}
    runs: dict[str, RunRecord] = {}
    for state in states:
        for name, record in state.tasks.items():
            held = tasks.get(name)
            if held is None or _later(record, held):
                tasks[name] = record
        for run in state.runs:
            held_run = runs.get(run.run_id)
            if held_run is None or _later(run, held_run):
                runs[run.run_id] = run
    ordered = sorted(runs.values(), key=lambda r: (_moment(r.started_at), r.run_id))
    return State(tasks=dict(sorted(tasks.items())), runs=ordered)


# -- fingerprints -------------------------------------------------------------------------------

# What decides what the agent is asked and how, and what counts as passing. Not the retry and
# transition policy (max_attempts, on_success, on_failure): a pass stays a pass under them.
_FINGERPRINTED = (
    "name",
    "prompt",
    "verify_command",
    "verify_success_code",
    "system_prompt",
    "agent",
    "agent_command",
    "timeout",
    "verify_timeout",
    "resume_previous_session",
    "model",
    "max_turns",
    "allowed_tools",
    "disallowed_tools",
    "permission_mode",
)
_AS_FLOAT = frozenset({"timeout", "verify_timeout"})  # `600` and `600.0` are the same limit


def fingerprints(workflow: Workflow) -> dict[str, str]:
    """sha256 of each task's definition and (graph mode) its dependencies' fingerprints.

    Dependencies enter by fingerprint, so a change anywhere upstream changes every downstream
    fingerprint, and nothing depends on file order or on the order of `depends_on`. One pass in
    topological order: O(V + E) hashing (plus sorting each task's dependency fingerprints).
    """
    tasks = workflow.tasks
    deps = workflow.graph.deps
    out = [""] * len(tasks)
    workdir = _working_directory_as_written(workflow)
    for i in workflow.graph.order:
        task = tasks[i]
        definition: dict[str, Any] = {"v": FINGERPRINT_VERSION}
        for key in _FINGERPRINTED:
            value = getattr(task, key)
            definition[key] = float(value) if key in _AS_FLOAT and value is not None else value
        definition["agent_env"] = {**workflow.settings.agent_env, **task.agent_env}
        definition["working_directory"] = workdir
        if deps[i]:  # roots hash alike in both modes: adding `depends_on = []` re-runs nothing
            definition["deps"] = sorted(out[d] for d in deps[i])
        out[i] = _sha256_of_json(definition)
    return {task.name: out[i] for i, task in enumerate(tasks)}


def _working_directory_as_written(workflow: Workflow) -> str:
    """`working_directory` as written; without one, the default relative to the workflow file's
    folder: `.` for a file at the root of its repository (or outside git), as before the default
    became the repository's root, so that a pass there still stands; `..` for one a folder down
    (where the tasks ran in the file's folder before, and so run again)."""
    written = workflow.settings.working_directory
    if written is not None:
        return written
    return Path(
        os.path.relpath(workflow.workdir, workflow.path.absolute().parent.resolve())
    ).as_posix()


_HASHED_IN_PIECES = 1 << 16  # characters: a longer string value is escaped and hashed piecewise


def _sha256_of_json(definition: dict[str, Any]) -> str:
    """sha256 of `json.dumps(definition, sort_keys=True, separators=(",", ":"))`, UTF-8 (ASCII:
    `ensure_ascii`). A long string value (a prompt of many MB) is escaped and hashed a piece at
    a time: made whole, the JSON, its parts and its bytes held about three copies of it."""
    if all(not isinstance(v, str) or len(v) <= _HASHED_IN_PIECES for v in definition.values()):
        canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    # The same bytes: `{`, then `"key":value` joined by `,` in key order, then `}`. Escaping is
    # per code point, so the escaped pieces of a string are the pieces of the escaped string.
    digest = hashlib.sha256(b"{")
    for n, key in enumerate(sorted(definition)):
        value = definition[key]
        digest.update(b',"' if n else b'"')
        digest.update(json.encoder.encode_basestring_ascii(key)[1:].encode())
        digest.update(b":")
        if isinstance(value, str) and len(value) > _HASHED_IN_PIECES:
            digest.update(b'"')
            for start in range(0, len(value), _HASHED_IN_PIECES):
                piece = value[start : start + _HASHED_IN_PIECES]
                digest.update(json.encoder.encode_basestring_ascii(piece)[1:-1].encode())
            digest.update(b'"')
        else:
            digest.update(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())
    digest.update(b"}")
    return digest.hexdigest()


# -- the store ----------------------------------------------------------------------------------

_sync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)  # appends need no metadata


def _one_line(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    more = error.error_count() - 1
    suffix = f" and {more} more problem{'s' * (more > 1)}" if more else ""
    return f"{where + ': ' if where else ''}{first['msg']}{suffix}"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_SYNC_INTERVAL_S = 0.05
_CORRUPT = "corrupt state, not a prompter state file"  # content, not the kind of file
_MOVE_AWAY = "move it away to start without history"


class _Syncer:
    """fdatasync of the journal on a background thread, batched ("group commit").

    A terminal record used to be synced inline: ~0.5 ms or more of a blocked event loop per
    task on a plain disk. Here `request()` only wakes the thread, which syncs at most once per
    `_SYNC_INTERVAL_S`; each fdatasync covers every line written before it started, so one sync
    serves all the records of that interval (fewer syncs also means fewer appends stalled behind
    one). A record is on disk within about the interval plus one sync. The write itself is never
    deferred, so a SIGKILL of prompter loses nothing; an OS crash or power loss can lose the
    records written in those last ~50 ms, which a rerun then simply runs again.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._cond = threading.Condition()
        self._requested = 0  # requests made; the thread syncs until `_synced` catches up
        self._synced = 0
        self._error: OSError | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="prompter-journal-sync")
        self._thread.daemon = True  # an emergency os._exit must not wait for it
        self._thread.start()

    def request(self) -> None:
        with self._cond:
            self._requested += 1
            self._cond.notify_all()

    def check(self) -> None:
        """Raise (once) a sync error the thread met, without waiting."""
        with self._cond:
            error, self._error = self._error, None
        if error is not None:
            raise error

    def stop(self) -> None:
        """Sync what is pending, then end the thread (before the fd is closed)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._synced == self._requested and not self._closing:
                    self._cond.wait()
                if self._synced == self._requested:
                    return
                target = self._requested
            error: OSError | None = None
            try:
                _sync(self._fd)  # looked up at each call: benchmarks patch it
            except OSError as exc:
                error = exc
            with self._cond:
                self._synced = target
                if error is not None and self._error is None:
                    self._error = error
                self._cond.notify_all()
                # Batch what comes next, unless the store is closing.
                self._cond.wait_for(lambda: self._closing, timeout=_SYNC_INTERVAL_S)


class StateStore:
    """The one writer of a state: `with StateStore(path) as state: ...`.

    `load()` only reads (for `--dry-run` and reports). `open()` takes the lock and returns the
    store's live state, which `record()`, `begin_run()` and `end_run()` keep current: read it,
    do not modify it.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.temp_path = self.path.with_name(self.path.name + ".tmp")
        self.bytes_written = 0
        self._state = State()
        self._lock_fd: int | None = None
        self._journal_fd: int | None = None
        self._syncer: _Syncer | None = None  # started by the first deferred sync
        self._journal_size = 0  # bytes of whole lines; a failed append is cut back to this
        self._backlog: list[bytes] = []  # lines a failed write left unwritten, in order

    @property
    def state(self) -> State:
        return self._state

    # -- reading -----------------------------------------------------------------------------

    def load(self) -> State:
        """Snapshot plus journal; missing files are an empty state. Writes nothing."""
        return self._load()[0]

    def _load(self) -> tuple[State, int, bool]:
        """The state, the journal bytes to keep, and whether the kept part lacks a final `\\n`."""
        state = self._read_snapshot()
        data = self._read(self.journal_path)
        if data is None:
            return state, 0, False
        lines = data.split(b"\n")
        tail = lines.pop()  # what follows the last newline: b"" unless a write was torn
        whole = len(data) - len(tail)
        for number, line in enumerate(lines, 1):
            if line.strip():
                _apply(state, self._parse_line(line, number))
        if not tail.strip():
            return state, whole, False
        try:
            entry = self._parse_line(tail, len(lines) + 1)
        except StateError:
            # Torn by a kill in the middle of a write: record() never returned, nothing is lost.
            return state, whole, False
        # A complete entry without its newline (a hand edit; or a kill after the last byte of
        # the line landed): it is data, keep it.
        _apply(state, entry)
        return state, len(data), True

    def _read(self, path: Path) -> bytes | None:
        try:
            return read_regular(path)  # a FIFO would block: refused, as a directory is
        except FileNotFoundError:
            return None
        except NotARegularFile as exc:
            raise StateError(f"{path}: is {exc.kind}, not a prompter state file") from None
        except IsADirectoryError:
            raise StateError(f"{path}: is a directory, not a prompter state file") from None
        except NotADirectoryError:  # a report directory that is a file, say
            raise StateError(f"{not_a_directory(path.parent)}: not a directory") from None
        except PermissionError:
            raise StateError(f"{path}: permission denied") from None
        except OSError as exc:
            raise StateError(f"{path}: cannot read: {exc.strerror or exc}") from None

    def _read_snapshot(self) -> State:
        data = self._read(self.path)
        if data is None:
            return State()
        try:
            state = State.model_validate_json(data)
        except ValidationError as exc:
            version = _version_of(data)
            if version is not None and version > STATE_VERSION:
                raise self._too_new(version) from None
            raise StateError(f"{self.path}: {_CORRUPT} ({_one_line(exc)}); {_MOVE_AWAY}") from None
        if state.version > STATE_VERSION:
            if not _plausible(state.version):
                raise StateError(
                    f"{self.path}: {_CORRUPT} (its version is no state version); {_MOVE_AWAY}"
                )
            raise self._too_new(state.version)
        for name, record in state.tasks.items():
            if record.name != name:
                raise StateError(
                    f"{self.path}: {_CORRUPT} (tasks.{name} holds the record of "
                    f"`{record.name}`); {_MOVE_AWAY}"
                )
        if "version" not in state.model_fields_set:
            # Every snapshot prompter writes has it; without this, any JSON object (a
            # package.json given as --state-file) would load as an empty state and be replaced.
            raise StateError(f'{self.path}: {_CORRUPT} (no "version" key); {_MOVE_AWAY}')
        return state

    def _too_new(self, version: int) -> StateError:
        return StateError(
            f"{self.path}: written by a newer prompter (state version {version}; this one reads "
            f"version {STATE_VERSION}); upgrade prompter"
        )

    def _parse_line(self, line: bytes, number: int) -> _Entry:
        try:
            entry = _Entry.model_validate_json(line)
        except ValidationError as exc:
            detail = _one_line(exc)
        else:
            if entry.task is not None or entry.run is not None:
                return entry
            detail = 'neither a "task" nor a "run" entry'
        raise StateError(
            f"{self.journal_path}:{number}: corrupt journal entry ({detail}); "
            "repair or delete that line"
        )

    # -- writing -----------------------------------------------------------------------------

    def open(self) -> State:
        """Lock, load, and get ready to append; the returned state is the live one."""
        if self._lock_fd is not None:
            return self._state
        self._lock()
        try:
            state, good, unterminated = self._load()
            self._check_writable()
            fd = _guard(
                lambda: open_regular(
                    self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
                ),
                self.journal_path,
            )
            self._journal_fd = fd
            size = os.fstat(fd).st_size
            if size > good:  # a torn last line: cut it, or the next line would be glued to it
                _guard(lambda: os.ftruncate(fd, good), self.journal_path)
            self._journal_size = good
            if unterminated:
                self._append(b"\n", durable=True)
        except BaseException:
            self._release()
            raise
        self._state = state
        return state

    def _check_writable(self) -> None:
        """Find now, not after the last task, what would stop `compact()` at the end of a run."""
        temp = self.temp_path
        if temp.exists() and not temp.is_file():
            raise StateError(
                f"{temp}: not a file: prompter writes the new state there at the end of a run; "
                "move it away"
            )
        directory = self.path.parent
        if not os.access(directory, os.W_OK | os.X_OK):
            raise StateError(f"{directory}: not writable: the state cannot be saved there")

    @property
    def unsaved(self) -> int:
        """Lines that no write has managed to save yet (neither journal nor snapshot)."""
        return len(self._backlog)

    def begin_run(self, run: RunRecord) -> None:
        self._append_entry(_line("run", run), durable=True)

    def record(self, task: TaskRecord, *, durable: bool) -> None:
        """Append the task's current record; `durable` (terminal transitions) also has it
        fdatasync'd, batched in the background within milliseconds (see `_Syncer`)."""
        try:
            line = _line("task", task)
        except PydanticSerializationError:
            # A lone surrogate assigned after validation: validate a copy, which scrubs it.
            task = TaskRecord.model_validate(task.model_dump())
            line = _line("task", task)
        try:
            self._append_entry(line, durable=durable, deferred=True)
        except StateError:
            if task.status in TERMINAL:
                # Output tails make a record big; without them it may still fit (in the last
                # block of the journal, say) and the task does not stay "running". The whole
                # record stays queued behind it (see the backlog).
                with contextlib.suppress(StateError):
                    self._append(_line("task", _slim(task)), durable=True, deferred=True)
            raise

    def end_run(self, run: RunRecord) -> None:
        self._append_entry(_line("run", run), durable=True)

    def compact(self) -> None:
        """Fold the journal into a new snapshot; every step before the next is durable."""
        journal_fd = self._require_open()
        # The snapshot's own fsync makes everything durable, so pending journal syncs need no
        # waiting for; an error one of them met is still reported.
        self._check_syncs()
        # Unset optional fields are left out: most attempts have no cost, session or conflict.
        data = self._state.model_dump_json(indent=1, exclude_none=True).encode("utf-8") + b"\n"

        def write_temp() -> None:
            fd = open_regular(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)

        try:
            _guard(write_temp, self.temp_path)
            _guard(lambda: os.replace(self.temp_path, self.path), self.path)
        except StateError:
            # A partial temp file is nobody's data, and on a full disk it holds space.
            with contextlib.suppress(OSError):
                self.temp_path.unlink()
            raise
        _guard(lambda: _fsync_dir(self.path.parent), self.path.parent)
        self.bytes_written += len(data)
        self._backlog.clear()  # the snapshot holds them
        # Only now is the journal redundant; a crash before this line replays it harmlessly.
        _guard(lambda: os.ftruncate(journal_fd, 0), self.journal_path)
        _guard(lambda: os.fsync(journal_fd), self.journal_path)
        self._journal_size = 0

    def close(self) -> None:
        """Compact if the journal holds anything, then release the lock."""
        if self._journal_fd is None:
            return
        try:
            if self._backlog:
                # Appending is the smaller write: on a disk that is still nearly full it is the
                # one that may succeed, and then the journal holds every record.
                with contextlib.suppress(StateError):
                    self._append(b"".join(self._backlog), durable=True)
                    self._backlog.clear()
            if self._journal_size or self._backlog:
                self.compact()
        finally:
            self._release()

    def abandon(self) -> None:
        """Release the lock without compacting: nothing was recorded (the state was refused)."""
        self._release()

    def clear(self) -> None:
        """Forget all history (`clear-state`): the snapshot and the journal go, under the lock.

        Only when they are a prompter state: the path comes from the command line, and a
        mistyped `--state-file` must not delete the user's workflow file or notes.
        """
        was_open = self._lock_fd is not None
        if not was_open:
            self._check_clearable()  # before the lock: a refusal leaves no lock file behind
            self._lock()
        try:
            fd = self._journal_fd
            if fd is not None:  # keep our open journal usable: empty it instead of unlinking
                _guard(lambda: os.ftruncate(fd, 0), self.journal_path)
                self._journal_size = 0
            for path in (self.journal_path, self.path, self.temp_path):
                if fd is None or path != self.journal_path:
                    _unlink(path)
            _guard(lambda: _fsync_dir(self.path.parent), self.path.parent)
            self._state = State()
        finally:
            if not was_open:
                self._release()

    def _check_clearable(self) -> None:
        """Raise unless the snapshot is a prompter state (or absent) and so is the journal.

        Judged by how the file begins, as prompter writes it, so that a state prompter cannot
        load (damaged, or a newer prompter's) can still be cleared, and nothing else can."""
        refusal = "nothing deleted (clear-state deletes a prompter state only)"
        snapshot = self._read(self.path)
        if snapshot is not None:
            if not _SNAPSHOT_START.match(snapshot):
                raise StateError(f"{self.path}: {_CORRUPT} (it does not begin like one); {refusal}")
            return  # beside a real snapshot, the journal is that state's journal
        journal = self._read(self.journal_path)
        # A journal without a snapshot (a first run that never compacted) is the whole state;
        # its first line may be torn, never its beginning.
        if journal and not journal.startswith(_JOURNAL_STARTS):
            raise StateError(
                f"{self.journal_path}: corrupt state, not a prompter journal; {refusal}"
            )

    def holder(self) -> int | None:
        """The pid of a live run holding the lock (0 if unknown), or None. Creates nothing.
        A lock "file" that is a FIFO, a socket, a device or a directory is a StateError.

        Probes with a shared lock for an instant; a run starting in that instant waits for it
        (see `_lock`) instead of taking it for another run.
        """
        try:
            fd = open_regular(self.lock_path, os.O_RDONLY)
        except NotARegularFile as exc:  # no run can take it: say so now, not at the next run
            raise StateError(f"{self.lock_path}: {exc.strerror}; move it away") from None
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else 0
        except OSError:
            return None
        finally:
            os.close(fd)  # also drops the probe's lock
        return None

    def __enter__(self) -> State:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _lock(self) -> None:
        directory = self.path.parent
        try:
            make_dir(directory)
        except NotADirectoryError as exc:
            raise StateError(f"{exc.filename}: not a directory") from None
        except OSError as exc:
            raise StateError(f"{directory}: {exc.strerror or exc}") from None
        fd = _guard(
            lambda: open_regular(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644), self.lock_path
        )
        try:
            _flock_soon(fd)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StateError(
                f"{self.path} is locked by another prompter run (pid {holder}); wait for it to "
                "finish or use another state path"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StateError(f"{self.lock_path}: cannot lock: {exc.strerror or exc}") from None
        # The pid is only for the message above; the lock itself is the flock, which the
        # kernel drops when this process dies, so a stale lock file never blocks anyone.
        self._lock_fd = fd
        _guard(lambda: os.ftruncate(fd, 0), self.lock_path)
        _guard(lambda: os.pwrite(fd, f"{os.getpid()}\n".encode(), 0), self.lock_path)

    def _release(self) -> None:
        if self._syncer is not None:
            self._syncer.stop()
            self._syncer = None
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None
        if self._lock_fd is not None:
            # Unlocked, not unlinked: deleting a flock file races with a process opening it.
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _require_open(self) -> int:
        if self._journal_fd is None:
            raise RuntimeError("StateStore is not open: call open() (or use `with`) first")
        return self._journal_fd

    def _append(self, line: bytes, *, durable: bool, deferred: bool = False) -> None:
        """Write one line; `durable` syncs it, inline or (`deferred`) on the syncer thread."""
        fd = self._require_open()
        try:
            if self._syncer is not None:
                self._syncer.check()  # a failed background sync fails the next write
            _write_all(fd, line)  # one write: a kill tears at most this, the last, line
            if durable and deferred:
                if self._syncer is None:
                    self._syncer = _Syncer(fd)
                self._syncer.request()
            elif durable:
                _sync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):  # a half-written line must not lead the next
                os.ftruncate(fd, self._journal_size)
            raise StateError(f"{self.journal_path}: cannot write: {exc.strerror or exc}") from None
        self._journal_size += len(line)
        self.bytes_written += len(line)

    def _check_syncs(self) -> None:
        if self._syncer is not None:
            try:
                self._syncer.check()
            except OSError as exc:
                raise StateError(
                    f"{self.journal_path}: cannot sync: {exc.strerror or exc}"
                ) from None

    def _append_entry(self, line: bytes, *, durable: bool, deferred: bool = False) -> None:
        entry = _Entry.model_validate_json(line)  # before writing: never journal a bad line
        # The state takes what a replay of the journal would give (not the caller's object,
        # which it goes on mutating), so compaction writes exactly what was journaled, or is
        # still to be (the backlog, after a failed write).
        _apply(self._state, entry)
        self._backlog.append(line)
        self._append(b"".join(self._backlog), durable=durable, deferred=deferred)
        self._backlog.clear()


def _guard(action: Callable[[], _T], path: Path) -> _T:
    """Run one file operation; an OSError becomes a StateError naming the file."""
    try:
        return action()
    except NotARegularFile as exc:  # a FIFO, say: nothing prompter can use; the user's to move
        raise StateError(f"{path}: {exc.strerror}; move it away") from None
    except OSError as exc:
        raise StateError(f"{path}: {exc.strerror or exc}") from None


_LOCK_TRIES = 5  # a `status` probe holds a shared lock for microseconds: wait that out


def _flock_soon(fd: int) -> None:
    """The exclusive lock, or BlockingIOError when another holder keeps it for more than a few
    milliseconds (a run, not a `status` probing whether one runs)."""
    for attempt in range(_LOCK_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == _LOCK_TRIES - 1:
                raise
            time.sleep(0.002 * 2**attempt)


def make_dir(path: Path) -> None:
    """`mkdir -p path`. When a file stands where a directory must be, NotADirectoryError names
    that file (`filename`): mkdir's own "File exists" does not say what is wrong, or where."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = not_a_directory(path)
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(blocker)) from None


def not_a_directory(path: Path) -> Path:
    """What stands in the way of directory `path`: the nearest of it and its parents that
    exists but is not a directory (`path` itself when none does)."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return path if candidate.is_dir() else candidate
    return path


def _unlink(path: Path) -> None:
    _guard(lambda: path.unlink(missing_ok=True), path)


def _slim(task: TaskRecord) -> TaskRecord:
    """The record without the bulk of its attempts (output tails, final answers)."""
    bare = {"output_tail": "", "result_text": None}
    attempts = [a.model_copy(update=bare) for a in task.attempts]
    return task.model_copy(update={"attempts": attempts})


# How prompter's files begin (see `compact` and `_line`); also a torn or newer one.
_SNAPSHOT_START = re.compile(rb'\{\s*"version"\s*:\s*\d')
_JOURNAL_STARTS = (b'{"task":', b'{"run":')


def _line(kind: str, record: BaseModel) -> bytes:
    body = record.model_dump_json(exclude_none=True).encode("utf-8")
    return b'{"' + kind.encode() + b'":' + body + b"}\n"


def _apply(state: State, entry: _Entry) -> None:
    if entry.task is not None:
        state.tasks[entry.task.name] = entry.task
    if entry.run is not None:
        _put_run(state, entry.run)


def _put_run(state: State, run: RunRecord) -> None:
    for i, held in enumerate(state.runs):
        if held.run_id == run.run_id:
            state.runs[i] = run
            return
    state.runs.append(run)


def _version_of(data: bytes) -> int | None:
    """The state version a snapshot that failed validation says it has, if it is one (read
    only on that path: a normal load parses once)."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, an int past 4300 digits, deep nesting
        return None
    version = doc.get("version") if isinstance(doc, dict) else None
    return version if isinstance(version, int) and _plausible(version) else None


def _plausible(version: int) -> bool:
    """Whether a version above ours may be a newer prompter's rather than damage."""
    return version < 1_000_000
