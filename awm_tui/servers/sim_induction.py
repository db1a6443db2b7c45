"""What the simulated model answers to an induction prompt.

It plays a *model*, not the engine. From the experiences and the current
workflows the prompt carries it induces with the engine's own rules
(`engine.induction.rules`: there is one rule inducer), then does what the
prompt asks a model to do: reuse a current title for a workflow with the same
kinds of steps, say which repositories it learned from, and return the current
workflows it did not refine. Then it writes the reply text a model would send.
"""

from __future__ import annotations

import json
import re

from awm_tui.engine import protocol
from awm_tui.engine.induction import command_kind, induce_rule
from awm_tui.engine.state.buffer import Experience

MAX_WORKFLOWS = 5
"""The prompt asks for at most five."""

BAD_INDUCTION = ("Sorry, I looked at these experiences but could not settle on any reusable "
                 "workflows this time. Perhaps try again later.")

_STEP_LABEL_RE = re.compile(r"^[A-Z][a-z]+:\s+")
"""The rules label steps (`Test: …`); a title match compares what the steps do."""


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


def induction_reply(user_text: str) -> str:
    return f"Here are the workflows I induced.\n\n{_fenced({'workflows': induce(user_text)})}"
