"""Fleet-wide status in the TUI: the health of every key and Docker host the fleet uses.

These events name no one run (`run == ""`): a key's health goes to every run on the
key and to the keys view, a host's status to the hosts view and to the panes with a
task on that host.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from awm_tui.engine.events import CreditsLow, Event, HostStatus, KeyHealth
from awm_tui.tui.screens.hosts import HostsScreen
from awm_tui.tui.screens.keys import KeysScreen

if TYPE_CHECKING:
    from awm_tui.tui.app import AWMApp


@dataclass
class FleetStatus:
    keys: dict[str, KeyHealth] = field(default_factory=dict)
    """The latest health of each key, by key identity."""
    hosts: dict[str, HostStatus] = field(default_factory=dict)
    """The latest status of each Docker host, by URL."""

    def route(self, app: AWMApp, event: Event, by_run: dict[str, list]) -> bool:
        """Take a fleet-wide event (True), adding it to `by_run` for the runs it concerns;
        False for a run's own event."""
        if isinstance(event, (KeyHealth, CreditsLow)):
            self._key_event(app, event, by_run)
        elif isinstance(event, HostStatus):
            self._host_status(app, event)
        else:
            return False
        return True

    def _key_event(self, app: AWMApp, event: KeyHealth | CreditsLow, by_run: dict[str, list]) -> None:
        if isinstance(event, CreditsLow):
            of = f" of ${event.limit:.2f}" if event.limit is not None else ""
            app.notify(f"${event.remaining:.2f}{of} left (runs {', '.join(event.runs)})",
                       title=f"credits low on key {event.masked}", severity="warning", timeout=15)
            return
        self.keys[event.identity] = event
        for run in event.runs:
            by_run.setdefault(run, []).append(event)
        if isinstance(app.screen, KeysScreen):
            app.screen.show(self.keys.values())

    def _host_status(self, app: AWMApp, status: HostStatus) -> None:
        """To the hosts view, and to the panes whose tasks are on it (a host going down
        is said in their log too)."""
        before = self.hosts.get(status.url)
        self.hosts[status.url] = status
        for screen in app.screen_stack:
            if isinstance(screen, HostsScreen):
                screen.update(status)
        for pane in app.main_screen.panes:
            if status.url not in pane.view.hosts:  # several with workers > 1
                continue
            pane.apply_events([status])
            if before is not None and before.up != status.up:
                mark = "●" if status.up else "✗"
                pane.add_log_lines([f"{time.strftime('%H:%M:%S', time.localtime(status.ts))} {mark} "
                                    f"Docker host {status.line()}"])
