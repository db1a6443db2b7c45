"""A run's state as one transaction per task: load it, commit a task or an induction.

`load_state` is the one way to read a run's state: the four views (memory.json,
buffer.json, checkpoint.json, preds.json) with the journal's records replayed
onto them (journal.py says why that is exact). `StateStore` is the one writer:
each commit appends one fsynced journal record — the commit point — and the
views are rewritten from the committed state soon after, each by an atomic rename
without fsync (a kill cannot tear them; the journal is what is durable). Opening a
store under the run's lock compacts: the views are made durable, the journal
shrinks to its base line.
"""

from __future__ import annotations

import asyncio
import logging
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
log = logging.getLogger(__name__)


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
            pred, experience = record["prediction"], record.get("experience")
            self.record_task(TaskResult.model_validate(record["result"]), pred["model_name_or_path"],
                             pred["model_patch"], None if experience is None else Experience.model_validate(experience),
                             record.get("uses") or {})
        elif kind == "induction":
            if record.get("memory") is not None:
                self.memory = Memory.model_validate(record["memory"])
            self.induced_at = record["at"]

    def record_task(self, result: TaskResult, model: str, patch: str, experience: Experience | None,
                    uses: dict[str, list[int]]) -> None:
        """A committed task, live or replayed: the same change either way."""
        self.checkpoint.record(result)
        self.preds.set(result.instance_id, model, patch)
        if experience is not None:
            self.buffer.append(experience)
        for wf_id, (count, successes) in uses.items():
            wf = self.memory.get(wf_id)
            if wf is not None:
                wf.uses, wf.successes = count, successes

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
    """The one writer of a run's state files (the run holds the directory's lock).

    A commit appends its journal record (the trajectory file first) and only then
    changes the in-memory state; the views are rewritten from that state at most
    `view_delay` after a commit, off the run's path, and at once when the run closes.
    One lock orders commits and view writes, so a view never holds what the journal
    does not.
    """

    compact_bytes = 8 * 2**20
    """A journal this big is compacted at the next view write: a long run with a large
    memory (each induction record holds all of it) keeps it bounded."""
    view_delay = 1.0
    """Seconds the views may lag the journal while the run goes on: commits closer
    together share one rewrite. The engine's readers replay the journal."""

    def __init__(self, layout: OutputLayout, state: RunState) -> None:
        self.layout, self.state = layout, state
        self._journal_bytes = 0
        self._dirty: set[Path] = set()
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task | None = None
        self._flusher_waiting = False

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
            store._write_views(store._texts(set(state.views(layout))), compact=True)
        return store

    @classmethod
    async def aopen(cls, layout: OutputLayout, run_name: str) -> StateStore:
        return await asyncio.to_thread(cls.open, layout, run_name)

    # -- commits ------------------------------------------------------------------

    async def commit_task(self, result: TaskResult, *, model: str, patch: str, experience: Experience | None,
                          injected: Sequence[str], trajectory: dict[str, Any]) -> None:
        """Record a finished task: all of it, or (killed before its record is on disk) none."""
        def prepare() -> tuple[dict[str, Any], set[Path], Callable[[], None]]:
            # Under the commit lock: tasks finishing together each count on the other's uses.
            uses = self.state.memory.counted_use(list(injected), experience.resolved) if experience else {}
            record = {"kind": "task", "result": result.model_dump(mode="json"),
                      "prediction": {"model_name_or_path": model, "model_patch": patch},
                      "experience": experience.model_dump(mode="json") if experience is not None else None,
                      "uses": uses}
            dirty = {self.layout.preds, self.layout.checkpoint}
            dirty |= {self.layout.buffer} if experience is not None else set()
            dirty |= {self.layout.memory} if uses else set()
            return record, dirty, lambda: self.state.record_task(result, model, patch, experience, uses)

        await self._commit(prepare, (self.layout.trajectory(result.instance_id), trajectory))

    async def commit_induction(self, at: float, changed: bool = False, *,
                               change: Callable[[], bool] | None = None) -> bool:
        """Record an induction that ran (`at`: when it started) with memory as it left it.
        `change`, called under the commit lock, changes `state.memory` and says whether it did
        (so no task's use counts land between the change and the memory the record holds);
        without it the caller has just changed memory (`changed`), nothing awaited in between.
        Returns whether memory changed."""
        def prepare() -> tuple[dict[str, Any], set[Path], Callable[[], None]]:
            nonlocal changed
            if change is not None:
                changed = change()
            record = {"kind": "induction", "at": at, "memory": self.state.memory.to_json() if changed else None}

            def apply() -> None:
                self.state.induced_at = at

            return record, {self.layout.memory} if changed else set(), apply

        await self._commit(prepare, None)
        return changed

    async def _commit(self, prepare: Callable[[], tuple[dict[str, Any], set[Path], Callable[[], None]]],
                      trajectory: tuple[Path, Any] | None) -> None:
        async with self._lock:
            record, dirty, apply = prepare()
            write = asyncio.ensure_future(asyncio.to_thread(self._append, record, trajectory))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                # Stopped mid-commit: the write goes on in its thread; let it end, so the
                # state here says what the journal says, then stop.
                await asyncio.gather(write, return_exceptions=True)
                if write.exception() is None:
                    apply()
                    self._dirty |= dirty
                raise
            apply()
            self._dirty |= dirty
        self._schedule_views()

    def _append(self, record: dict[str, Any], trajectory: tuple[Path, Any] | None) -> None:
        if trajectory is not None:  # not resume state, but a checkpointed task always has one
            replace_files([(trajectory[0], dump_json(trajectory[1], pretty=False))], durable=False)
        self._journal_bytes += append_record(self.layout.journal, record)

    # -- views ----------------------------------------------------------------------

    def _schedule_views(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._views_later())

    async def _views_later(self) -> None:
        self._flusher_waiting = True
        try:
            await asyncio.sleep(self.view_delay)
        finally:
            self._flusher_waiting = False
        await self._write_views_or_warn()

    async def _write_views_or_warn(self) -> None:
        try:
            await self.write_views()
        except OSError as exc:  # the journal holds the state; the next flush (or open) retries
            log.warning("%s: state views not rewritten (%s); the journal has every commit",
                        self.layout.path, exc)

    async def write_views(self) -> None:
        """Rewrite the views that changed (and compact a big journal)."""
        async with self._lock:
            compact = self._journal_bytes > self.compact_bytes
            dirty = set(self.state.views(self.layout)) if compact else self._dirty
            if not dirty:
                return
            texts = self._texts(dirty)  # on the loop: the state does not change under it
            self._dirty = set()
            try:
                await asyncio.shield(asyncio.to_thread(self._write_views, texts, compact))
            except OSError:
                self._dirty |= dirty
                raise

    async def aclose(self) -> None:
        """Bring the views up to date (the run ends or stops)."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None and self._flusher_waiting:
            flusher.cancel()
        if flusher is not None:
            await asyncio.gather(flusher, return_exceptions=True)
        await self._write_views_or_warn()  # a run's end is no place to fail for a view

    def _texts(self, paths: set[Path]) -> list[tuple[Path, str]]:
        return [(path, dump_json(obj.to_json(), pretty=pretty))
                for path, (obj, pretty) in self.state.views(self.layout).items() if path in paths]

    def _write_views(self, texts: list[tuple[Path, str]], compact: bool) -> None:
        """Compacting: views durable first, then the journal replaced by its base line; a
        kill in between leaves records that replay to the same views."""
        replace_files(texts, durable=compact)
        if compact:
            reset_journal(self.layout.journal, self.state.induced_at)
            self._journal_bytes = 0
