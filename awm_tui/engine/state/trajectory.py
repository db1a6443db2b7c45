"""`trajectories/<instance_id>.json`, read back: the conversation split into steps.

The run writes the whole conversation (system, task prompt, then one assistant
reply and one observation per step), the injected workflow ids, the patch and
the evaluation's answer. Readers (the TUI's trajectory viewer) want steps: the
reasoning, the command, its exit code and output. The markers come from
`protocol`, the same ones the agent loop writes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from awm_tui.engine import protocol, replies

from .atomic import StateError, read_json
from .layout import OutputLayout
from .store import load_state

_OBSERVATION_RE = re.compile(r"\A<returncode>(-?\d+)</returncode>\n<output>\n(.*?)</output>(.*)\Z", re.DOTALL)


@dataclass(frozen=True)
class Step:
    number: int
    reasoning: str
    """The reply without its command block (the THOUGHT)."""
    command: str | None
    """None when the reply had no usable command (a format error)."""
    exit_code: int | None
    """None when the command was not run."""
    output: str
    """The observation the model saw (for a format error: what it was told)."""
    note: str = ""
    """Truncation/timeout notes appended to the observation, or the format error."""


def _prose(reply: str, command: str | None) -> str:
    """The reply without the fenced block that held its command (the agent's own
    parser found the command; this only cuts the fence around it)."""
    at = reply.find(command) if command else -1
    start = reply.rfind("```", 0, at) if at >= 0 else -1
    end = reply.find("```", at + len(command or "")) if start >= 0 else -1
    if end < 0:
        return reply.strip()
    return (reply[:start].rstrip() + "\n" + reply[end + 3:].lstrip()).strip()


class Trajectory(BaseModel):
    model_config = ConfigDict(extra="ignore")

    instance_id: str
    exit_status: str = ""
    injected_workflows: list[str] = Field(default_factory=list)
    memory_version: int | None = None
    """The memory version the task started with (None: recorded before versions were)."""
    messages: list[dict[str, Any]] = Field(default_factory=list)
    patch: str = ""
    evaluation: dict[str, Any] | None = None
    """The evaluator's `info` (None with --skip-eval)."""

    @classmethod
    def load(cls, path: str | os.PathLike) -> Trajectory:
        path = Path(path)
        data = read_json(path, None)
        if data is None:
            raise StateError(f"{path}: no trajectory recorded (the task has not finished)", path)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "file"
            raise StateError(f"{path}: invalid trajectory at {loc}: {err['msg']}", path) from None

    def _contents(self, role: str) -> list[str]:
        return [str(m.get("content") or "") for m in self.messages if m.get("role") == role]

    @property
    def system_prompt(self) -> str:
        return next(iter(self._contents("system")), "")

    @property
    def prompt(self) -> str:
        """The task prompt: the first user message."""
        return next(iter(self._contents("user")), "")

    def workflow_span(self) -> tuple[int, int] | None:
        """Where the injected workflows stand in `prompt` (tags included), or None."""
        start = self.prompt.find(protocol.WORKFLOWS_OPEN)
        end = self.prompt.find(protocol.WORKFLOWS_CLOSE, start + 1) if start >= 0 else -1
        return None if start < 0 or end < 0 else (start, end + len(protocol.WORKFLOWS_CLOSE))

    def steps(self) -> list[Step]:
        """One step per assistant reply after the prompt, with the observation that followed."""
        body = [m for m in self.messages if m.get("role") in ("assistant", "user")]
        if body and body[0].get("role") == "user":
            body = body[1:]  # the task prompt
        steps: list[Step] = []
        i = 0
        while i < len(body):
            if body[i].get("role") != "assistant":
                i += 1
                continue
            reply = str(body[i].get("content") or "")
            answer = body[i + 1] if i + 1 < len(body) and body[i + 1].get("role") == "user" else None
            i += 2 if answer is not None else 1
            command, why = replies.extract_command(reply)
            reasoning = _prose(reply, command).removeprefix("THOUGHT:").strip()
            observed = str(answer.get("content") or "") if answer else ""
            match = _OBSERVATION_RE.match(observed)
            if match:
                steps.append(Step(len(steps) + 1, reasoning, command, int(match.group(1)), match.group(2),
                                  match.group(3).strip()))
            else:  # a format error, or the submit that ended the conversation
                steps.append(Step(len(steps) + 1, reasoning, command, None, observed, why))
        return steps

    @property
    def resolved(self) -> bool | None:
        """The evaluator's verdict; None when the task was not evaluated."""
        return None if self.evaluation is None else bool(self.evaluation.get("resolved"))


def trajectory_path(output_dir: str | os.PathLike, instance_id: str) -> Path:
    """Where a run in `output_dir` recorded the task's trajectory."""
    return OutputLayout.of(output_dir).trajectory(instance_id)


def last_finished(output_dir: str | os.PathLike) -> str | None:
    """The instance the run in `output_dir` finished last (checkpoint order), or None."""
    finished = load_state(OutputLayout.of(output_dir)).checkpoint.finished
    return next(reversed(finished), None) if finished else None
