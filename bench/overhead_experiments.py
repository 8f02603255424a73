"""Two designs tried against the overhead gate (bench_overhead.py), kept so the figures in
bench/README.md can be reproduced. Neither is a mode of prompter.

    threads    500 spawns of /bin/true from a second thread while the main thread runs Python
               (as an event loop does): how much of its progress the main thread keeps, and how
               long the spawns take, for os.posix_spawn and for subprocess.Popen.
    executor   a multi-process executor: SLOTS helper processes, each running a task's agent
               (`true`) and verify (`/bin/sh -c true`) with posix_spawn and writing the task's
               log, the main process doing prompter's real fixed costs (imports, the workflow
               load) plus BURN_MS of Python per task and 0.13 s for the reports; side by side
               with `xargs -P SLOTS`, interleaved rounds.

    .venv/bin/python bench/overhead_experiments.py threads
    .venv/bin/python bench/overhead_experiments.py executor [--burn-ms 0.3] [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_overhead import write_workflow

# One helper of the executor: reads (agent argv, verify argv, log path) requests, answers with
# both exit codes. Length-prefixed marshal over its stdin/stdout.
_HELPER = r"""
import marshal, os, struct, sys, time
def readn(n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(0, n - len(buf))
        if not chunk:
            sys.exit(0)
        buf += chunk
    return buf
def spawn(argv, log):
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.posix_spawnp(argv[0], argv, os.environ, setsid=True, file_actions=[
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)])
    os.close(w)
    while chunk := os.read(r, 65536):
        log.write(chunk)
    os.close(r)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
while True:
    (n,) = struct.unpack("I", readn(4))
    agent, verify, path = marshal.loads(readn(n))
    with open(path, "ab") as log:
        log.write(f"\n===== {time.strftime('%H:%M:%S')} agent =====\n".encode())
        a = spawn(agent, log)
        log.write(b"\n===== verify =====\n")
        v = spawn(verify, log)
    out = marshal.dumps((a, v))
    os.write(1, struct.pack("I", len(out)) + out)
"""

# The executor's main process. argv: TASKS SLOTS BURN_MS WORKFLOW LOGS HELPER_SOURCE
_MAIN = r"""
import asyncio, marshal, os, struct, subprocess, sys, time
tasks, slots, burn_ms = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
workflow_path, logs, helper = sys.argv[4], sys.argv[5], sys.argv[6]
def burn(ms):
    end = time.thread_time() + ms / 1000
    while time.thread_time() < end:
        pass
class Helper:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-S", "-c", helper],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.w, self.r = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        os.set_blocking(self.r, False)
        self.buf = b""
    async def run(self, i):
        data = marshal.dumps((["true"], ["/bin/sh", "-c", "true"], f"{logs}/task_{i}.log"))
        os.write(self.w, struct.pack("I", len(data)) + data)
        loop = asyncio.get_running_loop()
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack_from("I", self.buf)
                if len(self.buf) >= 4 + n:
                    answer, self.buf = marshal.loads(self.buf[4:4 + n]), self.buf[4 + n:]
                    return answer
            try:
                chunk = os.read(self.r, 65536)
            except BlockingIOError:
                ready = loop.create_future()
                loop.add_reader(self.r, ready.set_result, None)
                try:
                    await ready
                finally:
                    loop.remove_reader(self.r)
                continue
            self.buf += chunk
helpers = [Helper() for _ in range(slots)]  # they start while the imports run
import prompter.cli, prompter.run, prompter.progress
from pathlib import Path
from prompter.config import load_workflow
load_workflow(Path(workflow_path))
os.makedirs(logs, exist_ok=True)
async def main():
    todo = iter(range(tasks))
    async def worker(h):
        for i in todo:
            burn(burn_ms / 2)
            assert await h.run(i) == (0, 0)
            burn(burn_ms / 2)
    await asyncio.gather(*(worker(h) for h in helpers))
asyncio.run(main())
burn(130)  # the reports
"""


def threads(n: int = 500) -> None:
    def spawner(kind: str) -> None:
        for _ in range(n):
            if kind == "posix_spawn":
                os.waitpid(os.posix_spawn("/bin/true", ["/bin/true"], os.environ), 0)
            else:
                subprocess.Popen(["/bin/true"]).wait()

    for kind in ("posix_spawn", "Popen"):
        start = time.perf_counter()
        spawner(kind)
        alone = time.perf_counter() - start
        thread = threading.Thread(target=spawner, args=(kind,))
        start = time.perf_counter()
        thread.start()
        count = 0
        while thread.is_alive():
            count += 1
        both = time.perf_counter() - start
        free, start = 0, time.perf_counter()
        while time.perf_counter() - start < both:
            free += 1
        print(
            f"{kind}: {n} spawns alone {alone:.2f} s, from a thread {both:.2f} s; "
            f"the main thread kept {count / free:.0%} of its progress"
        )


def executor(tasks: int, slots: int, burn_ms: float, rounds: int) -> None:
    xargs = shutil.which("xargs")
    assert xargs, "xargs not found"
    with tempfile.TemporaryDirectory() as tmp:
        workflow = Path(tmp) / "wf.toml"
        write_workflow(workflow, tasks, slots)
        lines = Path(tmp) / "lines"
        lines.write_text("true\n" * (2 * tasks))
        logs = Path(tmp) / "logs"
        times: dict[str, list[float]] = {"xargs": [], "executor": []}
        for _ in range(rounds):
            start = time.perf_counter()
            with lines.open() as stdin:
                cmd = [xargs, "-P", str(slots), "-n", "1", "/bin/sh", "-c"]
                subprocess.run(cmd, stdin=stdin, check=True)
            times["xargs"].append(time.perf_counter() - start)
            shutil.rmtree(logs, ignore_errors=True)
            start = time.perf_counter()
            args = [str(tasks), str(slots), str(burn_ms), str(workflow), str(logs), _HELPER]
            subprocess.run([sys.executable, "-c", _MAIN, *args], check=True)
            times["executor"].append(time.perf_counter() - start)
    base = statistics.median(times["xargs"])
    for name, secs in times.items():
        med = statistics.median(secs)
        print(f"{name}: median {med:.2f} s ({min(secs):.2f}–{max(secs):.2f}), {med / base:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", choices=("threads", "executor"))
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--burn-ms", type=float, default=0.3, help="Python per task (executor)")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if args.experiment == "threads":
        threads()
    else:
        executor(args.tasks, args.slots, args.burn_ms, args.rounds)


if __name__ == "__main__":
    main()
