"""A pane's streaming log: batched writes, bounded, and quiet while hidden."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import Log


class PaneLog(Log):
    """`Log` that is written in batches and only while it can be seen.

    Lines that arrive while the pane is hidden wait in a bounded deque, so
    a hidden log costs no rendering and does not grow without bound; they
    are written in one `write_lines` call when the pane is shown again.
    """

    DEFAULT_CSS = "PaneLog { height: 1fr; }"

    # Widget.virtual_size is a layout reactive: every flush of a log that is still
    # filling up re-laid out the whole screen (~50 ms with 8 panes). Our outer size
    # is fixed by CSS, so a longer log changes only our own scrollbars; update those
    # here. A scrollbar appearing still lays out, through its own reactive.
    virtual_size = Reactive(Size(0, 0), layout=False)

    def watch_virtual_size(self, size: Size) -> None:
        if self.is_mounted:
            self._scroll_update(size)

    def __init__(self, max_lines: int, **kwargs) -> None:
        super().__init__(max_lines=max_lines, auto_scroll=True, **kwargs)
        self._waiting: deque[str] = deque(maxlen=max_lines)
        self.shown = True

    def add_lines(self, lines: Iterable[str]) -> None:
        if self.shown and self.size.width:
            self.write_lines(lines)
        else:
            self._waiting.extend(lines)

    def set_shown(self, shown: bool) -> None:
        self.shown = shown
        if shown:
            self.call_after_refresh(self.flush_waiting)

    def flush_waiting(self) -> None:
        if self._waiting and self.shown and self.size.width:
            lines = list(self._waiting)
            self._waiting.clear()
            self.write_lines(lines)

    def on_resize(self) -> None:
        # The first real width: anything held back can now be laid out once.
        self.flush_waiting()

    @property
    def waiting(self) -> int:
        return len(self._waiting)
