"""An artifact's zip unpacked into a new folder, trusting nothing in it.

The zip was written by another job, whose agents may have been hostile: every name must stay
inside the folder (no absolute path, no `..`, no backslash or drive, no NUL), only regular
files and folders are written (a symlink, a device or a FIFO entry is refused, whatever its
mode bits say), and the sizes are counted as the bytes come out, not taken from the headers:
a zip bomb stops at the limit.
"""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path, PurePosixPath

CHUNK = 1024 * 1024


class UnzipError(Exception):
    """One line: why the zip was not unpacked (what it wrote so far stays)."""


@dataclass(frozen=True)
class Limits:
    max_files: int = 10_000
    max_bytes: int = 4 * 1024 * 1024 * 1024  # of all files unpacked together
    max_ratio: int = 200  # uncompressed per compressed byte of one entry (above a MiB)


def unpack(data: bytes, folder: Path, limits: Limits) -> tuple[str, ...]:
    """Unpack the zip `data` into `folder`, which is created (its parent must exist; it must
    not). The files written, as relative POSIX paths."""
    try:
        archive = zipfile.ZipFile(BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise UnzipError(f"not a zip file ({exc})") from None
    try:
        folder.mkdir(mode=0o755)
    except OSError as exc:
        raise UnzipError(f"{folder}: {exc.strerror or exc}") from None
    written: list[str] = []
    total = 0
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.max_files:
            raise UnzipError(f"more than {limits.max_files} entries")
        for info in entries:
            parts = _parts(info.filename)
            if info.is_dir():
                _make_dirs(folder, parts)
                continue
            _check_kind(info)
            _make_dirs(folder, parts[:-1])
            total = _write(archive, info, folder.joinpath(*parts), total, limits)
            written.append("/".join(parts))
    return tuple(written)


def _parts(name: str) -> tuple[str, ...]:
    """The entry's path as safe components; UnzipError for any that could leave the folder."""
    if not name or "\\" in name or "\0" in name or name.startswith("/"):
        raise UnzipError(f"entry {name!r}: not a relative path")
    path = PurePosixPath(name)
    parts = tuple(p for p in path.parts if p not in ("", "."))
    if not parts or any(p == ".." or ":" in p for p in parts):
        raise UnzipError(f"entry {name!r}: not a path inside the artifact")
    return parts


def _check_kind(info: zipfile.ZipInfo) -> None:
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded, a plain file
    if kind not in (0, stat.S_IFREG):
        raise UnzipError(f"entry {info.filename!r}: not a regular file")


def _make_dirs(folder: Path, parts: tuple[str, ...]) -> None:
    at = folder
    for part in parts:
        at = at / part
        try:
            os.mkdir(at, 0o755)
        except FileExistsError:
            if at.is_symlink() or not at.is_dir():  # only this function makes folders here
                what = at.relative_to(folder)
                raise UnzipError(f"entry {what}: both a file and a folder") from None
        except OSError as exc:
            raise UnzipError(f"{at}: {exc.strerror or exc}") from None


def _write(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, total: int, limits: Limits
) -> int:
    """Write one entry (a new file: O_EXCL, no symlink followed); the new running total."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags, 0o644)
    except FileExistsError:
        raise UnzipError(f"entry {info.filename!r}: listed twice") from None
    except OSError as exc:
        raise UnzipError(f"{target}: {exc.strerror or exc}") from None
    own = 0
    ceiling = max(CHUNK, info.compress_size * limits.max_ratio)
    try:
        with os.fdopen(fd, "wb") as out, archive.open(info) as source:
            while chunk := source.read(CHUNK):
                own += len(chunk)
                total += len(chunk)
                if total > limits.max_bytes:
                    raise UnzipError(f"more than {limits.max_bytes} bytes unpacked")
                if own > ceiling:
                    raise UnzipError(f"entry {info.filename!r}: compressed too well (a zip bomb?)")
                out.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, RuntimeError) as exc:
        raise UnzipError(f"entry {info.filename!r}: {exc}") from None
    except OSError as exc:
        raise UnzipError(f"{target}: {exc.strerror or exc}") from None
    return total
