"""`prompter-action`: the entrypoint of the container action, of the host action
(host/action.yml, on the runner itself) and of a `docker run` reproduction of either.

Reads the inputs (`INPUT_<NAME>` as the runner passes them, with underscores or hyphens, else the
plain `<NAME>` for `docker run -e`), runs the workflow, and publishes through the runner's
contract: a group per finished task, annotations, outputs, the step summary, the report folder
as an artifact. Files the run creates in the workspace are handed to the workspace's owner.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
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

if TYPE_CHECKING:
    from ..changes import Changes
    from ..config import Workflow
    from ..events import Event
    from ..records import TaskRecord

Relative = Callable[[Path], str]

LOG_TAIL_BYTES = 64 * 1024  # of a task's log shown in its group; the artifact has all of it
ANNOTATION_TAIL_CHARS = 1500
TRUE, FALSE = ("true", "yes", "1"), ("false", "no", "0")
# What actions/toolkit refuses in an artifact name (validateArtifactName), as the service does.
ARTIFACT_NAME_REFUSED = ('"', ":", "<", ">", "|", "*", "?", "\r", "\n", "\\", "/")
# Ranks of the step's annotations: what the run came to first, then the tasks, then what the
# workflow file could do better; the runner keeps only ten of each type per step.
RUN, TASKS, LINT = 0, 1, 2
MORE_HINT = "listed in the job log; see also the job summary and the report artifact"


# Set by the host action (host/action.yml): the report folder is not uploaded here but by its
# next step, actions/upload-artifact, to which the step output `upload_dir` names the folder.
DEFER_UPLOAD = "PROMPTER_DEFER_UPLOAD"

# Who agent code runs as: the workspace's owner (a root-owned workspace is lent to LENT_UID),
# or root, which leaves the runner's tokens within its reach (for images whose tools need root).
AGENT_USERS = ("owner", "root")


class InputError(PrompterError):
    """A bad input; the message names it."""


@dataclass(frozen=True)
class Inputs:
    workflow: str
    tasks: tuple[str, ...]
    max_parallel: int | None
    dry_run: bool
    fresh: bool
    report_dir: str  # empty: `places.default_report_dir(workflow)`
    fail_on_task_failure: bool
    anthropic_api_key: str
    claude_code_oauth_token: str
    model: str | None
    max_cost_usd: float | None
    upload_artifact: bool
    artifact_name: str
    github_token: str
    agent_user: str = "owner"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Inputs:
        def raw(name: str, default: str = "") -> str:
            for key in (f"INPUT_{name.upper()}", f"INPUT_{name.upper().replace('_', '-')}"):
                if key in env:
                    return env[key]
            return env.get(name.upper(), default)

        def get(name: str, default: str = "") -> str:
            return raw(name, default).strip()

        def flag(name: str, default: str) -> bool:
            value = get(name).lower() or default  # an empty input means the default
            if value not in TRUE + FALSE:
                raise InputError(f"input `{name}` must be true or false, not {value!r}")
            return value in TRUE

        parallel = get("max_parallel")
        # isdigit() alone takes "²", which int() refuses
        if parallel and not (parallel.isascii() and parallel.isdigit() and int(parallel) > 0):
            raise InputError(f"input `max_parallel` must be a positive integer, not {parallel!r}")
        cost = get("max_cost_usd")
        try:
            budget = float(cost) if cost else None
        except ValueError:
            budget = -1.0
        if budget is not None and not (budget > 0 and math.isfinite(budget)):
            raise InputError(f"input `max_cost_usd` must be a number above 0, not {cost!r}")
        # A YAML block (`tasks: |`) is one name per line, also when it holds one line: its
        # value ends with a line break, which strip() would take away.
        raw_tasks = raw("tasks")
        names = (
            raw_tasks.splitlines()
            if "\n" in raw_tasks or "\r" in raw_tasks
            else raw_tasks.replace(",", " ").split()
        )
        upload = flag("upload_artifact", "true")
        artifact_name = get("artifact_name", "prompter-report") or "prompter-report"
        if upload and any(c in artifact_name for c in ARTIFACT_NAME_REFUSED):
            raise InputError(
                'input `artifact_name` cannot contain " : < > | * ? \\ / or a line break, '
                f"not {artifact_name!r}"
            )
        agent_user = get("agent_user").lower() or "owner"
        if agent_user not in AGENT_USERS:
            raise InputError(f"input `agent_user` must be owner or root, not {agent_user!r}")
        return cls(
            agent_user=agent_user,
            workflow=get("workflow", "prompter.toml") or "prompter.toml",
            tasks=tuple(n.strip() for n in names if n.strip()),
            max_parallel=int(parallel) if parallel else None,
            dry_run=flag("dry_run", "false"),
            fresh=flag("fresh", "false"),
            report_dir=get("report_dir"),  # empty: prompter's default for the workflow
            fail_on_task_failure=flag("fail_on_task_failure", "true"),
            anthropic_api_key=get("anthropic_api_key"),
            claude_code_oauth_token=get("claude_code_oauth_token"),
            model=get("model") or None,
            max_cost_usd=budget,
            upload_artifact=upload,
            artifact_name=artifact_name,
            github_token=get("github_token"),
        )


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


# The runner's file commands: what a process writes there becomes the environment, PATH,
# outputs or summary of the job's later steps, which hold the job's secrets.
FILE_COMMANDS = (
    "GITHUB_ENV",
    "GITHUB_PATH",
    "GITHUB_OUTPUT",
    "GITHUB_STATE",
    "GITHUB_STEP_SUMMARY",
)
# Who agent code runs as when the workspace is root's (a job container running as root, or a
# rootless `docker run`): never root. The uid distroless images call "nonroot".
LENT_UID = 65532


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
        notes = Annotations(console, MORE_HINT)
        as_root = inputs.agent_user == "root"
        with _file_commands_locked(env, workspace, console, as_root):
            lent = not as_root and _lend(workspace, console)
            try:
                return _run(inputs, env, workspace, console, outputs, notes)
            finally:
                notes.flush()
                _give_back(workspace, console, lent)
    finally:
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


def _run(
    inputs: Inputs,
    env: Mapping[str, str],
    workspace: Path,
    console: Console,
    outputs: dict[str, str],
    notes: Annotations,
) -> int:
    """Run the workflow and publish its results; fills `outputs` and `notes` as it goes."""
    from ..config import format_diagnostics, load_workflow, with_settings
    from ..diagnostics import WorkflowError
    from ..heap import return_big_blocks
    from ..places import default_report_dir
    from ..run import RunOptions, run_workflow

    return_big_blocks()  # as `prompter run` does
    try:
        workflow = load_workflow(inputs.workflow)
    except WorkflowError as exc:
        console.info(f"{inputs.workflow}: not a valid workflow")
        console.untrusted(format_diagnostics(exc.diagnostics))
        for d in exc.errors:
            notes.add(
                Annotation("error", d.message, "prompter: invalid workflow", d.path, d.line), RUN
            )
        return exits.USAGE
    for w in workflow.warnings:
        notes.add(Annotation("warning", w.message, file=w.path, line=w.line), LINT)
    updates: dict[str, object] = {}
    if inputs.model:
        updates["model"] = inputs.model
    if inputs.max_cost_usd:
        updates["max_cost_usd"] = inputs.max_cost_usd
    if updates:
        workflow = with_settings(workflow, **updates)
    options = RunOptions(
        report_dir=Path(inputs.report_dir)
        if inputs.report_dir
        else default_report_dir(workflow.path),
        max_parallel=inputs.max_parallel,
        tasks=inputs.tasks,
        tasks_from="input `tasks`",
        fresh=inputs.fresh,
        dry_run=inputs.dry_run,
        agents_as_root=inputs.agent_user == "root",
    )
    if os.geteuid() == 0 and options.report_dir.exists():
        # State and logs of an earlier run, given back to the workspace's owner then, are
        # prompter's alone while agents run: agent code must not rewrite the record.
        _hand_over(options.report_dir, None, 0, 0)
    progress = ActionProgress(console, options.report_dir / "logs")
    try:
        result = run_workflow(
            workflow,
            options,
            listeners=[progress],
            background=[progress.heartbeat],
            out=console.text,
        )
    except PrompterError as exc:  # RunError, StateError: the run could not start
        notes.add(Annotation("error", str(exc), title="prompter: cannot run"), RUN)
        return exc.exit_code
    if inputs.dry_run:
        for note in result.warnings:  # what a real run would stop at (no credentials)
            notes.add(Annotation("warning", note, title="prompter"), RUN)
        outputs["status"] = "dry-run"
        return exits.OK
    outputs.update(_counts(result.records, result.reused))
    outputs["status"] = result.status
    relative = _relative_to(workspace)
    outputs["state_path"] = relative(options.state_path)
    _publish_reports(options.state_path, workflow, options.report_dir, env, notes)
    outputs["junit_path"] = relative(options.report_dir / "junit.xml")
    outputs["summary_path"] = relative(options.report_dir / "summary.md")
    outputs.update(_delivered(result.changes, workspace, relative))
    console.info(result.changes.line())
    _annotate(result.records, workflow, relative, notes)
    for note in result.warnings:
        notes.add(Annotation("warning", note, title="prompter"), RUN)
    if result.error is not None:
        notes.add(Annotation("error", result.error, title="prompter: state not saved"), RUN)
    if inputs.upload_artifact and env.get(DEFER_UPLOAD, "").strip().lower() in TRUE:
        # The host action (host/action.yml) uploads with actions/upload-artifact next.
        outputs["upload_dir"] = relative(options.report_dir)
        console.info(f"the report folder {outputs['upload_dir']} is uploaded by the next step")
    elif inputs.upload_artifact:
        uploaded = _upload(options.report_dir, inputs.artifact_name, env, console, notes)
        outputs["artifact_id"] = uploaded
    if result.exit_code == exits.FAILED and not inputs.fail_on_task_failure:
        console.info("tasks failed; fail_on_task_failure is false, so this step passes")
        return exits.OK
    return result.exit_code


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


def _relative_to(workspace: Path) -> Relative:
    def relative(path: Path) -> str:
        full = path.resolve()
        try:
            return full.relative_to(workspace).as_posix()
        except ValueError:
            return str(full)  # outside the workspace: the runner cannot translate it anyway

    return relative


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
        from ..attempts import log_name
        from ..events import TaskFinished, TaskStarted

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
    from ..report.files import reports_after_run

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
    from .artifact import ArtifactError, upload_folder

    try:
        uploaded = upload_folder(report_dir, name, env)
    except ArtifactError as exc:
        message = f"report artifact not uploaded ({exc}); the files stay in {report_dir}"
        notes.add(Annotation("warning", message), RUN)
        return ""
    console.info(f"report artifact {name} uploaded: id {uploaded.artifact_id}, {uploaded.size} B")
    return uploaded.artifact_id


def _lend(workspace: Path, console: Console) -> bool:
    """As root on a root-owned workspace, hand it to LENT_UID for the run, so that agent code
    can work in it without being root; `_give_back` returns it. True if lent."""
    if os.geteuid() != 0:
        return False
    try:
        owner = workspace.stat()
    except OSError:
        return False
    if owner.st_uid != 0:
        _ensure_account(owner.st_uid, owner.st_gid)
        return False
    started = time.monotonic()
    changed = _hand_over(workspace, 0, LENT_UID, LENT_UID)
    _ensure_account(LENT_UID, LENT_UID)
    console.info(
        f"the workspace is root's: agents and verify commands run as uid {LENT_UID}, which "
        f"has it for the run ({count(changed, 'file')}, {time.monotonic() - started:.1f} s)"
    )
    return True


def _ensure_account(uid: int, gid: int) -> None:
    """A passwd and group entry for the user agent code runs as: git, ssh and most tools look
    their user up, and the runner's uid has none in this image."""
    import grp
    import pwd

    try:
        pwd.getpwuid(uid)
    except KeyError:
        with contextlib.suppress(OSError), open("/etc/passwd", "a", encoding="utf-8") as f:
            f.write(f"prompter-agent:x:{uid}:{gid}:prompter agent:/nonexistent:/bin/sh\n")
    try:
        grp.getgrgid(gid)
    except KeyError:
        with contextlib.suppress(OSError), open("/etc/group", "a", encoding="utf-8") as f:
            f.write(f"prompter-agent:x:{gid}:\n")


@contextlib.contextmanager
def _file_commands_locked(
    env: Mapping[str, str], workspace: Path, console: Console, as_root: bool
) -> Iterator[None]:
    """While agents run, only root may reach the runner's file-command files: the folder that
    holds them becomes root's alone (a file alone could be replaced: its folder is the
    runner user's). A folder that is not theirs alone (the workspace, /tmp) keeps its rights;
    the files in it are locked instead. Everything is given back as it was. Agents running as
    root (`agent_user: root`) could undo it: nothing to do then."""
    from ..processes import on_emergency_exit

    if os.geteuid() != 0 or as_root:
        yield
        return
    paths = {Path(env[name]) for name in FILE_COMMANDS if env.get(name)}
    targets: set[Path] = set()
    for path in paths:
        folder = path.parent
        try:
            shared = workspace.is_relative_to(folder.resolve()) or folder.resolve().is_relative_to(
                workspace
            )
            sticky = bool(folder.stat().st_mode & stat.S_ISVTX)
        except OSError:
            continue
        targets.add(path if shared or sticky else folder)
    saved: list[tuple[Path, os.stat_result]] = []
    for target in sorted(targets):
        try:
            st = target.stat()
            os.chown(target, 0, 0)
            os.chmod(target, 0o700 if target.is_dir() else 0o600)
            saved.append((target, st))
        except OSError as exc:
            console.annotation("warning", f"cannot protect {target} from agents: {exc}")

    def give_back() -> None:
        for target, st in saved:
            with contextlib.suppress(OSError):
                os.chown(target, st.st_uid, st.st_gid)
                os.chmod(target, stat.S_IMODE(st.st_mode))

    # Also when a second signal (or a stuck stop) ends the process at once: the runner reads
    # these files after the step, as the runner user.
    take_back = on_emergency_exit(give_back)
    try:
        yield
    finally:
        take_back()
        give_back()


def _hand_over(top: Path, from_uid: int | None, to_uid: int, to_gid: int) -> int:
    """Everything under `top` (itself included) owned by `from_uid` (None: by anyone else)
    becomes `to_uid`'s."""
    changed = 0
    for path in (str(top), *_walk(top)):
        try:
            uid = os.lstat(path).st_uid
            if uid == from_uid or (from_uid is None and uid != to_uid):
                os.lchown(path, to_uid, to_gid)
                changed += 1
        except OSError:
            continue
    return changed


def _walk(top: Path) -> Iterator[str]:
    for root, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            yield os.path.join(root, name)


def _give_back(workspace: Path, console: Console, lent: bool = False) -> None:
    """As root in a container, whatever the run created belongs to root; the runner's later
    steps run as the workspace's owner and must be able to change it (git included). A lent
    workspace goes back to root."""
    if os.geteuid() != 0:
        return
    try:
        owner = workspace.stat()
    except OSError:
        return
    started = time.monotonic()
    if lent:
        changed = _hand_over(workspace, LENT_UID, 0, 0)
        owner_uid = 0
    elif owner.st_uid == 0:
        return
    else:
        changed = _hand_over(workspace, 0, owner.st_uid, owner.st_gid)
        owner_uid = owner.st_uid
    if changed:
        console.info(
            f"{count(changed, 'file')} handed to uid {owner_uid} "
            f"({time.monotonic() - started:.1f} s)"
        )
