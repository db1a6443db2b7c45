"""Reading a run's output directory for display: memory, buffer, checkpoint, events.

Sync functions, called through `asyncio.to_thread` so the UI never waits on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from awm_tui.engine.state import OutputLayout, RunState, Workflow, load_state, resolve_curve
from awm_tui.tui.run_view import Curve, CurvePoint


@dataclass(frozen=True)
class InductionEntry:
    version: int
    at: float
    mode: str
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class TaskEntry:
    instance_id: str
    workflows: tuple[str, ...]
    resolved: bool | None
    """None while the task has not been evaluated (seen only in events)."""
    memory_version: int | None = None
    """The memory version it started with (None: recorded before versions were)."""


@dataclass(frozen=True)
class OutputSummary:
    """What an output directory holds, for the memory browser and for resuming."""

    path: Path
    done: int = 0
    resolved: int = 0
    run_name: str = ""
    memory_version: int = 0
    workflows: tuple[Workflow, ...] = ()
    inductions: tuple[InductionEntry, ...] = ()
    tasks: tuple[TaskEntry, ...] = ()
    curve: Curve = field(default_factory=Curve)
    """The checkpoint's tasks in finishing order, memory's changes placed among them."""
    problems: tuple[str, ...] = field(default=())
    """One line per unreadable file; the rest is still shown."""


def _events(path: Path) -> list[dict]:
    """task_started events from events.jsonl (tasks still running are not in the buffer)."""
    found = []
    try:
        with path.open("rb") as handle:
            for raw in handle:
                if b'"task_started"' in raw:
                    try:
                        found.append(json.loads(raw))
                    except ValueError:
                        continue  # a torn last line while the run is writing
    except FileNotFoundError:
        pass
    return found


def state_curve(state: RunState) -> Curve:
    """The curve a resumed run starts from (the live one extends it, `run_view.extend_curve`)."""
    curve = resolve_curve(state)  # the engine's one derivation; the TUI adds tokens and cost
    results = state.checkpoint.finished
    points = tuple(CurvePoint(resolved, (r.prompt_tokens + r.completion_tokens) or None, r.cost)
                   for resolved, r in zip(curve.resolved, (results[i] for i in curve.instance_ids)))
    return Curve(points, tuple(mark.after_tasks for mark in curve.inductions))


def read_output_dir(path: Path) -> OutputSummary:
    layout = OutputLayout.of(path)
    problems: list[str] = []
    state = load_state(layout, problems=problems)  # a bad file reads as empty, named in problems
    checkpoint, memory, buffer = state.checkpoint, state.memory, state.buffer

    tasks: dict[str, TaskEntry] = {}
    for event in _events(layout.events):
        instance = str(event.get("instance_id", "?"))
        version = event.get("memory_version")
        tasks[instance] = TaskEntry(instance, tuple(event.get("injected_workflows") or ()), None,
                                    version if isinstance(version, int) else None)
    for experience in buffer.experiences:
        tasks[experience.instance_id] = TaskEntry(
            experience.instance_id, tuple(experience.injected_workflows), experience.resolved,
            experience.memory_version)
    inductions = tuple(
        InductionEntry(r.version, r.at, r.mode, tuple(r.added), tuple(r.changed), tuple(r.removed))
        for r in memory.history)
    return OutputSummary(
        path=path.expanduser(),
        done=checkpoint.done,
        resolved=checkpoint.resolved,
        run_name=checkpoint.run_name,
        memory_version=memory.version,
        workflows=tuple(memory.workflows),
        inductions=inductions,
        tasks=tuple(tasks.values()),
        curve=state_curve(state),
        problems=tuple(problems),
    )
