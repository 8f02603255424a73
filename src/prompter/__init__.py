"""prompter: run AI coding agents over a graph of tasks, each checked by a shell command."""

__version__ = "0.1.0"
