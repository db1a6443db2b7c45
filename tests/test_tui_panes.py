"""The app driven by the Pilot, with engine events injected (no engine): panes,
forms, logs, layout, keys, commands."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from textual.widgets import Button, Input, Sparkline

from awm_tui.engine.events import LogLine, MetricsData, MetricsSnapshot, RunFinished
from awm_tui.tui.app import AWMApp
from awm_tui.tui.screens.memory import MemoryScreen
from awm_tui.tui.widgets.run_pane import RunPane
from tests.plugins.tui import (
    SECRET_KEY, FrozenClock, RecordingFleet, fixed_events, inject, sample_config, screen_text, settle,
    wait_until,
)


def make_app(runs=2, log_lines=2000, **kwargs) -> tuple[AWMApp, RecordingFleet]:
    fleet = RecordingFleet()
    app = AWMApp(sample_config(runs=runs, log_lines=log_lines), fleet_factory=lambda config, sink: fleet,
                 **kwargs)
    return app, fleet


def pane(app: AWMApp, index: int) -> RunPane:
    return app.main_screen.panes[index]


async def start(pilot, app: AWMApp, index: int) -> None:
    app.main_screen.show_pane(pane(app, index))
    await pilot.pause()
    await pilot.press("ctrl+s")
    await settle(app)
    await pilot.pause()


async def test_injected_events_show_as_figures():
    app, fleet = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        await start(pilot, app, 0)
        assert fleet.started == [("alpha", None)]
        await inject(pilot, fixed_events("alpha"))
        await pilot.pause()
        text = screen_text(app)
        assert "running task rangeset__rangeset-4 (4/5) step 3" in text
        assert "tasks 3/5 · resolved 2 (67%) · workflows 2" in text
        assert "evals/min 4.0 (3 total)" in text
        assert "conn open 2 · created 3 · reused 37" in text
        assert "LLM p50 0.42s p95 1.37s · retries 2 · 429s 1 · tokens 12.3k/1234 · $0.0036" in text
        assert pane(app, 0).query_one(Sparkline).data == [0.0, 1.0, 2.0, 2.5, 3.0, 2.0, 4.0]
        assert "runs 1/2 active" in text
        assert "127.0.0.1:8088" not in text
        await pilot.press("f3")  # per-host connections on demand
        await pilot.pause()
        assert "127.0.0.1:8088: open 2 · created 3 · reused 37" in screen_text(app)


async def test_a_running_pane_is_read_only_until_its_run_ends():
    """...but for limit, workers and budget, which the running run takes (Enter in the field)."""
    app, fleet = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        await start(pilot, app, 0)
        form = pane(app, 0).form
        assert all(w.disabled == (w.id not in ("limit", "workers", "budget")) for w in form.query("Input, Select"))
        workers = form.query_one("#workers", Input)
        workers.focus()
        workers.value = "4"
        await pilot.press("enter")
        await pilot.press("f6")
        await pilot.pause()
        assert fleet.controls == [("set_workers", "alpha", 4), ("pause", "alpha", None)]
        assert form.query_one("#start", Button).disabled and not form.query_one("#stop", Button).disabled
        await inject(pilot, [RunFinished(run="alpha", done=5, resolved=4)])
        await pilot.pause()
        assert not any(w.disabled for w in form.query("Input, Select"))
        assert "finished · 5 done, 4 resolved" in screen_text(app)


async def test_stop_asks_the_fleet():
    app, fleet = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        await start(pilot, app, 1)
        await pilot.press("ctrl+t")
        await settle(app)
        assert fleet.stopped == ["beta"]


async def test_log_is_batched_and_bounded():
    app, _ = make_app(log_lines=300)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        await start(pilot, app, 0)
        for i in range(5000):
            app.relay(LogLine(run="alpha", message=f"line {i}"))
        await pilot.pause(0.3)  # the relay's own 10 Hz flush
        await pilot.pause()
        log = pane(app, 0).log_view
        assert log.line_count <= 300
        assert log.lines[-1].endswith("line 4999")


async def test_a_hidden_pane_holds_lines_and_renders_them_when_shown():
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:  # narrow: one pane at a time
        await app.panes_ready.wait()
        await start(pilot, app, 1)
        app.main_screen.show_pane(pane(app, 0))
        await pilot.pause()
        await inject(pilot, [LogLine(run="beta", message=f"hidden {i}") for i in range(50)])
        await pilot.pause()
        beta = pane(app, 1).log_view
        assert beta.line_count == 0 and beta.waiting == 50
        await pilot.press("f8")  # next pane
        await pilot.pause()
        await pilot.pause()
        assert beta.waiting == 0 and beta.lines[-1].endswith("hidden 49")


async def test_a_key_is_only_ever_shown_masked():
    app, _ = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        key_field = pane(app, 0).form.query_one("#key", Input)
        key_field.focus()
        await pilot.pause()
        key_field.value = SECRET_KEY
        await pilot.press("enter")
        await pilot.pause()
        assert key_field.value == ""
        text = screen_text(app)
        assert "sk-or-v1-…cdef" in text
        assert SECRET_KEY not in text and SECRET_KEY[12:30] not in app.export_screenshot()
        await start(pilot, app, 0)  # the key goes to the engine as a SecretStr


async def test_duplicate_output_dir_is_an_error_and_blocks_start():
    app, fleet = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        beta = pane(app, 1)
        beta.form.query_one("#output", Input).value = "./outputs/alpha/"
        await pilot.pause()
        assert beta.form.query_one("#start", Button).disabled
        assert pane(app, 0).form.query_one("#start", Button).disabled
        assert "output directory already used by alpha" in screen_text(app)
        await start(pilot, app, 1)
        assert fleet.started == []
        beta.form.query_one("#output", Input).value = "outputs/beta"
        await pilot.pause()
        assert not beta.form.query_one("#start", Button).disabled


async def test_add_and_remove_panes_with_keys():
    app, _ = make_app(runs=1)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.panes_ready.wait()
        await pilot.press("ctrl+n", "ctrl+n")
        await pilot.pause()
        names = [p.values().name for p in app.main_screen.panes]
        assert names == ["alpha", "run_1", "run_2"]
        assert pane(app, 2).values().output == "outputs/run_2"
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert [p.values().name for p in app.main_screen.panes] == ["alpha", "run_1"]


async def test_layout_is_a_grid_when_wide_and_tabs_when_narrow():
    app, _ = make_app(runs=3)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        await pilot.pause()
        assert all(p.display for p in app.main_screen.panes)
        assert not app.main_screen.query_one("#pane-tabs").display
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        assert [p.display for p in app.main_screen.panes].count(True) == 1
        assert app.main_screen.query_one("#pane-tabs").display


async def test_a_pane_can_be_maximised():
    app, _ = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        await pilot.pause()
        await pilot.press("f2")
        await pilot.pause()
        assert app.main_screen.maximized is pane(app, 0)
        await pilot.press("f2")
        await pilot.pause()
        assert app.main_screen.maximized is None


async def test_quit_with_runs_active_asks_then_stops_them():
    app, fleet = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.panes_ready.wait()
        await start(pilot, app, 0)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert "1 run(s) active: alpha" in screen_text(app)
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and fleet.stopped == []
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("y")
        await settle(app)
        await pilot.pause()
    assert fleet.stopped == ["alpha"]
    assert app.return_code == 0


async def test_palette_lists_the_actions():
    app, _ = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        titles = {c.title for c in app.get_system_commands(app.screen)}
        pane_commands = {"Add pane", "Remove pane", "Start run", "Stop run", "Start all runs",
                         "Memory browser", "Open output directory", "Maximise pane"}
        assert pane_commands | {"Switch theme"} <= titles
        # Over the memory browser the pane commands would act on panes the user cannot see.
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: isinstance(app.screen, MemoryScreen), what="the memory browser")
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert "Switch theme" in titles and not titles & pane_commands


@pytest.mark.parametrize("theme", ["awm-light", "awm-ansi"])
async def test_theme_is_chosen_by_flag(theme):
    app, _ = make_app(theme=theme)
    async with app.run_test(size=(80, 24)):
        await app.panes_ready.wait()
        assert app.theme == theme


async def test_unknown_theme_falls_back_with_a_notice():
    app, _ = make_app(theme="no-such-theme")
    async with app.run_test(size=(80, 24)) as pilot:
        await app.panes_ready.wait()
        await pilot.pause()
        assert app.theme == "awm-dark"
        assert any("no-such-theme" in n.message for n in app._notifications)


async def test_fleet_bar_totals_and_elapsed_time():
    clock = FrozenClock()
    app, _ = make_app(clock=clock)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        await start(pilot, app, 0)
        await start(pilot, app, 1)
        clock.now += 3723
        for run, rate, cost in (("alpha", 2.0, 0.5), ("beta", 1.5, 0.25)):
            await inject(pilot, [MetricsSnapshot(run=run, metrics=MetricsData(evaluations_per_minute=rate, cost=cost))])
        await pilot.pause()
        app.refresh_fleet_bar()
        await pilot.pause()
        text = screen_text(app)
        assert "runs 2/2 active │ evals/min 3.5 │ conn 0 │ cost $0.7500 │ ⏱ 01:02:03" in text


async def test_a_key_from_the_profile_is_shown_masked_not_as_missing():
    fleet = RecordingFleet()
    config = sample_config(runs=1)
    config.llm["llm.sim"] = config.llm["llm.sim"].model_copy(update={"api_key": SecretStr(SECRET_KEY)})
    app = AWMApp(config, fleet_factory=lambda config, sink: fleet)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        form = pane(app, 0).form
        key_field = form.query_one("#key", Input)
        assert key_field.placeholder == "sk-or-v1-…cdef from the profile (type to replace)"
        form.query_one("#profile").value = "llm.kimi-k2"   # a profile without a key
        await pilot.pause()
        assert key_field.placeholder == "API key, env:VAR or file:PATH"
        assert SECRET_KEY not in app.export_screenshot()
