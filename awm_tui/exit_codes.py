"""Exit codes of every awm-tui command (the one definition; `--help` lists them)."""

EXIT_OK = 0
EXIT_RUN_FAILED = 1
"""A run failed or stopped at a budget ("budget reached": rerun with a higher one), or some of
its tasks ended in an error (a rerun retries them)."""
EXIT_USAGE = 2
"""A usage or config error: one line names the input and the fix; nothing ran."""
EXIT_INTERRUPTED = 130
"""Stopped by SIGINT/SIGTERM/SIGHUP; rerunning the same command resumes."""
