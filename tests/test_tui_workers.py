"""Live control from a pane, against the real engine and the simulated model: workers,
pause and resume (f6), and a limit changed while the run goes (Enter in the field)."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Input

from awm_tui.demo import DemoEnvironment
from awm_tui.servers.sim_llm import SimOptions
from awm_tui.tui.app import AWMApp
from awm_tui.tui.run_view import RunView, apply_event, status_text
from awm_tui.engine.events import AgentStep, RunControlled, RunStarted, TaskStarted
from tests.plugins.tui import run_finished, screen_text, type_into, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def events_of(out) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


async def test_pause_resume_and_a_new_limit_from_the_pane(tmp_path):
    options = SimOptions(seed=3, latency=0.3)
    async with DemoEnvironment(tmp_path / "root", runs=1, limit=6, options=options) as demo:
        app = AWMApp(demo.config, output_root=tmp_path / "root")
        async with app.run_test(size=(160, 48)) as pilot:
            await app.panes_ready.wait()
            pane = app.main_screen.panes[0]
            await type_into(pilot, pane.form.query_one("#workers", Input), "2")
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: len(pane.view.in_flight) == 2, timeout=60, what="2 tasks in flight")
            assert "running 2 of 2 workers: " in screen_text(app)
            awm = app.fleet.handles["demo-a"].awm
            await pilot.press("f6")  # pause: the two in flight finish, none starts
            await wait_until(pilot, lambda: pane.view.paused and not awm.in_flight and not pane.view.in_flight,
                             timeout=90, what="the paused run to drain")
            await wait_until(pilot, lambda: "paused · " in screen_text(app), what="the pane to say paused")
            await pilot.pause(0.8)  # events.jsonl is written every 0.5 s
            done_when_paused = awm.checkpoint.done  # every task started so far, no more
            assert done_when_paused == len([e for e in events_of(awm.out.path) if e["kind"] == "task_started"])
            assert 2 <= done_when_paused < 5
            new_limit = done_when_paused + 1
            limit = pane.form.query_one("#limit", Input)
            assert not limit.disabled  # live while the run goes; the other fields are not
            assert pane.form.query_one("#output", Input).disabled
            await type_into(pilot, limit, str(new_limit))
            await pilot.press("enter")
            await wait_until(pilot, lambda: pane.view.limit == new_limit, what="the run to take the new limit")
            await pilot.press("f6")  # resume
            await run_finished(pilot, app)
            assert (pane.view.phase, pane.view.done) == ("finished", new_limit)
            await pilot.press("ctrl+q")
            await pilot.pause()
    out = tmp_path / "root" / "demo-a"
    assert len(json.loads((out / "checkpoint.json").read_text())["finished"]) == new_limit
    events = events_of(out)
    controls = [(i, e) for i, e in enumerate(events) if e["kind"] == "run_control"]
    paused_at = next(i for i, e in controls if e["paused"])
    resumed_at = next(i for i, e in controls if i > paused_at and not e["paused"])
    assert [e["kind"] for e in events[paused_at:resumed_at]].count("task_started") == 0
    assert any(e["limit"] == new_limit for _, e in controls)
    starts = [e["instance_id"] for e in events if e["kind"] == "task_started"]
    assert len(starts) == new_limit and len(set(starts)) == new_limit


def test_the_pane_lists_every_task_in_flight():
    view = RunView()
    for event in (RunStarted(run="r", output_dir="o", limit=5, model="m", sandbox="docker", tasks_total=5,
                             workers=3),
                  TaskStarted(run="r", instance_id="a-1", index=1, total=5),
                  TaskStarted(run="r", instance_id="b-2", index=2, total=5, memory_version=1),
                  AgentStep(run="r", instance_id="a-1", step=4, command="ls", exit_code=0)):
        view = apply_event(view, event)
    assert status_text(view) == "running 2 of 3 workers: a-1 step 4 · b-2"
    assert view.in_flight["b-2"].memory_version == 1
    paused = apply_event(view, RunControlled(run="r", paused=True, limit=4, workers=3, tasks_total=4))
    assert status_text(paused) == "paused · finishing 2 in flight: a-1 step 4 · b-2"
    assert (paused.limit, paused.tasks_total) == (4, 4)
