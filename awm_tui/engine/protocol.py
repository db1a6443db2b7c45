"""The conversation contract between the engine and a model.

The agent loop writes prompts with these markers, the simulated model reads
them, and the induction parser reads the model's answers. Keep them in one
place so the three never drift apart.
"""

from __future__ import annotations

import re

SUBMIT_COMMAND = "echo AWM_SUBMIT_PATCH"
"""The command the agent runs to say it is done; the engine then takes `git diff`."""

SUBMIT_MARKER = "AWM_SUBMIT_PATCH"

TASK_LINE = "Task instance: {instance_id}"
"""Always a line of the first user message, so a scripted model can find the task."""

TASK_LINE_RE = re.compile(r"^Task instance: (?P<instance_id>\S+)\s*$", re.MULTILINE)

WORKDIR_LINE = "Repository path: {workdir}"
"""Also in the first user message: where the repository is (`/testbed` in
Docker, a temp directory in the local sandbox). Commands should `cd` there."""

WORKDIR_LINE_RE = re.compile(r"^Repository path: (?P<workdir>\S+)\s*$", re.MULTILINE)

WORKFLOWS_OPEN = "<workflows>"
WORKFLOWS_CLOSE = "</workflows>"
"""Injected workflows stand between these tags in the first user message."""

OBSERVATION_TEMPLATE = "<returncode>{exit_code}</returncode>\n<output>\n{output}</output>"

INDUCTION_MARKER = "AWM-INDUCTION"
"""Appears in the system message of every induction request."""

EXPERIENCES_OPEN, EXPERIENCES_CLOSE = "<experiences>", "</experiences>"
CURRENT_OPEN, CURRENT_CLOSE = "<current_workflows>", "</current_workflows>"



def find_task_id(text: str) -> str | None:
    match = TASK_LINE_RE.search(text)
    return match.group("instance_id") if match else None


def find_workdir(text: str, default: str = "/testbed") -> str:
    match = WORKDIR_LINE_RE.search(text)
    return match.group("workdir") if match else default


def between(text: str, open_tag: str, close_tag: str) -> str | None:
    start = text.find(open_tag)
    end = text.find(close_tag, start + len(open_tag)) if start >= 0 else -1
    if start < 0 or end < 0:
        return None
    return text[start + len(open_tag):end].strip()
