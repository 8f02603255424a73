"""Claude Code through claude-agent-sdk: one `query()` per attempt.

The SDK spawns the CLI; we put a tiny launcher in its place (see launch.py) so that the CLI gets
its own process group — a timeout or a signal then stops the CLI with every tool process it
started — and, when prompter runs as root on someone else's work tree, runs as that someone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import anyio

from .. import identity
from ..config import Settings, Task, Workflow
from ..processes import TOKEN_VAR, Enclosure, readable, stop_session, tracked_group
from ..records import RESULT_TEXT_CHARS, AgentUsage
from ..text import single_line
from ..words import plural
from . import AgentRequest, AgentResult, AgentUnavailable

if TYPE_CHECKING:
    from claude_agent_sdk import ClaudeAgentOptions, Message, Transport

CLI_ENV = "PROMPTER_CLAUDE_CLI"
AUTH_HINT = "set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN"
RATE_LIMIT_STATUSES = frozenset({429, 529})
AUTH_STATUSES = frozenset({401, 403})
TAIL_CHARS = 56 * 1024
TOOL_INPUT_CHARS = 200
CLOSE_S = 5.0  # for the SDK to wind down once the CLI is gone
# After its result, for the CLI to end its output (it saves the session and exits).
AFTER_RESULT_S = 10.0
# One stream-json line may carry a whole tool result (an image, a big file read); the SDK's
# default limit of 1 MiB failed such attempts. The line is buffered, so it stays bounded.
STREAM_LINE_BYTES = 32 * 1024 * 1024
LIMIT_HORIZON_S = 366 * 24 * 3600.0  # a reset time further out is taken as no reset time
# A longer prompt goes to the CLI's stdin a piece of this many characters at a time (see
# _transport).
PROMPT_PIECE_CHARS = 1 << 20


def find_cli(settings: Settings, base: Path) -> Path:
    """The `claude` executable: the setting, `$PROMPTER_CLAUDE_CLI`, the SDK's bundled CLI,
    or `claude` on PATH — in that order."""
    configured = settings.claude_cli_path or os.environ.get(CLI_ENV)
    if configured:
        path = (base / configured).resolve() if settings.claude_cli_path else Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            source = "claude_cli_path" if settings.claude_cli_path else f"${CLI_ENV}"
            raise AgentUnavailable(
                f"Claude Code CLI not found: {source} = {path} is not an executable file"
            )
        return path.absolute()
    # Where the package is, without importing it: its import (with mcp, httpx, starlette...)
    # takes ~35 MB, which `run --dry-run` has no use for; a run imports it to start the agent.
    try:
        spec = importlib.util.find_spec("claude_agent_sdk")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise AgentUnavailable(
            'agent = "claude" needs the claude-agent-sdk package: pip install prompter-action'
        )
    bundled = Path(spec.origin).parent / "_bundled" / "claude"
    if bundled.is_file():
        return bundled
    on_path = shutil.which("claude")
    if on_path:
        return Path(on_path)
    raise AgentUnavailable(
        "Claude Code CLI not found: the claude-agent-sdk wheel for this platform bundles it; "
        f"otherwise install it and set claude_cli_path or ${CLI_ENV}"
    )


@dataclass(frozen=True)
class RunAs:
    """Who the CLI runs as and what it needs for that."""

    env: dict[str, str]
    uid_gid: str | None = None  # "uid:gid" for the launcher, when not ourselves


def run_as(workdir: Path) -> RunAs:
    """As root, the CLI runs as the run's user, the work tree's owner (identity.py; Claude Code
    refuses bypassPermissions as root, and files it creates should be the owner's); a root-owned
    tree needs IS_SANDBOX."""
    if os.geteuid() != 0:
        return RunAs({})
    user = identity.current(workdir)
    if user is None:
        return RunAs({"IS_SANDBOX": "1"})
    return RunAs(user.environ({}), f"{user.uid}:{user.gid}")


class ClaudeAgent:
    def __init__(self, settings: Settings, base: Path, workdir: Path) -> None:
        self.settings = settings
        self.cli = find_cli(settings, base)
        self.user = run_as(workdir)
        # The SDK logs errors it also raises; we report those ourselves, once, in our words.
        sdk_log = logging.getLogger("claude_agent_sdk")
        sdk_log.addHandler(logging.NullHandler())
        sdk_log.propagate = False

    def missing_credentials(
        self, workflow: Workflow, tasks: Collection[int] | None = None
    ) -> str | None:
        """What to tell the user when the Claude tasks among `tasks` (default: all) would start
        Claude Code without any credentials (see credentials.py); None when each has some."""
        from .credentials import MISSING

        found: dict[tuple[tuple[str, str], ...], str | None] = {}  # by the task's agent_env
        lacking = []
        for i in range(len(workflow.tasks)) if tasks is None else tasks:
            task = workflow.tasks[i]
            if task.agent != "claude":
                continue
            key = tuple(sorted(task.agent_env.items()))
            if key not in found:
                found[key] = self.credentials(task.agent_env, workflow.workdir)
            if found[key] is None:
                lacking.append(task.name)
        if not lacking:
            return None
        names = ", ".join(f"`{n}`" for n in lacking[:5]) + (" …" if len(lacking) > 5 else "")
        return MISSING.format(who=f" (task {names})" if len(lacking) == 1 else f" (tasks {names})")

    def credentials(self, task_env: Mapping[str, str], workdir: Path) -> str | None:
        """Where the CLI, started for a task with `task_env` in `workdir`, finds credentials;
        None: nowhere. Its environment is as `_options` makes it (over prompter's own)."""
        from .credentials import credentials

        env = {**os.environ, **self.settings.agent_env, **task_env, **self.user.env}
        return credentials(env, workdir)

    async def run(self, request: AgentRequest) -> AgentResult:
        deadline = math.inf if request.timeout is None else anyio.current_time() + request.timeout
        with tempfile.TemporaryDirectory(prefix="prompter-claude-") as tmp:
            outcome = await self._query(request, request.resume_session, Path(tmp), deadline)
            if outcome.resume_failed():
                # A session that cannot be resumed (expired, another machine) is no reason to
                # fail the attempt: start a new one, and say so.
                outcome.transcript.line(
                    f"session {request.resume_session} could not be resumed; starting a new one"
                )
                outcome = await self._query(request, None, Path(tmp), deadline, outcome.transcript)
        return outcome.result(request.task)

    async def _query(
        self,
        request: AgentRequest,
        resume: str | None,
        tmp: Path,
        deadline: float,
        transcript: Transcript | None = None,
    ) -> Outcome:
        from claude_agent_sdk import query

        outcome = Outcome(transcript or Transcript(request.log, request.note), resume=resume)
        pidfile = tmp / "pid"
        pidfile.unlink(missing_ok=True)  # a query before this one (a failed resume) left its own
        # What the CLI's tools leave behind (daemons) is found by a token in their environment
        # and the CLI's session; the SDK spawns the CLI, so its pid is known only later.
        enclosure = Enclosure(foreign=True)
        try:
            options = self._options(request, resume, tmp, pidfile, outcome.transcript, enclosure)
            transport = _transport(request.prompt, options)
            messages = query(prompt=request.prompt, options=options, transport=transport)
        except BaseException:
            enclosure.forget()
            raise
        started = anyio.current_time()
        session = _Session(messages, outcome, pidfile, enclosure)
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.follow)
            try:
                with anyio.CancelScope(deadline=deadline) as timer:
                    await session.answered.wait()
                    # Once it has answered, the CLI ends its output and exits; a tool process
                    # it left behind may hold the output open, which must not hang the attempt.
                    with anyio.move_on_after(AFTER_RESULT_S):
                        await session.ended.wait()
                outcome.timed_out = timer.cancelled_caught and not outcome.answered
            finally:
                # Also on cancellation: the CLI is stopped first, so the SDK's own clean-up
                # finds it gone instead of waiting seconds for a CLI that does not exit.
                with anyio.CancelScope(shield=True):
                    await session.close()
        outcome.duration_s = anyio.current_time() - started
        return outcome

    def _options(
        self,
        request: AgentRequest,
        resume: str | None,
        tmp: Path,
        pidfile: Path,
        transcript: Transcript,
        enclosure: Enclosure,
    ) -> ClaudeAgentOptions:
        from claude_agent_sdk import ClaudeAgentOptions
        from claude_agent_sdk.types import SystemPromptPreset

        task = request.task
        # Claude Code's own system prompt stays (tools, conventions); the task's is added.
        system: SystemPromptPreset = {"type": "preset", "preset": "claude_code"}
        if task.system_prompt:
            system["append"] = task.system_prompt
        env = {
            **self.settings.agent_env,
            **task.agent_env,
            **self.user.env,
            "PROMPTER_CLAUDE_REAL": str(self.cli),
            "PROMPTER_CLAUDE_PIDFILE": str(pidfile),
            TOKEN_VAR: enclosure.token,
        }
        if self.user.uid_gid:
            env["PROMPTER_CLAUDE_AS"] = self.user.uid_gid
        return ClaudeAgentOptions(
            cli_path=_launcher(tmp),
            cwd=request.workdir,
            model=task.model,
            max_turns=task.max_turns,
            allowed_tools=list(task.allowed_tools),
            disallowed_tools=list(task.disallowed_tools),
            permission_mode=task.permission_mode,
            system_prompt=system,
            resume=resume,
            max_budget_usd=request.max_cost_usd,
            env=env,
            stderr=transcript.stderr,
            max_buffer_size=STREAM_LINE_BYTES,
        )


def _transport(prompt: str, options: ClaudeAgentOptions) -> Transport | None:
    """For a prompt over PROMPT_PIECE_CHARS, the SDK's own transport, whose stdin encodes and
    writes a piece of a line at a time; None (the SDK's default) for any other prompt.

    The SDK writes the prompt's stream-json line with one `send`: the whole line encoded, then
    held again in the pipe's write buffer while the CLI reads it — two more copies of a prompt
    of many MB. Piece by piece, under the SDK's write lock, the CLI gets the same bytes."""
    if len(prompt) <= PROMPT_PIECE_CHARS:
        return None
    from anyio.streams.text import TextSendStream

    try:
        from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport
    except ImportError:  # an SDK that moved it: its default transport, whole lines
        return None

    class Pieces(TextSendStream):
        async def send(self, item: str) -> None:
            for start in range(0, len(item), PROMPT_PIECE_CHARS):
                await super().send(item[start : start + PROMPT_PIECE_CHARS])

    class PiecewiseStdin(SubprocessCLITransport):
        async def connect(self) -> None:
            await super().connect()
            stdin = getattr(self, "_stdin_stream", None)
            if type(stdin) is TextSendStream:  # else an SDK that changed: left as it is
                self._stdin_stream = Pieces(stdin.transport_stream, errors=stdin.errors)

    return PiecewiseStdin(prompt=prompt, options=options)


def _launcher(tmp: Path) -> Path:
    """An executable that runs launch.py with this interpreter (the SDK takes one path)."""
    script = Path(__file__).with_name("launch.py")
    wrapper = tmp / "claude"
    python = shlex.quote(sys.executable)
    wrapper.write_text(f'#!/bin/sh\nexec {python} -S {shlex.quote(str(script))} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text())
    except (OSError, ValueError):
        return None


def _one_line(text: str, limit: int = 300) -> str:
    """An excerpt for a reason or the console: `readable`, then one line of `limit` chars."""
    return single_line(readable(text.encode("utf-8", "replace")), limit, rstrip=False)


class _Session:
    """One CLI process and its message stream, followed by a task of its own.

    The follower's scope is shielded: a timeout or a cancellation reaches the stream only
    through `close`, which stops the CLI's process group first. Cancelled mid-read, the SDK
    would close stdin and give a CLI that ignores it 5 s, then SIGTERM and 5 s more.
    """

    def __init__(
        self,
        messages: AsyncIterator[Message],
        outcome: Outcome,
        pidfile: Path,
        enclosure: Enclosure,
    ) -> None:
        self._messages = messages
        self._outcome = outcome
        self._pidfile = pidfile
        self._enclosure = enclosure
        self._leader: int | None = None
        self._scope = anyio.CancelScope(shield=True)
        self.answered = anyio.Event()  # a result message came, or the stream ended without one
        self.ended = anyio.Event()

    async def follow(self) -> None:
        from claude_agent_sdk import (
            ClaudeSDKError,
            CLIConnectionError,
            CLIJSONDecodeError,
            CLINotFoundError,
            ProcessError,
        )
        from claude_agent_sdk._errors import MessageParseError  # not re-exported

        outcome = self._outcome
        try:
            with self._scope:
                async for message in self._messages:
                    self._track()
                    outcome.see(message)
                    if outcome.answered:
                        self.answered.set()
        except CLINotFoundError as exc:
            outcome.fail(f"Claude Code CLI not found: {exc}", fatal=True)
        except ProcessError as exc:  # also ResultError: the CLI exited after an error result
            outcome.exit_code = exc.exit_code
            if outcome.final is None:
                detail = outcome.transcript.last_stderr or "no result and no error output"
                outcome.fail(f"Claude Code exited {exc.exit_code} without a result: {detail}")
        except (CLIJSONDecodeError, MessageParseError) as exc:
            outcome.fail(f"Claude Code sent output prompter cannot read: {_one_line(str(exc))}")
        except CLIConnectionError as exc:
            outcome.fail(f"could not start Claude Code: {_one_line(str(exc))}")
        except ClaudeSDKError as exc:
            outcome.fail(f"Claude Code failed: {_one_line(str(exc))}")
        except Exception as exc:  # noqa: BLE001 - the SDK raises plain Exception for an error
            # answer to a control request (an option this CLI does not know) and for a CLI that
            # never answers `initialize`: the attempt fails, prompter does not.
            outcome.fail(f"Claude Code failed: {_one_line(str(exc))}")
        finally:
            # In this task, where the generator runs: its task group must exit where it entered.
            aclose = getattr(self._messages, "aclose", None)  # an async generator in fact
            if aclose is not None:
                shield = anyio.CancelScope(shield=True)
                with shield, anyio.move_on_after(CLOSE_S), contextlib.suppress(Exception):
                    await aclose()
            self.answered.set()
            self.ended.set()

    def _track(self) -> None:
        """Know the CLI's process group (the launcher writes its pid before the first message)
        and include it in the emergency stop of a second signal."""
        if self._leader is None:
            self._leader = _read_pid(self._pidfile)
            if self._leader is not None:
                self._outcome.stack.enter_context(tracked_group(self._leader))
                self._enclosure.track(self._leader)

    async def close(self) -> None:
        """Stop the CLI's process group (SIGTERM, grace, SIGKILL) unless the stream ended by
        itself, let the stream end, and sweep what the CLI left behind in its group."""
        if not self.ended.is_set():
            self._track()  # a CLI that has said nothing yet: a second signal must reach it too
            leader = self._leader
            if leader is not None:
                await stop_session(leader)
                with anyio.move_on_after(CLOSE_S):
                    await self.ended.wait()
            # Cancelled: a CLI still being started (no pid yet), or output held open by a
            # process outside the group.
            self._scope.cancel()
            await self.ended.wait()
        self._track()
        leader = self._leader
        if leader is not None:
            # Normally the CLI has exited: this only sweeps what it left behind.
            await stop_session(leader)
        try:
            # What left the group too (daemons), while the CLI still counts as running.
            await self._enclosure.close()
        finally:
            self._outcome.stack.close()


class Transcript:
    """The message stream as readable text: to the task log, and a bounded tail for feedback."""

    def __init__(self, log: BinaryIO, note: Callable[[str], None] | None = None) -> None:
        self.log = log
        self.note = note  # what the console should hear of (see AgentRequest.note)
        self.tail: deque[str] = deque()
        self.tail_chars = 0
        self.last_stderr = ""

    def line(self, text: str) -> None:
        clean = readable(text.encode("utf-8", "replace")).rstrip("\n") + "\n"
        with contextlib.suppress(OSError):  # a full disk must not fail the attempt
            self.log.write(clean.encode("utf-8"))
            self.log.flush()
        self.tail.append(clean)
        self.tail_chars += len(clean)
        while self.tail_chars > TAIL_CHARS and len(self.tail) > 1:
            self.tail_chars -= len(self.tail.popleft())

    def stderr(self, text: str) -> None:
        if text.strip():
            self.last_stderr = _one_line(text)
            self.line(f"stderr: {text}")

    def text(self) -> str:
        return "".join(self.tail)

    def show(self, message: Message) -> None:
        from claude_agent_sdk import (
            AssistantMessage,
            RateLimitEvent,
            SystemMessage,
            TextBlock,
            ToolResultBlock,
            ToolUseBlock,
            UserMessage,
        )

        if isinstance(message, SystemMessage) and message.subtype == "init":
            data = message.data
            self.line(
                f"session {data.get('session_id')} · model {data.get('model')} · "
                f"Claude Code {data.get('claude_code_version', '?')}"
            )
        elif isinstance(message, AssistantMessage):
            for block in message.content:
                if isinstance(block, TextBlock):
                    self.line(block.text)
                elif isinstance(block, ToolUseBlock):
                    self.line(f"→ {block.name}: {_tool_input(block.input)}")
        elif isinstance(message, UserMessage) and isinstance(message.content, list):
            for block in message.content:
                if isinstance(block, ToolResultBlock) and block.is_error:
                    self.line(f"← tool error: {_one_line(str(block.content))}")
        elif isinstance(message, RateLimitEvent):
            info = message.rate_limit_info
            self.line(f"rate limit: {info.status} ({info.rate_limit_type or 'unknown window'})")
        # A ResultMessage is shown by Outcome.see, once it has been checked; an API retry too.

    def retrying(self, retry: ApiRetry) -> None:
        """Claude Code retries a failed API request: to the log, and to the console."""
        delay = f" in {retry.delay_s:.1f} s" if retry.delay_s is not None else ""
        self.line(
            f"Claude API request failed ({retry.what()}); Claude Code retries{delay} "
            f"({retry.progress()})"
        )
        if self.note is not None:
            self.note(
                f"Claude Code is retrying a failed Claude API request ({retry.what()}; "
                f"retry {retry.progress()})"
            )


@dataclass(frozen=True)
class ApiRetry:
    """A system/api_retry message: Claude Code retries a failed API request by itself (up to
    `max_retries` times, backing off), and says so only here. Fields as the CLI sent them, each
    dropped when it is not of the expected type."""

    attempt: int | None
    max_retries: int | None
    status: int | None
    error: str | None
    delay_s: float | None

    @classmethod
    def of(cls, message: Any) -> ApiRetry | None:
        data = getattr(message, "data", None)
        if getattr(message, "subtype", None) != "api_retry" or not isinstance(data, dict):
            return None

        def count(key: str) -> int | None:
            value = _number(data.get(key))
            return int(value) if value is not None and value >= 0 else None

        delay = _number(data.get("retry_delay_ms"))
        error = data.get("error")
        return cls(
            attempt=count("attempt"),
            max_retries=count("max_retries"),
            status=count("error_status"),
            error=_one_line(error, 100) if isinstance(error, str) and error.strip() else None,
            delay_s=delay / 1000 if delay is not None and delay >= 0 else None,
        )

    def what(self) -> str:
        if self.status is None:
            return f"no response: {self.error or 'unknown'}"
        return f"HTTP {self.status}" + (f" {self.error}" if self.error else "")

    def progress(self) -> str:
        return f"{self.attempt if self.attempt is not None else '?'} of {self.max_retries or '?'}"


def _tool_input(data: dict[str, Any]) -> str:
    for key in ("command", "file_path", "path", "pattern", "url", "description"):
        value = data.get(key)
        if isinstance(value, str):
            return _one_line(value, TOOL_INPUT_CHARS)
    return _one_line(str(data), TOOL_INPUT_CHARS)


@dataclass(frozen=True)
class ResultView:
    """The CLI's result message, checked: the SDK passes its fields on as the CLI sent them,
    and a field of the wrong type (or a cost that is negative or not finite) must fail the
    attempt, not prompter."""

    subtype: str
    is_error: bool
    num_turns: int | None
    session_id: str | None
    total_cost_usd: float | None
    usage: dict[str, int]
    result: str | None
    api_error_status: int | None
    errors: tuple[str, ...]

    @classmethod
    def of(cls, message: Any) -> ResultView | str:
        """The checked view, or what is wrong with the message."""
        cost = getattr(message, "total_cost_usd", None)
        usage = getattr(message, "usage", None) or {}
        status = getattr(message, "api_error_status", None)
        errors = getattr(message, "errors", None) or ()
        checks = (
            ("subtype", isinstance(getattr(message, "subtype", None), str)),
            ("is_error", isinstance(getattr(message, "is_error", None), bool)),
            ("num_turns", _optional(getattr(message, "num_turns", None), int)),
            ("session_id", _optional(getattr(message, "session_id", None), str)),
            ("total_cost_usd", cost is None or _cost(cost) is not None),
            ("usage", isinstance(usage, dict)),
            ("result", _optional(getattr(message, "result", None), str)),
            ("api_error_status", _optional(status, int)),
            (
                "errors",
                isinstance(errors, list | tuple) and all(isinstance(e, str) for e in errors),
            ),
        )
        bad = [name for name, ok in checks if not ok]
        if bad:
            return "a result message with unusable " + ", ".join(f"`{b}`" for b in bad)
        text = message.result
        return cls(
            subtype=message.subtype,
            is_error=message.is_error,
            num_turns=message.num_turns,
            session_id=message.session_id,
            total_cost_usd=None if cost is None else _cost(cost),
            usage={k: v for k, v in usage.items() if isinstance(v, int) and v >= 0},
            result=None if text is None else readable(text.encode("utf-8", "replace")),
            api_error_status=status,
            errors=tuple(errors),
        )


def _optional(value: Any, kind: type) -> bool:
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def _number(value: Any) -> float | None:
    """A finite number as the CLI sent it (not a bool, which JSON keeps apart); None else."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _cost(value: Any) -> float | None:
    """A cost in dollars: a finite number, not negative; None for anything else."""
    number = _number(value)
    return number if number is not None and number >= 0 else None


def _describe_result(result: ResultView) -> str:
    usage = result.usage or {}
    parts = [
        f"result: {result.subtype}" + (" (error)" if result.is_error else ""),
        f"{result.num_turns} {plural(result.num_turns or 0, 'turn')}",
    ]
    if result.total_cost_usd is not None:
        parts.append(f"${result.total_cost_usd:.4f}")
    if usage:
        parts.append(f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out")
    line = " · ".join(parts)
    if result.is_error and result.result:
        line += f"\n{result.result}"
    return line


def _resets_at(message: Message) -> float | None:
    """When a rejected rate_limit_event says the limit lifts (Unix time), if it is a number."""
    from claude_agent_sdk import RateLimitEvent

    if not isinstance(message, RateLimitEvent):
        return None
    when = _number(message.rate_limit_info.resets_at)
    if when is None or when > time.time() + LIMIT_HORIZON_S:  # milliseconds, or nonsense
        return None
    return when


def _reports_limit(message: Message) -> bool:
    """A rejected rate_limit_event, or an assistant turn the CLI marks as `rate_limit`."""
    from claude_agent_sdk import AssistantMessage, RateLimitEvent

    if isinstance(message, RateLimitEvent):
        return message.rate_limit_info.status == "rejected"
    return isinstance(message, AssistantMessage) and message.error == "rate_limit"


@dataclass
class Outcome:
    """What one query amounted to, gathered from its messages."""

    transcript: Transcript
    resume: str | None = None
    session_id: str | None = None
    started_session: bool = False  # the CLI said hello (system/init)
    answered: bool = False  # a result message came (usable or not)
    limit_hit: bool = False  # a usage limit was reported (rejected rate_limit_event, or similar)
    limit_resets_at: float | None = None  # when it lifts (Unix time), if the CLI said
    api_retry: ApiRetry | None = None  # the last API retry the CLI announced
    final: ResultView | None = None
    error: str | None = None
    fatal: bool = False
    timed_out: bool = False
    exit_code: int | None = None
    duration_s: float = 0.0
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def see(self, message: Message) -> None:
        from claude_agent_sdk import AssistantMessage, ResultMessage, SystemMessage

        if isinstance(message, ResultMessage):
            self.answered = True
            view = ResultView.of(message)
            if isinstance(view, str):
                self.transcript.line(f"result: {view}")
                self.fail(f"Claude Code sent output prompter cannot read: {view}")
                return
            self.transcript.line(_describe_result(view))
            self.final = view
            self.session_id = view.session_id or self.session_id
            return
        self.transcript.show(message)
        if isinstance(message, AssistantMessage) and message.error is None:
            self.api_retry = None  # the API answered after all
        if _reports_limit(message):
            self.limit_hit = True
            self.limit_resets_at = _resets_at(message) or self.limit_resets_at
        elif (retry := ApiRetry.of(message)) is not None:
            self.api_retry = retry
            self.transcript.retrying(retry)
        elif isinstance(message, SystemMessage) and message.subtype == "init":
            self.started_session = True
            session = message.data.get("session_id")
            if isinstance(session, str):
                self.session_id = session

    def fail(self, error: str, fatal: bool = False) -> None:
        if self.error is None:
            self.error, self.fatal = error, fatal

    def resume_failed(self) -> bool:
        """The CLI could not take up the session (it failed before saying hello); not so when
        the deadline stopped it: a new session would start past it."""
        return (
            self.resume is not None
            and not self.started_session
            and self.error is not None
            and not self.timed_out
        )

    def result(self, task: Task) -> AgentResult:
        final = self.final
        rate_limited = False
        error = self.error
        fatal = self.fatal
        if self.timed_out:
            error = f"agent timed out after {task.timeout:g} s"
            if self.api_retry is not None:  # the API, not the work, took the time
                retry = self.api_retry
                error += (
                    " while Claude Code was retrying a failed Claude API request "
                    f"(retry {retry.progress()}; last: {retry.what()})"
                )
        elif error is None and final is None:
            error = "Claude Code ended without a result"
        elif error is None and final is not None and final.is_error:
            status = final.api_error_status
            text = _one_line(final.result or "; ".join(final.errors or ()) or final.subtype)
            if final.subtype == "error_max_turns":
                error = f"Claude Code stopped: max_turns ({task.max_turns}) reached"
            elif final.subtype == "error_max_budget_usd":
                error = "Claude Code stopped: the run's remaining cost budget was spent"
            elif status in RATE_LIMIT_STATUSES or (self.limit_hit and status is None):
                # Without a status, an error after a rejected rate_limit_event is the limit's.
                rate_limited = True
                code = f"HTTP {status}" if status else "usage limit"
                error = f"Claude API rate limit or overload ({code}): {text}"
            elif status in AUTH_STATUSES:
                fatal = True
                error = f"Claude Code could not authenticate (HTTP {status}: {text}); {AUTH_HINT}"
            elif status is None and self.api_retry is not None and self.api_retry.status is None:
                # Its own retries (minutes of backing off) all went unanswered: the network or
                # the API is down, and every other attempt would wait them out again.
                fatal = True
                error = (
                    f"Claude Code could not reach the Claude API ({self.api_retry.progress()} "
                    f"retries got no response): {text}"
                )
            else:
                error = "Claude Code error" + (f" (HTTP {status})" if status else "") + f": {text}"
        exit_code = self.exit_code
        if exit_code is None and final is not None:
            exit_code = 1 if final.is_error else 0
        return AgentResult(
            ok=error is None,
            exit_code=exit_code,
            duration_s=self.duration_s,
            error=error,
            timed_out=self.timed_out,
            rate_limited=rate_limited,
            fatal=fatal,
            retry_after_s=self._retry_after() if rate_limited else None,
            usage=self.usage(),
            output=self.transcript.text(),
        )

    def _retry_after(self) -> float | None:
        if self.limit_resets_at is None:
            return None
        return max(0.0, self.limit_resets_at - time.time())

    def usage(self) -> AgentUsage:
        final = self.final
        if final is None:
            return AgentUsage(session_id=self.session_id)
        usage = final.usage or {}
        return AgentUsage(
            session_id=self.session_id,
            cost_usd=final.total_cost_usd,
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            cache_read_tokens=usage.get("cache_read_input_tokens"),
            cache_creation_tokens=usage.get("cache_creation_input_tokens"),
            num_turns=final.num_turns,
            is_error=final.is_error,
            result_text=(final.result or "")[:RESULT_TEXT_CHARS] or None,
        )
