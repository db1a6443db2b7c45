"""A run's state as one transaction per task: load it, commit a task or an induction.

`load_state` is the one way to read a run's state: the four views (memory.json,
buffer.json, checkpoint.json, preds.json) with the journal's records replayed
onto them (journal.py says why that is exact). `StateStore` is the one writer:
each commit appends one fsynced journal record — the commit point — and then
rewrites the views it changed, each by an atomic rename without fsync (a kill
cannot tear them; the journal is what is durable). Opening a store under the
run's lock compacts: the views are made durable, the journal shrinks to its
base line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .atomic import StateError, dump_json, replace_files
from .buffer import Experience, ExperienceBuffer
from .checkpoint import Checkpoint, TaskResult
from .journal import JournalContent, append_record, read_journal, reset_journal
from .layout import OutputLayout
from .memory import Memory
from .outputs import PredictionsFile

T = TypeVar("T")


@dataclass
class RunState:
    checkpoint: Checkpoint
    buffer: ExperienceBuffer
    memory: Memory
    preds: PredictionsFile
    induced_at: float | None = None
    """When the last induction ran (changed memory or not); only the journal knows."""

    def successes_since_induction(self) -> int:
        """Resolved experiences no induction has seen yet: a run stopped before (or
        during) an induction that was due does it on resume."""
        last = max(self.induced_at or 0.0, self.memory.history[-1].at if self.memory.history else 0.0)
        return sum(1 for e in self.buffer.successes() if e.finished_at > last)

    def apply(self, record: dict[str, Any]) -> None:
        """Replay one journal record. Every value is absolute, so a record the views
        already reflect changes nothing."""
        kind = record["kind"]
        if kind == "base":
            self.induced_at = record.get("induced_at")
        elif kind == "task":
            result = TaskResult.model_validate(record["result"])
            self.checkpoint.record(result)
            pred = record["prediction"]
            self.preds.set(result.instance_id, pred["model_name_or_path"], pred["model_patch"])
            if record.get("experience") is not None:
                self.buffer.append(Experience.model_validate(record["experience"]))
            for wf_id, (uses, successes) in (record.get("uses") or {}).items():
                wf = self.memory.get(wf_id)
                if wf is not None:
                    wf.uses, wf.successes = uses, successes
        elif kind == "induction":
            if record.get("memory") is not None:
                self.memory = Memory.model_validate(record["memory"])
            self.induced_at = record["at"]

    def views(self, layout: OutputLayout) -> dict[Path, tuple[Any, bool]]:
        """Each view's path → (the object that produces it, pretty), checkpoint last."""
        return {layout.preds: (self.preds, False), layout.buffer: (self.buffer, False),
                layout.memory: (self.memory, True), layout.checkpoint: (self.checkpoint, True)}


def _read_views(layout: OutputLayout, run_name: str, problems: list[str] | None) -> RunState:
    def load(loader: Callable[[], T], empty: Callable[[], T]) -> T:
        try:
            return loader()
        except StateError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
            return empty()

    return RunState(
        load(lambda: Checkpoint.load(layout.checkpoint, run_name), lambda: Checkpoint(run_name=run_name)),
        load(lambda: ExperienceBuffer.load(layout.buffer), ExperienceBuffer),
        load(lambda: Memory.load(layout.memory), Memory),
        load(lambda: PredictionsFile.load(layout.preds), PredictionsFile))


def _replay(state: RunState, journal: JournalContent, path: Path) -> None:
    for number, record in enumerate(journal.records, 1):
        try:
            state.apply(record)
        except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            raise StateError(f"{path}: record {number} is invalid ({type(exc).__name__}); move the file "
                             "aside (the state files then stand as they are)", path) from None


def load_state(layout: OutputLayout, run_name: str = "", *, problems: list[str] | None = None) -> RunState:
    """The run's state as its last commit left it. With `problems` (readers), an
    unreadable file is reported there and read as empty; without, `StateError`."""
    state = _read_views(layout, run_name, problems)
    try:
        _replay(state, read_journal(layout.journal), layout.journal)
    except StateError as exc:
        if problems is None:
            raise
        problems.append(str(exc))
    return state


class StateStore:
    """The one writer of a run's state files (the run holds the directory's lock)."""

    compact_bytes = 8 * 2**20
    """A journal this big is compacted after a commit: a long run with a large memory
    (each induction record holds all of it) keeps it bounded."""

    def __init__(self, layout: OutputLayout, state: RunState) -> None:
        self.layout, self.state = layout, state
        self._journal_bytes = 0

    @classmethod
    def open(cls, layout: OutputLayout, run_name: str) -> StateStore:
        """Load, and compact when the journal holds records or a view is missing, so
        a fresh directory gets valid (empty) state files at once."""
        state = _read_views(layout, run_name, None)
        journal = read_journal(layout.journal)
        _replay(state, journal, layout.journal)
        store = cls(layout, state)
        if len(journal.records) > 1 or journal.torn or not journal.exists or not all(
                p.exists() for p in state.views(layout)):
            store._compact()
        return store

    def _compact(self) -> None:
        """Views made durable first, then the journal replaced by its base line; a kill
        in between leaves records that replay to the same views."""
        views = self.state.views(self.layout)
        replace_files([(path, dump_json(obj.to_json(), pretty=pretty)) for path, (obj, pretty) in views.items()],
                      durable=True)
        reset_journal(self.layout.journal, self.state.induced_at)
        self._journal_bytes = 0

    @classmethod
    async def aopen(cls, layout: OutputLayout, run_name: str) -> StateStore:
        return await asyncio.to_thread(cls.open, layout, run_name)

    async def commit_task(self, result: TaskResult, *, model: str, patch: str, experience: Experience | None,
                          injected: Sequence[str], trajectory: dict[str, Any]) -> None:
        """Record a finished task: its trajectory, then the journal record, then the views."""
        state = self.state
        uses: dict[str, list[int]] = {}
        if experience is not None and injected:
            state.memory.record_use(list(injected), experience.resolved)
            uses = {i: [wf.uses, wf.successes] for i in dict.fromkeys(injected) if (wf := state.memory.get(i))}
        record = {"kind": "task", "result": result.model_dump(mode="json"),
                  "prediction": {"model_name_or_path": model, "model_patch": patch},
                  "experience": experience.model_dump(mode="json") if experience is not None else None,
                  "uses": uses}
        state.checkpoint.record(result)
        state.preds.set(result.instance_id, model, patch)
        if experience is not None:
            state.buffer.append(experience)
        views = state.views(self.layout)
        if experience is None:
            del views[self.layout.buffer]
        if not uses:
            del views[self.layout.memory]
        # Serialising happens in the thread: nothing else touches this run's state
        # while the run awaits its commit.
        await asyncio.to_thread(self._write, record, views, (self.layout.trajectory(result.instance_id), trajectory))

    async def commit_induction(self, at: float, changed: bool) -> None:
        """Record an induction that ran (`at`: when it started), with memory as it left it."""
        self.state.induced_at = at
        record = {"kind": "induction", "at": at, "memory": self.state.memory.to_json() if changed else None}
        views = {self.layout.memory: (self.state.memory, True)} if changed else {}
        await asyncio.to_thread(self._write, record, views, None)

    def _write(self, record: dict[str, Any], views: dict[Path, tuple[Any, bool]],
               trajectory: tuple[Path, dict[str, Any]] | None) -> None:
        if trajectory is not None:  # not resume state, but a checkpointed task always has one
            replace_files([(trajectory[0], dump_json(trajectory[1], pretty=False))], durable=False)
        self._journal_bytes += append_record(self.layout.journal, record)
        replace_files([(path, dump_json(obj.to_json(), pretty=pretty)) for path, (obj, pretty) in views.items()],
                      durable=False)
        if self._journal_bytes > self.compact_bytes:
            self._compact()
