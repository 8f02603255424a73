"""`prompter-action`: the entrypoint of the container action, of the host action
(host/action.yml, on the runner itself) and of a `docker run` reproduction of either.

Reads the inputs (inputs.py), runs the workflow, and publishes through the runner's contract: a
group per finished task, annotations, outputs, the step summary, the report folder as an
artifact. Files the run creates in the workspace are handed to the workspace's owner
(ownership.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import exits
from ..exits import PrompterError
from ..words import count
from .commands import (
    Annotation,
    Annotations,
    Console,
    append_summary,
    status_line,
    write_outputs,
)
from .inputs import TRUE, InputError, Inputs
from .ownership import FILE_COMMANDS, file_commands_locked, give_back, hand_over, lend

if TYPE_CHECKING:
    from ..changes import Changes
    from ..config import Workflow
    from ..events import Event
    from ..launch import RunOptions
    from ..records import TaskRecord
    from ..run import RunResult

Relative = Callable[[Path], str]

LOG_TAIL_BYTES = 64 * 1024  # of a task's log shown in its group; the artifact has all of it
ANNOTATION_TAIL_CHARS = 1500
# Ranks of the step's annotations: what the run came to first, then the tasks, then what the
# workflow file could do better; the runner keeps only ten of each type per step.
RUN, TASKS, LINT = 0, 1, 2
MORE_HINT = "listed in the job log; see also the job summary and the report artifact"


# Set by the host action (host/action.yml): the report folder is not uploaded here but by its
# next step, actions/upload-artifact, to which the step output `upload_dir` names the folder.
DEFER_UPLOAD = "PROMPTER_DEFER_UPLOAD"

# The runner's own credentials: the action needs them to upload the report artifact, but an
# agent (hostile by assumption) or a verify command has no use for them; they could overwrite
# the job's artifacts or caches, or mint OIDC tokens.
RUNNER_CREDENTIALS = (
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_RUNTIME_URL",
    "ACTIONS_RESULTS_URL",
    "ACTIONS_CACHE_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
)


def main() -> None:
    from ..identity import no_new_privileges
    from ..redaction import hold, secret_values

    env = dict(os.environ)
    console = Console()
    # Masked before anything runs or prints, for the process's lifetime, whatever happens to
    # the environment next: a leak path nobody thought of still prints ***.
    held = secret_values(env)
    hold(held)
    for secret in held:
        console.mask(secret)
    for name in (*RUNNER_CREDENTIALS, *FILE_COMMANDS):  # kept in `env`, gone for every child
        os.environ.pop(name, None)
    # No child gains privileges through a setuid program or file capabilities (no sudo).
    no_new_privileges()
    try:
        code = run_action(env, console)
    except Exception as exc:  # noqa: BLE001 (a bug: say so once; its text issues no command)
        console.untrusted(traceback.format_exc())
        message = f"{type(exc).__name__}: {status_line(str(exc))}"
        console.annotation("error", message, title="prompter: internal error")
        code = exits.FAILED
    sys.exit(code)


def run_action(env: Mapping[str, str], console: Console) -> int:
    outputs: dict[str, str] = {
        "status": "invalid",
        "artifact_id": "",
        "changed_files": "",
        "patch_path": "",
    }
    try:
        try:
            inputs = Inputs.from_env(env)
        except InputError as exc:
            console.annotation("error", str(exc), title="prompter: bad input")
            return exits.USAGE
        for secret in (
            inputs.anthropic_api_key,
            inputs.claude_code_oauth_token,
            inputs.github_token,
        ):
            if secret:
                console.mask(secret)
        _export_credentials(inputs)
        workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()
        _trust(workspace, console)
        # The step's annotations go out at the end, ranked, within the runner's budget for it.
        step = Step(inputs, env, workspace, console, outputs, Annotations(console, MORE_HINT))
        as_root = inputs.agent_user == "root"
        with file_commands_locked(env, workspace, console, as_root):
            lent = not as_root and lend(workspace, console)
            try:
                return _run(step)
            finally:
                step.notes.flush()
                give_back(workspace, console, lent)
    finally:
        _write_outputs(env, outputs, console)


@dataclass(frozen=True)
class Step:
    """What the stages of one step share; `outputs` and `notes` fill as they go."""

    inputs: Inputs
    env: Mapping[str, str]
    workspace: Path
    console: Console
    outputs: dict[str, str]
    notes: Annotations

    def relative(self, path: Path) -> str:
        """`path` as the runner names it: relative to the workspace when it is inside."""
        full = path.resolve()
        try:
            return full.relative_to(self.workspace).as_posix()
        except ValueError:
            return str(full)  # outside the workspace: the runner cannot translate it anyway


def _write_outputs(env: Mapping[str, str], outputs: dict[str, str], console: Console) -> None:
    if env.get("GITHUB_OUTPUT"):
        try:
            write_outputs(Path(env["GITHUB_OUTPUT"]), outputs)
        except OSError as exc:
            console.annotation(
                "error",
                f"step outputs not written: {exc.strerror or exc}: {env['GITHUB_OUTPUT']} "
                f"(status {outputs['status']})",
                title="prompter",
            )


def _export_credentials(inputs: Inputs) -> None:
    """Inputs become the variables Claude Code reads (and prompter masks in what it writes)."""
    for name, value in (
        ("ANTHROPIC_API_KEY", inputs.anthropic_api_key),
        ("CLAUDE_CODE_OAUTH_TOKEN", inputs.claude_code_oauth_token),
        ("GITHUB_TOKEN", inputs.github_token),
    ):
        if value:
            os.environ[name] = value


def _trust(workspace: Path, console: Console) -> None:
    """The workspace belongs to the runner's user, not root: tell git it is fine (once: a
    `docker run` on a laptop reuses the same global config)."""
    try:
        listed = subprocess.run(
            ["git", "config", "--global", "--get-all", "safe.directory"],
            check=False,  # exit 1: none listed yet
            capture_output=True,
            text=True,
            timeout=30,
        )
        if str(workspace) in listed.stdout.splitlines():
            return
        subprocess.run(
            ["git", "config", "--global", "--add", "safe.directory", str(workspace)],
            check=True,
            capture_output=True,
            timeout=30,
        )
    except FileNotFoundError:
        pass  # no git, nothing to trust
    except (subprocess.SubprocessError, OSError) as exc:
        console.annotation("warning", f"git config safe.directory failed: {exc}")


def _run(step: Step) -> int:
    """Run the workflow and publish its results; fills `outputs` and `notes` as it goes."""
    from ..heap import return_big_blocks
    from ..run import run_workflow

    return_big_blocks()  # as `prompter run` does
    workflow = _read_workflow(step)
    if workflow is None:
        return exits.USAGE
    options = _run_options(step.inputs, workflow)
    progress = ActionProgress(step.console, options.report_dir / "logs")

    def run(options: RunOptions) -> RunResult:
        if os.geteuid() == 0 and options.report_dir.exists():
            # State and logs of an earlier run (or imported), given back to the workspace's
            # owner then, are prompter's alone while agents run: agent code must not rewrite
            # the record.
            hand_over(options.report_dir, None, 0, 0)
        return run_workflow(
            workflow,
            options,
            listeners=[progress],
            background=[progress.heartbeat],
            out=step.console.text,
        )

    try:
        result = _execute(step, workflow, options, run)
    except PrompterError as exc:  # RunError, StateError: the run could not start
        step.notes.add(Annotation("error", str(exc), title="prompter: cannot run"), RUN)
        return exc.exit_code
    if step.inputs.dry_run:
        for note in result.warnings:  # what a real run would stop at (no credentials)
            step.notes.add(Annotation("warning", note, title="prompter"), RUN)
        step.outputs["status"] = "dry-run"
        return exits.OK
    _publish(step, result, options, workflow)
    _annotate_run(step, result, workflow)
    code = _export(step, options, result.exit_code)
    _deliver_report_folder(step, options.report_dir)
    if code != result.exit_code:
        return code
    if result.exit_code == exits.FAILED and not step.inputs.fail_on_task_failure:
        step.console.info("tasks failed; fail_on_task_failure is false, so this step passes")
        return exits.OK
    return result.exit_code


def _execute(
    step: Step, workflow: Workflow, options: RunOptions, run: Callable[[RunOptions], RunResult]
) -> RunResult:
    """A run, or a job's part in a fan-out across jobs (fanout.py)."""
    fan = step.inputs.fanout
    if step.inputs.dry_run or not (fan.job or fan.merge):
        return run(options)
    from . import fanout

    if fan.merge:
        return fanout.final_job(fan.merge, workflow, options, step.env, step.console.info)
    assert fan.job is not None
    say = step.console.info
    return fanout.group_job(fan.job, fan.imports, workflow, options, step.env, run, say)


def _export(step: Step, options: RunOptions, code: int) -> int:
    """A group job of a fan-out leaves its export for the jobs after it (carry.py); without it
    they cannot build on this job's work, so a failed upload fails the step."""
    job = step.inputs.fanout.job
    if job is None or step.inputs.dry_run:
        return code
    from .carry import CarryError, export, stage_export

    if step.env.get(DEFER_UPLOAD, "").strip().lower() in TRUE:
        # The host action's steps get no artifact credentials: its next step uploads the
        # export (actions/upload-artifact) from the folder the output `export_dir` names.
        import tempfile

        temp = step.env.get("RUNNER_TEMP") or None
        folder = Path(tempfile.mkdtemp(prefix="prompter-export-", dir=temp))
        try:
            stage_export(job, options.state_path, options.report_dir, folder)
        except CarryError as exc:
            step.notes.add(Annotation("error", str(exc), title="prompter: fan-out"), RUN)
            return exits.FAILED
        step.outputs["export_dir"] = str(folder)
        step.console.info(f"the export of job {job} is uploaded by the next step")
        return code
    try:
        artifact_id = export(job, options.state_path, options.report_dir, step.env)
    except CarryError as exc:
        step.notes.add(Annotation("error", str(exc), title="prompter: fan-out"), RUN)
        return exits.FAILED
    step.console.info(f"export of job {job} uploaded: artifact id {artifact_id}")
    return code


def _read_workflow(step: Step) -> Workflow | None:
    """The workflow with the inputs' settings; None (errors annotated) when it is invalid."""
    from ..config import format_diagnostics, load_workflow, with_settings
    from ..diagnostics import WorkflowError

    inputs, notes = step.inputs, step.notes
    try:
        workflow = load_workflow(inputs.workflow)
    except WorkflowError as exc:
        step.console.info(f"{inputs.workflow}: not a valid workflow")
        step.console.untrusted(format_diagnostics(exc.diagnostics))
        for d in exc.errors:
            notes.add(
                Annotation("error", d.message, "prompter: invalid workflow", d.path, d.line), RUN
            )
        return None
    for w in workflow.warnings:
        notes.add(Annotation("warning", w.message, file=w.path, line=w.line), LINT)
    updates: dict[str, object] = {}
    if inputs.model:
        updates["model"] = inputs.model
    if inputs.max_cost_usd:
        updates["max_cost_usd"] = inputs.max_cost_usd
    return with_settings(workflow, **updates) if updates else workflow


def _run_options(inputs: Inputs, workflow: Workflow) -> RunOptions:
    from ..launch import RunOptions
    from ..places import default_report_dir

    return RunOptions(
        report_dir=Path(inputs.report_dir)
        if inputs.report_dir
        else default_report_dir(workflow.path),
        max_parallel=inputs.max_parallel,
        tasks=inputs.tasks,
        tasks_from="input `tasks`",
        fresh=inputs.fresh,
        strict_budget=inputs.strict_budget,
        dry_run=inputs.dry_run,
        agents_as_root=inputs.agent_user == "root",
    )


def _publish(step: Step, result: RunResult, options: RunOptions, workflow: Workflow) -> None:
    """The step's outputs, the reports and the step summary."""
    outputs, relative = step.outputs, step.relative
    outputs.update(_counts(result.records, result.reused))
    outputs["status"] = result.status
    outputs["state_path"] = relative(options.state_path)
    _publish_reports(options.state_path, workflow, options.report_dir, step.env, step.notes)
    outputs["junit_path"] = relative(options.report_dir / "junit.xml")
    outputs["summary_path"] = relative(options.report_dir / "summary.md")
    outputs.update(_delivered(result.changes, step.workspace, relative))
    step.console.info(result.changes.line())


def _annotate_run(step: Step, result: RunResult, workflow: Workflow) -> None:
    """The tasks that did not pass, then what the run itself says."""
    _annotate(result.records, workflow, step.relative, step.notes)
    for note in result.warnings:
        step.notes.add(Annotation("warning", note, title="prompter"), RUN)
    if result.error is not None:
        step.notes.add(Annotation("error", result.error, title="prompter: state not saved"), RUN)


def _deliver_report_folder(step: Step, report_dir: Path) -> None:
    """Upload the report folder as an artifact, or name it for the host action's next step."""
    inputs, outputs = step.inputs, step.outputs
    if inputs.upload_artifact and step.env.get(DEFER_UPLOAD, "").strip().lower() in TRUE:
        # The host action (host/action.yml) uploads with actions/upload-artifact next.
        outputs["upload_dir"] = step.relative(report_dir)
        outputs["upload_name"] = report_artifact_name(inputs)
        step.console.info(f"the report folder {outputs['upload_dir']} is uploaded by the next step")
    elif inputs.upload_artifact:
        name = report_artifact_name(inputs)
        uploaded = _upload(report_dir, name, step.env, step.console, step.notes)
        outputs["artifact_id"] = uploaded
        _link_report(step, uploaded)


def _link_report(step: Step, artifact_id: str) -> None:
    """The step summary's link to the artifact with report.html (a warning if it cannot be)."""
    from .report_link import append_link

    if not artifact_id:
        return
    try:
        append_link(step.env, artifact_id)
    except OSError as exc:
        why = f"{exc.strerror or exc}: {exc.filename}"
        step.notes.add(Annotation("warning", f"report link not written ({why})"), RUN)


def store_bookkeeping(report_dir: Path) -> tuple[Path, ...]:
    """The state store's files that mean nothing elsewhere: its lock, and its journal once
    the run has folded it into state.json (empty). They stay out of the report artifact."""
    lock, journal = report_dir / "state.json.lock", report_dir / "state.json.journal"
    try:
        empty = journal.stat().st_size == 0
    except OSError:
        empty = False
    return (lock, journal) if empty else (lock,)


def report_artifact_name(inputs: Inputs) -> str:
    """The report folder's artifact: a group job of a fan-out names it after itself (names
    are unique in a workflow run; the final job's is `artifact_name` itself)."""
    job = inputs.fanout.job
    return f"{inputs.artifact_name}-{job}" if job else inputs.artifact_name


def _counts(records: Mapping[str, TaskRecord], reused: tuple[str, ...]) -> dict[str, str]:
    from ..records import TaskStatus

    statuses = [r.status for r in records.values()]
    passed = statuses.count(TaskStatus.PASSED) + len(reused)
    failed = statuses.count(TaskStatus.FAILED) + statuses.count(TaskStatus.INTERRUPTED)
    cost = sum(r.cost_usd for r in records.values())
    return {
        "passed": str(passed),
        "failed": str(failed),
        "skipped": str(statuses.count(TaskStatus.SKIPPED)),
        "total_cost_usd": f"{cost:.4f}",
    }


def _delivered(changes: Changes, workspace: Path, relative: Relative) -> dict[str, str]:
    """`changed_files` (workspace-relative, one per line, hostile names quoted as git quotes
    them) and `patch_path` (empty when no patch was written)."""
    from ..changes import quote_path

    names = []
    if changes.repo is not None:
        root = changes.repo.resolve()
        for name in changes.files:  # the file itself is not resolved: it may be a symlink
            names.append(quote_path(os.path.relpath(os.path.join(root, name), workspace)))
    return {
        "changed_files": "\n".join(names),
        "patch_path": relative(changes.patch) if changes.patch is not None else "",
    }


class ActionProgress:
    """Plain progress lines, plus one group per finished task with its log from this run."""

    def __init__(self, console: Console, logs_dir: Path) -> None:
        from ..progress import PlainProgress
        from ..redaction import Redactor

        self.console = console
        self.logs_dir = logs_dir
        # The log file is masked as written, but a secret split by an escape sequence or a
        # control byte there is joined again by readable(): mask once more after it.
        self.redactor = Redactor.from_environ(os.environ)
        self.lines = PlainProgress(console.text)
        self.offsets: dict[str, int] = {}

    def __call__(self, event: Event) -> None:
        from ..events import TaskFinished, TaskStarted
        from ..places import log_name

        if isinstance(event, TaskStarted) and event.task not in self.offsets:
            log = self.logs_dir / log_name(event.task)
            self.offsets[event.task] = log.stat().st_size if log.exists() else 0
        self.lines(event)
        if isinstance(event, TaskFinished) and event.record.name in self.offsets:
            record = event.record
            log = self.logs_dir / log_name(record.name)
            with self.console.group(f"{record.name}: {record.status.value}"):
                tail = _log_tail(log, self.offsets[record.name])
                self.console.untrusted(self.redactor.text(tail))

    async def heartbeat(self) -> None:
        await self.lines.heartbeat()


def _log_tail(log: Path, offset: int) -> str:
    from ..processes import readable
    from ..regular import open_regular

    try:
        with open(open_regular(log, os.O_RDONLY), "rb") as f:  # a FIFO there must not block
            size = f.seek(0, os.SEEK_END)
            start = max(offset, size - LOG_TAIL_BYTES)
            f.seek(start)
            data = f.read()
    except OSError as exc:
        return f"(log not readable: {exc.strerror or exc})"
    if start == offset:
        return readable(data)
    return f"[… {start - offset} bytes omitted: the artifact has the whole log]\n" + readable(data)


def _publish_reports(
    state_path: Path,
    workflow: Workflow,
    report_dir: Path,
    env: Mapping[str, str],
    notes: Annotations,
) -> None:
    """Write junit.xml and summary.md, and append the summary to the step's summary."""
    from ..report.writer import reports_after_run

    paths, error = reports_after_run(state_path, report_dir, workflow)
    if error is not None:
        notes.add(Annotation("warning", f"reports not written: {error}"), RUN)
        return
    summary = next((p for p in paths if p.name == "summary.md"), None)
    target = env.get("GITHUB_STEP_SUMMARY")
    if summary is not None and target:
        fallback = (
            "prompter's summary did not fit in what is left of this step's 1 MiB summary; "
            "it is in the report artifact.\n"
        )
        try:
            fits = append_summary(Path(target), summary.read_text("utf-8"), fallback)
        except OSError as exc:  # a step that cannot show its summary still reports the rest
            why = f"{exc.strerror or exc}: {exc.filename or target}"
            notes.add(Annotation("warning", f"step summary not written ({why})"), RUN)
            return
        if not fits:
            notes.add(
                Annotation("warning", "the step summary was full: see the report artifact"), RUN
            )


def _annotate(
    records: Mapping[str, TaskRecord], workflow: Workflow, relative: Relative, notes: Annotations
) -> None:
    from ..records import TaskStatus

    file = relative(workflow.path)
    skipped: dict[str, list[str]] = {}
    for name, record in records.items():
        if record.status in (TaskStatus.FAILED, TaskStatus.INTERRUPTED):
            tail = record.attempts[-1].output_tail if record.attempts else ""
            tail = tail[-ANNOTATION_TAIL_CHARS:].strip()
            message = (record.reason or record.status.value) + (f"\n{tail}" if tail else "")
            notes.add(
                Annotation(
                    "error",
                    message,
                    title=f"prompter: task {name} {record.status.value}",
                    file=file,
                    line=_line_of(workflow, name),
                ),
                TASKS,
            )
        elif record.status is TaskStatus.SKIPPED:
            skipped.setdefault(record.reason or "skipped", []).append(name)
    for reason, names in skipped.items():
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        notes.add(
            Annotation(
                "warning",
                f"{count(len(names), 'task')} skipped ({reason}): {shown}",
                title="prompter: tasks skipped",
                file=file,
            ),
            TASKS,
        )


def _line_of(workflow: Workflow, name: str) -> int | None:
    index = workflow.index.get(name)
    return None if index is None else workflow.task_lines[index]


def _upload(
    report_dir: Path, name: str, env: Mapping[str, str], console: Console, notes: Annotations
) -> str:
    from .artifact import ArtifactError, replace_earlier, upload_folder

    try:
        replace_earlier(name, env)  # a re-run's report takes the name of the earlier one
        uploaded = upload_folder(report_dir, name, env, store_bookkeeping(report_dir))
    except ArtifactError as exc:
        message = f"report artifact not uploaded ({exc}); the files stay in {report_dir}"
        notes.add(Annotation("warning", message), RUN)
        return ""
    console.info(f"report artifact {name} uploaded: id {uploaded.artifact_id}, {uploaded.size} B")
    return uploaded.artifact_id
