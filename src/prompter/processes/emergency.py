"""The emergency exit (a second signal, the stop deadline): every child killed, daemons
included, the registered last words said, and out at once."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from typing import NoReturn

from .sweep import terminate_all

# Done right before an emergency exit, after the children are killed: what must not stay as
# the run left it (the action's locks on the runner's files). Each quick and synchronous.
_last_words: list[Callable[[], None]] = []


def on_emergency_exit(action: Callable[[], None]) -> Callable[[], None]:
    """Have `action` done by `emergency_exit`; returns a function that takes it back."""
    _last_words.append(action)
    return lambda: _last_words.remove(action) if action in _last_words else None


def emergency_exit(code: int) -> NoReturn:
    """Kill every child (daemons included), do the registered last words, exit at once: no
    clean-up of this process, which may be stuck (a second signal, the stop deadline)."""
    terminate_all(signal.SIGKILL)
    for action in reversed(_last_words):
        with contextlib.suppress(Exception):
            action()
    os._exit(code)
