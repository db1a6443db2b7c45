"""The LLM induction prompt (`induction = "llm"`): system rules and the user message."""

from __future__ import annotations

import json
from collections.abc import Sequence

from awm_tui.engine import protocol
from awm_tui.engine.state.buffer import Experience, clip
from awm_tui.engine.state.memory import Workflow

PROMPT_COMMAND_CHARS = 400
PROMPT_COMMANDS = 30
PROMPT_PATCH_CHARS = 1500
PROMPT_EXPERIENCE_CHARS = 40_000

SYSTEM_PROMPT = f"""{protocol.INDUCTION_MARKER}
You maintain the workflow memory of a software-engineering agent that fixes issues in
code repositories by running shell commands. You are given experiences: tasks the agent
solved and the commands it ran. Extract the common, reusable multi-step workflows behind
them: procedures that would help on a new, different task.

Rules:
- Each workflow has a short imperative "title", a one-sentence "description" saying when to
  use it, and 2-8 "steps", each one concrete action (usually one shell command).
- Replace task-specific values with placeholders: {{file}}, {{function}}, {{symbol}},
  {{test_path}}, {{pattern}}, {{patch}}, {{n}}. Never copy a task's own paths or names.
- Prefer steps shared by several experiences; skip one-off detours and failed commands.
- Refine the current workflows rather than duplicating them: reuse a current title exactly
  to update that workflow. Return at most 5 workflows.

Answer with only a ```json block: {{"workflows": [{{"title": "...", "description": "...",
"steps": ["...", "..."]}}]}}
Do not repeat the current workflows outside it: the last JSON block of your answer is read
as the whole answer."""


def _example(exp: Experience) -> dict:
    cmds = [clip(c, PROMPT_COMMAND_CHARS) for c in exp.commands]
    if len(cmds) > PROMPT_COMMANDS:
        half = PROMPT_COMMANDS // 2
        cmds = cmds[:half] + ["# … steps omitted …"] + cmds[-half:]
    return {"instance_id": exp.instance_id, "repo": exp.repo, "problem": exp.problem,
            "resolved": exp.resolved, "commands": cmds, "patch": clip(exp.patch, PROMPT_PATCH_CHARS)}


def build_induction_messages(experiences: Sequence[Experience],
                             current: Sequence[Workflow]) -> list[dict]:
    """System + user messages asking a model to induce workflows.

    The user message holds the current workflows (JSON, between CURRENT tags)
    and the examples (a JSON list between EXPERIENCES tags). Examples are
    taken newest-last until PROMPT_EXPERIENCE_CHARS; the newest always fits.
    """
    examples: list[dict] = []
    size = 0
    for exp in reversed(list(experiences)):
        ex = _example(exp)
        ex_size = len(json.dumps(ex))
        if examples and size + ex_size > PROMPT_EXPERIENCE_CHARS:
            break
        examples.insert(0, ex)
        size += ex_size
    cur = [{"title": w.title, "description": w.description, "steps": w.steps} for w in current]
    user = (f"Current workflows:\n{protocol.CURRENT_OPEN}\n{json.dumps(cur, indent=1)}\n"
            f"{protocol.CURRENT_CLOSE}\n\n"
            f"Experiences ({len(examples)}):\n{protocol.EXPERIENCES_OPEN}\n"
            f"{json.dumps(examples, indent=1)}\n{protocol.EXPERIENCES_CLOSE}\n\n"
            "Induce the workflows now.")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
