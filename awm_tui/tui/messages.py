"""Typed messages between the engine's sink, the app and the panes.

Engine events arrive merged: at most ~10 `RunEventsArrived` and ~4
`MetricsArrived` messages a second, however fast the runs talk.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from awm_tui.engine.events import Event, MetricsSnapshot


@dataclass
class RunEventsArrived(Message):
    """Every non-metrics event since the last flush, in order, plus the log lines they made."""

    events: tuple[Event, ...]
    log_lines: dict[str, tuple[str, ...]]
    """Per run: the newest lines, already bounded to the pane's log size."""
    dropped: dict[str, int]
    """Per run: lines dropped by the bound since the last flush."""


@dataclass
class MetricsArrived(Message):
    """The latest metrics snapshot of every run that reported since the last tick."""

    snapshots: tuple[MetricsSnapshot, ...]

    def can_replace(self, message: Message) -> bool:
        # Called on the older message with the pending one: fold ours into it
        # (the pending snapshot wins run by run) and let it take our place.
        if isinstance(message, MetricsArrived):
            newer = {s.run for s in message.snapshots}
            message.snapshots = tuple(s for s in self.snapshots if s.run not in newer) + message.snapshots
            return True
        return False
