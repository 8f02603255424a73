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

Reading the files back (and checking them) and the journal's line format are in `statefile.py`;
the records themselves (`State`, `TaskRecord`, `RunRecord`, …), and how the states of partial
runs merge, in `records.py`; fingerprints in `fingerprints.py`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from pydantic_core import PydanticSerializationError

from .records import TERMINAL, RunRecord, State, TaskRecord
from .regular import NotARegularFile, make_dir, open_regular
from .statefile import (
    Entry,
    StateError,
    apply_entry,
    check_clearable,
    guard,
    journal_line,
    read_state,
)

# StateError is defined with the files' reading, and raised and caught as the store's error.
__all__ = ["StateError", "StateStore", "check_owner"]


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


# -- the store ----------------------------------------------------------------------------------

_sync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)  # appends need no metadata


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
        return read_state(self.path, self.journal_path).state

    # -- writing -----------------------------------------------------------------------------

    def open(self) -> State:
        """Lock, load, and get ready to append; the returned state is the live one."""
        if self._lock_fd is not None:
            return self._state
        self._lock()
        try:
            loaded = read_state(self.path, self.journal_path)
            state, good = loaded.state, loaded.journal_bytes
            self._check_writable()
            fd = guard(
                lambda: open_regular(
                    self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
                ),
                self.journal_path,
            )
            self._journal_fd = fd
            size = os.fstat(fd).st_size
            if size > good:  # a torn last line: cut it, or the next line would be glued to it
                guard(lambda: os.ftruncate(fd, good), self.journal_path)
            self._journal_size = good
            if loaded.unterminated:
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
        self._append_entry(journal_line("run", run), durable=True)

    def record(self, task: TaskRecord, *, durable: bool) -> None:
        """Append the task's current record; `durable` (terminal transitions) also has it
        fdatasync'd, batched in the background within milliseconds (see `_Syncer`)."""
        try:
            line = journal_line("task", task)
        except PydanticSerializationError:
            # A lone surrogate assigned after validation: validate a copy, which scrubs it.
            task = TaskRecord.model_validate(task.model_dump())
            line = journal_line("task", task)
        try:
            self._append_entry(line, durable=durable, deferred=True)
        except StateError:
            if task.status in TERMINAL:
                # Output tails make a record big; without them it may still fit (in the last
                # block of the journal, say) and the task does not stay "running". The whole
                # record stays queued behind it (see the backlog).
                with contextlib.suppress(StateError):
                    self._append(journal_line("task", _slim(task)), durable=True, deferred=True)
            raise

    def update_run(self, run: RunRecord) -> None:
        """The run's record again, changed while it runs (the agent limit): not synced at once."""
        self._append_entry(journal_line("run", run), durable=False)

    def end_run(self, run: RunRecord) -> None:
        self._append_entry(journal_line("run", run), durable=True)

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
            guard(write_temp, self.temp_path)
            guard(lambda: os.replace(self.temp_path, self.path), self.path)
        except StateError:
            # A partial temp file is nobody's data, and on a full disk it holds space.
            with contextlib.suppress(OSError):
                self.temp_path.unlink()
            raise
        guard(lambda: _fsync_dir(self.path.parent), self.path.parent)
        self.bytes_written += len(data)
        self._backlog.clear()  # the snapshot holds them
        # Only now is the journal redundant; a crash before this line replays it harmlessly.
        guard(lambda: os.ftruncate(journal_fd, 0), self.journal_path)
        guard(lambda: os.fsync(journal_fd), self.journal_path)
        self._journal_size = 0

    def replace(self, state: State) -> None:
        """Make `state` the store's whole state, durably (`state merge`). The journal is folded
        into the snapshot first: replayed over the new snapshot, its lines would undo it."""
        self._require_open()
        if self._journal_size or self._backlog:
            self.compact()
        self._state = State.model_validate(state.model_dump())  # the store's own copy
        self.compact()

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
            check_clearable(
                self.path, self.journal_path
            )  # before the lock: a refusal leaves no lock file behind
            self._lock()
        try:
            fd = self._journal_fd
            if fd is not None:  # keep our open journal usable: empty it instead of unlinking
                guard(lambda: os.ftruncate(fd, 0), self.journal_path)
                self._journal_size = 0
            for path in (self.journal_path, self.path, self.temp_path):
                if fd is None or path != self.journal_path:
                    _unlink(path)
            guard(lambda: _fsync_dir(self.path.parent), self.path.parent)
            self._state = State()
        finally:
            if not was_open:
                self._release()

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
        fd = guard(
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
        guard(lambda: os.ftruncate(fd, 0), self.lock_path)
        guard(lambda: os.pwrite(fd, f"{os.getpid()}\n".encode(), 0), self.lock_path)

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
        entry = Entry.model_validate_json(line)  # before writing: never journal a bad line
        # The state takes what a replay of the journal would give (not the caller's object,
        # which it goes on mutating), so compaction writes exactly what was journaled, or is
        # still to be (the backlog, after a failed write).
        apply_entry(self._state, entry)
        self._backlog.append(line)
        self._append(b"".join(self._backlog), durable=durable, deferred=deferred)
        self._backlog.clear()


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


def _unlink(path: Path) -> None:
    guard(lambda: path.unlink(missing_ok=True), path)


def _slim(task: TaskRecord) -> TaskRecord:
    """The record without the bulk of its attempts (output tails, final answers)."""
    bare = {"output_tail": "", "result_text": None}
    attempts = [a.model_copy(update=bare) for a in task.attempts]
    return task.model_copy(update={"attempts": attempts})
