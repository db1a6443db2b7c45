"""What the simulated model says to the agent prompt: a scripted agent.

(Its answers to induction prompts are in `sim_induction`.)

Pure functions of the conversation (plus a seed), so the server stays cheap
per request and the same conversation always gets the same reply.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Literal

from awm_tui.engine import protocol
from awm_tui.engine.tasks import Task

from .sim_faults import chance

LOOK_AROUND = "cd /testbed && git status && ls -R | head -50"
RUN_TESTS = "cd /testbed && python3 -m pytest -q 2>&1 | tail -5"
PATCH_DELIMITER = "AWM_PATCH"
SubmitChoice = Literal["gold", "wrong", "empty"]

_FILE_RE = re.compile(r"^diff --git a/(\S+) b/(\S+)", re.MULTILINE)
_PLUS_FILE_RE = re.compile(r"^\+\+\+ b/(\S+)", re.MULTILINE)
_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@ ?(.*)$", re.MULTILINE)
_DEF_RE = re.compile(r"\b(?:async\s+def|def|class|function|func|fn)\s+([A-Za-z_]\w*)")
_IDENT_RE = re.compile(r"[A-Za-z_]\w{2,}")
_KEYWORDS = frozenset("""and as assert async await break class continue def del elif else except
    finally for from global import lambda nonlocal not pass raise return self try while with yield
    None True False print""".split())


# --- the scripted agent -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Conversation:
    system: str
    first_user: str
    step: int
    """Number of assistant messages so far: the index of the reply to write."""
    rules_seen: bool = True
    """Whether any system or user text asks for a ```bash block (the format rules)."""


def text_of(content: object) -> str:
    """Message content as text; OpenAI also allows a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


FORMAT_RULE = "```bash"
"""Text every statement of the format rules holds: the system prompt and each correction."""


def read_conversation(messages: list[dict]) -> Conversation:
    system = next((text_of(m.get("content")) for m in messages if m.get("role") == "system"), "")
    first_user = next((text_of(m.get("content")) for m in messages if m.get("role") == "user"), "")
    step = sum(1 for m in messages if m.get("role") == "assistant")
    rules = any(FORMAT_RULE in text_of(m.get("content")) for m in messages if m.get("role") in ("system", "user"))
    return Conversation(system, first_user, step, rules)


def first_workflow_title(first_user: str) -> str | None:
    """Title of the first injected workflow, or None when no memory was injected."""
    block = protocol.between(first_user, protocol.WORKFLOWS_OPEN, protocol.WORKFLOWS_CLOSE)
    if not block:
        return None
    for line in block.splitlines():
        # Titles come as "## Title", "1. Title", "- Title", "Workflow: Title", "**Title**"…
        title = re.sub(r"^\s*(?:#+|[-*]|\d+[.)])\s*", "", line).strip().strip("*").strip()
        title = re.sub(r"^(?:workflow|title)\s*(?:\d+)?\s*:\s*", "", title, flags=re.IGNORECASE)
        if title:
            return title[:120]
    return None


def touched_files(patch: str) -> list[str]:
    files = [b for _, b in _FILE_RE.findall(patch)] or _PLUS_FILE_RE.findall(patch)
    return list(dict.fromkeys(files))


def _function_hint(patch: str) -> str | None:
    """The function the first change sits in: the nearest `def` above it, else a name in it."""
    nearest: str | None = None
    changed: list[str] = []
    for line in patch.splitlines():
        if line.startswith("@@"):
            match = _HUNK_RE.match(line)
            nearest = (m.group(1) if match and (m := _DEF_RE.search(match.group(2))) else None)
        elif line[:1] in "+-" and line[:3] not in ("+++", "---"):
            changed.append(line[1:])
            if len(changed) == 1 and nearest:
                return nearest
        elif line[:1] == " " and (m := _DEF_RE.search(line)):
            nearest = m.group(1)
    for line in changed:
        if match := _DEF_RE.search(line):
            return match.group(1)
        for word in _IDENT_RE.findall(line):
            if word not in _KEYWORDS:
                return word
    return None


def inspect_command(patch: str) -> str:
    """grep for the function the fix is about, and print the lines around each hunk."""
    files = touched_files(patch)
    if not files:
        return LOOK_AROUND
    parts = ["cd /testbed"]
    if fn := _function_hint(patch):
        parts.append(f"grep -n '{fn}' {files[0]}")
    # One sed range per file (the first hunk of each), at most two files.
    hunks = _HUNK_RE.findall(patch)
    for index, path in enumerate(files[:2]):
        start = int(hunks[index][0]) if index < len(hunks) else 1
        parts.append(f"sed -n '{max(1, start - 5)},{start + 25}p' {path}")
    return parts[0] + " && " + "; ".join(parts[1:])


def broken_patch(patch: str) -> str | None:
    """The reference patch with every added line replaced: applies cleanly, fixes nothing."""
    lines = patch.splitlines()
    out, changed = [], False
    for line in lines:
        if line.startswith("+") and not line.startswith("+++"):
            body = line[1:]
            indent = body[: len(body) - len(body.lstrip())]
            out.append(f"+{indent}pass  # awm-sim: deliberately wrong fix")
            changed = True
        else:
            out.append(line)
    return "\n".join(out) + "\n" if changed else None


def apply_command(patch: str) -> str:
    # The quoted delimiter stops the shell expanding $vars and `backticks` in the patch.
    body = patch if patch.endswith("\n") else patch + "\n"
    return f"cd /testbed && git apply <<'{PATCH_DELIMITER}'\n{body}{PATCH_DELIMITER}"


def reply(thought: str, command: str) -> str:
    return f"THOUGHT: {thought}\n\n```bash\n{command}\n```"


def with_python_first(text: str) -> str:
    """The shape real models send: a ```python block shown before the ```bash block,
    with prose between them that a fence-pairing regex would run as a command."""
    thought, _, command_block = text.partition("\n\n```bash\n")
    return (f"{thought}\n\nThe check I have in mind, in Python:\n\n```python\nimport subprocess\n"
            f"print(subprocess.run(['git', 'status'], capture_output=True, text=True).stdout)\n```\n"
            f"Now run it in the shell.\n\n```bash\n{command_block}")


UNINSTRUCTED = ("I would start by looking at the repository: list its files with ls -R, read the "
                "module the issue names, then fix it and run the tests.")
"""What a model says when the format rules never reached it (its template dropped them)."""


def agent_reply(conv: Conversation, task: Task | None, *, seed: int, wrong_patch_rate: float,
                python_first_rate: float = 0.0, choice: SubmitChoice | None = None) -> str:
    """The scripted agent's reply for this step of the conversation, `cd`-ing into the
    repository path the prompt names (`/testbed` in Docker, a temp dir locally).
    `choice` forces the gold patch, a wrong one, or none."""
    text = _script_reply(conv, task, seed=seed, wrong_patch_rate=wrong_patch_rate, choice=choice)
    if python_first_rate > 0 and chance(seed, f"python-first {conv.step}", conv.first_user) < python_first_rate:
        text = with_python_first(text)
    workdir = protocol.find_workdir(conv.first_user)
    return text if workdir == "/testbed" else text.replace("cd /testbed", f"cd {shlex.quote(workdir)}")


def _script_reply(conv: Conversation, task: Task | None, *, seed: int, wrong_patch_rate: float,
                  choice: SubmitChoice | None = None) -> str:
    if task is None:
        if conv.step == 0:
            return reply("I do not recognise this task, so I will look at the repository first.",
                         LOOK_AROUND)
        return reply("Nothing here that I can safely change; submitting without a change.",
                     protocol.SUBMIT_COMMAND)
    workflow = first_workflow_title(conv.first_user)
    wrong = wrong_patch_rate > 0 and chance(seed, "wrong-patch", conv.first_user) < wrong_patch_rate
    wrong = choice == "wrong" or (wrong and choice is None)
    files = touched_files(task.patch)
    where = ", ".join(files) if files else "the code"
    script: list[str] = []
    if workflow:
        script.append(reply(f"Following the workflow \"{workflow}\": I start by looking at the "
                            f"repository layout of {task.repo}.", LOOK_AROUND))
    else:
        script.append(reply(f"I need to understand the layout of {task.repo} before changing "
                            "anything.", LOOK_AROUND))
        script.append(reply(f"The issue points at {where}; let me read the relevant code.",
                            inspect_command(task.patch)))
    if not task.patch.strip() or choice == "empty":
        script.append(reply("I could not find a change that fixes this; I will check the tests.",
                            RUN_TESTS))
    elif choice == "wrong" and files:
        # Told to be wrong: a change that leaves the code importable and fixes nothing, so
        # the tests run and fail (broken_patch's `pass` lines may not even import).
        script.append(reply(f"I am fairly sure the fix belongs in {files[0]}. Editing it.",
                            "cd /testbed && printf '\\n# awm-sim: deliberately wrong fix\\n' >> "
                            + shlex.quote(files[0])))
    elif wrong:
        bad = broken_patch(task.patch)
        if bad is not None:
            script.append(reply(f"I am fairly sure the fix belongs in {where}. Applying it.",
                                apply_command(bad)))
    else:
        prefix = f"As the workflow \"{workflow}\" suggests, I" if workflow else "I"
        script.append(reply(f"{prefix} now know what is wrong in {where}. Applying the fix "
                            "as a patch.", apply_command(task.patch)))
    script.append(reply("Let me run the test suite to check the change.", RUN_TESTS))
    script.append(reply("The change is in place; submitting.", protocol.SUBMIT_COMMAND))
    # Past the end of the script (e.g. the engine asked again), keep submitting.
    return script[min(conv.step, len(script) - 1)]
