"""The process groups `run_process` (and `tracked_group`'s callers) started that may still have
members alive: what the emergency exit signals."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

# Process group ids (== leader pids, thanks to start_new_session) whose members may still be
# alive. A plain set: the emergency exit reads it from a signal handler, which runs between
# bytecodes on the main thread, so it never sees a half-done mutation.
live_groups: set[int] = set()


def signal_group(pgid: int, sig: int) -> None:
    # ESRCH: the group is already empty; EPERM: what is left of it is not ours to signal.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@contextlib.contextmanager
def tracked_group(pgid: int) -> Iterator[None]:
    """Include a group spawned elsewhere in `terminate_all` while the block runs."""
    live_groups.add(pgid)
    try:
        yield
    finally:
        live_groups.discard(pgid)
