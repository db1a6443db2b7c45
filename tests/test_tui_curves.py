"""Resolve curves in the TUI: per pane (f5), with the no-memory twin overlaid, and the
fleet's (f9); fed by injected engine events through the app's own sink, and by a
resumed run's files. Snapshots at 80x24 and 160x48 in two themes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import Input

from awm_tui.engine.events import CheckpointSaved, InductionDone, LLMCall, LogLine, TaskFinished, TaskStarted
from awm_tui.engine.outcomes import ErrorKind, Outcome
from awm_tui.tui.app import AWMApp
from awm_tui.tui.run_view import RunView, apply_event
from awm_tui.tui.screens.curves import FleetCurvesScreen
from awm_tui.tui.widgets.run_pane import RunPane
from tests.plugins.tui import (
    FrozenClock, RecordingFleet, fixed_events, inject, sample_config, screen_text, settle, wait_until,
)
from tests.test_tui_memory_and_dirs import write_fixed_output

TS = 1_767_225_600.0


def task(run: str, n: int, resolved: bool, *, tokens: int = 0, error: bool = False, done: int = 0,
         total_resolved: int = 0) -> list:
    """What the engine says for one task: its agent call, its end, its checkpoint."""
    instance = f"pkg__pkg-{n}"
    events: list = [
        TaskStarted(run=run, ts=TS + n, instance_id=instance, index=n, total=20),
        LLMCall(run=run, ts=TS + n, purpose="agent", latency_s=0.1, prompt_tokens=tokens - tokens // 4,
                completion_tokens=tokens // 4, cost=tokens / 1e6, instance_id=instance),
    ]
    if error:
        events.append(TaskFinished(run=run, ts=TS + n, instance_id=instance, exit_status="", outcome=Outcome.ERROR,
                                   resolved=False, reward=0.0, speedup=None, steps=0, elapsed_s=1.0, cost=0.0,
                                   error="sandbox gone", error_kind=ErrorKind.SANDBOX))
        return events
    events += [
        CheckpointSaved(run=run, ts=TS + n, done=done, resolved=total_resolved),
        TaskFinished(run=run, ts=TS + n, instance_id=instance, exit_status="Submitted",
                     outcome=Outcome.RESOLVED if resolved else Outcome.UNRESOLVED, resolved=resolved,
                     reward=float(resolved), speedup=None, steps=4, elapsed_s=3.0, cost=tokens / 1e6),
    ]
    return events


def tasks(run: str, pattern: str, *, induce_after: tuple[int, ...] = (), tokens: int = 1000) -> list:
    """One task per character of `pattern` (1 resolved, 0 not, e an error), inductions after some."""
    events, done, resolved = [], 0, 0
    for n, c in enumerate(pattern, 1):
        if c != "e":
            done += 1
            resolved += c == "1"
        events += task(run, n, c == "1", tokens=tokens + 100 * n, error=c == "e", done=done, total_resolved=resolved)
        if done in induce_after and c != "e":
            events.append(InductionDone(run=run, ts=TS + n, mode="rule", ok=True, added=(f"wf-{done:03d}",)))
    return events


# -- the curve data, folded from events -------------------------------------------------------

def test_the_curve_counts_checkpointed_tasks_their_tokens_and_the_inductions():
    view = RunView()
    for event in tasks("alpha", "11e01", induce_after=(2,)) + [
            InductionDone(run="alpha", mode="llm", ok=False, error="bad reply"),  # changed nothing
            InductionDone(run="alpha", mode="llm", ok=True)]:
        view = apply_event(view, event)
    curve = view.curve
    assert [p.resolved for p in curve.points] == [1, 2, 2, 3]  # the error is not on the curve
    assert [p.tokens for p in curve.points] == [1100, 1200, 1400, 1500]  # the errored task's call not added
    assert curve.inductions == (2,)
    assert view.resolved == curve.resolved == 3


def test_tokens_per_task_are_each_tasks_own_with_several_in_flight():
    """workers = 2: calls of two tasks interleave; each point gets its own task's tokens."""
    view = RunView()
    a, b = task("alpha", 1, True, tokens=1000, done=1, total_resolved=1), task("alpha", 2, False, tokens=200,
                                                                              done=2, total_resolved=1)
    for event in [a[0], b[0], a[1], b[1], b[1], b[2], b[3], a[2], a[3]]:  # b ends first, with two calls
        view = apply_event(view, event)
    assert [p.tokens for p in view.curve.points] == [400, 1000]
    assert view.task_tokens == {}


# -- per pane ---------------------------------------------------------------------------------

def twin_config(*, twin: bool = True):
    config = sample_config(runs=2)
    if twin:
        config.runs[1] = config.runs[1].model_copy(update={"name": "alpha-nomem",
                                                           "output_dir": Path("outputs/alpha-nomem")})
    return config


def make_app(config=None, theme: str = "awm-dark") -> AWMApp:
    fleet = RecordingFleet()
    return AWMApp(config or twin_config(), theme=theme, fleet_factory=lambda c, s: fleet, clock=FrozenClock())


async def started(pilot, app: AWMApp) -> list[RunPane]:
    """Every pane's run started (on the recording fleet), the first pane current."""
    await app.panes_ready.wait()
    for field in app.query(Input):
        field.cursor_blink = False
    for pane in app.main_screen.panes:
        app.start_pane(pane)
    await settle(app)
    app.main_screen.show_pane(app.main_screen.panes[0])
    await pilot.pause()
    return app.main_screen.panes


async def drawn(pilot, pane_or_screen) -> None:
    plot = pane_or_screen.curves if isinstance(pane_or_screen, RunPane) else pane_or_screen.plot
    await wait_until(pilot, lambda: not plot.redraw_pending, timeout=5, what="the throttled redraw")
    await pilot.pause()


async def test_the_pane_curve_follows_the_events_and_replaces_the_log_at_80x24(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app(twin_config(twin=False))
    async with app.run_test(size=(80, 24)) as pilot:
        alpha, _ = await started(pilot, app)
        await inject(pilot, tasks("alpha", "110", induce_after=(2,)) + [LogLine(run="alpha", message="hello log")])
        assert "hello log" in screen_text(app)
        await pilot.press("f5")
        await drawn(pilot, alpha)
        text = screen_text(app)
        assert "alpha 2/3" in text and "▼ induction" in text
        assert "hello log" not in text  # at 80x24 the curve takes the log's place
        series = alpha.curves.series
        assert [s.name for s in series] == ["alpha"]
        assert [p.resolved for p in series[0].curve.points] == [1, 2, 2]

        await inject(pilot, task("alpha", 4, True, done=4, total_resolved=3))
        await drawn(pilot, alpha)
        assert "alpha 3/4" in screen_text(app)

        await pilot.press("f5")  # tokens and cost per task
        await drawn(pilot, alpha)
        text = screen_text(app)
        assert "tokens per task" in text and "cost per task" in text
        await pilot.press("f5")  # back to the log, which kept its lines
        await pilot.pause()
        assert "hello log" in screen_text(app)


async def test_the_twin_curve_is_overlaid_when_a_nomem_run_is_in_the_fleet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        alpha, twin = await started(pilot, app)
        await inject(pilot, tasks("alpha", "1101") + tasks("alpha-nomem", "1000"))
        await pilot.press("f5")
        await drawn(pilot, alpha)
        series = alpha.curves.series
        assert [(s.name, s.twin, s.curve.resolved) for s in series] == [("alpha", False, 3),
                                                                       ("alpha-nomem", True, 1)]
        text = screen_text(app)
        assert "alpha 3/4" in text and "alpha-nomem 1/4 (no memory)" in text
        # The twin's own pane has no twin of its own.
        assert [s.name for s in twin.curves.series] == ["alpha-nomem"]

        await inject(pilot, task("alpha-nomem", 5, True, done=5, total_resolved=2))
        await drawn(pilot, alpha)
        assert "alpha-nomem 2/5 (no memory)" in screen_text(app)


async def test_a_pane_without_a_nomem_run_shows_no_twin(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app(twin_config(twin=False))  # alpha and beta: no pair
    async with app.run_test(size=(80, 24)) as pilot:
        alpha, beta = await started(pilot, app)
        await inject(pilot, tasks("alpha", "11") + tasks("beta", "10"))
        assert [s.name for s in alpha.curves.series] == ["alpha"]
        assert alpha.twin is None


async def test_curves_are_drawn_only_when_shown_and_only_when_their_data_changed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app(twin_config(twin=False))
    async with app.run_test(size=(160, 48)) as pilot:  # room enough to draw anywhere
        alpha, _ = await started(pilot, app)
        plot = alpha.curves
        await inject(pilot, tasks("alpha", "1101"))
        assert plot.builds == 0  # in log mode the curve is hidden: nothing is drawn
        await pilot.press("f5")
        await drawn(pilot, alpha)
        assert plot.builds == 1  # drawn once when shown
        for n in range(5):  # a log flood, metrics: the curve's data does not change
            await inject(pilot, [LogLine(run="alpha", message=f"line {n}")] + fixed_events("alpha")[-7:])
        await drawn(pilot, alpha)
        assert plot.builds == 1
        # Tasks finishing in quick succession: at most one redraw per REDRAW_INTERVAL.
        started_at = time.monotonic()
        for n in range(5, 11):
            await inject(pilot, task("alpha", n, True, done=n, total_resolved=n - 1))
        await drawn(pilot, alpha)
        elapsed = time.monotonic() - started_at
        assert 2 <= plot.builds <= 2 + int(elapsed / plot.REDRAW_INTERVAL) + 1
        assert "alpha 9/10" in screen_text(app)


async def test_a_resumed_run_starts_its_curve_from_its_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_fixed_output(tmp_path / "outputs" / "alpha")  # 4 tasks (1, 1, 0, 1), inductions after 3 and 4
    app = make_app(sample_config(runs=1))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.panes_ready.wait()
        await settle(app, "read")
        alpha = app.main_screen.panes[0]
        curve = alpha.view.curve
        assert [p.resolved for p in curve.points] == [1, 2, 2, 3]
        assert curve.inductions == (3, 4)
        app.start_pane(alpha)
        await settle(app)
        await inject(pilot, task("alpha", 5, True, done=5, total_resolved=4))  # the resumed run goes on
        assert [p.resolved for p in alpha.view.curve.points] == [1, 2, 2, 3, 4]
        await pilot.press("f5")
        await drawn(pilot, alpha)
        assert "alpha 4/5" in screen_text(app)


# -- the fleet view ---------------------------------------------------------------------------

async def test_the_fleet_view_shows_every_runs_curve_from_its_binding_and_the_palette(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = sample_config(runs=3)
    config.runs[2] = config.runs[2].model_copy(update={"name": "alpha-nomem", "output_dir": Path("o/an")})
    app = make_app(config)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await inject(pilot, tasks("alpha", "111") + tasks("beta", "01") + tasks("alpha-nomem", "100"))
        await pilot.press("f9")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FleetCurvesScreen)
        await drawn(pilot, screen)
        assert [(s.name, s.twin) for s in screen.plot.series] == [("alpha", False), ("alpha-nomem", True),
                                                                 ("beta", False)]
        assert "alpha 3/3" in screen_text(app) and "beta 1/2" in screen_text(app)
        # Live: a task finishing while the view is open shows up.
        await inject(pilot, task("beta", 3, True, done=3, total_resolved=2))
        await wait_until(pilot, lambda: "beta 2/3" in screen_text(app), timeout=5, what="the live update")
        await pilot.press("t")
        await drawn(pilot, screen)
        assert "tokens per task" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        # The palette names it too.
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Fleet curves")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, FleetCurvesScreen), timeout=5,
                         what="the fleet view from the palette")


# -- snapshots --------------------------------------------------------------------------------

SIZES = [(80, 24), (160, 48)]
THEMES = ["awm-dark", "awm-ansi"]


@pytest.fixture
def stable_world(monkeypatch, tmp_path):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    yield
    monkeypatch.undo()
    time.tzset()


async def pane_curves(pilot) -> None:
    app = pilot.app
    alpha, _ = await started(pilot, app)
    await inject(pilot, tasks("alpha", "1101101110", induce_after=(3, 7))
                 + tasks("alpha-nomem", "1001001010")
                 + [LogLine(run="alpha", ts=TS + 11, message=f"task 11/20 pkg__pkg-11 line {n}") for n in range(3)])
    alpha.query_one("#name", Input).focus()
    await pilot.press("f5")
    await drawn(pilot, alpha)


async def fleet_curves(pilot) -> None:
    await pane_curves(pilot)
    await pilot.press("f9")
    await pilot.pause()
    await drawn(pilot, pilot.app.screen)


@pytest.mark.usefixtures("stable_world")
@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_pane_curves_snapshot(snap_compare, theme, size):
    assert snap_compare(make_app(theme=theme), terminal_size=size, run_before=pane_curves)


@pytest.mark.usefixtures("stable_world")
@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_fleet_curves_snapshot(snap_compare, theme, size):
    assert snap_compare(make_app(theme=theme), terminal_size=size, run_before=fleet_curves)
