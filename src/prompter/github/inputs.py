"""The action's inputs: read from the environment as the runner passes them, each checked.

`INPUT_<NAME>` (with underscores or hyphens, as the runner spells it), else the plain `<NAME>`
for `docker run -e`. A bad input is an `InputError` naming it; an empty input means its default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..exits import PrompterError

TRUE, FALSE = ("true", "yes", "1"), ("false", "no", "0")
# What actions/toolkit refuses in an artifact name (validateArtifactName), as the service does.
ARTIFACT_NAME_REFUSED = ('"', ":", "<", ">", "|", "*", "?", "\r", "\n", "\\", "/")
# Who agent code runs as: the workspace's owner (a root-owned workspace is lent to LENT_UID),
# or root, which leaves the runner's tokens within its reach (for images whose tools need root).
AGENT_USERS = ("owner", "root")
# A GitHub Actions job id as the fan-out names them (`needs:` takes it, artifacts carry it).
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


class InputError(PrompterError):
    """A bad input; the message names it."""


@dataclass(frozen=True)
class Fanout:
    """The job's part in a fan-out across jobs (`prompter ci generate`); all empty outside one.

    A group job has `job` (its own id) and `imports` (the jobs it builds on, in order); the
    final job has `merge` (every group job, in order)."""

    job: str | None = None
    imports: tuple[str, ...] = ()
    merge: tuple[str, ...] = ()


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
    strict_budget: bool = False  # a forecast above the budget: exit 2 before anything runs
    fanout: Fanout = field(default_factory=Fanout)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Inputs:
        read = _Reader(env)
        # In this order: of several bad inputs, the first is the one named.
        max_parallel = _max_parallel(read)
        max_cost_usd = _budget(read)
        tasks = _task_names(read.raw("tasks"))
        upload = read.flag("upload_artifact", "true")
        artifact_name = _artifact_name(read, upload)
        agent_user = _agent_user(read)
        fanout = _fanout(read, tasks)
        return cls(
            fanout=fanout,
            agent_user=agent_user,
            workflow=read.get("workflow", "prompter.toml") or "prompter.toml",
            tasks=tasks,
            max_parallel=max_parallel,
            dry_run=read.flag("dry_run", "false"),
            fresh=read.flag("fresh", "false"),
            report_dir=read.get("report_dir"),  # empty: prompter's default for the workflow
            fail_on_task_failure=read.flag("fail_on_task_failure", "true"),
            anthropic_api_key=read.get("anthropic_api_key"),
            claude_code_oauth_token=read.get("claude_code_oauth_token"),
            model=read.get("model") or None,
            max_cost_usd=max_cost_usd,
            strict_budget=read.flag("strict_budget", "false"),
            upload_artifact=upload,
            artifact_name=artifact_name,
            github_token=read.get("github_token"),
        )


@dataclass(frozen=True)
class _Reader:
    env: Mapping[str, str]

    def raw(self, name: str, default: str = "") -> str:
        for key in (f"INPUT_{name.upper()}", f"INPUT_{name.upper().replace('_', '-')}"):
            if key in self.env:
                return self.env[key]
        return self.env.get(name.upper(), default)

    def get(self, name: str, default: str = "") -> str:
        return self.raw(name, default).strip()

    def flag(self, name: str, default: str) -> bool:
        value = self.get(name).lower() or default  # an empty input means the default
        if value not in TRUE + FALSE:
            raise InputError(f"input `{name}` must be true or false, not {value!r}")
        return value in TRUE


def _max_parallel(read: _Reader) -> int | None:
    parallel = read.get("max_parallel")
    # isdigit() alone takes "²", which int() refuses
    if parallel and not (parallel.isascii() and parallel.isdigit() and int(parallel) > 0):
        raise InputError(f"input `max_parallel` must be a positive integer, not {parallel!r}")
    return int(parallel) if parallel else None


def _budget(read: _Reader) -> float | None:
    cost = read.get("max_cost_usd")
    try:
        budget = float(cost) if cost else None
    except ValueError:
        budget = -1.0
    if budget is not None and not (budget > 0 and math.isfinite(budget)):
        raise InputError(f"input `max_cost_usd` must be a number above 0, not {cost!r}")
    return budget


def _task_names(raw: str) -> tuple[str, ...]:
    """A YAML block (`tasks: |`) is one name per line, also when it holds one line: its value
    ends with a line break, which strip() would take away. Else names are separated by commas
    or blanks."""
    names = raw.splitlines() if "\n" in raw or "\r" in raw else raw.replace(",", " ").split()
    return tuple(n.strip() for n in names if n.strip())


def _artifact_name(read: _Reader, upload: bool) -> str:
    name = read.get("artifact_name", "prompter-report") or "prompter-report"
    if upload and any(c in name for c in ARTIFACT_NAME_REFUSED):
        raise InputError(
            f'input `artifact_name` cannot contain " : < > | * ? \\ / or a line break, not {name!r}'
        )
    return name


def _agent_user(read: _Reader) -> str:
    agent_user = read.get("agent_user").lower() or "owner"
    if agent_user not in AGENT_USERS:
        raise InputError(f"input `agent_user` must be owner or root, not {agent_user!r}")
    return agent_user


def _job_ids(read: _Reader, name: str) -> tuple[str, ...]:
    ids = _task_names(read.raw(name))  # the same separators: lines, commas or blanks
    for job in ids:
        if not JOB_ID.fullmatch(job):
            raise InputError(
                f"input `{name}`: {job!r} is not a job id (letters, digits, `_` and `-`, "
                "at most 100)"
            )
    if len(set(ids)) != len(ids):
        twice = next(j for j in ids if ids.count(j) > 1)
        raise InputError(f"input `{name}` names job {twice!r} twice")
    return ids


def _fanout(read: _Reader, tasks: tuple[str, ...]) -> Fanout:
    job = _job_ids(read, "fanout_job")
    if len(job) > 1:
        raise InputError(f"input `fanout_job` is one job id, not {len(job)}")
    imports = _job_ids(read, "fanout_imports")
    merge = _job_ids(read, "fanout_merge")
    if imports and not job:
        raise InputError("input `fanout_imports` needs `fanout_job` (the job that imports)")
    if job and job[0] in imports:
        raise InputError(f"input `fanout_imports` names this job itself ({job[0]!r})")
    if merge and (job or imports):
        raise InputError(
            "input `fanout_merge` is for the final job: it excludes `fanout_job` and "
            "`fanout_imports`"
        )
    if merge and tasks:
        raise InputError("input `fanout_merge` runs no task: leave `tasks` empty")
    return Fanout(job=job[0] if job else None, imports=imports, merge=merge)
