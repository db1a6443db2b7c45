"""A run's resolve curve: cumulative resolved over tasks done, inductions marked.

The one derivation both faces draw (the TUI's curves, `awm-tui report`): the x axis
is the checkpoint's finishing order (its commit order, which is completion order
however many tasks were in flight), the y axis the resolved count so far, and each
change of memory sits after the tasks that had finished when it happened. A run and
its no-memory twin (`config.twins`) give two curves over the same tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

from .store import RunState


@dataclass(frozen=True, slots=True)
class InductionMark:
    after_tasks: int
    """Tasks finished when memory changed: the x where it is marked (0 = before the first)."""
    version: int
    """The memory version it produced."""
    mode: str
    """`llm`, `rule` or `manual`."""
    at: float


@dataclass(frozen=True, slots=True)
class ResolveCurve:
    instance_ids: tuple[str, ...]
    """Finished tasks in the order they finished; task i (0-based) is at x = i + 1."""
    resolved: tuple[int, ...]
    """Cumulative resolved after each of them."""
    inductions: tuple[InductionMark, ...]

    @property
    def done(self) -> int:
        return len(self.instance_ids)

    @property
    def total_resolved(self) -> int:
        return self.resolved[-1] if self.resolved else 0

    def points(self) -> list[tuple[int, int]]:
        """(tasks done, resolved so far), from (0, 0): the steps a plot draws."""
        return [(0, 0), *((i, y) for i, y in enumerate(self.resolved, 1))]

    def resolved_at(self, tasks_done: int) -> int:
        """Resolved after the first `tasks_done` tasks (an induction mark's y)."""
        return self.resolved[min(tasks_done, self.done) - 1] if tasks_done > 0 and self.resolved else 0


def resolve_curve(state: RunState) -> ResolveCurve:
    """The curve of a run's committed state (`load_state`, or a live run's `StateStore.state`)."""
    results = list(state.checkpoint.finished.values())
    cumulative, count = [], 0
    for result in results:
        count += int(result.resolved)
        cumulative.append(count)
    finished_at = [r.finished_at for r in results]
    marks = tuple(InductionMark(after_tasks=sum(1 for t in finished_at if t <= record.at),
                                version=record.version, mode=record.mode, at=record.at)
                  for record in state.memory.history)
    return ResolveCurve(tuple(r.instance_id for r in results), tuple(cumulative), marks)
