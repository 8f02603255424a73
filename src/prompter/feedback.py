"""What a retry's prompt says about the attempt that failed: its reason, the check and the
tail of its output; and what a first attempt's prompt says about the check run before it
(`verify_first`) that did not pass. Pure (no I/O): the engines build it, reports show it."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Task
from .records import PRECHECK, AttemptRecord

FEEDBACK_CHARS = 6_000  # verify output carried into the next prompt (argv limits: keep it modest)


@dataclass(frozen=True, slots=True)
class Feedback:
    """What the next attempt's prompt says about the attempt that failed."""

    attempt: int
    reason: str
    verify_command: str | None  # None when the agent phase itself failed
    output: str
    conflict: bool = False  # it passed, but its changes could not be merged

    @classmethod
    def of(cls, task: Task, attempt: AttemptRecord) -> Feedback:
        # The verify phase ran (to an exit code, a timeout or a failed start) iff it took time.
        verified = attempt.verify_duration_s is not None
        return cls(
            attempt.number,
            attempt.reason or "failed",
            task.verify_command if verified else None,
            attempt.output_tail,
            attempt.conflict is not None,
        )


def prompt_with_feedback(task: Task, feedback: Feedback | None) -> str:
    if feedback is None:
        return task.prompt
    tail = feedback.output
    if len(tail) > FEEDBACK_CHARS:  # cut at a line start, unless that leaves nothing
        tail = tail[-FEEDBACK_CHARS:]
        tail = tail.partition("\n")[2] or tail
    tail = tail.strip() or "(no output)"
    if feedback.attempt == PRECHECK and not feedback.conflict:
        return (
            f"{task.prompt}\n\n---\n"
            f"Before you started, the check (the shell command `{task.verify_command}`) was run "
            f"and did not pass: {feedback.reason}.\n"
            f"Its output ended with:\n```\n{tail}\n```\n"
            "The task is done when that command succeeds."
        )
    if feedback.conflict:
        what = "Its changes passed the check but could not be merged with other tasks' work:"
        ask = "Those changes are in your working tree now: redo the task on top of them."
    elif feedback.verify_command is None:
        what = "The agent run itself failed; its output ended with:"
        ask = "Complete the task this time."
    else:
        what = f"The check is the shell command `{feedback.verify_command}`; its output ended with:"
        ask = "Fix what it reports so that the command succeeds."
    return (
        f"{task.prompt}\n\n---\n"
        f"Attempt {feedback.attempt} did not pass: {feedback.reason}.\n"
        f"{what}\n```\n{tail}\n```\n{ask}"
    )
