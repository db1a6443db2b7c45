"""Resume performs an induction that was due when the last session stopped (issue 12, item 3).

A Ctrl-C (the run task cancelled) while the model is asked for workflows: the
induction never committed. The resumed run must induce before its next task —
which then gets the workflows an uninterrupted run gives it — or, when the
interrupted induction was the run's last act, before it ends.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import pytest

from awm_tui.engine.events import Event, InductionDone, StatusChanged, TaskFinished, TaskStarted
from tests.helpers.state_run import outcome, run_once

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def cancel_at_induction(which: int):
    seen = [0]

    def on_event(event: Event, run_task: asyncio.Task) -> None:
        if isinstance(event, StatusChanged) and event.phase == "inducing":
            seen[0] += 1
            if seen[0] == which:
                run_task.cancel()  # what Ctrl-C does to a run: the induction call is cut short
    return on_event


@pytest.mark.parametrize("which", [1, 2], ids=["first-induction", "final-induction"])
async def test_induction_interrupted_by_ctrl_c_is_done_on_resume(tmp_path: Path, which: int) -> None:
    reference = tmp_path / "reference"
    await run_once(reference)
    expected = outcome(reference)

    out = tmp_path / "out"
    first = await run_once(out, on_event=cancel_at_induction(which))
    assert sum(isinstance(e, StatusChanged) and e.phase == "inducing" for e in first) == which
    assert sum(isinstance(e, InductionDone) for e in first) == which - 1  # the interrupted one never finished

    resumed = await run_once(out)
    kinds = [type(e) for e in resumed if isinstance(e, (InductionDone, TaskStarted))]
    if which == 1:
        # induced before the next task, which gets the workflows
        assert kinds[:2] == [InductionDone, TaskStarted]
        first_task = next(e for e in resumed if isinstance(e, TaskStarted))
        assert first_task.injected_workflows
    else:
        assert kinds == [InductionDone]  # no task left: induced, then the run ends
    got = outcome(out)
    assert got["memory version"] == expected["memory version"] == 2
    assert got == expected



async def test_a_finished_run_lets_go_of_its_state(tmp_path: Path) -> None:
    # A long TUI session keeps every run it started; their buffers live on in the files only.
    runs: list = []
    held: list[weakref.ref] = []

    def on_event(event: Event, run_task: asyncio.Task) -> None:
        if isinstance(event, TaskFinished) and not held:
            held.append(weakref.ref(runs[0].buffer))

    await run_once(tmp_path / "out", limit=1, on_event=on_event, runs=runs)
    gc.collect()
    assert runs[0].checkpoint.done == 1 and held
    assert held[0]() is None, "the finished run still holds its buffer"
