"""What a state holds: the records of tasks, attempts and runs, and their status vocabularies.

Data only: nothing here reads or writes a file. `state.py` persists these records (journal,
snapshot, lock); the engine, the agents, the events and the reports use them.

Records are mergeable: `merge()` unions the states of partial runs of a workflow.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .text import scrub_surrogates

STATE_VERSION: Final = 1  # of the snapshot's format: `state.py` refuses a newer one


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"


TERMINAL: Final = frozenset(
    {TaskStatus.PASSED, TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.INTERRUPTED}
)


class RunStatus(StrEnum):
    """How a run ended: `RunRecord.status`, `RunResult.status` (the action's `status` output),
    `RunFinished.status`. A str: JSON and comparisons with the plain strings still work."""

    PASSED = "passed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


# Process output decoded with surrogateescape can hold lone surrogates, which cannot be encoded
# as UTF-8: one of them would make a record unwritable in the middle of a run.
Text = Annotated[str, AfterValidator(scrub_surrogates)]


class Record(BaseModel):
    """What every record (and the journal line of `state.py`) shares: how it reads and writes."""

    model_config = ConfigDict(
        # A newer prompter may add fields; an older one still reads its state.
        extra="ignore",
        # Default 'null' would write a NaN cost as null, which then fails to load as a float:
        # a record that can be written must be readable.
        ser_json_inf_nan="constants",
    )


RESULT_TEXT_CHARS = 16 * 1024

# `verify_first`: the verify command run before a task's first attempt is recorded as an
# `AttemptRecord` of this number, in `TaskRecord.precheck` (never among the attempts: it is no
# agent's attempt, and the attempts' numbers and count stay those of agent attempts).
PRECHECK: Final = 0
ALREADY_SATISFIED: Final = "already satisfied (verify passed before any agent ran)"


class AgentUsage(Record):
    """What an agent backend reports about one turn: its session and what it cost."""

    session_id: Text | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    num_turns: int | None = None
    is_error: bool | None = None  # the backend's own verdict on its turn (Claude's `is_error`)
    result_text: Text | None = None  # its final answer, cut to RESULT_TEXT_CHARS


class AttemptRecord(AgentUsage):  # flat in the file: the usage fields sit beside the rest
    number: int
    started_at: float
    finished_at: float | None = None
    ok: bool = False
    reason: Text | None = None
    agent_exit_code: int | None = None
    agent_duration_s: float | None = None
    verify_exit_code: int | None = None
    verify_duration_s: float | None = None
    output_tail: Text = ""  # bounded by the caller
    fatal: bool = False  # the agent cannot work at all here (no CLI, no credentials): run stopped
    # The verify command could not run (exit 126/127, no shell): the environment's fault, not
    # the agent's; the task fails without another attempt and no agent is told of it.
    environment_error: bool = False
    changed_files: list[Text] | None = None  # "path +added -deleted" (worktree isolation)
    # The passed attempt's commit as `git diff` against its parent (worktree isolation), when
    # it is small (see `worktrees.integration.DIFF_BYTES`); secrets masked. Agent-written text.
    diff: Text | None = None
    conflict: Text | None = None  # why its changes could not be merged (worktrees)
    # The API refused the agent's session (a 429 or 529, a usage limit): in graph mode the
    # task waits for the agent limit instead, and only a refusal it could not wait out (at a
    # limit of 1, RATE_LIMIT_RETRIES times) is recorded as a failed attempt.
    rate_limited: bool = False
    api_status: int | None = None  # the refusal's HTTP status, if known
    retry_after_s: float | None = None  # when the API said the limit lifts, if it said


class AgentLimitChange(Record):
    """A change of the run's limit on agent sessions at once (see `agent_limit.py`)."""

    at: float  # Unix time
    limit: int
    maximum: int  # the configured one (max_parallel_agents, else the slots)
    cause: Text


class TaskRecord(Record):
    name: Text
    fingerprint: Text
    status: TaskStatus
    reason: Text | None = None
    attempts: list[AttemptRecord] = Field(default_factory=list)  # of the latest visit
    run_id: Text
    started_at: float | None = None
    finished_at: float | None = None
    # Sequential loops run a task again in the same run. Each visit starts a new attempts list
    # (a line of the journal repeats the record: keeping every visit's attempts made a loop's
    # state I/O quadratic); what the earlier visits cost stays in the total.
    visits: int = Field(1, ge=1)
    earlier_cost_usd: float = 0.0
    # The verify command run before the first attempt (`verify_first`), number PRECHECK; None
    # when none ran. Passed: the task passed on it alone, with no attempts.
    precheck: AttemptRecord | None = None

    @property
    def already_satisfied(self) -> bool:
        """Passed on its pre-check alone: no agent ran for it."""
        return (
            self.status is TaskStatus.PASSED
            and self.precheck is not None
            and self.precheck.ok
            and not self.attempts
        )

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def cost_usd(self) -> float:
        own = sum(a.cost_usd for a in self.attempts if a.cost_usd is not None)
        return self.earlier_cost_usd + own


def already_satisfied(record: TaskRecord) -> bool:
    """Whether the task passed without an agent: its verify command passed before any agent ran
    (`verify_first`): `TaskRecord.already_satisfied`, from its recorded pre-check."""
    return record.already_satisfied


class Estimate(Record):
    """A forecast amount: what is expected, and a high end (see `forecast.py`)."""

    expected: float
    high: float


class RunForecast(Record):
    """What a run's tasks were forecast to cost before it started, from the state before it."""

    tasks: dict[Text, Estimate] = Field(default_factory=dict)  # those it meant to try, with history
    unknown: int = 0  # tasks it meant to try that had no cost history (never counted as zero)
    budget_usd: float | None = None  # max_cost_usd when it started

    @property
    def cost_usd(self) -> Estimate | None:
        """The sum over the tasks with history; None without any."""
        if not self.tasks:
            return None
        return Estimate(
            expected=sum(e.expected for e in self.tasks.values()),
            high=sum(e.high for e in self.tasks.values()),
        )

    @property
    def over_budget(self) -> bool:
        """Whether the expected cost alone already exceeded the budget."""
        cost = self.cost_usd
        return self.budget_usd is not None and cost is not None and cost.expected > self.budget_usd


class RunRecord(Record):
    run_id: Text
    workflow: Text  # as given on the command line: what reports show
    # Where it was: `report` may run from another directory, where a namesake may lie.
    workflow_at: Text | None = None
    # Which workflow the state belongs to (`places.workflow_identity`); None in states written
    # before it was recorded, which are taken as they are.
    workflow_id: Text | None = None
    started_at: float
    finished_at: float | None = None
    status: RunStatus | None = None  # None while running
    # Why it ended early or failed as a whole (a stop, max_iterations, a budget, a signal).
    reason: Text | None = None
    # What changes.patch is taken from (see changes.py): HEAD and the working tree's git tree
    # at the start (of the run this one resumed, if so); None outside git.
    base_commit: Text | None = None
    base_tree: Text | None = None
    changed_files: int | None = None  # how many paths changes.patch changes; None: no patch
    # "worktree" (a worktree per task: attempts record their changes) or "shared" (one tree);
    # None: not recorded (a run that did not end, or a state from before it was).
    isolation: Text | None = None
    # The fan-out job (of a generated CI workflow) it ran in; None outside a fan-out. Reports
    # draw a timeline lane and a cost per job from it.
    job: Text | None = None
    # Every change of the limit on agent sessions at once, in order: the API's pushback.
    agent_limit: list[AgentLimitChange] = Field(default_factory=list)
    # Made at its start from the state before it (`forecast.py`); None in states written before
    # forecasts were recorded. The summary sets each task's cost beside it.
    forecast: RunForecast | None = None


# What a fan-out job id may be (`prompter run --job`, the action's `fanout_job`): GitHub's job
# ids and more, nothing a report or a file name would have to escape.
JOB_ID: Final = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def check_job(text: str) -> str:
    """`text` if it is a valid fan-out job id (`JOB_ID`), else a ValueError saying why."""
    if JOB_ID.fullmatch(text) is None:
        raise ValueError(
            f"not a job id: {text[:120]!r} (1 to 100 of the letters A-Z a-z, digits, and _ . -)"
        )
    return text


class State(Record):
    version: int = STATE_VERSION
    tasks: dict[str, TaskRecord] = Field(default_factory=dict)
    runs: list[RunRecord] = Field(default_factory=list)

    def durations(self) -> dict[str, float]:
        """Measured duration of each task that ran to an outcome, for critical-path weights.

        A state holds one record per task, its latest. Passed and failed records measured the
        task; skipped and interrupted ones did not (a skip takes no time, an interruption cuts
        the task short), so they leave the task to the scheduler's default weight.
        """
        out: dict[str, float] = {}
        for name, record in self.tasks.items():
            duration = record.duration_s
            if (
                record.status in (TaskStatus.PASSED, TaskStatus.FAILED)
                and duration is not None
                and math.isfinite(duration)
                and duration >= 0
            ):
                out[name] = duration
        return out

    def owner(self) -> RunRecord | None:
        """The latest run that recorded which workflow the state belongs to, if any."""
        return next((r for r in reversed(self.runs) if r.workflow_id is not None), None)


# -- merging ------------------------------------------------------------------------------------


def _moment(value: float | None) -> tuple[int, float]:
    # Unknown (or NaN) times sort before every known time, so a finished record beats an
    # unfinished one and the order stays total.
    if value is None or math.isnan(value):
        return (0, 0.0)
    return (1, value)


def _later(a: TaskRecord | RunRecord, b: TaskRecord | RunRecord) -> bool:
    """Whether `a` wins over `b`: later finish, then later start, then (ties) larger JSON.

    The last rule makes the choice a total order on records, which is what makes `merge`
    commutative and associative; it is only evaluated on exact ties of both times.
    """
    key_a = (_moment(a.finished_at), _moment(a.started_at))
    key_b = (_moment(b.finished_at), _moment(b.started_at))
    if key_a != key_b:
        return key_a > key_b
    return a.model_dump_json() > b.model_dump_json()


def merge(states: Iterable[State]) -> State:
    """The union of the records of several states (say, partial runs in separate CI jobs).

    Per task, the record that finished last wins (then the one that started last). Runs are
    deduplicated by id the same way and listed by start time, so the result does not depend on
    the order of `states`.
    """
    tasks: dict[str, TaskRecord] = {}
    runs: dict[str, RunRecord] = {}
    for state in states:
        for name, record in state.tasks.items():
            held = tasks.get(name)
            if held is None or _later(record, held):
                tasks[name] = record
        for run in state.runs:
            held_run = runs.get(run.run_id)
            if held_run is None or _later(run, held_run):
                runs[run.run_id] = run
    ordered = sorted(runs.values(), key=lambda r: (_moment(r.started_at), r.run_id))
    return State(tasks=dict(sorted(tasks.items())), runs=ordered)
