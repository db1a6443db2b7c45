"""Key health in the TUI: the pane's key line, the keys view (f7, palette), and the
low-credits warning — from injected events, and from the real engine and simulator."""

from __future__ import annotations

from textual.widgets import DataTable

from awm_tui.config.keys import key_identity, mask_key
from awm_tui.demo import DEMO_OPTIONS, DemoEnvironment, demo_key
from awm_tui.engine.events import CreditsLow, KeyHealth
from awm_tui.tui.app import AWMApp
from awm_tui.tui.screens.keys import KeysScreen
from tests.plugins.tui import (
    SECRET_KEY, RecordingFleet, fixed_events, inject, sample_config, screen_text, settle, wait_until,
)
from pydantic import SecretStr
from dataclasses import replace

MASKED = mask_key(SECRET_KEY)
IDENTITY = key_identity(SecretStr(SECRET_KEY))


def health(**fields) -> KeyHealth:
    base = dict(run="", identity=IDENTITY, masked=MASKED, runs=("alpha", "beta"), in_flight=1, limit=2,
                max_in_flight=32, calls=40, rate_limited=3, retry_after_s=1.5, credits_limit=5.0,
                credits_remaining=0.42, credits_usage=4.58, credits_checked_at=1.0, credits_low=True)
    base.update(fields)
    return KeyHealth(**base)  # type: ignore[arg-type]


async def test_a_keys_health_shows_in_each_of_its_panes_and_in_the_keys_view():
    fleet = RecordingFleet()
    app = AWMApp(sample_config(runs=2), fleet_factory=lambda config, sink: fleet)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        for pane in app.main_screen.panes:
            app.main_screen.show_pane(pane)
            await pilot.pause()
            await pilot.press("ctrl+s")
            await settle(app)
        assert [name for name, _ in fleet.started] == ["alpha", "beta"]
        assert "in flight" not in screen_text(app)          # no key line before the fleet reports one
        await inject(pilot, [*fixed_events("alpha"), health(),
                             CreditsLow(run="", identity=IDENTITY, masked=MASKED, remaining=0.42, limit=5.0,
                                        runs=("alpha", "beta"))])
        line = f"key {MASKED} · 1/2 in flight · held 1.5s · 429s 3 · $0.42/$5.00 LOW"
        for pane in app.main_screen.panes:
            assert pane.view.key is not None and pane.view.key.line() == line
        text = screen_text(app)
        assert line in text
        toasts = [(n.title, n.message) for n in app._notifications]
        assert (f"credits low on key {MASKED}", "$0.42 of $5.00 left (runs alpha, beta)") in toasts
        assert SECRET_KEY not in text
        await pilot.press("f7")
        await pilot.pause()
        assert isinstance(app.screen, KeysScreen)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 1
        assert table.get_row_at(0) == [MASKED, IDENTITY, "alpha, beta", "1/2", "0", "40", "3", "1.5s", "–",
                                       "$0.42 of $5.00 LOW"]
        await inject(pilot, [health(rate_limited=4, retry_after_s=0.0, in_flight=0)])   # live while open
        assert table.get_row_at(0)[6:8] == ["4", "–"]
        assert SECRET_KEY not in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main_screen


async def test_the_palette_lists_the_keys_view():
    fleet = RecordingFleet()
    app = AWMApp(sample_config(runs=1), fleet_factory=lambda config, sink: fleet)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "API keys" in titles
        await pilot.pause()


async def test_credits_running_low_on_the_simulator_show_in_the_pane(tmp_path):
    """The real engine reads the simulated key's credits ($0.50: under the $1 threshold)
    from the simulator's GET /key and the pane says so."""
    options = replace(DEMO_OPTIONS, key_credit_limit=0.5, rate_429=0.0)
    async with DemoEnvironment(tmp_path / "root", runs=1, limit=1, options=options) as demo:
        config = demo.config.model_copy(update={"runs": [r.model_copy(update={"sandbox": "local", "skip_eval": True})
                                                         for r in demo.config.runs]})
        app = AWMApp(config, output_root=tmp_path / "root")
        async with app.run_test(size=(160, 48)) as pilot:
            await app.panes_ready.wait()
            await pilot.press("ctrl+s")
            await settle(app)
            pane = app.main_screen.panes[0]
            await wait_until(pilot, lambda: pane.view.key is not None and pane.view.key.credits_low,
                             what="the key's low credits in the pane")
            text = screen_text(app)
            masked = mask_key(demo_key("a"))
            assert f"key {masked}" in text and "/$0.50 LOW" in text
            assert demo_key("a").get_secret_value() not in text
            await app.fleet.wait()   # type: ignore[union-attr]  # the real Fleet: let the run end
            app.relay.flush_events()
            await pilot.pause()
