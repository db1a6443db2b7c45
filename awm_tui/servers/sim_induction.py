"""What the simulated model answers to an induction prompt.

It plays a *model*, not the engine. From the experiences and the current
workflows the prompt carries it induces with the engine's own rules
(`engine.induction.rules`: there is one rule inducer), then does what the
prompt asks a model to do: reuse a current title for a workflow with the same
kinds of steps, say which repositories it learned from, and return the current
workflows it did not refine. Then it writes the reply text a model would send.

Real models do not always answer in the format asked for. `MESSY_SHAPES` are
the shapes seen from real servers (prose around the block, the current
workflows echoed back as a bare `[]` first, `<think>` reasoning with an
unfinished draft, output cut off at max_tokens); sim_llm sends them at
`messy_induction_rate`, seeded, and counts each shape in its stats, so the
engine's parser meets them in the default test suite.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from awm_tui.engine import protocol
from awm_tui.engine.induction import command_kind, induce_rule
from awm_tui.engine.state.buffer import Experience

Shape = Literal["clean", "prose", "echo", "think", "truncated"]
MESSY_SHAPES: tuple[Shape, ...] = ("prose", "echo", "think", "truncated")
MAX_WORKFLOWS = 5
"""The prompt asks for at most five."""

BAD_INDUCTION = ("Sorry, I looked at these experiences but could not settle on any reusable "
                 "workflows this time. Perhaps try again later.")

_STEP_LABEL_RE = re.compile(r"^[A-Z][a-z]+:\s+")
"""The rules label steps (`Test: …`); a title match compares what the steps do."""


@dataclass(frozen=True, slots=True)
class InductionReply:
    text: str
    finish_reason: str = "stop"
    """`length` when the reply was cut off, as a server at max_tokens says."""


def _json_between(text: str, open_tag: str, close_tag: str) -> list:
    raw = protocol.between(text, open_tag, close_tag)
    try:
        data = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        return []
    if isinstance(data, dict):  # a prompt may wrap the list
        data = data.get("workflows") or data.get("experiences") or []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def prompt_experiences(user_text: str) -> list[Experience]:
    return [Experience(instance_id=str(e.get("instance_id") or "?"), repo=str(e.get("repo") or ""),
                       problem=str(e.get("problem") or ""), resolved=True,
                       commands=[c for c in e.get("commands") or [] if isinstance(c, str)])
            for e in _json_between(user_text, protocol.EXPERIENCES_OPEN, protocol.EXPERIENCES_CLOSE)]


def prompt_current(user_text: str) -> list[dict]:
    """The current workflows the prompt shows (title and steps each)."""
    return [{"title": str(w["title"]), "description": str(w.get("description") or ""),
             "steps": [str(s) for s in w["steps"]]}
            for w in _json_between(user_text, protocol.CURRENT_OPEN, protocol.CURRENT_CLOSE)
            if w.get("title") and isinstance(w.get("steps"), list) and w["steps"]]


def _kinds(steps: list[str]) -> set[str]:
    return {command_kind(_STEP_LABEL_RE.sub("", s)) for s in steps} - {"other"}


def induce(user_text: str) -> list[dict]:
    """The workflows the simulated model answers with (possibly none)."""
    experiences = prompt_experiences(user_text)
    unused = prompt_current(user_text)
    repos = sorted({e.repo for e in experiences if e.repo})
    seen = f" Seen in {', '.join(repos)}." if repos else ""
    answer = []
    for wf in induce_rule(experiences):
        title, kinds = wf["title"], _kinds(wf["steps"])
        for old in unused:
            old_kinds = _kinds(old["steps"])
            if kinds and len(kinds & old_kinds) / len(kinds | old_kinds) >= 0.5:
                title = old["title"]
                unused.remove(old)
                break
        answer.append({"title": title, "description": wf["description"] + seen, "steps": wf["steps"]})
    return (answer + unused)[:MAX_WORKFLOWS]


def _fenced(value: object) -> str:
    return f"```json\n{json.dumps(value, indent=2)}\n```"


def _cut(text: str) -> str:
    """`text` (a JSON answer) cut the way max_tokens cuts: inside the last workflow,
    or, with only one, just after it, before the list is closed."""
    last = text.rfind('"title"')
    if text.find('"title"') < last:
        return text[: last + len('"title": "') + 5]
    return re.sub(r"\s*\]\s*\}\s*$", "", text)


def induction_reply(user_text: str, shape: Shape = "clean") -> InductionReply:
    workflows = induce(user_text)
    answer = {"workflows": workflows}
    n = len(prompt_experiences(user_text))
    if shape == "prose":
        return InductionReply(
            f"Sure! I went through the {n} experience(s) and looked for the steps they share: the "
            "agent explores, reads the code around {file}, patches it and runs {test_path}.\n\n"
            f"{_fenced(answer)}\n\nI kept placeholders such as {{file}} and {{patch}} so the steps "
            "carry over to new tasks. Let me know if you want them more detailed!")
    if shape == "echo":  # no fences: the current list as the prompt gave it, then the answer
        current = protocol.between(user_text, protocol.CURRENT_OPEN, protocol.CURRENT_CLOSE) or "[]"
        return InductionReply(f"Current workflows: {' '.join(current.split())}\n\n"
                              f"Updated workflows:\n{json.dumps(answer)}\n")
    if shape == "think":
        return InductionReply(
            "<think>\nThe user wants reusable workflows from these experiences. A first draft:\n"
            '{"workflows": [{"title": "Fix the bug", "steps": ["look around", "edit {file}"\n'
            "No: the steps should be the commands, with placeholders. Let me write it out.\n"
            f"</think>\n\n{_fenced(answer)}")
    if shape == "truncated":
        return InductionReply(_cut(f"```json\n{json.dumps(answer, indent=2)}"), finish_reason="length")
    return InductionReply(f"Here are the workflows I induced.\n\n{_fenced(answer)}")
