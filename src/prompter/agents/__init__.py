"""Agent backends behind one small protocol: a prompt in, a typed result out."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from ..config import Task, Workflow
from ..exits import PrompterError
from ..records import AgentUsage


@dataclass(frozen=True, slots=True)
class Pushback:
    """The API pushed back while a call runs: a 429 or 529 that the agent's CLI retries by
    itself (`status`), or a warning that a usage limit is close (`warning`). The run's agent
    limit (`agent_limit.py`) takes it as a congestion signal."""

    status: int | None = None
    retry_after_s: float | None = None  # when the API said the limit lifts, if it said
    warning: bool = False


@dataclass(frozen=True, slots=True)
class AgentRequest:
    task: Task
    prompt: str  # the task's prompt, plus feedback from the failed attempt before
    attempt: int
    workdir: Path
    log: BinaryIO
    resume_session: str | None = None
    max_cost_usd: float | None = None  # what is left of the run's budget, when it has one
    # Seconds this call may run: what is left of the task's `timeout` for the agent phase,
    # which rate-limit retries share; None = no limit.
    timeout: float | None = None
    # Progress worth telling while the call runs (one line, shown on the console), if wanted.
    note: Callable[[str], None] | None = None
    # The API pushing back while the call runs, for the run's agent limit, if it listens.
    pushback: Callable[[Pushback], None] | None = None


@dataclass(frozen=True, slots=True)
class AgentResult:
    ok: bool  # the agent finished its turn (not: the task is done — verify decides that)
    exit_code: int | None
    duration_s: float
    error: str | None = None  # one line, when not ok
    timed_out: bool = False
    rate_limited: bool = False  # the API refused it (429/529, a usage limit): not an attempt
    retry_after_s: float | None = None  # when rate-limited: seconds until the limit lifts, if known
    api_status: int | None = None  # when rate-limited: the HTTP status, if the agent knows it
    fatal: bool = False  # no other task can succeed either (no CLI, no credentials): stop the run
    usage: AgentUsage = field(default_factory=AgentUsage)
    output: str = ""  # bounded, readable tail of what the agent printed


class Agent(Protocol):
    async def run(self, request: AgentRequest) -> AgentResult: ...


class AgentUnavailable(PrompterError):
    """The backend cannot run here; the message says what to do instead."""


def agent_for(kind: str, workflow: Workflow, tasks: Collection[int] | None = None) -> Agent:
    """The backend for `kind`; raises AgentUnavailable when it cannot run here — for the
    `command` backend, when the program of one of `tasks` (default: all) cannot start."""
    if kind == "command":
        from .command import CommandAgent

        agent = CommandAgent(workflow.settings)
        agent.check_programs(workflow, tasks)
        return agent
    from .claude import ClaudeAgent

    return ClaudeAgent(workflow.settings, workflow.path.parent, workflow.workdir)
