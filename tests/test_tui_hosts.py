"""The hosts view (f10, palette) and a pane saying which Docker host its task runs on."""

from __future__ import annotations

from awm_tui.engine.events import HostStatus, SandboxPlaced, TaskStarted
from awm_tui.tui.screens.hosts import HostsScreen
from tests.plugins.tui import inject, screen_text
from tests.test_tui_panes import make_app, start

URL = "tcp://127.0.0.1:24752"


def status(up: bool, in_use: int = 1) -> HostStatus:
    return HostStatus(run="", url=URL, up=up, in_use=in_use, capacity=4, exec_per_s=3.5, images=7,
                      free_bytes=12_300_000_000, error="" if up else "no answer to /_ping within 1.5 s")


async def test_pane_shows_its_host_and_when_it_goes_down():
    app, _ = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        await start(pilot, app, 0)
        await inject(pilot, [TaskStarted(run="alpha", instance_id="minicsv-3", index=1, total=4),
                             SandboxPlaced(run="alpha", instance_id="minicsv-3", host=URL), status(True)])
        text = screen_text(app)
        assert f"running task minicsv-3 (1/4) on {URL}" in text
        assert "(host DOWN)" not in text
        await inject(pilot, [status(False, 0)])
        text = screen_text(app)
        assert f"running task minicsv-3 (1/4) on {URL} (host DOWN)" in text
        assert f"✗ Docker host {URL} DOWN (no answer" in text  # and in its log

        await pilot.press("f10")
        await pilot.pause()
        assert isinstance(app.screen, HostsScreen)
        assert URL in screen_text(app) and "DOWN" in screen_text(app)
        await inject(pilot, [status(True, 2)])  # live: the open view follows the events
        text = screen_text(app)
        assert "2/4" in text and "12.3 GB" in text and "DOWN" not in text
        await pilot.press("escape")
        await pilot.pause()
        assert f"on {URL}" in screen_text(app) and "(host DOWN)" not in screen_text(app)


def test_with_several_workers_each_task_in_flight_names_its_own_host():
    """workers = 2, the tasks on two hosts: the pane names both, and marks only the one that went down."""
    from awm_tui.tui.run_view import RunView, apply_event, status_text

    other = "tcp://127.0.0.1:24753"
    view = RunView(workers=2)
    for event in [TaskStarted(run="alpha", instance_id="minicsv-3", index=1, total=4),
                  SandboxPlaced(run="alpha", instance_id="minicsv-3", host=URL),
                  TaskStarted(run="alpha", instance_id="minicsv-7", index=2, total=4),
                  SandboxPlaced(run="alpha", instance_id="minicsv-7", host=other),
                  status(False, 0)]:
        view = apply_event(view, event)
    text = status_text(view)
    assert f"minicsv-3 on {URL} (host DOWN)" in text, text
    assert f"minicsv-7 on {other}" in text and f"{other} (host DOWN)" not in text, text
    assert view.hosts == {URL, other}
    view = apply_event(view, status(True))
    assert "(host DOWN)" not in status_text(view)
