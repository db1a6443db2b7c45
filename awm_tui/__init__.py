"""awm-tui: a terminal control center for Agent Workflow Memory experiments."""

__version__ = "0.1.0"
