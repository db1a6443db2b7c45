"""The real app against the real engine and the simulated model (DemoEnvironment):
panes typed in by the Pilot, runs to completion, figures checked against the files."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Button, Input

from awm_tui.demo import DemoEnvironment
from awm_tui.tui.app import AWMApp
from tests.plugins.tui import leftover_containers, screen_text, settle

pytestmark = pytest.mark.slow


async def type_into(pilot, field: Input, text: str) -> None:
    field.focus()
    field.value = ""
    await pilot.press(*text)


async def fill(pilot, pane, *, key: str, output: str, limit: str) -> None:
    form = pane.form
    await type_into(pilot, form.query_one("#key", Input), key)
    await pilot.press("tab")  # leaving the field takes the key out of it
    await type_into(pilot, form.query_one("#output", Input), output)
    await type_into(pilot, form.query_one("#limit", Input), limit)
    await pilot.pause()


async def finished(pilot, app: AWMApp) -> None:
    await app.fleet.wait()  # the engine's own completion, no sleeping
    app.relay.flush_events()
    app.relay.flush_metrics()
    await pilot.pause()


async def test_two_panes_run_to_completion_and_match_their_files(tmp_path):
    async with DemoEnvironment(tmp_path / "root", runs=0) as demo:
        app = AWMApp(demo.config, output_root=tmp_path / "root")
        async with app.run_test(size=(160, 48)) as pilot:
            await app.panes_ready.wait()
            await pilot.press("ctrl+n")
            await pilot.pause()
            first, second = app.main_screen.panes
            await fill(pilot, first, key="sim-key-first", output=str(tmp_path / "a"), limit="2")
            await fill(pilot, second, key="sim-key-second", output=f"{tmp_path}/./a/", limit="2")
            assert second.form.query_one("#start", Button).disabled
            assert "output directory already used by run_1" in screen_text(app)
            await type_into(pilot, second.form.query_one("#output", Input), str(tmp_path / "b"))
            await pilot.pause()
            assert not second.form.query_one("#start", Button).disabled
            await pilot.press("ctrl+g")  # start all
            await settle(app)
            assert sorted(app.fleet.active) == ["run_1", "run_2"]
            await finished(pilot, app)
            text = screen_text(app)
            assert "sim-key-first" not in text and "sim-key-second" not in text
            for pane, out in ((first, tmp_path / "a"), (second, tmp_path / "b")):
                checkpoint = json.loads((out / "checkpoint.json").read_text())
                memory = json.loads((out / "memory.json").read_text())
                done = len(checkpoint["finished"])
                resolved = sum(1 for r in checkpoint["finished"].values() if r["resolved"])
                assert (pane.view.phase, pane.view.done, pane.view.resolved) == ("finished", done, resolved)
                assert done == 2
                assert pane.view.workflows == len(memory["workflows"])
                assert f"finished · {done} done, {resolved} resolved" in text
                assert not pane.running
            await pilot.press("ctrl+q")  # nothing active: quits at once
            await pilot.pause()
        assert app.return_code == 0
    # The keys typed into the panes reach no file the runs wrote.
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "events.jsonl" for p in written)
    for path in written:
        data = path.read_bytes()
        assert b"sim-key-first" not in data and b"sim-key-second" not in data, path


async def test_quit_with_a_run_active_stops_it_cleanly(tmp_path):
    async with DemoEnvironment(tmp_path / "root", runs=1, limit=5) as demo:
        app = AWMApp(demo.config, output_root=tmp_path / "root")
        async with app.run_test(size=(80, 24)) as pilot:
            await app.panes_ready.wait()
            await pilot.press("ctrl+s")
            await settle(app)
            assert app.fleet.active == ["demo-a"]
            fleet = app.fleet
            await pilot.press("ctrl+q")
            await pilot.pause()
            assert "Stop them" in screen_text(app)
            await pilot.press("y")
            await settle(app, "shutdown")
            assert fleet.active == []
        assert app.return_code == 0
    out = tmp_path / "root" / "demo-a"
    assert (out / "checkpoint.json").exists()
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events[-1]["kind"] in ("run_finished", "status") or any(
        e["kind"] == "run_finished" and e["stopped"] for e in events)
    assert await leftover_containers() in (None, 0)
