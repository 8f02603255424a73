"""Agent backends behind one small protocol: a prompt in, a typed result out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from ..config import Task
from ..state import AgentUsage


@dataclass(frozen=True, slots=True)
class AgentRequest:
    task: Task
    prompt: str  # the task's prompt, plus feedback from the failed attempt before
    attempt: int
    workdir: Path
    log: BinaryIO
    resume_session: str | None = None


@dataclass(frozen=True, slots=True)
class AgentResult:
    ok: bool  # the agent finished its turn (not: the task is done — verify decides that)
    exit_code: int | None
    duration_s: float
    error: str | None = None  # one line, when not ok
    timed_out: bool = False
    rate_limited: bool = False  # retried with backoff without consuming an attempt
    usage: AgentUsage = field(default_factory=AgentUsage)
    output: str = ""  # bounded, readable tail of what the agent printed


class Agent(Protocol):
    async def run(self, request: AgentRequest) -> AgentResult: ...


class AgentUnavailable(Exception):
    """The backend cannot run here; the message says what to do instead."""


def agent_for(kind: str) -> Agent:
    if kind == "command":
        from .command import CommandAgent

        return CommandAgent()
    raise AgentUnavailable(
        f'agent = "{kind}" is not available in this version of prompter: the Claude Code '
        'backend is coming next. Use agent = "command" with agent_command = [...] for now.'
    )
