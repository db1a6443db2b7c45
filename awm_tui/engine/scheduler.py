"""Up to `workers` tasks of one run in flight, started in dataset order, under live control.

The rule a researcher can state in one sentence: tasks start in dataset order, at most
`workers` at once; each sees the memory version current when it starts; an induction
that falls due (every `induce_every` successes, in completion order) runs, one at a
time, before the next task starts. With `workers = 1` that is the sequential AWM loop.

`Scheduler.run` starts and collects; what a task is and what its end means belongs to
the caller (`AWMRun`). `RunControl` is what a face changes while the run goes: pause
(the tasks in flight finish, none starts), resume, the limit and the workers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RunControl:
    """Pause, limit and workers of a running run; each change wakes the scheduler."""

    def __init__(self, *, limit: int, workers: int) -> None:
        self.limit, self.workers = limit, workers
        self.paused = False
        self._changed = asyncio.Event()

    def pause(self) -> None:
        self.paused = True
        self._changed.set()

    def resume(self) -> None:
        self.paused = False
        self._changed.set()

    def set_limit(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self._changed.set()

    def set_workers(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self._changed.set()

    async def changed(self) -> None:
        await self._changed.wait()
        self._changed.clear()


@dataclass
class InFlight:
    """One task under way, for the status a face shows (SIGUSR1, the pane)."""

    instance_id: str
    index: int
    memory_version: int
    started: float = field(default_factory=time.monotonic)
    step: int = 0
    phase: str = "running"


@dataclass(frozen=True)
class TaskStatus:
    instance_id: str
    index: int
    step: int
    phase: str
    memory_version: int
    elapsed_s: float


@dataclass(frozen=True)
class RunStatus:
    """A point-in-time status of one run: what batch mode prints on SIGUSR1."""

    name: str
    phase: str
    paused: bool
    done: int
    resolved: int
    errors: int
    limit: int
    workers: int
    tasks_total: int
    memory_version: int
    in_flight: tuple[TaskStatus, ...]
    last_call_latency_s: float | None
    """The latest model call's latency (any task of the run)."""


class Scheduler(Generic[T]):
    """Runs `start(item)` for the items in order, at most `control.workers` at once and none
    while paused; `finished(item, task)` is awaited for each as it ends, one at a time, in
    completion order, and may raise to end the run. Leaving `run` by any exception (a
    cancel included) cancels and awaits whatever is in flight."""

    def __init__(self, control: RunControl, key: Callable[[T], str],
                 start: Callable[[T], Coroutine[Any, Any, Any]],
                 finished: Callable[[T, asyncio.Task], Awaitable[None]],
                 paused: Callable[[], None] = lambda: None) -> None:
        self.control, self.key, self.start, self.finished = control, key, start, finished
        self.paused = paused
        """Called when a pause has taken hold: nothing in flight any more."""
        self.running: dict[asyncio.Task, T] = {}

    async def run(self, items: Callable[[], Sequence[T]]) -> None:
        """`items()` is asked again after every change: a new limit changes it."""
        started: set[str] = set()
        try:
            while True:
                pending = [item for item in items() if self.key(item) not in started]
                while not self.control.paused and pending and len(self.running) < self.control.workers:
                    item = pending.pop(0)
                    started.add(self.key(item))
                    task = asyncio.create_task(self.start(item), name=f"task-{self.key(item)}")
                    self.running[task] = item
                if not self.running and (not pending or not self.control.paused):
                    return
                if not self.running:
                    self.paused()
                waiter = asyncio.create_task(self.control.changed())
                try:
                    done, _ = await asyncio.wait({*self.running, waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                order = {t: n for n, t in enumerate(self.running)}  # several at once: in start order
                for task in sorted((t for t in done if t in self.running), key=order.__getitem__):
                    await self.finished(self.running.pop(task), task)
        finally:
            await self.cancel_all()

    async def cancel_all(self) -> None:
        running = list(self.running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        self.running.clear()
