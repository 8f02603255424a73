"""What a child prints: counted, copied to a log, kept as a bounded head and tail, and made
readable."""

from __future__ import annotations

from typing import BinaryIO

import anyio
from anyio.abc import ByteReceiveStream

from ..text import strip_terminal_codes

# Big reads keep the per-chunk Python overhead negligible even for a child printing gigabytes.
CHUNK = 64 * 1024


def readable(data: bytes) -> str:
    """Text a person can read in a log or report, whatever bytes a process printed.

    Decodes UTF-8 with replacement, drops terminal escape sequences and control characters other
    than newline and tab, and turns CR LF and lone CR into LF. Never raises.
    """
    return strip_terminal_codes(data.decode("utf-8", errors="replace"))


class Capture:
    """Everything the child prints: counted, copied to the log, and kept as head + tail."""

    def __init__(self, head_bytes: int, tail_bytes: int, log: BinaryIO | None) -> None:
        self.total = 0
        self._head = bytearray()
        self._tail = bytearray()
        self._head_bytes = head_bytes
        self._tail_bytes = tail_bytes
        self._log = log

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self._log is not None:
            try:
                self._log.write(chunk)
            except OSError:
                # A full disk must not kill the run it is logging; the output tail survives.
                self._log = None
        room = self._head_bytes - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self._tail += chunk
            excess = len(self._tail) - self._tail_bytes
            if excess > 0:
                del self._tail[:excess]

    def output(self) -> str:
        omitted = self.total - len(self._head) - len(self._tail)
        if omitted == 0:
            # Decode as one piece so a character split across head and tail stays whole.
            return readable(bytes(self._head + self._tail))
        marker = f"\n[… {omitted} bytes omitted …]\n"
        return readable(bytes(self._head)) + marker + readable(bytes(self._tail))


async def read_all(
    stream: ByteReceiveStream, capture: Capture, scope: anyio.CancelScope, eof: anyio.Event
) -> None:
    # `scope` is shielded so output printed during the grace period after a cancellation is still
    # read (and a chatty child does not block on a full pipe); the supervisor cancels it.
    with scope:
        try:
            while True:
                capture.feed(await stream.receive(CHUNK))
        except anyio.EndOfStream:
            eof.set()
