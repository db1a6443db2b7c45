"""Widgets that repaint often take turns: one per frame tick, round robin.

Textual repaints the bounding box of everything refreshed since the last frame:
eight pane logs refreshed together made every widget of every pane (forms,
figures) render again, each frame (~110 widgets; `benchmarks/tui_lag`). One log
per tick repaints that log's own rectangle, and the work is spread evenly
instead of arriving as one long frame.
"""

from __future__ import annotations

from collections.abc import Callable
from weakref import WeakKeyDictionary

from textual.app import App
from textual.timer import Timer

TICK_S = 1 / 50
"""One painter per tick: 8 busy panes each repaint ~6 times a second, one busy pane at the relay's 10 Hz."""

Paint = Callable[[], None]


class PaintTurns:
    """The app's queue of pending paints; each runs once, in the order first asked."""

    _of: WeakKeyDictionary[App, PaintTurns] = WeakKeyDictionary()

    def __init__(self, app: App) -> None:
        self._waiting: dict[object, Paint] = {}
        self._timer: Timer = app.set_interval(TICK_S, self._tick, pause=True, name="paint turns")

    @classmethod
    def of(cls, app: App) -> PaintTurns:
        turns = cls._of.get(app)
        if turns is None:
            turns = cls._of[app] = cls(app)
        return turns

    def ask(self, owner: object, paint: Paint) -> None:
        """Paint `owner` at its turn; asking again before then keeps its place in the queue."""
        if not self._waiting:
            self._timer.resume()
        self._waiting.setdefault(owner, paint)

    def cancel(self, owner: object) -> None:
        self._waiting.pop(owner, None)

    def _tick(self) -> None:
        if not self._waiting:
            self._timer.pause()
            return
        owner = next(iter(self._waiting))
        self._waiting.pop(owner)()
