"""The fleet bar: every run at a glance (active runs, evals/min, connections, cost, time)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.reactive import reactive
from textual.content import Content
from textual.widget import Widget


@dataclass(frozen=True, slots=True)
class FleetTotals:
    panes: int = 0
    active: int = 0
    evals_per_minute: float = 0.0
    connections_open: int = 0
    cost: float = 0.0
    budget: float | None = None
    """The fleet's budget, if one is set."""
    spent: float = 0.0
    """What counts against it: every run's spend, checkpointed tasks of earlier sessions included."""
    elapsed_s: float | None = None
    """Since the first run of this session started; None before that."""


def _elapsed(seconds: float | None) -> str:
    if seconds is None:
        return "--:--:--"
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class FleetBar(Widget):
    DEFAULT_CSS = "FleetBar { dock: top; height: 1; padding: 0 1; }"

    totals: reactive[FleetTotals] = reactive(FleetTotals, always_update=True)

    def render(self) -> Content:
        t = self.totals
        return Content.from_markup(f"[b]awm-tui[/b]  runs [b]{t.active}[/b]/{t.panes} active"
                f" │ evals/min [b]{t.evals_per_minute:.1f}[/b]"
                f" │ conn [b]{t.connections_open}[/b]"
                f" │ cost [b]${t.cost:.4f}[/b]"
                + (f" (budget ${t.spent:.4f}/${t.budget:.4f}, {t.spent / t.budget:.0%})" if t.budget else "")
                + f" │ ⏱ {_elapsed(t.elapsed_s)}")
