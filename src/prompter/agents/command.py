"""Any CLI agent (codex exec, aider --message, gemini -p, a script) through an argv template.

Such an agent says that the API refused it (a rate limit, an overloaded API) by exiting
`EX_TEMPFAIL`, or by output that the task's `rate_limit_pattern` finds: the attempt is then
rate-limited, as a Claude session refused with a 429 is (not an attempt; the run backs off).
"""

from __future__ import annotations

import functools
import math
import os
import re
import stat
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import PLACEHOLDERS, Settings, Task, Workflow
from ..diagnostics import Diagnostic
from ..processes import run_process
from ..toml_positions import SourceMap
from . import AgentRequest, AgentResult, AgentUnavailable

EX_TEMPFAIL = 75  # sysexits.h: "temporary failure, try again later" — here: rate-limited


def expand(template: list[str], *, prompt: str, task: str, attempt: int) -> list[str]:
    """Fill `{prompt}`, `{task}`, `{attempt}` in each argument; anything else stays as written."""
    values = {"{prompt}": prompt, "{task}": task, "{attempt}": str(attempt)}
    out = []
    for arg in template:
        filled = arg
        for placeholder, value in values.items():
            filled = filled.replace(placeholder, value)
        out.append(filled)
    return out


class CommandAgent:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The environment as the run found it, built once: copying os.environ decodes every
        # variable, which is a noticeable share of starting a short agent.
        self._base_env = {**os.environ, **settings.agent_env}

    def check_programs(self, workflow: Workflow, tasks: Collection[int] | None = None) -> None:
        """Raise AgentUnavailable, before anything runs, when the program of a `command` task
        (of `tasks`, default all) cannot start here: else every attempt of it fails the same
        way, through its retries and their backoff, and the run ends as a failed task."""
        tasks = None if tasks is None else frozenset(tasks)  # `in` below: not a tuple's scan
        checked: dict[tuple[str, str | None], str | None] = {}  # tasks mostly share one
        for i, task in enumerate(workflow.tasks):
            if (tasks is not None and i not in tasks) or task.agent != "command":
                continue
            program = (task.agent_command or [""])[0]
            if any(p in program for p in PLACEHOLDERS):
                continue  # known only when an attempt fills it in
            path = task.agent_env.get("PATH", self._base_env.get("PATH"))  # as the agent gets it
            key = (program, path)
            if key not in checked:
                search = os.get_exec_path({} if path is None else {"PATH": path})
                checked[key] = why_not_runnable(program, workflow.workdir, search)
            why = checked[key]
            if why is not None:
                if "PATH" in self.settings.agent_env or "PATH" in task.agent_env:
                    why += " (PATH as agent_env sets it)"
                raise AgentUnavailable(_located(workflow, i, task, f"`{program}` {why}"))

    async def run(self, request: AgentRequest) -> AgentResult:
        task = request.task
        assert task.agent_command is not None  # the loader requires it for agent = "command"
        argv = expand(
            task.agent_command, prompt=request.prompt, task=task.name, attempt=request.attempt
        )
        env = {
            **self._base_env,
            **task.agent_env,
            "PROMPTER_PROMPT": request.prompt,
            "PROMPTER_TASK": task.name,
            "PROMPTER_ATTEMPT": str(request.attempt),
            "PROMPTER_SYSTEM_PROMPT": task.system_prompt or "",
            "PROMPTER_WORKDIR": str(request.workdir),
        }
        result = await run_process(
            argv, cwd=request.workdir, env=env, timeout=request.timeout, log=request.log
        )
        error = None
        refused: _Refusal | None = None
        if result.spawn_error:
            error = f"agent could not start: {result.spawn_error}"
        elif result.timed_out:
            error = f"agent timed out after {task.timeout:g} s"
        elif result.returncode != 0:
            error = f"agent exited {result.returncode}"
            refused = _refusal(result.returncode, result.output, task.rate_limit_pattern)
            if refused is not None:
                error += f" ({refused.said})"
        return AgentResult(
            ok=error is None,
            exit_code=result.returncode,
            duration_s=result.duration_s,
            error=error,
            timed_out=result.timed_out,
            rate_limited=refused is not None,
            retry_after_s=None if refused is None else refused.retry_after_s,
            output=result.output,
        )


@dataclass(frozen=True)
class _Refusal:
    """How a failed command agent said the API refused it, and the wait it named, if any."""

    said: str
    retry_after_s: float | None = None


def _refusal(code: int | None, output: str, pattern: str | None) -> _Refusal | None:
    """The refusal a failed agent reported: exit `EX_TEMPFAIL`, or output `pattern` finds (its
    group `seconds`, when it has one and that is a number, is the wait the API named)."""
    found = None if pattern is None else _compiled(pattern).search(output)
    if found is not None:
        seconds = found.groupdict().get("seconds")
        return _Refusal("rate-limited: its output matches rate_limit_pattern", _seconds(seconds))
    if code == EX_TEMPFAIL:
        return _Refusal("EX_TEMPFAIL: rate-limited")
    return None


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    """The pattern, compiled once (the loader has checked that it compiles)."""
    return re.compile(pattern)


def _seconds(text: str | None) -> float | None:
    try:
        seconds = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def why_not_runnable(program: str, cwd: Path, search: Sequence[str]) -> str | None:
    """Why exec cannot start `program` in a child working in `cwd`, or None when it can. As
    execvp there: a path (with a slash) is taken from `cwd`, a name is looked for in `search`."""
    if not program:
        return "is empty"
    if os.sep in program:
        path = cwd / program
        try:
            mode = path.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            return f"does not exist ({path})"
        except OSError as exc:
            return f"cannot be used ({path}): {exc.strerror or exc}"
        if stat.S_ISDIR(mode):
            return f"is a directory ({path})"
        if not os.access(path, os.X_OK):
            return f"is not executable ({path}): chmod +x it, or run it through its interpreter"
        return None
    unusable = None  # the first match execvp would pass over: a directory, or not executable
    for folder in search:
        path = cwd / folder / program  # a relative PATH entry is relative to the child's cwd
        try:
            mode = path.stat().st_mode
        except OSError:  # missing, or in a folder we may not search: execvp goes on as well
            continue
        if stat.S_ISREG(mode) and os.access(path, os.X_OK):
            return None
        unusable = unusable or path
    if unusable is not None:
        return f"is not an executable program on PATH ({unusable} is not executable)"
    return "is not on PATH"


def _located(workflow: Workflow, i: int, task: Task, problem: str) -> str:
    """The problem as a diagnostic at the `agent_command` the task uses (its own, or the one it
    inherits from `[settings]`)."""
    own = "agent_command" in task.model_fields_set
    loc = ("tasks", i, "agent_command") if own else ("settings", "agent_command")
    line, col = SourceMap(workflow.text).locate(loc)
    message = f"task `{task.name}` cannot start its agent: agent_command[0] {problem}"
    return Diagnostic(str(workflow.path), line, message, col=col).format()
