"""The CLI's messages made readable and checked: the task log's transcript, the result message
and the API retries it announces, what its messages say of a rate limit, and the API's error
body it quotes (a spend limit, which is no rate limit).

The SDK passes the CLI's stream-json fields on as the CLI sent them; a field of the wrong type
must fail the attempt, not prompter. What came from the CLI is untrusted text: `one_line` and
`Transcript.line` make it readable (`processes.readable`) before anyone sees it.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from ..processes import readable
from ..text import single_line
from ..words import plural

if TYPE_CHECKING:
    from claude_agent_sdk import Message

TAIL_CHARS = 56 * 1024
TOOL_INPUT_CHARS = 200
LIMIT_HORIZON_S = 366 * 24 * 3600.0  # a reset time further out is taken as no reset time
# The API's monthly spend limit (an organization's, or its tier's): a 429 that no retry passes
# before the next month, told apart from a rate limit by the error body's `details`.
SPEND_LIMIT_CODE = "enforced_spend_limit_reached"
# How Claude Code quotes a failed API call: `API Error: 429 {json}` as the result text, the
# SDK's `Error: 429 {json}` in an error list; the JSON is the API's error body.
_API_ERROR = re.compile(r"\s*(?:API )?Error: (\d{3}) (?=\{)")


def one_line(text: str, limit: int = 300) -> str:
    """An excerpt for a reason or the console: `readable`, then one line of `limit` chars."""
    return single_line(readable(text.encode("utf-8", "replace")), limit, rstrip=False)


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
            self.last_stderr = one_line(text)
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
                    self.line(f"← tool error: {one_line(str(block.content))}")
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
            error=one_line(error, 100) if isinstance(error, str) and error.strip() else None,
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
            return one_line(value, TOOL_INPUT_CHARS)
    return one_line(str(data), TOOL_INPUT_CHARS)


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


def describe_result(result: ResultView) -> str:
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


def resets_at(message: Message) -> float | None:
    """When a rejected rate_limit_event says the limit lifts (Unix time), if it is a number."""
    from claude_agent_sdk import RateLimitEvent

    if not isinstance(message, RateLimitEvent):
        return None
    when = _number(message.rate_limit_info.resets_at)
    if when is None or when > time.time() + LIMIT_HORIZON_S:  # milliseconds, or nonsense
        return None
    return when


def warns_of_limit(message: Message) -> bool:
    """A rate_limit_event that says a limit is close (`allowed_warning`)."""
    from claude_agent_sdk import RateLimitEvent

    return isinstance(message, RateLimitEvent) and (
        message.rate_limit_info.status == "allowed_warning"
    )


def reports_limit(message: Message) -> bool:
    """A rejected rate_limit_event, or an assistant turn the CLI marks as `rate_limit`."""
    from claude_agent_sdk import AssistantMessage, RateLimitEvent

    if isinstance(message, RateLimitEvent):
        return message.rate_limit_info.status == "rejected"
    return isinstance(message, AssistantMessage) and message.error == "rate_limit"


def api_error_body(text: str) -> tuple[int, dict[str, Any]] | None:
    """The HTTP status and the error body of an API error as Claude Code quotes it
    (`API Error: 429 {"type":"error","error":{...}}`, the JSON object parsed), or None for any
    other text."""
    match = _API_ERROR.match(text)
    if match is None:
        return None
    try:
        body, _ = json.JSONDecoder().raw_decode(text, match.end())
    except ValueError:
        return None
    return (int(match.group(1)), body) if isinstance(body, dict) else None


def spend_limit(result: ResultView) -> str | None:
    """The API's message when the result is a 429 for the organization's spend limit
    (`error.details.error_code` = `enforced_spend_limit_reached`), "" when it gives none;
    None for any other result."""
    for text in (result.result or "", *result.errors):
        quoted = api_error_body(text)
        if quoted is None or quoted[0] != 429:
            continue
        error = quoted[1].get("error")
        if not isinstance(error, dict):
            continue
        details = error.get("details")
        if isinstance(details, dict) and details.get("error_code") == SPEND_LIMIT_CODE:
            message = error.get("message")
            return one_line(message) if isinstance(message, str) else ""
    return None
