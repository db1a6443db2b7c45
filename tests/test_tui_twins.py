"""Twins in the control center: a twin has a pane of its own, started with its run's."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from textual.widgets import Checkbox, Input

from awm_tui.config.models import RunConfig
from awm_tui.demo import DemoEnvironment
from awm_tui.servers.sim_llm import SimOptions
from awm_tui.tui.app import AWMApp
from tests.plugins.tui import (
    SECRET_KEY, RecordingFleet, sample_config, screen_text, settle, type_into, wait_until,
)

TWIN_KEY = "sk-or-v1-" + "fedcba9876543210" * 4


def make_app(**alpha: object) -> tuple[AWMApp, RecordingFleet]:
    config = sample_config(runs=2)
    config.runs[0] = RunConfig.model_validate({**config.runs[0].model_dump(), **alpha})
    fleet = RecordingFleet()
    return AWMApp(config, fleet_factory=lambda config, sink: fleet), fleet


def names(app: AWMApp) -> list[str]:
    return [p.values().name for p in app.main_screen.panes]


async def start_current(pilot, app: AWMApp, index: int) -> None:
    app.main_screen.show_pane(app.main_screen.panes[index])
    await pilot.pause()
    await pilot.press("ctrl+s")
    await settle(app)
    await pilot.pause()


async def test_a_config_twin_has_its_pane_and_starts_with_its_run():
    app, fleet = make_app(twin=True, twin_api_key=SecretStr(TWIN_KEY))
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        assert names(app) == ["alpha", "alpha-nomem", "beta"]
        twin_pane = app.main_screen.panes[1]
        assert "no memory" in screen_text(app) and not twin_pane.query(Checkbox)
        assert app.main_screen.panes[0].form.query_one("#twin", Checkbox).value
        await start_current(pilot, app, 0)
        await wait_until(pilot, lambda: len(fleet.resolved) == 2, what="the pair started")
        by_name = {r.run.name: r for r in fleet.resolved}
        run, twin = by_name["alpha"], by_name["alpha-nomem"]
        assert run.run.memory and run.run.twin and not twin.run.memory and not twin.run.twin
        assert twin.run.output_dir == Path(f"{run.run.output_dir}-nomem")
        assert twin.api_key is not None and twin.api_key.get_secret_value() == TWIN_KEY  # its own key
        assert twin_pane.running and twin_pane.run_name == "alpha-nomem"
        assert TWIN_KEY not in screen_text(app)


async def test_ticking_twin_makes_the_twin_pane_with_the_panes_key():
    app, fleet = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        beta = app.main_screen.panes[1]
        key_field = beta.form.query_one("#key", Input)
        key_field.focus()
        key_field.value = SECRET_KEY
        await pilot.press("enter")
        beta.form.query_one("#twin", Checkbox).value = True
        await pilot.pause()
        await start_current(pilot, app, 1)
        await wait_until(pilot, lambda: len(fleet.resolved) == 2, what="the pair started")
        assert names(app) == ["alpha", "beta", "beta-nomem"]
        twin = next(r for r in fleet.resolved if r.run.name == "beta-nomem")
        assert not twin.run.memory and str(twin.run.output_dir).endswith("beta-nomem")
        assert twin.api_key is not None and twin.api_key.get_secret_value() == SECRET_KEY  # the pane's
        assert [n for n, _ in fleet.started].count("beta-nomem") == 1


class RefusingFleet(RecordingFleet):
    """Refuses `alpha` as the real Fleet refuses a run whose directory another holds."""

    async def start(self, resolved):
        from awm_tui.engine.fleet import RunRefused

        if resolved.run.name == "alpha":
            raise RunRefused("output directory outputs/alpha is locked by another run")
        await super().start(resolved)


async def test_a_refused_run_starts_no_twin():
    config = sample_config(runs=1)
    config.runs[0] = RunConfig.model_validate({**config.runs[0].model_dump(), "twin": True})
    fleet = RefusingFleet()
    app = AWMApp(config, fleet_factory=lambda config, sink: fleet)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        await start_current(pilot, app, 0)
        await pilot.pause(0.2)
        assert fleet.started == [] and not app.main_screen.panes[1].running
        alpha = app.main_screen.panes[0]
        assert alpha.view.phase == "failed" and "locked" in alpha.view.reason


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_the_twin_pane_follows_its_runs_live_limit_and_workers(tmp_path):
    """Enter in the run's limit or workers field reaches its running twin (the engine), and the
    twin's pane shows the values it took in its own fields."""
    async with DemoEnvironment(tmp_path / "root", runs=1, limit=6, twin=True,
                               options=SimOptions(seed=3, latency=0.3)) as demo:
        app = AWMApp(demo.config, output_root=tmp_path / "root")
        async with app.run_test(size=(160, 48)) as pilot:
            await app.panes_ready.wait()
            run_pane, twin_pane = app.main_screen.panes
            assert twin_pane.values().name == "demo-a-nomem"
            await start_current(pilot, app, 0)
            await wait_until(pilot, lambda: twin_pane.view.phase == "running" and run_pane.view.phase == "running",
                             timeout=60, what="the pair under way")
            await type_into(pilot, run_pane.form.query_one("#limit", Input), "2")
            await pilot.press("enter")
            await type_into(pilot, run_pane.form.query_one("#workers", Input), "2")
            await pilot.press("enter")
            twin_form = twin_pane.form
            await wait_until(pilot, lambda: (twin_form.query_one("#limit", Input).value,
                                             twin_form.query_one("#workers", Input).value) == ("2", "2"),
                             what="the twin pane's fields to follow")
            assert (twin_pane.view.limit, twin_pane.view.workers) == (2, 2)
            assert app.fleet is not None
            assert app.fleet.handles["demo-a-nomem"].awm.control.limit == 2  # type: ignore[attr-defined]
            await pilot.press("ctrl+q")
            await pilot.pause()
