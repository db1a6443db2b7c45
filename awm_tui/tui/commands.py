"""The command palette's entries for the main screen's panes (each names its key)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.app import SystemCommand

if TYPE_CHECKING:
    from awm_tui.tui.app import AWMApp


def pane_commands(app: AWMApp) -> Iterable[SystemCommand]:
    yield SystemCommand("Add pane", "A new run pane (ctrl+n)", app.action_add_pane)
    yield SystemCommand("Remove pane", "Remove the current pane (ctrl+r)", app.action_remove_pane)
    yield SystemCommand("Start run", "Start the current pane's run (ctrl+s)", app.action_start_pane)
    yield SystemCommand("Stop run", "Stop the current pane's run (ctrl+t)", app.action_stop_pane)
    yield SystemCommand("Start all runs", "Start every idle pane (ctrl+g)", app.action_start_all)
    yield SystemCommand("Pause run", "Finish the tasks in flight, start no new one (f6)", app.action_pause_run)
    yield SystemCommand("Resume run", "Start tasks again after a pause (f6)", app.action_resume_run)
    yield SystemCommand("Apply limit, workers and budget", "The running run takes the pane's limit, workers "
                        "and budget (Enter in any of them)", app.action_apply_live)
    yield SystemCommand("Memory browser", "Workflows, inductions and tasks (ctrl+l)", app.action_memory)
    yield SystemCommand("Last trajectory", "Steps, prompt, patch and evaluation of the pane's last task (f4)",
                        app.action_trajectory)
    yield SystemCommand("Open output directory", "Show and resume an old run (ctrl+o)",
                        app.action_open_output_dir)
    yield SystemCommand("Pane curves", "Log → resolve curve (twin, inductions) → tokens and cost (f5)",
                        app.action_pane_curves)
    yield SystemCommand("Fleet curves", "Every run's resolve curve together (f9)", app.action_fleet_curves)
    yield SystemCommand("Maximise pane", "Toggle the current pane full screen (f2)",
                        app.action_maximize_pane)
    yield SystemCommand("Per-host connections", "Toggle per-host connection counts (f3)",
                        app.action_toggle_hosts)
    yield SystemCommand("Docker hosts", "Up/down, containers, exec/s, images, disk of each host (f10)",
                        app.action_docker_hosts)
