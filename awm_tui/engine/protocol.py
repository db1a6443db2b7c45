"""The conversation contract between the engine and a model.

The agent loop writes prompts with these markers, the simulated model reads
them, and the induction parser reads the model's answers. Keep them in one
place so the three never drift apart.
"""

from __future__ import annotations

import json
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

JSON_BLOCK_RE = re.compile(r"```(?:json)?[ \t]*\n(.*?)```", re.DOTALL)


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


def parse_induction_answer(reply: str) -> list[dict]:
    """Workflows from a model's induction answer.

    Accepts a ```json block, or bare JSON, holding either a list of workflows
    or `{"workflows": [...]}`; each workflow needs a title and a list of steps.
    Raises ValueError with a one-line reason otherwise.
    """
    candidates = JSON_BLOCK_RE.findall(reply) or [reply]
    last_error = "no JSON found"
    for raw in candidates:
        raw = raw.strip()
        # Tolerate prose around bare JSON: take the outermost braces/brackets.
        if not raw.startswith(("{", "[")):
            starts = [i for i in (raw.find("{"), raw.find("[")) if i >= 0]
            if not starts:
                continue
            raw = raw[min(starts):]
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            last_error = f"invalid JSON: {exc.msg}"
            continue
        items = data.get("workflows") if isinstance(data, dict) else data
        if not isinstance(items, list):
            last_error = "expected a list of workflows"
            continue
        workflows = []
        for item in items:
            if not isinstance(item, dict):
                continue
            title = str(item.get("title", "")).strip()
            steps = item.get("steps")
            if not title or not isinstance(steps, list) or not steps:
                continue
            workflows.append({
                "title": title,
                "description": str(item.get("description", "")).strip(),
                "steps": [str(s).strip() for s in steps if str(s).strip()],
            })
        if workflows:
            return workflows
        last_error = "no workflow had both a title and steps"
    raise ValueError(last_error)
