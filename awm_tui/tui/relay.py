"""The Fleet's event sink: merges the engine's flood into a few messages a second.

The engine calls `relay(event)` on the event loop for every event of every
run. Nothing here touches a widget: events are buffered, and a one-shot
timer posts them as typed messages (log lines ~10x/s, metrics ~4x/s).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Callable

from textual.message import Message

from awm_tui.engine.events import Event, LogLine, MetricsSnapshot
from awm_tui.tui.messages import MetricsArrived, RunEventsArrived
from awm_tui.tui.run_view import log_text


class EventRelay:
    def __init__(
        self,
        post: Callable[[Message], object],
        *,
        log_lines: int = 2000,
        events_interval: float = 0.1,
        metrics_interval: float = 0.25,
    ) -> None:
        self._post = post
        self._log_lines = log_lines
        self._events_interval = events_interval
        self._metrics_interval = metrics_interval
        self._events: list[Event] = []
        self._lines: dict[str, deque[str]] = {}
        self._dropped: dict[str, int] = defaultdict(int)
        self._metrics: dict[str, MetricsSnapshot] = {}
        self._events_timer: asyncio.TimerHandle | None = None
        self._metrics_timer: asyncio.TimerHandle | None = None
        self._closed = False

    def __call__(self, event: Event) -> None:
        if self._closed:
            return
        if isinstance(event, MetricsSnapshot):
            self._metrics[event.run] = event  # only the latest counts
            if self._metrics_timer is None:
                self._metrics_timer = self._later(self._metrics_interval, self.flush_metrics)
            return
        if not isinstance(event, LogLine):  # log lines only feed the log, not the figures
            self._events.append(event)
        line = log_text(event)
        if line is not None:
            lines = self._lines.get(event.run)
            if lines is None:
                lines = self._lines[event.run] = deque(maxlen=self._log_lines)
            if len(lines) == self._log_lines:
                self._dropped[event.run] += 1
            lines.append(line)
        if self._events_timer is None:
            self._events_timer = self._later(self._events_interval, self.flush_events)

    @staticmethod
    def _later(delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)

    def flush_events(self) -> None:
        self._events_timer = None
        if not (self._events or self._lines):
            return
        events, self._events = tuple(self._events), []
        lines = {run: tuple(buffer) for run, buffer in self._lines.items()}
        dropped = dict(self._dropped)
        self._lines.clear()
        self._dropped.clear()
        self._post(RunEventsArrived(events, lines, dropped))

    def flush_metrics(self) -> None:
        self._metrics_timer = None
        if self._metrics:
            snapshots, self._metrics = tuple(self._metrics.values()), {}
            self._post(MetricsArrived(snapshots))

    def close(self) -> None:
        """Stop posting (the app is going away); pending timers are cancelled."""
        self._closed = True
        for timer in (self._events_timer, self._metrics_timer):
            if timer is not None:
                timer.cancel()
        self._events_timer = self._metrics_timer = None
