"""Any CLI agent (codex exec, aider --message, gemini -p, a script) through an argv template."""

from __future__ import annotations

import os

from ..config import Settings
from ..processes import run_process
from . import AgentRequest, AgentResult


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
            argv, cwd=request.workdir, env=env, timeout=task.timeout, log=request.log
        )
        error = None
        if result.spawn_error:
            error = f"agent could not start: {result.spawn_error}"
        elif result.timed_out:
            error = f"agent timed out after {task.timeout:g} s"
        elif result.returncode != 0:
            error = f"agent exited {result.returncode}"
        return AgentResult(
            ok=error is None,
            exit_code=result.returncode,
            duration_s=result.duration_s,
            error=error,
            timed_out=result.timed_out,
            output=result.output,
        )
