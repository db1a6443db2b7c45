"""Snapshots of the main screen, idle and running on fixed injected events.

Clocks are frozen (the fleet bar's elapsed time via FrozenClock, log times via
fixed event timestamps in UTC), the cursor does not blink, animations are off.
Review a changed SVG before accepting it with `--snapshot-update`.
"""

from __future__ import annotations

import time

import pytest
from textual.widgets import Input

from awm_tui.tui.app import AWMApp
from tests.plugins.tui import (
    SECRET_KEY, FrozenClock, RecordingFleet, fixed_events, inject, sample_config, screen_text, settle,
)

SIZES = [(80, 24), (160, 48)]
THEMES = ["awm-dark", "awm-ansi"]


@pytest.fixture(autouse=True)
def stable_world(monkeypatch, tmp_path):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(tmp_path)  # output dirs are relative: none of them exist here
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    yield
    monkeypatch.undo()
    time.tzset()


def make_app(theme: str) -> AWMApp:
    fleet = RecordingFleet()
    return AWMApp(sample_config(), theme=theme, fleet_factory=lambda config, sink: fleet,
                  clock=FrozenClock())


async def steady(pilot) -> None:
    app = pilot.app
    await app.panes_ready.wait()
    for field in app.query(Input):
        field.cursor_blink = False
    app.main_screen.show_pane(app.main_screen.panes[0])
    await pilot.pause()


async def idle(pilot) -> None:
    await steady(pilot)
    assert "alpha" in screen_text(pilot.app)


async def running(pilot) -> None:
    await steady(pilot)
    app = pilot.app
    key = app.main_screen.panes[0].form.query_one("#key", Input)
    key.focus()
    key.value = SECRET_KEY
    await pilot.press("ctrl+s")  # Start takes the key out of the field first
    await settle(app)
    app._clock.now += 754  # the fleet bar then shows 00:12:34
    await inject(pilot, fixed_events("alpha"))
    app.refresh_fleet_bar()
    app.main_screen.panes[0].form.query_one("#name", Input).focus()
    await pilot.pause()
    svg = app.export_screenshot()
    assert SECRET_KEY not in svg and SECRET_KEY[9:25] not in svg
    assert "sk-or-v1-…cdef" in screen_text(app) or app.size.width < 100


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen_idle(snap_compare, theme, size):
    assert snap_compare(make_app(theme), terminal_size=size, run_before=idle)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen_running(snap_compare, theme, size):
    assert snap_compare(make_app(theme), terminal_size=size, run_before=running)
