"""The fleet's curves: every run's resolved-over-tasks curve in one plot (twins dotted
in their run's colour, inductions marked), or tokens and cost per task (`t`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from awm_tui.tui.run_view import Curve
from awm_tui.tui.widgets.curves import CurvesPlot, fleet_series

SYNC_INTERVAL = 0.5
"""Seconds between two looks at the panes' curves (a look that finds them unchanged draws nothing)."""


class FleetCurvesScreen(Screen):
    DEFAULT_CSS = """
    FleetCurvesScreen #curves-title { height: 1; padding: 0 1; background: $panel; color: $text; text-style: bold; }
    FleetCurvesScreen CurvesPlot { height: 1fr; background: $surface; color: $text-muted; }
    """

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("t", "toggle_metric", "Tokens/cost"),
    ]

    def __init__(self, runs: Callable[[], Iterable[tuple[str, Curve]]]) -> None:
        super().__init__(id="fleet-curves")
        self._runs = runs
        """(run name, curve) of every pane, read live."""
        self._title = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="curves-title", markup=False)
        yield CurvesPlot(empty="no run has finished a task yet")
        yield Footer()

    def on_mount(self) -> None:
        self.sync()
        self.set_interval(SYNC_INTERVAL, self.sync)

    @property
    def plot(self) -> CurvesPlot:
        return self.query_one(CurvesPlot)

    def sync(self) -> None:
        series = fleet_series(self._runs())
        self.plot.show(series)
        what = "resolved over tasks done" if self.plot.metric == "resolved" else "tokens and cost per task"
        summary = " · ".join(f"{s.name} {s.curve.resolved}/{len(s.curve.points)}" for s in series)
        title = f"fleet curves: {what} · {summary or 'no runs'}"
        if title != self._title:  # Static.update lays the screen out again
            self._title = title
            self.query_one("#curves-title", Static).update(title)

    def action_toggle_metric(self) -> None:
        self.plot.metric = "cost" if self.plot.metric == "resolved" else "resolved"
        self.sync()
