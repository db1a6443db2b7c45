"""A pane's budget field: prefilled from [[runs]], checked as typed, taken by Start, and live
(Enter in it changes the running run's budget). Against the real engine and the simulated
model with prices, as in test_budgets; the checks against a recording fleet."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Button, Input

from awm_tui.config.models import AppConfig, EvalConfig, RunConfig
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions
from awm_tui.tui.app import AWMApp
from awm_tui.tui.widgets.pane_stats import budget_line
from awm_tui.tui.widgets.run_pane import RunPane
from tests.plugins.tui import RecordingFleet, sample_config, screen_text, settle, type_into, wait_until
from tests.test_budgets import IDS, KEY_A, PRICES, a_run, profile


def sim_config(sim: SimLLMServer, tmp_path: Path, **run: object) -> AppConfig:
    return AppConfig(llm={"llm.sim": profile(sim)}, eval=EvalConfig(mode="local"),
                     runs=[a_run(tmp_path, "capped", api_key=KEY_A, **run)])


def budget_field(pane: RunPane) -> Input:
    return pane.form.query_one("#budget", Input)


async def ended(pilot, pane: RunPane) -> None:
    await wait_until(pilot, lambda: not pane.running and pane.view.phase in ("stopped", "finished", "failed"),
                     timeout=120, what="the run to end")


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_run_stopped_by_its_budget_resumes_with_the_budget_raised_in_the_pane(tmp_path: Path) -> None:
    async with SimLLMServer(SimOptions(seed=3, **PRICES)) as sim:
        app = AWMApp(sim_config(sim, tmp_path, budget=0.03), output_root=tmp_path)
        async with app.run_test(size=(160, 48)) as pilot:
            await app.panes_ready.wait()
            pane = app.main_screen.panes[0]
            assert budget_field(pane).value == "0.03"  # from the [[runs]] entry
            await pilot.press("ctrl+s")
            await ended(pilot, pane)
            assert pane.view.reason.startswith("budget reached: run budget $0.0300")
            assert "raise the budget, then Start resumes" in screen_text(app)
            stopped_at = pane.view.done
            assert 0 < stopped_at < len(IDS)
            await type_into(pilot, budget_field(pane), "1")
            await pilot.press("ctrl+s")
            await ended(pilot, pane)
            assert (pane.view.phase, pane.view.done) == ("finished", len(IDS))
            assert app.fleet is not None and app.fleet.handles["capped"].run.budget == 1.0  # type: ignore[attr-defined]
            assert "budget run $" in budget_line(pane.view) and "/$1.0000" in budget_line(pane.view)
            await pilot.press("ctrl+q")
            await pilot.pause()


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_enter_in_the_budget_field_changes_the_running_runs_budget(tmp_path: Path) -> None:
    """No budget at start; lowered below what it spent while it goes, the run stops at its next call."""
    async with SimLLMServer(SimOptions(seed=3, latency=0.2, **PRICES)) as sim:
        app = AWMApp(sim_config(sim, tmp_path), output_root=tmp_path)
        async with app.run_test(size=(160, 48)) as pilot:
            await app.panes_ready.wait()
            pane = app.main_screen.panes[0]
            assert budget_field(pane).value == "" and budget_field(pane).placeholder == "none"
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: pane.view.spend is not None and pane.view.spend.run_spend.spent > 0.001,
                             timeout=60, what="the run to spend")
            assert not budget_field(pane).disabled  # live while the run goes
            await type_into(pilot, budget_field(pane), "0.001")
            await pilot.press("enter")
            await ended(pilot, pane)
            assert pane.view.reason.startswith("budget reached: run budget $0.0010"), pane.view.reason
            assert pane.view.done < len(IDS)
            assert "/$0.0010" in budget_line(pane.view)
            assert "below the $" in "\n".join(pane.log_view.lines)
            await pilot.press("ctrl+q")
            await pilot.pause()


async def test_a_bad_budget_is_a_note_on_its_field_and_start_takes_a_good_one() -> None:
    config = sample_config(runs=1)
    config.runs[0] = RunConfig.model_validate({**config.runs[0].model_dump(), "budget": 2.5})
    fleet = RecordingFleet()
    app = AWMApp(config, fleet_factory=lambda config, sink: fleet)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.panes_ready.wait()
        pane = app.main_screen.panes[0]
        field = budget_field(pane)
        for typed, note in (("abc", "✗ budget: expected dollars such as 5 or 0.50, got 'abc'"),
                            ("0", "✗ budget: must be more than 0 dollars, got '0'")):
            await type_into(pilot, field, typed)
            await pilot.pause()
            assert note in screen_text(app)
            assert field.has_class("-error") and pane.form.query_one("#start", Button).disabled
        await type_into(pilot, field, "$0.75")
        await pilot.pause()
        assert "✗ budget" not in screen_text(app) and not field.has_class("-error")
        await pilot.press("ctrl+s")
        await settle(app)
        assert fleet.resolved[-1].run.budget == 0.75
        await type_into(pilot, field, "-1")  # running: Enter with a bad value sends nothing
        await pilot.press("enter")
        await pilot.pause()
        assert not [c for c in fleet.controls if c[0] == "set_budget"]
        await type_into(pilot, field, "")  # empty: the config's budget
        await pilot.press("enter")
        await pilot.pause()
        assert fleet.controls == [("set_budget", "alpha", 2.5)]
