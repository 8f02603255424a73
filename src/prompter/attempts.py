"""One attempt at a task: the agent phase, `check_interval`, then the verify command.

Shared by both modes. What follows an attempt (pass, retry, fail) is `outcome.after_attempt`;
this module supplies the pieces that are the same everywhere: the feedback prompt, the backoff
delay and the log file.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, Protocol, cast

import anyio

from .agents import Agent, AgentRequest, AgentResult, Pushback
from .budget import CostBudget
from .config import Task
from .events import AgentNote, Event
from .feedback import Feedback, prompt_with_feedback
from .places import log_name
from .processes import ProcessResult, run_process
from .records import PRECHECK, AttemptRecord
from .redaction import RedactingWriter, Redactor
from .regular import open_regular

MAX_BACKOFF_S = 300.0
RATE_LIMIT_RETRIES = 5  # agent rate-limit/overload answers retried without consuming an attempt
RATE_LIMIT_BASE_S = 10.0


def backoff_delay(base: float, failed_attempts: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: base · 2^(n-1) · U(0.5, 1.5), capped."""
    if base <= 0:
        return 0.0
    jitter: float = (rng or random).uniform(0.5, 1.5)
    # The exponent is bounded: 2.0 ** 1024 overflows, and past 2^30 the cap decides anyway.
    return min(MAX_BACKOFF_S, base * 2.0 ** min(failed_attempts - 1, 30) * jitter)


class AgentSessions(Protocol):
    """What watches agent sessions (the graph scheduler's agent limit): the API's pushback
    while a session runs, and its end."""

    def pushback(self, task: str, signal: Pushback) -> None: ...

    def ended(self, task: str, result: AgentResult | None) -> None:
        """The session of `task` ended as `result` says; None: it was cut short (cancelled)."""


@dataclass(frozen=True)
class AttemptContext:
    workdir: Path
    logs_dir: Path
    check_interval: float
    agents: Mapping[str, Agent]
    # Graph mode's agent limit, told of each session's pushback and end; a refused session
    # then ends the attempt at once (the scheduler queues it behind the limit). None: one
    # task at a time (sequential mode), which waits out a refusal itself.
    sessions: AgentSessions | None = None
    budget: CostBudget = field(default_factory=CostBudget)
    redactor: Redactor = field(default_factory=Redactor)  # secrets masked in logs and state
    # The verify commands' environment: prompter's own, copied once (a copy per command would
    # decode every variable again).
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    emit: Callable[[Event], None] | None = None  # the run's listeners (agent notes), if any


def _open_log(logs_dir: Path, task_name: str) -> BinaryIO:
    """The task's log, to append to. A FIFO, socket or device in its place is refused at once
    (NotARegularFile): opened as it is on the event loop, a FIFO would block the whole run."""
    path = logs_dir / log_name(task_name)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    try:
        fd = open_regular(path, flags)
    except FileNotFoundError:  # the first log of this report directory
        logs_dir.mkdir(parents=True, exist_ok=True)
        fd = open_regular(path, flags)
    return os.fdopen(fd, "ab")


class _LogFile:
    """The task log as an attempt writes it. A write error (a full disk, a file system gone
    read-only) ends the logging, not the attempt: as for process output (`processes/capture.py`),
    the state still gets the output tail, and a log must never take the run down."""

    def __init__(self, file: BinaryIO) -> None:
        self._file: BinaryIO | None = file

    def write(self, data: bytes) -> int:
        if self._file is not None:
            try:
                self._file.write(data)
            except OSError:
                self._drop()
        return len(data)

    def flush(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
            except OSError:
                self._drop()

    def close(self) -> None:
        self.flush()
        self._drop()

    def _drop(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):  # closing flushes what is buffered: may fail too
                file.close()


def _unlogged(number: int, path: Path, error: OSError) -> AttemptRecord:
    """The attempt that could not start because its log cannot be opened: a failure that says
    why, never an exception that would leave the task running."""
    now = time.time()
    return AttemptRecord(
        number=number,
        started_at=now,
        finished_at=now,
        reason=f"cannot open the task log {path}: {error.strerror or error}",
    )


def _header(log: BinaryIO, text: str, *, flush: bool = True) -> None:
    """A marked line in the task log; flushed (unless it is the last one of the attempt) so
    that someone following the log sees what runs now."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    log.write(f"\n===== {stamp} {text} =====\n".encode())
    if flush:
        log.flush()


async def _session(ctx: AttemptContext, request: AgentRequest) -> AgentResult:
    """One call of the agent, its cost counted against the budget and, in graph mode, its
    pushback and end told to the agent limit."""
    agent = ctx.agents[request.task.agent]
    request = replace(request, max_cost_usd=ctx.budget.remaining_usd)
    sessions = ctx.sessions
    if sessions is None:
        result = await agent.run(request)
    else:
        name = request.task.name
        ended: AgentResult | None = None
        try:
            request = replace(request, pushback=lambda signal: sessions.pushback(name, signal))
            ended = await agent.run(request)
        finally:
            sessions.ended(name, ended)
        result = ended
    ctx.budget.add(result.usage.cost_usd)
    if result.rate_limited and (result.retry_after_s or 0.0) > MAX_BACKOFF_S:
        # A limit that lifts in hours (a subscription's usage window): no task of this agent
        # can run before then, so the run stops and a later run resumes it.
        lifts = _clock_in(result.retry_after_s or 0.0)
        return replace(result, fatal=True, error=f"{result.error}; the limit lifts {lifts}")
    return result


async def _run_agent(ctx: AttemptContext, request: AgentRequest) -> AgentResult:
    """The agent phase within the task's `timeout`. A refused session (429/529) is, in graph
    mode, the attempt's result (the scheduler waits for the agent limit); one task at a time
    waits it out here, without using an attempt, sharing the timeout."""
    limit = request.task.timeout
    deadline = None if limit is None else anyio.current_time() + limit
    spent = 0.0  # rate-limited calls may have cost something too: the attempt carries it all
    for retry in range(RATE_LIMIT_RETRIES + 1):
        now = anyio.current_time()
        timeout = None if deadline is None else max(0.0, deadline - now)
        result = await _session(ctx, replace(request, timeout=timeout))
        spent += result.usage.cost_usd or 0.0
        if spent and spent != result.usage.cost_usd:
            result = replace(result, usage=result.usage.model_copy(update={"cost_usd": spent}))
        if not result.rate_limited or result.fatal or ctx.sessions is not None:
            return result
        # No retry once the budget is spent: that would start new agent work past it.
        if retry == RATE_LIMIT_RETRIES or ctx.budget.exhausted:
            return result
        delay = backoff_delay(RATE_LIMIT_BASE_S, retry + 1)
        if result.retry_after_s is not None:  # the agent knows when: wait that long, no guess
            delay = result.retry_after_s + 1.0
        if deadline is not None and anyio.current_time() + delay >= deadline:
            return replace(
                result,
                error=f"{result.error}; no time left to retry within the "
                f"agent timeout ({limit:g} s)",
            )
        _header(request.log, f"agent rate-limited; retrying in {delay:.0f} s")
        await anyio.sleep(delay)
        # The retry continues the conversation the limit cut short, not a new one.
        request = replace(request, resume_session=result.usage.session_id or request.resume_session)
    raise AssertionError("unreachable")


def _notes_of(ctx: AttemptContext, task: str) -> Callable[[str], None] | None:
    """An agent's notes as events for the run's listeners, secrets masked (they quote what the
    agent's CLI said)."""
    emit = ctx.emit
    if emit is None:
        return None
    mask = ctx.redactor.text
    return lambda text: emit(AgentNote(task=task, text=mask(text)))


def _clock_in(seconds: float) -> str:
    """When `seconds` from now is, for a message: "at <local time>" where the calendar
    reaches, else how far off it is."""
    try:
        return time.strftime("at %Y-%m-%d %H:%M %Z", time.localtime(time.time() + seconds))
    except (OverflowError, OSError, ValueError):  # beyond the platform's time_t
        return f"in {seconds / 3600:,.0f} h"


# The shell's exit codes for a command it could not run (POSIX: 126 found but not executable,
# 127 not found): the environment lacks something, which no agent's retry can supply.
CANNOT_RUN = {126: "cannot execute", 127: "command not found"}
# The shell's own line about it: dash `sh: 1: x: not found`, bash `bash: line 1: x: command not
# found` or `sh: x: No such file or directory`, both `…: Permission denied`.
_SHELL_SAYS = re.compile(
    r"^[^\n]*?: ([^:\n]+): (?:command not found|not found|No such file or directory"
    r"|Permission denied|cannot execute[^\n]*)$",
    re.M,
)


def cannot_run(task: Task, result: ProcessResult) -> bool:
    """Whether the verify command could not run at all (see `CANNOT_RUN`), unless that exit
    code is what the task counts as success."""
    if result.spawn_error:
        return True
    code = result.returncode
    return not result.timed_out and code in CANNOT_RUN and code != task.verify_success_code


def named_by_shell(output: str) -> list[str]:
    """The commands or files the shell said it could not run, last first."""
    return [m.group(1).strip() for m in reversed(list(_SHELL_SAYS.finditer(output[-8192:])))]


def verify_reason(task: Task, result: ProcessResult) -> str | None:
    """Why the verify command failed, or None when it passed."""
    if result.spawn_error:
        return f"verify_command could not start: {result.spawn_error}"
    if result.timed_out:
        return f"verify_command timed out after {task.verify_timeout:g} s"
    code = result.returncode
    if code == task.verify_success_code:
        return None
    if code is not None and cannot_run(task, result):
        said = next((m.group(0) for m in reversed(list(_SHELL_SAYS.finditer(result.output)))), "")
        detail = " ".join(said.split())[:300] or task.verify_command[:300]
        return f"verify_command could not run (exit {code}: {CANNOT_RUN[code]}): {detail}"
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"verify_command was killed by {name}"
    return f"verify_command exited {code} (expected {task.verify_success_code})"


async def run_attempt(
    ctx: AttemptContext,
    task: Task,
    number: int,
    feedback: Feedback | None = None,
    resume_session: str | None = None,
) -> AttemptRecord:
    """Run the agent, wait `check_interval`, run the verify command; never raises on failure.
    Attempt number `records.PRECHECK` runs the verify command alone (`verify_first`)."""
    # Opened on the loop: a hand-off to a worker thread costs more than creating the file on a
    # fast file system, and on a slow one the kernel work competes for the same cores anyway.
    try:
        opened = _open_log(ctx.logs_dir, task.name)
    except OSError as exc:  # `logs/<task>.log` is a directory, not writable, …
        return _unlogged(number, ctx.logs_dir / log_name(task.name), exc)
    log_file = _LogFile(opened)
    writer = RedactingWriter(cast(BinaryIO, log_file), ctx.redactor)
    try:
        record = await _attempt(ctx, task, number, feedback, resume_session, cast(BinaryIO, writer))
    finally:
        writer.drain()
        log_file.close()
    if not ctx.redactor:
        return record
    mask = ctx.redactor.text
    return record.model_copy(
        update={
            "reason": record.reason and mask(record.reason),
            "output_tail": mask(record.output_tail),
            "result_text": record.result_text and mask(record.result_text),
        }
    )


async def _attempt(
    ctx: AttemptContext,
    task: Task,
    number: int,
    feedback: Feedback | None,
    resume_session: str | None,
    log: BinaryIO,
) -> AttemptRecord:
    started = time.time()
    if number == PRECHECK:  # `verify_first`: the verify command alone, no agent
        _header(log, f"{task.name}: verify first, before any agent runs")
        return await _verified(ctx, task, AttemptRecord(number=number, started_at=started), log)
    _header(log, f"{task.name}: attempt {number}: agent ({task.agent})")
    request = AgentRequest(
        task=task,
        prompt=prompt_with_feedback(task, feedback),
        attempt=number,
        workdir=ctx.workdir,
        log=log,
        resume_session=resume_session,
        note=_notes_of(ctx, task.name),
    )
    agent = await _run_agent(ctx, request)
    record = AttemptRecord(
        number=number,
        started_at=started,
        agent_exit_code=agent.exit_code,
        agent_duration_s=agent.duration_s,
        fatal=agent.fatal,
        rate_limited=agent.rate_limited,
        api_status=agent.api_status,
        retry_after_s=agent.retry_after_s,
        **agent.usage.model_dump(),
    )
    if not agent.ok:
        _header(log, _agent_failed(ctx, number, agent), flush=False)
        return record.model_copy(
            update={
                "finished_at": time.time(),
                "reason": agent.error,
                "output_tail": agent.output,
            }
        )
    if ctx.check_interval > 0:
        await anyio.sleep(ctx.check_interval)
    return await _verified(ctx, task, record, log)


async def _verified(
    ctx: AttemptContext, task: Task, record: AttemptRecord, log: BinaryIO
) -> AttemptRecord:
    """`record` completed by the verify command: its outcome, exit code, time and output."""
    number = record.number
    _header(log, f"verify: {task.verify_command}")
    verify = await run_process(
        ["/bin/sh", "-c", task.verify_command],
        cwd=ctx.workdir,
        env=ctx.env,
        timeout=task.verify_timeout,
        log=log,
    )
    reason = verify_reason(task, verify)
    # Before any agent ran, a command that cannot run yet (what the agent is to build) is just
    # a check that did not pass: the agent runs, and the attempts after it judge the environment.
    environment = number != PRECHECK and reason is not None and cannot_run(task, verify)
    outcome = "passed" if reason is None else f"failed: {reason}"
    if environment:
        outcome += " (an environment error: not retried, not sent to the agent)"
    if number == PRECHECK:
        then = "already satisfied, no agent runs" if reason is None else "the agent runs"
        _header(log, f"verify first {outcome}: {then}", flush=False)
    else:
        _header(log, f"attempt {number} {outcome}", flush=False)
    return record.model_copy(
        update={
            "finished_at": time.time(),
            "ok": reason is None,
            "reason": reason,
            "environment_error": environment,
            "verify_exit_code": verify.returncode,
            "verify_duration_s": verify.duration_s,
            "output_tail": verify.output,
        }
    )


def _agent_failed(ctx: AttemptContext, number: int, agent: AgentResult) -> str:
    """The log's line for an agent phase that failed, or a session the API refused."""
    if not agent.rate_limited or agent.fatal or ctx.sessions is None:
        return f"attempt {number} failed: {agent.error}"
    after = agent.retry_after_s
    said = "" if after is None else f" (it said: retry in {after:.0f} s)"
    return (
        f"the API refused the agent session{said}: {agent.error}; not an attempt unless it "
        "keeps refusing: the task waits for the run's agent limit"
    )


# The signature both engines call; benchmarks and tests of scheduling logic pass their own.
AttemptRunner = Callable[
    [AttemptContext, Task, int, Feedback | None, str | None], Awaitable[AttemptRecord]
]
