"""`checkpoint.json`: which tasks a run has finished, so a stopped run resumes.

Only finished tasks are recorded; a task interrupted mid-way is absent and
therefore restarts from scratch on resume (its sandbox state is gone anyway).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from awm_tui.engine.outcomes import Outcome

from .atomic import StateError, read_validated

CHECKPOINT_VERSION = 1


class TaskResult(BaseModel):
    """The outcome of one finished task."""

    model_config = ConfigDict(extra="ignore")

    instance_id: str
    exit_status: str
    """The agent's: `Submitted`, `FormatError`, `StepLimit`, `CostLimit`, `TimeLimit`."""
    outcome: Outcome
    """resolved, unresolved, empty_patch or not_evaluated; an error is never checkpointed."""
    grader: str = ""
    """What graded it (`swebench:<parser>`, `pytest`, `server <url>`)."""
    resolved: bool = False
    """The task's FAIL_TO_PASS tests pass and PASS_TO_PASS still pass."""
    reward: float = 0.0
    """Reward reported by the evaluator (1.0 resolved, 0.0 not, partial allowed)."""
    speedup: float | None = None
    """Performance tasks: benchmark time before / after the patch."""
    steps: int = 0
    """Agent commands executed."""
    cost: float = 0.0
    """LLM cost of the task in USD."""
    elapsed_s: float = 0.0
    """Wall-clock seconds from task start to finish (evaluation included)."""
    finished_at: float = Field(default_factory=time.time)
    """Unix time the task finished."""
    evaluated: bool = True
    """False with `--skip-eval`: `resolved`/`reward` are then not meaningful."""
    memory_version: int | None = None
    """The memory version the task started with (None: recorded before versions were)."""

    @model_validator(mode="before")
    @classmethod
    def _outcome_of_old_files(cls, data: object) -> object:
        # Checkpoints written before outcomes existed: derive it from what they hold.
        if isinstance(data, dict) and "outcome" not in data:
            resolved, evaluated = data.get("resolved"), data.get("evaluated", True)
            outcome = (Outcome.RESOLVED if resolved else
                       Outcome.UNRESOLVED if evaluated else Outcome.NOT_EVALUATED)
            data = {**data, "outcome": outcome}
        return data


class Checkpoint(BaseModel):
    """Resume state of one run."""

    model_config = ConfigDict(extra="ignore")

    version: int = CHECKPOINT_VERSION
    """File format version."""
    run_name: str = ""
    """The run that wrote it (informational; resuming under another name is allowed)."""
    finished: dict[str, TaskResult] = Field(default_factory=dict)
    """Finished tasks keyed by instance_id, in finishing order."""

    @classmethod
    def load(cls, path: str | os.PathLike, run_name: str = "") -> Checkpoint:
        """The saved checkpoint, or an empty one when the file does not exist."""
        ckpt = read_validated(path, cls.model_validate, what="checkpoint", default=lambda: cls(run_name=run_name),
                              fix="move it aside to start over")
        if ckpt.version > CHECKPOINT_VERSION:
            raise StateError(f"{path}: checkpoint version {ckpt.version} is newer than "
                             "this awm-tui understands; upgrade awm-tui", Path(path))
        return ckpt

    @classmethod
    async def aload(cls, path: str | os.PathLike, run_name: str = "") -> Checkpoint:
        return await asyncio.to_thread(cls.load, path, run_name)

    def is_done(self, instance_id: str) -> bool:
        return instance_id in self.finished

    def record(self, result: TaskResult) -> None:
        """Add or replace a task's result (a re-run task moves to the end)."""
        self.finished.pop(result.instance_id, None)
        self.finished[result.instance_id] = result

    @property
    def done(self) -> int:
        return len(self.finished)

    @property
    def resolved(self) -> int:
        return sum(1 for r in self.finished.values() if r.resolved)

    def to_json(self) -> dict:
        """What `checkpoint.json` holds."""
        return self.model_dump(mode="json")
