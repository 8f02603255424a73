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


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if len(s) >= MIN_SECRET_CHARS}
        self._text = sorted(values, key=len, reverse=True)  # longest first: no partial masks
        self._bytes = [s.encode("utf-8") for s in self._text]
        self.longest = max((len(b) for b in self._bytes), default=0)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Redactor:
        return cls(value for name, value in environ.items() if _SECRET_NAME.search(name))

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
