"""Runs in place of the `claude` CLI, then becomes it (exec): the SDK spawns this.

The SDK starts the CLI in prompter's own process group; a timeout must kill the CLI with every
tool process it started, so the CLI needs a group of its own. Run as `python -S claude_launcher.py
ARGS...` with PROMPTER_CLAUDE_REAL (the CLI), optionally PROMPTER_CLAUDE_PIDFILE and
PROMPTER_CLAUDE_AS ("uid:gid", when prompter runs as root and the work tree belongs to someone
else). Standard library only, no imports from prompter: it starts before site-packages.
"""

import os
import sys


def main() -> None:
    real = os.environ.pop("PROMPTER_CLAUDE_REAL")
    pidfile = os.environ.pop("PROMPTER_CLAUDE_PIDFILE", "")
    user = os.environ.pop("PROMPTER_CLAUDE_AS", "")
    os.setsid()  # pid == pgid from here on: the group can be signalled as a whole
    if pidfile:
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
    if user:
        uid, gid = (int(part) for part in user.split(":"))
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    os.execv(real, [real, *sys.argv[1:]])


if __name__ == "__main__":
    main()
