"""What the benchmark scripts share: exit codes, paths, timing a command, printing a result.

The scripts run as `python bench/bench_X.py`, so this folder is on `sys.path` and they import
this module by its plain name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out"
EXIT_OK, EXIT_SLOW, EXIT_BROKEN = 0, 1, 2  # within the gate, over it, a correctness check failed


def log(msg: str) -> None:
    """Progress and verdicts go to stderr; stdout holds only the result."""
    print(msg, file=sys.stderr, flush=True)


def find_prompter(python: str) -> list[str]:
    """The `prompter` console script next to the interpreter, else `python -m prompter`."""
    script = Path(python).parent / ("prompter.exe" if os.name == "nt" else "prompter")
    if script.exists():
        return [str(script)]
    found = shutil.which("prompter")
    return [found] if found else [python, "-m", "prompter"]


@dataclass
class Run:
    seconds: float
    code: int
    cpu_seconds: float | None  # user + system of the process and the children it waited for
    max_rss_mb: float | None
    stderr: str


def run(
    argv: list[str],
    *,
    stdin: Path | None = None,
    stdout: Path | None = None,
    cwd: Path | None = None,
) -> Run:
    """Run argv to completion: wall time, exit code, and (where wait4 reports them) CPU time,
    less sensitive than wall time to other load, and peak RSS."""
    with tempfile.TemporaryFile("w+b") as err:
        src = stdin.open("rb") if stdin else subprocess.DEVNULL
        dst = stdout.open("wb") if stdout else subprocess.DEVNULL
        try:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, stdin=src, stdout=dst, stderr=err, cwd=cwd)
            cpu: float | None = None
            rss: float | None = None
            if hasattr(os, "wait4"):
                _, status, usage = os.wait4(proc.pid, 0)
                elapsed = time.perf_counter() - t0
                proc.returncode = os.waitstatus_to_exitcode(status)
                cpu = usage.ru_utime + usage.ru_stime
                scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
                rss = usage.ru_maxrss * scale / 2**20
            else:
                proc.wait()
                elapsed = time.perf_counter() - t0
        finally:
            for opened in (src, dst):
                if not isinstance(opened, int):
                    opened.close()
        err.seek(0)
        return Run(elapsed, proc.returncode, cpu, rss, err.read().decode(errors="replace"))


def emit(result: dict[str, Any], table: str, as_json: bool) -> None:
    """The result on stdout: the markdown table, or JSON that also carries it."""
    if as_json:
        result["markdown"] = table
        print(json.dumps(result, indent=2))
    else:
        print(table)
