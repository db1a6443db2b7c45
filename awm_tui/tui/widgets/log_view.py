"""A pane's streaming log: bounded, rendered line by line, quiet while hidden.

Written for a flood (thousands of lines a second over several panes), which
Textual's `Log` does not keep up with: it starts a thread worker per write,
re-renders every visible line through Rich `Text` on every frame (its strip
cache is only filled while a selection is active) and trims its list with
`del lines[:n]`. Here the store is a `deque(maxlen)` (the cap is O(1)), a
line becomes a one-segment `Strip` once and is reused while it stays on
screen, and a flush costs one scroll and one repaint of the visible rows,
at the log's turn (`PaintTurns`), not all logs in the same frame.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Sequence

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.reactive import Reactive
from textual.scroll_view import ScrollView
from textual.selection import Selection
from textual.strip import Strip

from awm_tui.tui.widgets.paint_turns import PaintTurns

_control = re.compile("[\u0000-\u0014]").sub  # what Textual's Log replaces too

CACHED_STRIPS = 256
"""Rendered lines kept per log: a few screens' worth, so a scroll re-renders only the new lines."""


_drop_ascii = {code: None for code in range(128)}


def _clean(line: str) -> str:
    return _control("�", line.expandtabs())


_zero_width = re.compile("[\u0015-\u001f\u007f]").search  # left as they are by _clean: no cells


def _cells(line: str) -> int:
    """Terminal cells of a cleaned line. ASCII is a cell a character; only the rest is
    measured, and short runs of it (an arrow, a check mark) hit Rich's cache, where a
    whole line never does (cell_len of every line was the top cost of a flood)."""
    if _zero_width(line):
        return cell_len(line)
    other = line.translate(_drop_ascii)
    return len(line) - len(other) + cell_len(other) if other else len(line)


class PaneLog(ScrollView, can_focus=True):
    """Lines in, newest at the bottom; follows the end unless the user scrolled up.

    Lines that arrive while the pane is hidden wait in a bounded deque, so a
    hidden log costs no rendering; they are stored in one go when it is shown.
    """

    ALLOW_SELECT = True
    DEFAULT_CSS = """
    PaneLog {
        height: 1fr;
        background: $surface;
        color: $text;
        overflow: scroll;
        &:focus { background-tint: $foreground 5%; }
    }
    """

    # Widget.virtual_size is a layout reactive: every flush of a log that is still
    # filling up re-laid out the whole screen (~50 ms with 8 panes). Our outer size
    # is fixed by CSS, so a longer log changes only our own scrollbars; update those
    # here. A scrollbar appearing still lays out, through its own reactive.
    virtual_size = Reactive(Size(0, 0), layout=False)

    def watch_virtual_size(self, size: Size) -> None:
        if self.is_mounted:
            self._scroll_update(size)

    def __init__(self, max_lines: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_lines = max_lines
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._first = 0
        """Absolute number of `_lines[0]` (lines ever dropped by the cap): the strip cache's key base."""
        self._width = 0
        self._unpainted_drops = 0
        self._strips: LRUCache[int, Strip] = LRUCache(CACHED_STRIPS)
        self._waiting: deque[str] = deque(maxlen=max_lines)
        self.shown = True

    # -- lines in ----------------------------------------------------------------------
    @property
    def lines(self) -> Sequence[str]:
        return self._lines

    @property
    def line_count(self) -> int:
        return len(self._lines)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def last_line(self) -> str | None:
        """The newest line, stored or still waiting for the log to be shown."""
        newest = self._waiting or self._lines
        return newest[-1] if newest else None

    def add_lines(self, lines: Iterable[str]) -> None:
        if self.shown and self.size.width:
            self._store(lines)
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
            self._store(lines)

    def on_resize(self) -> None:
        # The first real width: anything held back can now be laid out once.
        self.flush_waiting()

    def _store(self, lines: Iterable[str]) -> None:
        """Keep the lines now; scroll and repaint at this log's paint turn."""
        store = self._lines
        kept_before, added, width = len(store), 0, self._width
        for text in lines:
            for line in text.splitlines() or ("",):
                store.append(line)
                added += 1
                width = max(width, _cells(_clean(line)))
        if not added:
            return
        dropped = max(0, kept_before + added - self.max_lines)
        self._first += dropped
        self._unpainted_drops += dropped
        self._width = width
        PaintTurns.of(self.app).ask(self, self._paint)

    def _paint(self) -> None:
        if not self.is_attached:
            return
        # At the end before these lines (the virtual size is still the old one): follow them.
        follow = self.is_vertical_scroll_end and not self.is_vertical_scrollbar_grabbed
        dropped, self._unpainted_drops = self._unpainted_drops, 0
        self.virtual_size = Size(self._width, len(self._lines))
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        elif dropped:
            # Older lines left the top: keep the rows the user is reading where they are.
            self.scroll_to(y=max(0, self.scroll_y - dropped), animate=False, immediate=True)
        self.refresh()

    def on_unmount(self) -> None:
        PaintTurns.of(self.app).cancel(self)

    def clear(self) -> None:
        self._first += len(self._lines)
        self._lines.clear()
        self._waiting.clear()
        self._strips.clear()
        self._width = self._unpainted_drops = 0
        self.virtual_size = Size(0, 0)

    # -- rendering ---------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def selection_updated(self, selection: Selection | None) -> None:
        self._strips.clear()
        self.refresh()

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        return selection.extract("\n".join(self._lines)), "\n"

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        rich_style = self.rich_style
        if index >= len(self._lines):
            return Strip.blank(width, rich_style)
        strip = self._strip(index, rich_style)
        return strip.crop_extend(scroll_x, scroll_x + width, rich_style).apply_offsets(scroll_x, index)

    def _strip(self, index: int, rich_style: Style) -> Strip:
        """Line `index` (of those kept) as an uncropped strip, from the cache when it can be."""
        selection = self.text_selection
        key = self._first + index
        if selection is None and (cached := self._strips.get(key)) is not None:
            return cached
        line = _clean(self._lines[index])
        if selection is None:  # no markup, no highlighting: one segment, no Rich rendering
            strip = Strip([Segment(line, rich_style)], _cells(line))
            self._strips[key] = strip
            return strip
        text = Text(line, no_wrap=True, style=rich_style)
        if (span := selection.get_span(index)) is not None:
            start, end = span
            text.stylize(self.screen.get_component_rich_style("screen--selection"),
                         start, len(text) if end == -1 else end)
        return Strip(text.render(self.app.console), _cells(line))
