"""A pane's live fields, taken by its running run (Enter in one, or the palette's entry)."""

from __future__ import annotations

from collections.abc import Iterable

from awm_tui.tui.fleet_control import FleetControl
from awm_tui.tui.widgets.pane_form import Note
from awm_tui.tui.widgets.run_pane import RunPane, RunProblem


def apply_live(fleet: FleetControl, pane: RunPane, fields: Iterable[str]) -> None:
    """Each of `fields` (`LIVE_FIELDS`) the pane's running run takes; a bad one is marked on
    its field and not sent. The engine logs each change in the run's log."""
    name = pane.run_name
    if not pane.running or name is None:
        return
    for field in fields:
        try:
            if field == "budget":
                fleet.set_budget(name, pane.budget_value())
            elif field == "limit":
                fleet.set_limit(name, pane.live_value(field))
            else:
                fleet.set_workers(name, pane.live_value(field))
        except RunProblem as problem:
            pane.show_notes([Note(problem.field, "error", problem.text)])
