"""host/check-python.sh, the host action's first step: python3 >= 3.11 with venv, or one
`::error::` naming actions/setup-python (no container needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "host" / "check-python.sh"


def check(path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(CHECK)],
        env={"PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_recent_python3_passes(tmp_path: Path) -> None:
    (tmp_path / "python3").symlink_to(sys.executable)
    proc = check(str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "::error" not in proc.stdout


def test_no_python3_fails_with_one_error_naming_setup_python(tmp_path: Path) -> None:
    proc = check(str(tmp_path))  # an empty folder: no python3
    assert proc.returncode == 1
    errors = [line for line in proc.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1, proc.stdout
    assert "actions/setup-python" in errors[0] and "no python3 on PATH" in errors[0]


def test_an_old_python3_fails_naming_its_version(tmp_path: Path) -> None:
    fake = tmp_path / "python3"
    fake.write_text(
        '#!/bin/sh\ncase "$*" in *platform*) echo 3.10.12 ;; *) exit 1 ;; esac\n', "utf-8"
    )
    fake.chmod(0o755)
    proc = check(f"{tmp_path}:/usr/bin:/bin")
    assert proc.returncode == 1
    errors = [line for line in proc.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and "found: 3.10.12" in errors[0], proc.stdout


DROP = REPO / "host" / "drop-sudo.sh"


def drop(value: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(DROP)],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DROP_SUDO": value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_drop_sudo_input_is_true_or_false() -> None:
    """The input's values (the dropping itself runs in test_container_host.py, as a user with
    passwordless sudo)."""
    proc = drop("maybe")
    assert proc.returncode == 2
    errors = [line for line in proc.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and "`drop_sudo` must be true or false" in errors[0], proc.stdout
    for off in ("false", "No", "0"):
        proc = drop(off)
        assert proc.returncode == 0 and "sudo is left as it is" in proc.stdout, proc.stdout
