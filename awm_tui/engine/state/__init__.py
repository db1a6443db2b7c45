"""A run's output directory and its state files (pure engine code, no Textual).

- `atomic`: crash-safe JSON writes, `StateError` for corrupt files
- `outputs`: `OutputDir` (lock, events.jsonl, trajectories/, preds.json)
- `checkpoint`: `checkpoint.json`, finished tasks for resume
- `buffer`: `buffer.json`, condensed experiences
- `memory`: `memory.json`, workflows with their change history
- `selection`: which workflows a task's prompt gets

Sync functions are the testable cores; from the event loop use the `a…`
variants, which run the file I/O in a thread.
"""

from .atomic import (
    StateError, StateFile, aread_json, awrite_json_atomic, move_aside, read_json, write_json_atomic,
    write_json_batch,
)
from .buffer import Experience, ExperienceBuffer, StepRecord
from .checkpoint import Checkpoint, TaskResult
from .memory import InductionDiff, InductionRecord, Memory, Workflow
from .outputs import EventLog, OutputDir, OutputDirLocked, PredictionsFile
from .selection import select_workflows

__all__ = [
    "Checkpoint", "EventLog", "Experience", "ExperienceBuffer", "InductionDiff", "InductionRecord",
    "Memory", "OutputDir", "OutputDirLocked", "PredictionsFile", "StateError", "StateFile", "StepRecord",
    "TaskResult", "Workflow", "aread_json", "awrite_json_atomic", "move_aside",
    "read_json", "select_workflows",
    "write_json_atomic", "write_json_batch",
]
