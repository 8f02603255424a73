#!/usr/bin/env python3
"""A toy coding agent for the offline demo: it edits files the way a prompt tells it to.

It understands two instructions, one per prompt:
  Create FILE containing the line: TEXT
  Concatenate A and B into C
Like a real agent it is not perfect the first time: unless the prompt says "exactly", it
writes TEXT with a capital first letter. When a verify command fails, prompter puts the
command's output into the next prompt; if that output says "must contain exactly 'X'", the
agent writes X. That is the whole point of the demo: the failure, fed back, fixes the work.
Usage: agent.py PROMPT   (prompter also sets PROMPTER_PROMPT, PROMPTER_TASK, PROMPTER_ATTEMPT)
"""

import os
import re
import sys
import time
from pathlib import Path


def main() -> int:
    prompt = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PROMPTER_PROMPT", "")
    task = os.environ.get("PROMPTER_TASK", "?")
    attempt = os.environ.get("PROMPTER_ATTEMPT", "1")
    print(f"[agent] task {task}, attempt {attempt}: reading the prompt")
    time.sleep(float(os.environ.get("DEMO_AGENT_THINK_S", "1")))  # pretend to think

    create = re.search(r"Create (\S+) containing (?:exactly )?the line: (.+?)(?:\.|\n|$)", prompt)
    concat = re.search(r"Concatenate (\S+) and (\S+) into (\S+)", prompt)
    if create:
        path, text = Path(create.group(1)), create.group(2).strip()
        learned = re.search(r"must contain exactly '([^']*)'", prompt)
        if learned:
            text = learned.group(1)
            print(f"[agent] the last check said the line must be exactly {text!r}")
        elif "exactly" not in prompt:
            text = text[:1].upper() + text[1:]  # a first draft with a style slip
        path.write_text(text + "\n", encoding="utf-8")
        print(f"[agent] wrote {path}: {text!r}")
        return 0
    if concat:
        a, b, out = (Path(concat.group(i)) for i in (1, 2, 3))
        out.write_text(a.read_text("utf-8") + b.read_text("utf-8"), encoding="utf-8")
        print(f"[agent] wrote {out} from {a} and {b}")
        return 0
    print("[agent] I do not understand this prompt", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
