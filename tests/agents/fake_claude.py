#!/usr/bin/env python3
"""A stand-in for the `claude` CLI that speaks its stream-json protocol, for the real SDK.

It checks what it receives the way the real CLI would (flags, the initialize control request,
the user message) and fails loudly on anything else. What it does per call comes from a plan:

FAKE_CLAUDE_PLAN: path of {"KEY": [step for call 1, step for call 2, ...]} (the last repeats);
  KEY is found in the prompt as `[[fake:KEY]]`, else FAKE_CLAUDE_DEFAULT_KEY, else no plan.
  Calls are counted per KEY across processes in FAKE_CLAUDE_STATE. A step may hold:
    "say": text            an assistant text block
    "write": {path: text}  Write tool calls, really performed (relative to the cwd)
    "write_on_retry": {path: text}  the same, only when the prompt carries verify feedback
    "cost": 0.25, "tokens": [input, output, cache_read, cache_creation], "turns": n
    "error": 500|429|529|401   an error result (`is_error`, `api_error_status`), exit 1
    "crash": code          stderr noise, exit `code` without a result
    "hang": true           start a `sleep` child, then never answer
    "bash": command        first run `/bin/sh -c command` and wait for it (the Bash tool)
    "stall": true          say nothing more and never answer (after "api_retry": the API
                           stays unreachable)
    "unreachable": true    the API cannot be reached, as the real CLI 2.1.332 reports it
                           offline once its 10 retries are spent: api_retry messages without
                           a status, a synthetic API-error assistant message, and an error
                           result without api_error_status; exit 1
    "ignore_term": true    ignore SIGTERM from the start of the step (a CLI stuck in a handler)
    "linger": true         after the result, leave a `sleep` child holding stdout open and
                           exit (a tool process left running in the background)
    "echo_env": [NAME]     say the values of these environment variables (a leaky agent)
    "forget_session": true the session cannot be resumed afterwards (expired, other machine)
    "result": text         the final answer (also said as assistant text)
    "usage_limit": true|s  a subscription usage limit: a rejected rate_limit_event that says
                           the limit lifts in `s` seconds (true: an hour), an error result
                           without an HTTP status, exit 1
    "big": n               an assistant text block of n bytes: one stream-json line that long
    "slow_init": s         sleep s seconds before the system/init message (a slow start-up);
                           with "ignore_term", SIGTERM is ignored during that sleep too
    "limit_event": s       a rejected rate_limit_event (lifts in s seconds) after which the call
                           goes on as planned (another model or overage took over)
    "resets_at": value     with usage_limit: the event's resetsAt exactly as given (absolute)
    "warning": true        after "work", a rate_limit_event with status allowed_warning (a
                           usage limit is close: 80 % of the five-hour window used), after
                           which the call goes on as planned
    "spend_limit": true    the organization's monthly spend limit: an error result with
                           api_error_status 429 whose text quotes the API's body as the API
                           sends it (`error.details.error_code` enforced_spend_limit_reached,
                           no retry-after; it lifts next month); exit 1. No api_retry first
                           (add "api_retry" to model a CLI that retries it before it gives up)
    "api_retry": [[status, error], ...]  system/api_retry messages first, as Claude Code sends
                           them while it retries a failed API request (status null: no HTTP
                           response, e.g. the network is down; error "unknown" then)
    "patch": {field: value} fields of the result message replaced as given (a CLI that sends
                           a field of another type, a negative cost, ...)
  Lines of the prompt that start with `@write PATH TEXT` are performed as writes too.
    "work": s              sleep s seconds before answering (the session's work takes time)
FAKE_CLAUDE_CAPACITY: path of a file holding K, the API's room for sessions at once (the test
  may rewrite it mid-run). Each call then needs one of K places (a lock held until it exits);
  without one it is refused as the real CLI reports a 429 it could not retry past:
  FAKE_CLAUDE_CAPACITY_RETRIES (default 2) system/api_retry messages with status 429, then an
  error result with api_error_status 429, exit 1. `capacity.jsonl` in FAKE_CLAUDE_STATE gets
  one line per call: {"pid", "admitted", "at", "k"}; admitted calls add {"pid", "ended", "at"}.
FAKE_CLAUDE_INIT_ERROR: when set, the initialize control request is answered with this error
  (a CLI that refuses the session's options), and the CLI exits 1 once stdin closes.
FAKE_CLAUDE_STATE: a folder for call counters, sessions and `calls.jsonl` — one JSON line per
  call: argv flags, cwd, uid, the initialize request, the prompt, resume id, session id, pid.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

VERSION = "2.1.332"


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def api_retry(n: int, status: int | None, error: str, session_id: str) -> None:
    """Claude Code's note that it retries a failed API request (the n-th of 10)."""
    emit(
        {
            "type": "system",
            "subtype": "api_retry",
            "attempt": n,
            "max_retries": 10,
            "retry_delay_ms": 500 * 2**n,
            "error_status": status,
            "error": error,
            "session_id": session_id,
            "uuid": str(uuid.uuid4()),
        }
    )


def refused(session_id: str, text: str) -> dict[str, Any]:
    """The error result of a call the API refused with a 429."""
    return {
        "type": "result",
        "subtype": "success",
        "duration_ms": 12,
        "duration_api_ms": 0,
        "is_error": True,
        "api_error_status": 429,
        "num_turns": 1,
        "session_id": session_id,
        "total_cost_usd": 0,
        "usage": {"input_tokens": 0, "output_tokens": 0},
        "result": text,
    }


def spend_limit_text() -> str:
    """Claude Code's result text for a call the API refused for the monthly spend limit: the
    API's error body, quoted as Claude Code quotes any (`API Error: STATUS BODY`)."""
    today = time.gmtime()
    year, month = (
        (today.tm_year + 1, 1) if today.tm_mon == 12 else (today.tm_year, today.tm_mon + 1)
    )
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "You have reached your API usage limits: your organization has crossed "
            "its monthly API usage threshold. You will regain access on "
            f"{year:04d}-{month:02d}-01 at 00:00 UTC.",
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
        "request_id": "req_011CfakeSpendLimit",
    }
    return f"API Error: 429 {json.dumps(body, separators=(',', ':'))}"


def fail(text: str) -> None:
    sys.stderr.write(f"fake claude: {text}\n")
    sys.exit(64)


def flags(argv: list[str]) -> dict[str, str | bool]:
    out: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            fail(f"unexpected argument {arg!r}")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            out[key] = value
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            out[arg[2:]] = argv[i + 1]
            i += 1
        elif arg in ("--system-prompt", "--append-system-prompt") and i + 1 < len(argv):
            out[arg[2:]] = argv[i + 1]  # a value that may be empty or start with dashes
            i += 1
        else:
            out[arg[2:]] = True
        i += 1
    return out


def read_line() -> dict[str, Any]:
    line = sys.stdin.readline()
    if not line:
        fail("stdin closed before the expected message")
    return json.loads(line)


_PLACE: list[int] = []  # the fd whose lock holds this call's place in the API's capacity


def take_place(state: Path) -> bool:
    """One of the K places FAKE_CLAUDE_CAPACITY allows, if one is free (held until exit)."""
    import fcntl

    k = int(Path(os.environ["FAKE_CLAUDE_CAPACITY"]).read_text().strip() or 0)
    for n in range(k):
        fd = os.open(state / f"place-{n}", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _PLACE.append(fd)
        note_capacity(state, admitted=True, k=k)
        atexit.register(note_capacity, state, ended=True)  # before exit releases the lock
        return True
    note_capacity(state, admitted=False, k=k)
    return False


def note_capacity(state: Path, **fields: Any) -> None:
    line = json.dumps({"pid": os.getpid(), "at": time.time(), **fields}) + "\n"
    fd = os.open(state / "capacity.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write of an O_APPEND file: lines never interleave
    finally:
        os.close(fd)


def counted_call(state: Path, key: str) -> int:
    counter = state / f"count-{key}"
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    return n


def main() -> int:
    opts = flags(sys.argv[1:])
    for flag, value in (("output-format", "stream-json"), ("input-format", "stream-json")):
        if opts.get(flag) != value:
            fail(f"--{flag} {value} is required")
    if opts.get("verbose") is not True:
        fail("--verbose is required with stream-json output")
    state = Path(os.environ["FAKE_CLAUDE_STATE"])
    state.mkdir(parents=True, exist_ok=True)

    init = read_line()
    if init.get("type") != "control_request" or init["request"].get("subtype") != "initialize":
        fail(f"expected the initialize control request first, got {init!r}")
    init_error = os.environ.get("FAKE_CLAUDE_INIT_ERROR")
    if init_error:
        emit(
            {
                "type": "control_response",
                "response": {
                    "subtype": "error",
                    "request_id": init["request_id"],
                    "error": init_error,
                },
            }
        )
        sys.stdin.read()
        return 1
    emit(
        {
            "type": "control_response",
            "response": {
                "subtype": "success",
                "request_id": init["request_id"],
                "response": {"commands": [], "models": [], "account": {}},
            },
        }
    )
    user = read_line()
    if user.get("type") != "user" or user["message"].get("role") != "user":
        fail(f"expected a user message, got {user!r}")
    prompt = user["message"]["content"]
    if not isinstance(prompt, str):
        fail("expected the prompt as a string")

    resume = opts.get("resume")
    sessions = state / "sessions"
    sessions.mkdir(exist_ok=True)
    unknown_session = isinstance(resume, str) and not (sessions / resume).exists()
    session_id = resume if isinstance(resume, str) else str(uuid.uuid4())

    key = os.environ.get("FAKE_CLAUDE_DEFAULT_KEY", "")
    if "[[fake:" in prompt:
        key = prompt.split("[[fake:", 1)[1].split("]]", 1)[0]
    plan = json.loads(Path(os.environ["FAKE_CLAUDE_PLAN"]).read_text()) if key else {}
    steps = plan.get(key) or [{}]
    call = counted_call(state, key or "_")
    step = steps[min(call, len(steps)) - 1]
    retry = "did not pass:" in prompt

    with (state / "calls.jsonl").open("a") as f:
        record = {
            "key": key,
            "call": call,
            "flags": opts,
            "cwd": os.getcwd(),
            "uid": os.getuid(),
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "sid": os.getsid(0),
            "initialize": init["request"],
            "prompt": prompt,
            "resume": resume,
            "session_id": session_id,
            "env": {k: os.environ.get(k) for k in ("IS_SANDBOX", "HOME", "PROMPTER_EXTRA")},
        }
        f.write(json.dumps(record) + "\n")
    if unknown_session:
        sys.stderr.write(f"No conversation found with session ID: {resume}\n")
        return 1
    with (sessions / session_id).open("a") as f:
        f.write(json.dumps(prompt) + "\n")

    model = str(opts.get("model") or "claude-fake-1")
    if step.get("slow_init"):
        if step.get("ignore_term"):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(step["slow_init"])
    emit(
        {
            "type": "system",
            "subtype": "init",
            "session_id": session_id,
            "cwd": os.getcwd(),
            "model": model,
            "tools": ["Bash", "Read", "Write", "Edit"],
            "permissionMode": opts.get("permission-mode", "default"),
            "claude_code_version": VERSION,
        }
    )

    if os.environ.get("FAKE_CLAUDE_CAPACITY") and not take_place(state):
        for n in range(1, int(os.environ.get("FAKE_CLAUDE_CAPACITY_RETRIES", "2")) + 1):
            api_retry(n, 429, "rate_limit_error", session_id)
        text = 'API Error: 429 {"type":"error","error":{"type":"rate_limit_error"}}'
        emit(refused(session_id, text))
        sys.stdin.read()
        return 1

    def assistant(content: list[dict[str, Any]]) -> None:
        emit(
            {
                "type": "assistant",
                "message": {"role": "assistant", "model": model, "content": content},
                "session_id": session_id,
                "parent_tool_use_id": None,
            }
        )

    if step.get("ignore_term"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "bash" in step:  # as the Bash tool runs a command: a shell, waited for
        subprocess.run(["/bin/sh", "-c", step["bash"]], check=True, stdin=subprocess.DEVNULL)
    for n, (status, error) in enumerate(step.get("api_retry", ()), 1):
        api_retry(n, status, error, session_id)
    if "crash" in step:
        sys.stderr.write("Error: something inside Claude Code broke\n    at fake (fake.js:1)\n")
        return int(step["crash"])
    if step.get("stall"):
        time.sleep(1000)
        return 0
    if step.get("hang"):
        child = subprocess.Popen(["sleep", "1000"])
        (state / f"hang-{os.getpid()}").write_text(str(child.pid))
        assistant([{"type": "text", "text": "thinking very hard..."}])
        time.sleep(1000)
        return 0

    if "limit_event" in step:
        emit(
            {
                "type": "rate_limit_event",
                "rate_limit_info": {
                    "status": "rejected",
                    "resetsAt": int(time.time() + step["limit_event"]),
                    "rateLimitType": "seven_day_opus",
                },
                "uuid": str(uuid.uuid4()),
                "session_id": session_id,
            }
        )
    if "work" in step:
        time.sleep(step["work"])
    if step.get("warning"):
        emit(
            {
                "type": "rate_limit_event",
                "rate_limit_info": {
                    "status": "allowed_warning",
                    "resetsAt": int(time.time() + 3600),
                    "rateLimitType": "five_hour",
                    "utilization": 0.8,
                },
                "uuid": str(uuid.uuid4()),
                "session_id": session_id,
            }
        )
    if "say" in step:
        assistant([{"type": "text", "text": step["say"]}])
    if "big" in step:
        assistant([{"type": "text", "text": "B" * step["big"]}])
    for name in step.get("echo_env", ()):
        assistant([{"type": "text", "text": f"{name}={os.environ.get(name)}"}])
    writes = dict(step.get("write", {}))
    if retry:
        writes.update(step.get("write_on_retry", {}))
    for line in prompt.splitlines():
        if line.startswith("@write "):
            _, path, text = line.split(" ", 2)
            writes[path] = text
    for n, (path, text) in enumerate(writes.items()):
        tool_id = f"toolu_{n}"
        assistant(
            [
                {
                    "type": "tool_use",
                    "id": tool_id,
                    "name": "Write",
                    "input": {"file_path": path, "content": text},
                }
            ]
        )
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
        emit(
            {
                "type": "user",
                "message": {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "ok"}],
                },
                "session_id": session_id,
                "parent_tool_use_id": None,
            }
        )

    tokens = step.get("tokens", [100, 20, 0, 0])
    result: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "duration_ms": 12,
        "duration_api_ms": 10,
        "is_error": False,
        "num_turns": step.get("turns", 1),
        "session_id": session_id,
        "total_cost_usd": step.get("cost", 0.01),
        "usage": {
            "input_tokens": tokens[0],
            "output_tokens": tokens[1],
            "cache_read_input_tokens": tokens[2],
            "cache_creation_input_tokens": tokens[3],
        },
        "result": step.get("result", "done"),
    }
    if "result" in step:
        assistant([{"type": "text", "text": step["result"]}])
    limit = step.get("usage_limit")
    if limit:
        emit(
            {
                "type": "rate_limit_event",
                "rate_limit_info": {
                    "status": "rejected",
                    "resetsAt": step["resets_at"]
                    if "resets_at" in step
                    else int(time.time() + (3600 if limit is True else limit)),
                    "rateLimitType": "seven_day",
                },
                "uuid": str(uuid.uuid4()),
                "session_id": session_id,
            }
        )
        result.update(is_error=True, result="You've hit your weekly limit", total_cost_usd=0)
        emit(result)
        sys.stdin.read()
        return 1
    if step.get("unreachable"):
        offline = "API Error: Can't reach the API server — check your internet or DNS (ENOTFOUND)"
        for n in range(1, 11):
            api_retry(n, None, "unknown", session_id)
        emit(
            {
                "type": "assistant",
                "message": {
                    "role": "assistant",
                    "model": "<synthetic>",
                    "content": [{"type": "text", "text": offline}],
                },
                "session_id": session_id,
                "parent_tool_use_id": None,
                "error": "server_error",
                "is_api_error_message": True,
                "api_error": "connection_failed",
            }
        )
        result.update(
            is_error=True,
            api_error_status=None,
            api_error="connection_failed",
            terminal_reason="api_error",
            result=offline,
            total_cost_usd=0,
            num_turns=1,
        )
        emit(result)
        sys.stdin.read()
        return 1
    status = 429 if step.get("spend_limit") else step.get("error")
    if status:
        texts = {
            401: "Invalid API key · Please run /login",
            429: spend_limit_text()
            if step.get("spend_limit")
            else 'API Error: 429 {"type":"error","error":{"type":"rate_limit_error"}}',
            529: 'API Error: 529 {"type":"error","error":{"type":"overloaded_error"}}',
        }
        result.update(
            is_error=True,
            api_error_status=status,
            result=texts.get(status, f"API Error: {status} Internal server error"),
            total_cost_usd=0,
        )
    result.update(step.get("patch", {}))
    emit(result)
    if step.get("forget_session"):
        (sessions / session_id).unlink()
    if step.get("linger"):
        child = subprocess.Popen(["sleep", "1000"], start_new_session=False)
        (state / f"linger-{os.getpid()}").write_text(str(child.pid))
        return 0
    sys.stdin.read()  # the SDK closes stdin; the real CLI exits on EOF
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
