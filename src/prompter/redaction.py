"""Secrets from the environment never reach a file the run writes: logs, state, reports.

GitHub masks secrets in the console only; an agent that runs `env`, or a verify command that
echoes a token, would otherwise put them into the task log, the state and the job artifact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import BinaryIO

MASK = "***"
MIN_SECRET_CHARS = 8  # shorter values ("1", "true") would mask ordinary text
# Variable names whose values are secrets: the ones prompter knows of, and the usual suffixes.
_SECRET_NAME = re.compile(
    r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|PAT)$", re.IGNORECASE
)


_LINE_BREAKS = re.compile(r"\r\n|\r|\n")

# Secrets held for this process's lifetime, whatever becomes of the environment: the action
# takes the runner's tokens out of it (no child may inherit them) and keeps them masked here.
_held: set[str] = set()


def secret_values(env: Mapping[str, str]) -> list[str]:
    """The values of `env` that are secrets by their variable's name."""
    return [value for name, value in env.items() if _SECRET_NAME.search(name)]


def hold(secrets: Iterable[str]) -> None:
    """Mask these in everything written from now on, also once they are gone from os.environ."""
    _held.update(s for s in secrets if s)


class Redactor:
    """Masks known secret values in text and bytes.

    A multi-line value is also masked line by line (as GitHub does): printed with other line
    breaks, or in part, its lines would otherwise pass. A value that is not valid UTF-8 (an
    environment variable holding raw bytes) is matched as the bytes it was.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = set()
        for secret in secrets:
            values.add(secret)
            values.update(_LINE_BREAKS.split(secret))
        raw = {_as_bytes(v) for v in values if len(v) >= MIN_SECRET_CHARS}
        # As text: also the form readable() gives raw bytes that are not UTF-8.
        text = {v for v in values if len(v) >= MIN_SECRET_CHARS}
        text |= {b.decode("utf-8", "replace") for b in raw}
        self._text = sorted(text, key=len, reverse=True)  # longest first: no partial masks
        self._bytes = sorted(raw, key=len, reverse=True)
        self.longest = max((len(b) for b in self._bytes), default=0)

    @classmethod
    def from_environ(cls, *environs: Mapping[str, str]) -> Redactor:
        """The secrets of one or more environments (prompter's, and what agent_env adds)."""
        return cls([*_held, *(value for env in environs for value in secret_values(env))])

    def __bool__(self) -> bool:
        return bool(self._text)

    def text(self, value: str) -> str:
        for secret in self._text:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def data(self, value: bytes) -> bytes:
        for secret in self._bytes:
            if secret in value:
                value = value.replace(secret, MASK.encode())
        return value


def _as_bytes(value: str) -> bytes:
    """The bytes a value was: environment strings carry undecodable bytes as surrogates."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that did not come from a byte
        return value.encode("utf-8", "surrogatepass")


class RedactingWriter:
    """A binary log file that masks secrets, also those split across two writes.

    The last `longest - 1` bytes wait for the next write (they may begin a secret); `drain()`
    writes them at the end. `flush()` flushes only what is already safe.
    """

    def __init__(self, file: BinaryIO, redactor: Redactor) -> None:
        self.file = file
        self.redactor = redactor
        self._held = b""

    def write(self, data: bytes) -> int:
        if not self.redactor:
            return self.file.write(data)
        buffer = self.redactor.data(self._held + bytes(data))
        keep = self.redactor.longest - 1
        cut = max(0, len(buffer) - keep)
        self._held = buffer[cut:]
        self.file.write(buffer[:cut])
        return len(data)

    def flush(self) -> None:
        self.file.flush()

    def drain(self) -> None:
        if self._held:
            self.file.write(self._held)
            self._held = b""
        self.file.flush()
