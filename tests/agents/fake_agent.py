#!/usr/bin/env python3
"""A scriptable agent for tests: what it does per task and attempt comes from a JSON plan.

argv: fake_agent.py TASK ATTEMPT PROMPT
FAKE_AGENT_PLAN: path of {"task": [step for attempt 1, step for attempt 2, ...]} (last repeats)
  step: {"sleep": s, "exit": code, "write": {"path": "content"}, "print": "text",
         "ignore_term": true, "calls": [step, ...]}
  "calls": steps for the first calls of this task with this attempt number, the step itself
         after them (a session the API refused is no attempt: it is called again with the
         same number). Calls are counted in FAKE_AGENT_LOG.
FAKE_AGENT_PIDS: a folder that gets a file TASK-ATTEMPT holding the pid, written at start, and
  with ignore_term, TASK-ATTEMPT.term once a SIGTERM came (and was ignored).
FAKE_AGENT_LOG: a file that gets one JSON line per call (task, attempt, pid, pgid, start, end,
  prompt, env), so tests can check concurrency, prompts and the environment.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path


def calls_before(task: str, attempt: int) -> int:
    """How many calls of `task` with this attempt number FAKE_AGENT_LOG has seen."""
    try:
        lines = Path(os.environ["FAKE_AGENT_LOG"]).read_text().splitlines()
    except FileNotFoundError:
        return 0
    entries = (json.loads(line) for line in lines)
    return sum(1 for e in entries if e["task"] == task and e["attempt"] == attempt)


def main() -> int:
    task, attempt, prompt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    plan = json.loads(Path(os.environ["FAKE_AGENT_PLAN"]).read_text())
    steps = plan.get(task) or [{}]
    step = steps[min(attempt, len(steps)) - 1]
    if "calls" in step:
        earlier = calls_before(task, attempt)
        if earlier < len(step["calls"]):
            step = step["calls"][earlier]
    start = time.time()
    pids = Path(os.environ["FAKE_AGENT_PIDS"]) if os.environ.get("FAKE_AGENT_PIDS") else None
    if step.get("ignore_term"):  # before the pid is announced: a test may signal at once

        def noted(signum: int, frame: object) -> None:  # ignored, but a test can see it came
            if pids is not None:
                (pids / f"{task}-{attempt}.term").touch()

        signal.signal(signal.SIGTERM, noted)
    if pids is not None:  # announce ourselves at once, for signal tests
        pids.mkdir(exist_ok=True)
        (pids / f"{task}-{attempt}").write_text(str(os.getpid()))
    if "print" in step:
        sys.stdout.write(step["print"])
        sys.stdout.flush()
    for path, content in step.get("write", {}).items():
        Path(path).write_text(content)
    time.sleep(step.get("sleep", 0))
    entry = {
        "task": task,
        "attempt": attempt,
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "start": start,
        "end": time.time(),
        "prompt": prompt,
        "env": {k: v for k, v in os.environ.items() if k.startswith("PROMPTER_")},
        "cwd": os.getcwd(),
    }
    with open(os.environ["FAKE_AGENT_LOG"], "a") as log:
        log.write(json.dumps(entry) + "\n")
    return int(step.get("exit", 0))


if __name__ == "__main__":
    sys.exit(main())
