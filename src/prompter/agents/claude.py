"""Claude Code through claude-agent-sdk: one `query()` per attempt.

The SDK spawns the CLI; we put a tiny launcher in its place (see claude_launcher.py) so that
the CLI gets its own process group — a timeout or a signal then stops the CLI with every tool
process it started — and, when prompter runs as root on someone else's work tree, runs as that
someone.
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
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from .. import identity
from ..config import Settings, Workflow
from ..processes import TOKEN_VAR, Enclosure, stop_session, tracked_group
from . import AgentRequest, AgentResult, AgentUnavailable
from .claude_messages import Transcript, one_line
from .claude_outcome import Outcome

if TYPE_CHECKING:
    from claude_agent_sdk import ClaudeAgentOptions, Message, Transport

CLI_ENV = "PROMPTER_CLAUDE_CLI"
CLOSE_S = 5.0  # for the SDK to wind down once the CLI is gone
# After its result, for the CLI to end its output (it saves the session and exits).
AFTER_RESULT_S = 10.0
# One stream-json line may carry a whole tool result (an image, a big file read); the SDK's
# default limit of 1 MiB failed such attempts. The line is buffered, so it stays bounded.
STREAM_LINE_BYTES = 32 * 1024 * 1024
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

        outcome = Outcome(
            transcript or Transcript(request.log, request.note),
            resume=resume,
            pushback=request.pushback,
        )
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
    """An executable that runs claude_launcher.py with this interpreter (the SDK takes one path)."""
    script = Path(__file__).with_name("claude_launcher.py")
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
            outcome.fail(f"Claude Code sent output prompter cannot read: {one_line(str(exc))}")
        except CLIConnectionError as exc:
            outcome.fail(f"could not start Claude Code: {one_line(str(exc))}")
        except ClaudeSDKError as exc:
            outcome.fail(f"Claude Code failed: {one_line(str(exc))}")
        except Exception as exc:  # noqa: BLE001 - the SDK raises plain Exception for an error
            # answer to a control request (an option this CLI does not know) and for a CLI that
            # never answers `initialize`: the attempt fails, prompter does not.
            outcome.fail(f"Claude Code failed: {one_line(str(exc))}")
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
