"""What the agent is told. The markers come from `protocol`, so the simulated
model and the induction parser read exactly what is written here."""

from __future__ import annotations

from awm_tui.engine import protocol
from awm_tui.engine.tasks import Task

SYSTEM = f"""You are an autonomous software engineer fixing an issue in a Python repository.
You work through a bash shell only. Each of your replies must contain:
1. THOUGHT: a short explanation of what you will do next and why.
2. Exactly one shell command in a single fenced block:

```bash
your_command_here
```

Rules:
- One command per reply; chain steps with && when they belong together.
- Each command runs in a fresh shell: `cd` into the repository every time.
- Commands are non-interactive; an editor or pager will hang until the timeout.
- Edit files with sed, a python3 script, or `git apply` with a heredoc.
- Do not modify existing tests; add a regression test only if it helps you.
- When the fix is complete and tested, run exactly:

```bash
{protocol.SUBMIT_COMMAND}
```

Your changes are collected with `git diff` when you submit."""

INSTANCE = """{task_line}
Repository: {repo}
{workdir_line}

<issue>
{problem}
</issue>
{workflows}
Resolve the issue by editing the source files under the repository path.
Reproduce the problem first, make a minimal fix, run the relevant tests, then submit."""

WORKFLOWS = f"""
Workflows that solved similar tasks before (adapt the placeholders):
{protocol.WORKFLOWS_OPEN}
{{block}}
{protocol.WORKFLOWS_CLOSE}
"""

FORMAT_ERROR = """Your reply could not be used: {why}.
Reply with a THOUGHT and exactly ONE fenced ```bash block holding one command.
To finish, run `{submit}`."""

CUT_REPLY = """Your reply was cut off at the output limit ({limit}) before it ended.
Keep the THOUGHT to a few sentences and send exactly ONE fenced ```bash block holding one command."""

OUTPUT_LIMIT = 10_000
"""Characters of command output shown to the model per step."""


def instance_prompt(task: Task, workdir: str, workflows_block: str) -> str:
    return INSTANCE.format(
        task_line=protocol.TASK_LINE.format(instance_id=task.instance_id),
        repo=task.repo,
        workdir_line=protocol.WORKDIR_LINE.format(workdir=workdir),
        problem=task.problem_statement.strip(),
        workflows=WORKFLOWS.format(block=workflows_block) if workflows_block else "",
    )


def format_error(why: str) -> str:
    return FORMAT_ERROR.format(why=why, submit=protocol.SUBMIT_COMMAND)


def cut_reply(limit: str) -> str:
    return CUT_REPLY.format(limit=limit)


def observation(exit_code: int, output: str, *, truncated: bool, timed_out: bool,
                timeout_s: float) -> str:
    notes = []
    if len(output) > OUTPUT_LIMIT:
        half = OUTPUT_LIMIT // 2
        dropped = len(output) - OUTPUT_LIMIT
        output = f"{output[:half]}\n[… {dropped} characters elided …]\n{output[-half:]}"
        truncated = True
    if truncated:
        notes.append("[output truncated: narrow it down with grep, head or sed -n]")
    if timed_out:
        notes.append(f"[command killed after {timeout_s:g} s: avoid long-running or interactive commands]")
    if output and not output.endswith("\n"):
        output += "\n"
    text = protocol.OBSERVATION_TEMPLATE.format(exit_code=exit_code, output=output)
    return "\n".join([text, *notes])
