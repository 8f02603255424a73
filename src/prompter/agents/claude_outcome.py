"""What one query of Claude Code amounted to (`Outcome`, gathered from its messages), and what
that makes of the attempt: passed, or which error (a rate limit to wait out, credentials or a
spend limit that no retry will fix, a timeout, the CLI's own error). While the query runs, the
API's pushback (the CLI's retries of a 429/529, rate-limit warnings) goes to the request's
`pushback` as it comes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import Task
from ..records import RESULT_TEXT_CHARS, AgentUsage
from . import AgentResult, Pushback
from .claude_messages import (
    SPEND_LIMIT_CODE,
    ApiRetry,
    ResultView,
    Transcript,
    describe_result,
    one_line,
    reports_limit,
    resets_at,
    spend_limit,
    warns_of_limit,
)

if TYPE_CHECKING:
    from claude_agent_sdk import Message

AUTH_HINT = "set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN"
RATE_LIMIT_STATUSES = frozenset({429, 529})
AUTH_STATUSES = frozenset({401, 403})
SPEND_LIMIT = (
    f"the organization's API spend limit is reached ({SPEND_LIMIT_CODE}); raise it in the "
    "Claude Console — no retry until then"
)
# A limit that lifts later than this is a usage window, not congestion: a session that ends on
# it stops the run (attempts.py); one that goes on (another model took over) must not hold
# every new session for hours, so the pushback names no time then.
NAMED_WAIT_S = 300.0


@dataclass(frozen=True)
class Verdict:
    """What an attempt's messages make of it: its error (None: it passed), and whether that
    error is a rate limit (wait, then retry) or fatal (no retry can help)."""

    error: str | None
    fatal: bool = False
    rate_limited: bool = False


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
    pushback: Callable[[Pushback], None] | None = None  # see AgentRequest.pushback

    def see(self, message: Message) -> None:
        from claude_agent_sdk import (
            AssistantMessage,
            RateLimitEvent,
            ResultMessage,
            SystemMessage,
        )

        if isinstance(message, ResultMessage):
            self.answered = True
            view = ResultView.of(message)
            if isinstance(view, str):
                self.transcript.line(f"result: {view}")
                self.fail(f"Claude Code sent output prompter cannot read: {view}")
                return
            self.transcript.line(describe_result(view))
            self.final = view
            self.session_id = view.session_id or self.session_id
            return
        self.transcript.show(message)
        if isinstance(message, AssistantMessage) and message.error is None:
            self.api_retry = None  # the API answered after all
        if reports_limit(message):
            self.limit_hit = True
            self.limit_resets_at = resets_at(message) or self.limit_resets_at
            if isinstance(message, RateLimitEvent):
                self._push(Pushback(retry_after_s=_named_wait(resets_at(message))))
        elif warns_of_limit(message):
            self._push(Pushback(warning=True))
        elif (retry := ApiRetry.of(message)) is not None:
            self.api_retry = retry
            self.transcript.retrying(retry)
            if retry.status in RATE_LIMIT_STATUSES:  # the CLI retries it; the run backs off
                self._push(Pushback(status=retry.status))
        elif isinstance(message, SystemMessage) and message.subtype == "init":
            self.started_session = True
            session = message.data.get("session_id")
            if isinstance(session, str):
                self.session_id = session

    def _push(self, signal: Pushback) -> None:
        if self.pushback is not None:
            self.pushback(signal)

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
        verdict = self._verdict(task)
        exit_code = self.exit_code
        if exit_code is None and final is not None:
            exit_code = 1 if final.is_error else 0
        return AgentResult(
            ok=verdict.error is None,
            exit_code=exit_code,
            duration_s=self.duration_s,
            error=verdict.error,
            timed_out=self.timed_out,
            rate_limited=verdict.rate_limited,
            fatal=verdict.fatal,
            retry_after_s=self._retry_after() if verdict.rate_limited else None,
            api_status=final.api_error_status if verdict.rate_limited and final else None,
            usage=self.usage(),
            output=self.transcript.text(),
        )

    def _verdict(self, task: Task) -> Verdict:
        """The attempt's error, if any, and what kind it is."""
        final = self.final
        if self.timed_out:
            error = f"agent timed out after {task.timeout:g} s"
            if self.api_retry is not None:  # the API, not the work, took the time
                retry = self.api_retry
                error += (
                    " while Claude Code was retrying a failed Claude API request "
                    f"(retry {retry.progress()}; last: {retry.what()})"
                )
            return Verdict(error, fatal=self.fatal)
        if self.error is not None:
            return Verdict(self.error, fatal=self.fatal)
        if final is None:
            return Verdict("Claude Code ended without a result", fatal=self.fatal)
        if final.is_error:
            return self._error_result(final, task)
        return Verdict(None, fatal=self.fatal)

    def _error_result(self, final: ResultView, task: Task) -> Verdict:
        """An error result: which error the CLI's subtype and HTTP status make it."""
        status = final.api_error_status
        text = one_line(final.result or "; ".join(final.errors or ()) or final.subtype)
        if final.subtype == "error_max_turns":
            return Verdict(f"Claude Code stopped: max_turns ({task.max_turns}) reached")
        if final.subtype == "error_max_budget_usd":
            return Verdict("Claude Code stopped: the run's remaining cost budget was spent")
        if (said := spend_limit(final)) is not None:  # a 429, but no rate limit: see its body
            return Verdict(SPEND_LIMIT + (f" (the API said: {said})" if said else ""), fatal=True)
        if status in RATE_LIMIT_STATUSES or (self.limit_hit and status is None):
            # Without a status, an error after a rejected rate_limit_event is the limit's.
            code = f"HTTP {status}" if status else "usage limit"
            error = f"Claude API rate limit or overload ({code}): {text}"
            return Verdict(error, rate_limited=True)
        if status in AUTH_STATUSES:
            error = f"Claude Code could not authenticate (HTTP {status}: {text}); {AUTH_HINT}"
            return Verdict(error, fatal=True)
        if status is None and self.api_retry is not None and self.api_retry.status is None:
            # Its own retries (minutes of backing off) all went unanswered: the network or
            # the API is down, and every other attempt would wait them out again.
            error = (
                f"Claude Code could not reach the Claude API ({self.api_retry.progress()} "
                f"retries got no response): {text}"
            )
            return Verdict(error, fatal=True)
        http = f" (HTTP {status})" if status else ""
        return Verdict(f"Claude Code error{http}: {text}")

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


def _named_wait(when: float | None) -> float | None:
    """Seconds from now until `when` (Unix time), if that is a wait worth naming to the run's
    agent limit (see NAMED_WAIT_S); None otherwise."""
    if when is None:
        return None
    wait = when - time.time()
    return wait if 0 < wait <= NAMED_WAIT_S else None
