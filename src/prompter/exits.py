"""Exit codes, one table for the `prompter` command and the action, and `PrompterError`, the
base of the errors that end a command with their message and one of these codes.

The README's "Exit codes" paragraph says the same; tests/test_exits.py holds the two together.
Imports nothing at run time: the CLI imports this module before it handles Ctrl-C.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not from typing: importing it costs start-up time (see cli.py)
if TYPE_CHECKING:
    from typing import Final

OK: Final = 0
"""Every task passed (or a command other than `run` did what it was asked)."""

FAILED: Final = 1
"""A task failed or was skipped (or, in sequential mode, the run stopped on a failure, a
forbidden revisit or `max_iterations`); `init`: nothing was written. The action also ends with
it on an internal error (shown as an error annotation, not as 70)."""

USAGE: Final = 2
"""Invalid workflow or usage (also: a locked, unreadable or unwritable state file, a damaged one
or one of another workflow; a FIFO, socket, device or directory where the state, its journal,
its lock or a task log goes; an unusable report or logs directory; an unavailable agent; a
missing working directory; git failing in `clean`; a bad input of the action)."""

INTERNAL: Final = 70
"""An internal error, that is a bug (EX_SOFTWARE): one line on stderr; PROMPTER_DEBUG=1 shows
the traceback."""

SIGNALLED: Final = 128
"""A command ended by a signal exits with this plus the signal's number, as a shell reports it."""

SIGINT: Final = SIGNALLED + 2
"""Interrupted by SIGINT (Ctrl-C): 130."""

SIGTERM: Final = SIGNALLED + 15
"""Interrupted by SIGTERM (a cancelled GitHub job): 143."""


def signalled(signum: int) -> int:
    """The exit code of a command ended by signal `signum`: 130 for SIGINT, 143 for SIGTERM."""
    return SIGNALLED + signum


class PrompterError(Exception):
    """An error that ends a command: its message is the one line (or lines) the user reads,
    `exit_code` the code the command then ends with.

    Errors that a lower layer raises and its caller always translates (worktrees.GitError and
    Unconfined become a RunError or a warning, github.artifact.ArtifactError a warning) do not
    derive from it: one that escaped untranslated would be a bug, and stays an internal error.
    """

    exit_code: int = USAGE
