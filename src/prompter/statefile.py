"""A state's files as data: reading the snapshot and the journal back, checked; the journal's
line format; and `StateError`, what the store raises when its files cannot be used.

`state.py`, the store, writes these files and holds their lock; this module only reads them and
creates nothing, so `load()` and `clear-state`'s check need no lock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from .exits import PrompterError
from .records import STATE_VERSION, Record, RunRecord, State, TaskRecord
from .regular import NotARegularFile, not_a_directory, read_regular

_T = TypeVar("_T")


class StateError(PrompterError):
    """The state files cannot be used; the message is one line that says what to do."""


class Entry(Record):
    """One journal line."""

    task: TaskRecord | None = None
    run: RunRecord | None = None


_CORRUPT = "corrupt state, not a prompter state file"  # content, not the kind of file
_MOVE_AWAY = "move it away to start without history"


@dataclass(frozen=True)
class Loaded:
    """A state read back, and how much of its journal holds whole entries."""

    state: State
    journal_bytes: int  # to keep: a torn last line after them is cut before the next append
    unterminated: bool  # the kept part lacks its final newline (a complete last entry)


def read_state(path: Path, journal_path: Path) -> Loaded:
    """Snapshot plus journal, as the store finds them; missing files are an empty state."""
    state = _read_snapshot(path)
    data = read(journal_path)
    if data is None:
        return Loaded(state, 0, unterminated=False)
    lines = data.split(b"\n")
    tail = lines.pop()  # what follows the last newline: b"" unless a write was torn
    whole = len(data) - len(tail)
    for number, line in enumerate(lines, 1):
        if line.strip():
            apply_entry(state, _parse_line(line, number, journal_path))
    if not tail.strip():
        return Loaded(state, whole, unterminated=False)
    try:
        entry = _parse_line(tail, len(lines) + 1, journal_path)
    except StateError:
        # Torn by a kill in the middle of a write: record() never returned, nothing is lost.
        return Loaded(state, whole, unterminated=False)
    # A complete entry without its newline (a hand edit; or a kill after the last byte of
    # the line landed): it is data, keep it.
    apply_entry(state, entry)
    return Loaded(state, len(data), unterminated=True)


def read(path: Path) -> bytes | None:
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


def _read_snapshot(path: Path) -> State:
    data = read(path)
    if data is None:
        return State()
    try:
        state = State.model_validate_json(data)
    except ValidationError as exc:
        version = _version_of(data)
        if version is not None and version > STATE_VERSION:
            raise _too_new(path, version) from None
        raise StateError(f"{path}: {_CORRUPT} ({_one_line(exc)}); {_MOVE_AWAY}") from None
    if state.version > STATE_VERSION:
        if not _plausible(state.version):
            raise StateError(f"{path}: {_CORRUPT} (its version is no state version); {_MOVE_AWAY}")
        raise _too_new(path, state.version)
    for name, record in state.tasks.items():
        if record.name != name:
            raise StateError(
                f"{path}: {_CORRUPT} (tasks.{name} holds the record of "
                f"`{record.name}`); {_MOVE_AWAY}"
            )
    if "version" not in state.model_fields_set:
        # Every snapshot prompter writes has it; without this, any JSON object (a
        # package.json given as --state-file) would load as an empty state and be replaced.
        raise StateError(f'{path}: {_CORRUPT} (no "version" key); {_MOVE_AWAY}')
    return state


def _too_new(path: Path, version: int) -> StateError:
    return StateError(
        f"{path}: written by a newer prompter (state version {version}; this one reads "
        f"version {STATE_VERSION}); upgrade prompter"
    )


def _parse_line(line: bytes, number: int, journal_path: Path) -> Entry:
    try:
        entry = Entry.model_validate_json(line)
    except ValidationError as exc:
        detail = _one_line(exc)
    else:
        if entry.task is not None or entry.run is not None:
            return entry
        detail = 'neither a "task" nor a "run" entry'
    raise StateError(
        f"{journal_path}:{number}: corrupt journal entry ({detail}); repair or delete that line"
    )


def check_clearable(path: Path, journal_path: Path) -> None:
    """Raise unless the snapshot is a prompter state (or absent) and so is the journal.

    Judged by how the file begins, as prompter writes it, so that a state prompter cannot
    load (damaged, or a newer prompter's) can still be cleared, and nothing else can."""
    refusal = "nothing deleted (clear-state deletes a prompter state only)"
    snapshot = read(path)
    if snapshot is not None:
        if not _SNAPSHOT_START.match(snapshot):
            raise StateError(f"{path}: {_CORRUPT} (it does not begin like one); {refusal}")
        return  # beside a real snapshot, the journal is that state's journal
    journal = read(journal_path)
    # A journal without a snapshot (a first run that never compacted) is the whole state;
    # its first line may be torn, never its beginning.
    if journal and not journal.startswith(_JOURNAL_STARTS):
        raise StateError(f"{journal_path}: corrupt state, not a prompter journal; {refusal}")


def guard(action: Callable[[], _T], path: Path) -> _T:
    """Run one file operation; an OSError becomes a StateError naming the file."""
    try:
        return action()
    except NotARegularFile as exc:  # a FIFO, say: nothing prompter can use; the user's to move
        raise StateError(f"{path}: {exc.strerror}; move it away") from None
    except OSError as exc:
        raise StateError(f"{path}: {exc.strerror or exc}") from None


# How prompter's files begin (see `StateStore.compact` and `journal_line`); also a torn or
# newer one.
_SNAPSHOT_START = re.compile(rb'\{\s*"version"\s*:\s*\d')
_JOURNAL_STARTS = (b'{"task":', b'{"run":')


def journal_line(kind: str, record: BaseModel) -> bytes:
    body = record.model_dump_json(exclude_none=True).encode("utf-8")
    return b'{"' + kind.encode() + b'":' + body + b"}\n"


def apply_entry(state: State, entry: Entry) -> None:
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


def _one_line(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    more = error.error_count() - 1
    suffix = f" and {more} more problem{'s' * (more > 1)}" if more else ""
    return f"{where + ': ' if where else ''}{first['msg']}{suffix}"
