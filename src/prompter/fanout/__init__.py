"""Fan-out across CI jobs: which tasks run together in a job (`grouping.py`), the job graph and
its simulated makespan (`jobs.py`), the GitHub Actions workflow written for it
(`ci_workflow.py`), and the estimate `prompter plan --jobs` prints (`plan.py`)."""
