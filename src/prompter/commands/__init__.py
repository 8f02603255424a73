"""The `prompter` commands, one module per concept; `cli.py` parses and dispatches to them.

Like `cli.py`, each module imports nothing heavy at module level (only os, sys and `exits`): a
command imports what it needs when it runs, so the CLI starts fast.
"""
