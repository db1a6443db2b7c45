"""A run's output directory and its state files (pure engine code, no Textual).

- `layout`: `OutputLayout`, the paths of an output directory (no side effects)
- `store`: `load_state` (the one reader) and `StateStore` (the one writer)
- `journal`: `journal.jsonl`, one durable record per task, the views derived from it
- `atomic`: crash-safe file writes, the one load-and-validate, `StateError`
- `outputs`: `OutputDir` (lock, events.jsonl), `PredictionsFile` (preds.json)
- `checkpoint`: `checkpoint.json`, finished tasks for resume
- `buffer`: `buffer.json`, condensed experiences
- `memory`: `memory.json`, workflows with their change history
- `selection`: which workflows a task's prompt gets
- `curve`: `resolve_curve`, cumulative resolved over tasks done with inductions marked
- `trajectory`: `trajectories/<id>.json` read back as steps (the TUI's viewer)

Sync functions are the testable cores; from the event loop use the `a…`
variants, which run the file I/O in a thread.
"""

from .atomic import StateError, aread_json, awrite_json_atomic, move_aside, read_json, write_json_atomic
from .buffer import Experience, ExperienceBuffer, StepRecord
from .checkpoint import Checkpoint, TaskResult
from .curve import InductionMark, ResolveCurve, resolve_curve
from .memory import InductionDiff, InductionRecord, Memory, Workflow
from .layout import OutputLayout
from .outputs import EventLog, OutputDir, OutputDirLocked, PredictionsFile
from .selection import select_workflows
from .store import RunState, StateStore, load_state

__all__ = [
    "Checkpoint", "EventLog", "Experience", "ExperienceBuffer", "InductionDiff", "InductionMark", "InductionRecord",
    "Memory", "OutputDir", "OutputDirLocked", "OutputLayout", "PredictionsFile", "ResolveCurve", "RunState", "StateError",
    "StateStore", "StepRecord", "TaskResult", "Workflow", "aread_json", "awrite_json_atomic",
    "load_state", "move_aside", "resolve_curve", "read_json", "select_workflows", "write_json_atomic",
]
