"""Views of a workflow and of its runs: mermaid, dot, json, text (later JUnit and summary)."""
