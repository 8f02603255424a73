"""Everything GitHub-specific: workflow commands, the action entrypoint, artifact upload.

The rest of prompter knows nothing of GitHub; this package reads events, state and reports.
"""
