"""`buffer.json`: the experience of every evaluated task, the input to induction.

Experiences are condensed on the way in (problem summary, bounded command
log) so the buffer stays small enough to load, show and send to a model.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .atomic import StateError, read_validated

PROBLEM_CHARS = 300
COMMAND_CHARS = 1000
OUTPUT_HEAD_CHARS = 300
MAX_STEPS = 60


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class StepRecord(BaseModel):
    """One agent command and the start of what it printed."""

    command: str
    """The command, clipped to COMMAND_CHARS."""
    exit_code: int | None = None
    """None when the command timed out or was not run (format error)."""
    output_head: str = ""
    """The first OUTPUT_HEAD_CHARS characters of the output."""


class Experience(BaseModel):
    """What one evaluated task taught: the task, what the agent did, how it went."""

    model_config = ConfigDict(extra="ignore")

    instance_id: str
    repo: str
    problem: str
    """The first ~300 characters of the problem statement."""
    trajectory: list[StepRecord] = Field(default_factory=list)
    """Condensed command log; at most MAX_STEPS (first and last steps kept)."""
    commands: list[str] = Field(default_factory=list)
    """Every command, clipped, in order: the raw material of rule induction."""
    patch: str = ""
    """The submitted `git diff`."""
    exit_status: str = ""
    """How the agent stopped (`Submitted`, `StepLimit`, …)."""
    reward: float = 0.0
    speedup: float | None = None
    resolved: bool = False
    injected_workflows: list[str] = Field(default_factory=list)
    """Ids of workflows shown to the agent for this task."""
    memory_version: int | None = None
    """The memory version they were chosen from (None: recorded before versions were)."""
    finished_at: float = Field(default_factory=time.time)

    @classmethod
    def condense(cls, *, instance_id: str, repo: str, problem_statement: str,
                 steps: Iterable[tuple[str, int | None, str]], **fields: Any) -> Experience:
        """Build from full `(command, exit_code, output)` steps, bounding every part."""
        records = [StepRecord(command=clip(c, COMMAND_CHARS), exit_code=code,
                              output_head=clip(out or "", OUTPUT_HEAD_CHARS))
                   for c, code, out in steps]
        commands = [r.command for r in records]
        if len(records) > MAX_STEPS:
            # The start (exploration) and the end (fix, test, submit) matter most.
            half = MAX_STEPS // 2
            records = records[:half] + records[-half:]
        return cls(instance_id=instance_id, repo=repo,
                   problem=clip(" ".join(problem_statement.split()), PROBLEM_CHARS),
                   trajectory=records, commands=commands, **fields)


class ExperienceBuffer:
    """All experiences of a run, keyed by instance_id (a re-run replaces its entry)."""

    def __init__(self, experiences: Iterable[Experience] = ()) -> None:
        self._items: dict[str, Experience] = {e.instance_id: e for e in experiences}

    @classmethod
    def load(cls, path: str | os.PathLike) -> ExperienceBuffer:
        def validate(data: Any) -> ExperienceBuffer:
            items = data.get("experiences") if isinstance(data, dict) else data
            if not isinstance(items, list):
                raise StateError(f"{path}: expected {{\"experiences\": [...]}}; move it aside", Path(path))
            return cls(Experience.model_validate(e) for e in items)

        return read_validated(path, validate, what="experience", default=cls)

    @classmethod
    async def aload(cls, path: str | os.PathLike) -> ExperienceBuffer:
        return await asyncio.to_thread(cls.load, path)

    def append(self, experience: Experience) -> None:
        self._items.pop(experience.instance_id, None)
        self._items[experience.instance_id] = experience

    @property
    def experiences(self) -> list[Experience]:
        return list(self._items.values())

    def get(self, instance_id: str) -> Experience | None:
        return self._items.get(instance_id)

    def successes(self) -> list[Experience]:
        return [e for e in self._items.values() if e.resolved]

    def recent_successes(self, n: int) -> list[Experience]:
        """The `n` most recently finished resolved experiences, oldest first."""
        wins = sorted(self.successes(), key=lambda e: e.finished_at)
        return wins[-n:] if n > 0 else []

    def __len__(self) -> int:
        return len(self._items)

    def to_json(self) -> dict:
        """What `buffer.json` holds."""
        return {"version": 1, "experiences": [e.model_dump(mode="json") for e in self._items.values()]}
