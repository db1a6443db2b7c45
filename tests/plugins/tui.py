"""Fixtures and helpers for driving the TUI: a fake-free fleet double, fixed events, screen text."""

from __future__ import annotations

import html
import re
from collections import defaultdict
from collections.abc import Iterable

import pytest

CELL_WIDTH = 12.2
_TEXT = re.compile(r'<text(?=[^>]*textLength)[^>]*\bx="([\d.]+)"[^>]*\by="([\d.]+)"[^>]*>(.*?)</text>', re.S)


def svg_text(svg: str) -> str:
    """The characters of a Textual SVG screenshot, one line per terminal row (for asserts and review)."""
    rows: dict[float, dict[int, str]] = defaultdict(dict)
    for x, y, body in _TEXT.findall(svg):
        text = html.unescape(re.sub(r"<[^>]+>", "", body)).replace("\xa0", " ")
        column = round(float(x) / CELL_WIDTH)
        for offset, char in enumerate(text):
            rows[float(y)][column + offset] = char
    lines = []
    for _, cells in sorted(rows.items()):
        width = max(cells) + 1 if cells else 0
        lines.append("".join(cells.get(i, " ") for i in range(width)).rstrip())
    return "\n".join(lines)


def screen_text(app) -> str:
    return svg_text(app.export_screenshot())


@pytest.fixture
def tui_screen_text():
    return screen_text


def injected(app, events: Iterable) -> None:
    """Feed engine events through the app's own sink, then flush its timers now."""
    for event in events:
        app.relay(event)
    app.relay.flush_events()
    app.relay.flush_metrics()
