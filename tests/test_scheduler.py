"""The scheduler alone: order, workers, follow-ups (inductions) holding their worker, control."""

from __future__ import annotations

import asyncio

import pytest

from awm_tui.engine.scheduler import RunControl, Scheduler


class Log:
    """Starts and ends of items and follow-ups, in the order they happened."""

    def __init__(self, durations: dict[str, float], follow_after: set[str] = frozenset(),
                 follow_s: float = 0.2) -> None:
        self.durations, self.follow_after, self.follow_s = durations, follow_after, follow_s
        self.marks: list[str] = []
        self.running = 0
        self.most = 0

    async def start(self, item: str) -> str:
        self.marks.append(f"start {item}")
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.durations[item])
        finally:
            self.running -= 1
        return item

    async def follow(self, item: str) -> None:
        self.marks.append(f"induce after {item}")
        await asyncio.sleep(self.follow_s)
        self.marks.append(f"induced after {item}")

    async def finished(self, item: str, task: asyncio.Task):
        self.marks.append(f"end {item}")
        return self.follow(item) if item in self.follow_after else None

    def scheduler(self, control: RunControl) -> Scheduler[str]:
        return Scheduler(control, lambda item: item, self.start, self.finished)


async def test_one_worker_is_the_sequential_loop_and_waits_for_the_induction() -> None:
    log = Log({"a": 0.01, "b": 0.01, "c": 0.01}, follow_after={"a"})
    await log.scheduler(RunControl(limit=3, workers=1)).run(lambda: ["a", "b", "c"])
    assert log.marks == ["start a", "end a", "induce after a", "induced after a",
                         "start b", "end b", "start c", "end c"]


async def test_an_induction_holds_only_the_worker_of_the_task_that_made_it_due() -> None:
    log = Log({"a": 0.01, "b": 0.05, "c": 0.01, "d": 0.01}, follow_after={"a"}, follow_s=0.3)
    await log.scheduler(RunControl(limit=4, workers=2)).run(lambda: ["a", "b", "c", "d"])
    marks = log.marks
    # b's worker goes on with c and d while a's worker induces.
    assert marks.index("start c") < marks.index("induced after a")
    assert marks.index("start d") < marks.index("induced after a")
    assert [m for m in marks if m.startswith("start")] == ["start a", "start b", "start c", "start d"]
    assert log.most == 2


async def test_pause_finishes_what_is_in_flight_and_a_new_limit_is_taken() -> None:
    log = Log({k: 0.05 for k in "abcdef"})
    control = RunControl(limit=6, workers=2)
    items = list("abcdef")
    paused = asyncio.Event()
    scheduler = Scheduler(control, lambda i: i, log.start, log.finished, paused=paused.set)
    runner = asyncio.create_task(scheduler.run(lambda: items[:control.limit]))
    await asyncio.sleep(0.01)
    control.pause()
    await asyncio.wait_for(paused.wait(), 2)  # called once nothing is in flight
    assert log.marks == ["start a", "start b", "end a", "end b"]
    control.set_limit(3)
    control.resume()
    await asyncio.wait_for(runner, 2)
    assert [m for m in log.marks if m.startswith("start")] == ["start a", "start b", "start c"]


async def test_a_failure_cancels_everything_in_flight() -> None:
    log = Log({"a": 0.01, "b": 5.0, "c": 5.0})

    async def finished(item: str, task: asyncio.Task):
        raise RuntimeError(f"{item} failed")

    scheduler = Scheduler(RunControl(limit=3, workers=3), lambda i: i, log.start, finished)
    with pytest.raises(RuntimeError, match="a failed"):
        await asyncio.wait_for(scheduler.run(lambda: ["a", "b", "c"]), 2)
    assert scheduler.running == {} and log.running == 0  # b and c were cancelled and awaited


async def test_more_workers_start_more_tasks_at_once() -> None:
    log = Log({k: 0.2 for k in "abcdef"})
    control = RunControl(limit=6, workers=1)
    runner = asyncio.create_task(log.scheduler(control).run(lambda: list("abcdef")))
    await asyncio.sleep(0.05)
    assert log.running == 1
    control.set_workers(3)
    await asyncio.sleep(0.05)
    assert log.running == 3  # at once, not after the task in flight ends
    await asyncio.wait_for(runner, 3)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        control.set_workers(0)
