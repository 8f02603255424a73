"""`prompter init`: Claude studies the repository and proposes a workflow; our validator decides.

The proposal is checked with the same loader `prompter run` uses. Errors go back to Claude (in
the same session) a bounded number of times; only a valid file is ever written, and an existing
file only with --force. A new workflow gets `verify_first = true` in `[settings]` (unless the
proposal sets it): its tasks are written with checks that fail until the work is done.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, TextIO

import anyio

from . import exits
from .agents import AgentRequest, AgentUnavailable
from .config import Settings, Task, Workflow, format_diagnostics, load_workflow
from .diagnostics import WorkflowError
from .regular import make_dir
from .words import count

ROUNDS = 3  # proposals per `init`: the first, and up to two corrections
READ_ONLY = ["Write", "Edit", "MultiEdit", "NotebookEdit", "Bash"]  # it studies, never changes
_TOML_BLOCK = re.compile(r"^```toml[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_SETTINGS_HEADER = re.compile(r"^\[settings\][ \t]*(?:#[^\n]*)?$", re.M)


class InitError(exits.PrompterError):
    """One line saying why nothing was written; `usage` marks a mistake in the command line
    (exit 2), else `init` exits 1 (not written), or with `exit_code` when a signal ended it."""

    def __init__(self, message: str, usage: bool = False, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.usage = usage
        if exit_code is None:
            exit_code = exits.USAGE if usage else exits.FAILED
        self.exit_code = exit_code


def reference() -> str:
    """The workflow keys, from the models themselves (one schema, one source)."""
    lines = []
    for title, model in (("[settings]", Settings), ("[[tasks]]", Task)):
        lines.append(f"{title}:")
        for key, field in model.model_fields.items():
            lines.append(f"  {key}: {field.description}")
    return "\n".join(lines)


def first_prompt() -> str:
    return f"""Study this repository (read its files; change nothing) and propose a workflow \
file for prompter, a tool that runs coding agents over a graph of tasks. Each task is a prompt \
for a coding agent plus a shell `verify_command` whose exit code decides whether the task is \
done; prompter retries a task with the verify output fed back.

Propose tasks that would move this repository forward (fix, test, document, refactor what the \
code shows needs it), each small enough for one agent session, each with a verify command that \
really checks it (tests, linters, grep for the expected change) and runs offline in this \
repository. Each verify command must fail until its task is done: the workflow sets \
`verify_first = true`, so prompter runs it before the agent, and a task whose check already \
passes is not given to one. Give tasks that do not depend on each other `depends_on = []` so \
they run in parallel; add dependencies only where a task needs another's result. Keep \
agent = "claude".

The keys a workflow file may use:
{reference()}

Answer with a short explanation, then the complete file in one ```toml fenced block."""


def correction_prompt(errors: str) -> str:
    return (
        "prompter's validator rejected that file:\n"
        f"{errors}\n"
        "Fix every error and answer with the complete corrected file in one ```toml block."
    )


def extract(text: str) -> str | None:
    """The last ```toml block of an answer."""
    blocks = _TOML_BLOCK.findall(text)
    return blocks[-1].strip() + "\n" if blocks else None


def check(text: str, target: Path) -> Workflow:
    """Validate `text` as if it were `target` (relative paths resolve the same way)."""
    fd, name = tempfile.mkstemp(prefix=".prompter-init-", suffix=".toml", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return load_workflow(name)
    except WorkflowError as exc:  # say where the errors are in the file-to-be, not the temp file
        raise WorkflowError([replace(d, path=target.name) for d in exc.diagnostics]) from None
    finally:
        os.unlink(name)


def with_verify_first(text: str, target: Path, workflow: Workflow) -> tuple[str, Workflow]:
    """The proposal with `verify_first = true` added to its `[settings]`, unless it sets the
    key there itself; as it was when the addition would not load as that (a `[settings]` line
    inside a multi-line string, dotted `settings.` keys)."""
    if "verify_first" in workflow.settings.model_fields_set:
        return text, workflow
    header = _SETTINGS_HEADER.search(text)
    if header is None:
        added = "[settings]\nverify_first = true\n\n" + text
    else:
        added = text[: header.end()] + "\nverify_first = true" + text[header.end() :]
    try:
        changed = check(added, target)
    except WorkflowError:
        return text, workflow
    if not changed.settings.verify_first or len(changed.tasks) != len(workflow.tasks):
        return text, workflow
    return added, changed


@dataclass
class Proposal:
    text: str
    workflow: Workflow
    cost_usd: float


async def propose(target: Path, settings: Settings, log_path: Path, out: TextIO) -> Proposal:
    from .agents.claude import ClaudeAgent

    workdir = Path.cwd()
    agent = ClaudeAgent(settings, workdir, workdir)
    if agent.credentials({}, workdir) is None:  # say what to set, before anything is asked
        from .agents.credentials import MISSING

        raise InitError(MISSING.format(who=""), usage=True)
    task = Task.model_validate(
        {
            "name": "init",
            "prompt": first_prompt(),
            "verify_command": "true",
            "disallowed_tools": READ_ONLY,
        },
        context={"settings": settings},
    )
    prompt, session, spent = task.prompt, None, 0.0
    with _open_transcript(log_path) as log:
        for round_ in range(1, ROUNDS + 1):
            out.write(f"asking Claude for a workflow (round {round_} of at most {ROUNDS}) …\n")
            out.flush()
            request = AgentRequest(task, prompt, round_, workdir, log, resume_session=session)
            result = await agent.run(request)
            spent += result.usage.cost_usd or 0.0
            if not result.ok:
                raise InitError(f"Claude could not propose a workflow: {result.error}")
            session = result.usage.session_id
            text = extract(result.usage.result_text or "")
            if text is None:
                errors = "the answer has no ```toml block"
            else:
                try:
                    return Proposal(*with_verify_first(text, target, check(text, target)), spent)
                except WorkflowError as exc:
                    errors = format_diagnostics(exc.diagnostics)
            out.write(f"the proposal is not valid yet:\n{_indent(errors)}\n")
            prompt = correction_prompt(errors)
    raise InitError(f"no valid workflow after {ROUNDS} proposals (see {log_path})")


async def _propose_until_terminated(
    target: Path, settings: Settings, log_path: Path, out: TextIO
) -> Proposal:
    """`propose`, cancelled by SIGTERM (a CI job's timeout, `kill`): the cancellation stops the
    Claude Code CLI's process group (it has its own, which the signal does not reach), where the
    default action would end prompter alone and leave Claude working and spending."""
    terminated = False
    proposal: Proposal | None = None
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:

            async def watch() -> None:
                nonlocal terminated
                async for _ in signals:
                    terminated = True
                    tg.cancel_scope.cancel()

            tg.start_soon(watch)
            try:
                proposal = await propose(target, settings, log_path, out)
            except Exception as exc:  # noqa: BLE001 -- re-raised below, outside the group
                failure = exc
            tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if terminated or proposal is None:
        raise InitError("interrupted by SIGTERM: nothing written", exit_code=exits.SIGTERM)
    return proposal


def _open_transcript(log_path: Path) -> BinaryIO:
    """The transcript's file, opened before Claude is asked: a report directory that is a file
    (say) is a mistake on the command line, not something to find after paying for a proposal."""
    logs = log_path.parent
    try:
        make_dir(logs)
        return log_path.open("ab")
    except NotADirectoryError as exc:
        message = f"{exc.filename}: not a directory (the transcript goes to {log_path})"
        raise InitError(message, usage=True) from None
    except OSError as exc:
        message = f"{log_path}: cannot write the transcript: {exc.strerror or exc}"
        raise InitError(message, usage=True) from None


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def write(target: Path, text: str, force: bool) -> None:
    """Exclusive create, or (with force) an atomic replace: never a half-written file."""
    if not force:
        with target.open("x", encoding="utf-8") as f:
            f.write(text)
        return
    try:  # the replacement keeps the file's permissions (mkstemp's are 0600)
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, name = tempfile.mkstemp(prefix=".prompter-init-", suffix=".toml", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)
            f.write(text)
        os.replace(name, target)
    except BaseException:  # a full disk, a Ctrl-C: no temporary file left behind
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def run_init(
    target: Path,
    *,
    yes: bool,
    force: bool,
    model: str | None,
    report_dir: Path,
    out: TextIO | None = None,
    ask: Callable[[str], str] | None = None,
) -> Proposal:
    """Propose, validate, show, and write when allowed. Raises InitError when nothing is written."""
    out = out or sys.stdout
    if target.is_dir():  # also with --force: a file cannot replace it
        raise InitError(f"{target} is a directory: name the workflow file to write", usage=True)
    if target.exists() and not force:
        raise InitError(f"{target} exists; use --force to replace it", usage=True)
    if not target.parent.is_dir():
        raise InitError(f"{target.parent} is not a directory", usage=True)
    settings = Settings(model=model)
    try:
        proposal = anyio.run(
            _propose_until_terminated, target, settings, report_dir / "logs" / "init.log", out
        )
    except AgentUnavailable as exc:
        raise InitError(str(exc), usage=True) from None
    from .planning import make_plan

    plan = make_plan(proposal.workflow)
    out.write(f"\n{target} (proposed, valid):\n\n{proposal.text}\n")
    out.write(
        f"{count(len(plan.names), 'task')}, {plan.mode} mode"
        + (f", {count(len(plan.waves), 'wave')}" if plan.mode == "graph" else "")
        + f"; Claude's cost ${proposal.cost_usd:.2f}\n"
    )
    if not yes:
        if ask is None:
            if not sys.stdin.isatty():
                raise InitError(f"not written: confirm with --yes to write {target} unattended")
            ask = input
        try:
            answer = ask(f"write {target}? [y/N] ")
        except EOFError:  # Ctrl-D at the question: no
            out.write("\n")
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            raise InitError(f"not written: {target} was not confirmed")
    try:
        write(target, proposal.text, force)
    except FileExistsError:
        raise InitError(f"{target} appeared meanwhile; use --force to replace it") from None
    except OSError as exc:
        raise InitError(f"cannot write {target}: {exc.strerror or exc}") from None
    out.write(f"wrote {target}; next: prompter run {target}\n")
    return proposal
