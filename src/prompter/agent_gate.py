"""The graph scheduler's side of the agent limit: a session reserved before an agent phase
starts, the API's pushback while it runs and its end, on anyio's clock; each change of the
limit goes to the ledger (state, then listeners).

`agent_limit.AgentLimit` decides; this module only translates: an agent's `Pushback` and
`AgentResult` into its events, its changes into records, and "the limit has room again" into a
call of the scheduler's dispatch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

from . import attempts
from .agent_limit import AgentLimit, Congestion, Ended, Event, NearLimit, Started
from .agents import AgentResult, Pushback
from .ledger import Ledger
from .records import AgentLimitChange


class AgentGate:
    """How many agent sessions may start now, kept by an `AgentLimit` of `maximum`."""

    def __init__(self, maximum: int, ledger: Ledger, room_changed: Callable[[], None]) -> None:
        # The back-off at a limit of 1 is the one rate-limited attempts used to wait.
        self.limit = AgentLimit(maximum=maximum, backoff_s=attempts.RATE_LIMIT_BASE_S)
        self.maximum = maximum
        self._ledger = ledger
        self._room_changed = room_changed
        self._recorded = 0  # changes of the limit already in the ledger

    def room(self) -> int:
        """How many sessions may start now."""
        return self.limit.room(anyio.current_time())

    def blocked_until(self) -> float | None:
        """When (anyio's clock) new sessions may start again, while the API's named time or a
        back-off holds them."""
        return self.limit.blocked_until(anyio.current_time())

    def start(self, task: str) -> None:
        """Reserve a session for `task`'s agent phase, which starts now."""
        self.limit.on_event(Started(task), anyio.current_time())  # never changes the limit

    def pushback(self, task: str, signal: Pushback) -> None:
        now = anyio.current_time()
        if signal.warning:
            self._apply(NearLimit(task))
            return
        retry_at = None if signal.retry_after_s is None else now + signal.retry_after_s
        self._apply(Congestion(task, signal.status, retry_at))

    def ended(self, task: str, result: AgentResult | None) -> None:
        if result is not None and result.rate_limited:
            after = result.retry_after_s
            retry_at = None if after is None else anyio.current_time() + after
            self._apply(Congestion(task, result.api_status, retry_at))
        self._apply(Ended(task, ok=result is not None and result.ok))

    def close(self, task: str) -> None:
        """Give back the session of an attempt that ended before its agent ran (a worktree
        that could not be made); nothing when its session ended as sessions do."""
        self.limit.on_event(Ended(task, ok=False), anyio.current_time())

    def _apply(self, event: Event) -> None:
        self.limit.on_event(event, anyio.current_time())
        changes = self.limit.changes
        if len(changes) > self._recorded:
            offset = time.time() - anyio.current_time()  # the limit's clock to Unix time
            for change in changes[self._recorded :]:
                self._ledger.limit_changed(
                    AgentLimitChange(
                        at=change.at + offset,
                        limit=change.limit,
                        maximum=self.maximum,
                        cause=change.cause,
                    )
                )
            self._recorded = len(changes)
        if isinstance(event, Ended):
            self._room_changed()
