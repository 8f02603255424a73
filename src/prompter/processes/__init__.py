"""Run one child command in its own process group, with bounded output, timeout and clean-up.

Agent and verify commands each run in their own process group (`supervise.run_process`); a
timeout or a cancellation sends SIGTERM to the group, waits a grace period, then SIGKILLs it.
Nothing a run started may outlive it (`sweep.py` finds the daemons that left the group), and
nothing a child prints may exhaust our memory (`capture.py`). `child.py` starts a child,
`groups.py` keeps the groups still alive for `emergency.py`'s exit.
"""

from .capture import readable
from .emergency import emergency_exit, on_emergency_exit
from .groups import tracked_group
from .supervise import ProcessResult, run_process, stop_session
from .sweep import TOKEN_VAR, Enclosure, owning_descendants, terminate_all

__all__ = [
    "TOKEN_VAR",
    "Enclosure",
    "ProcessResult",
    "emergency_exit",
    "on_emergency_exit",
    "owning_descendants",
    "readable",
    "run_process",
    "stop_session",
    "terminate_all",
    "tracked_group",
]
