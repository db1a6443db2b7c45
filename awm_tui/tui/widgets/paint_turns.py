"""Widgets that repaint often take turns: one per screen frame, round robin.

Textual repaints the bounding box of everything refreshed since the last frame:
eight pane logs refreshed together made every widget of every pane (forms,
figures) render again, each frame (~110 widgets; `benchmarks/tui_lag`). One log
per frame repaints that log's own rectangle, and the work is spread evenly
instead of arriving as one long frame. The next turn starts once the screen has
drawn the last one, so a slow (loaded) machine paints less often, not later.
"""

from __future__ import annotations

from collections.abc import Callable
from weakref import WeakKeyDictionary

from textual.app import App

Paint = Callable[[], None]


class PaintTurns:
    """The app's queue of pending paints; each runs once, in the order first asked."""

    _of: WeakKeyDictionary[App, PaintTurns] = WeakKeyDictionary()

    def __init__(self, app: App) -> None:
        self._app = app
        self._waiting: dict[object, Paint] = {}
        self._turning = False

    @classmethod
    def of(cls, app: App) -> PaintTurns:
        turns = cls._of.get(app)
        if turns is None:
            turns = cls._of[app] = cls(app)
        return turns

    @property
    def pending(self) -> int:
        return len(self._waiting)

    def ask(self, owner: object, paint: Paint) -> None:
        """Paint `owner` at its turn; asking again before then keeps its place in the queue."""
        self._waiting.setdefault(owner, paint)
        if not self._turning:
            self._turning = True
            self._app.call_later(self._turn)  # after the caller's handler, not inside it

    def cancel(self, owner: object) -> None:
        self._waiting.pop(owner, None)

    def _turn(self) -> None:
        if not self._waiting or not self._app.is_running:
            self._turning = False
            return
        owner = next(iter(self._waiting))
        try:
            self._waiting.pop(owner)()
        finally:
            # After the frame that draws it. Twice: the widget's repaint reaches the screen
            # as a message of its own, and a callback queued before it runs on the screen's
            # idle, before that frame, when two logs would be drawn together again.
            self._app.call_after_refresh(self._app.call_after_refresh, self._turn)
