"""Resolve curves: cumulative resolved over tasks done, twins overlaid, inductions marked;
and tokens and cost per task. Drawn with textual-plotext.

Cheap on purpose, since it shares the loop with a flood of log lines: a plot is
rebuilt (10-70 ms, pure Python) only when its series or size or theme changed, at most
every REDRAW_INTERVAL seconds, never while it is not displayed (a hidden widget is not
rendered; it is drawn once when it shows again), and in a thread: the loop keeps
running between the interpreter's switches (5 ms) instead of waiting for the build.
The last plot stays on screen until the new one is ready.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual.app import RenderResult
from textual.color import Color
from textual.reactive import reactive
from textual.theme import Theme
from textual.timer import Timer
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from awm_tui.config.twins import twin_of
from awm_tui.tui.run_view import Curve

Metric = Literal["resolved", "cost"]
METRICS: tuple[Metric, ...] = ("resolved", "cost")

PlotColour = int | tuple[int, int, int]
"""What plotext takes: a 0-255 terminal colour (0-15 the ANSI ones), or RGB."""


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    curve: Curve
    colour: int = 0
    """Index into the theme's series colours; a twin takes its run's."""
    twin: bool = False
    """A no-memory twin: drawn dotted, in its run's colour."""


def fleet_series(runs: Iterable[tuple[str, Curve]]) -> tuple[Series, ...]:
    """Every run's series, each twin after its run and in its colour."""
    runs = list(runs)
    names = {name for name, _ in runs}
    colours: dict[str, int] = {}
    for name, _ in runs:
        if twin_of(name) not in names:
            colours[name] = len(colours)
    series = []
    for name, curve in runs:
        twin = name not in colours
        series.append(Series(name, curve, colours[twin_of(name) or name if twin else name], twin))
    return tuple(sorted(series, key=lambda s: (s.colour, s.twin)))


def theme_colours(theme: Theme) -> list[PlotColour]:
    """The series colours, from the theme's own: ANSI numbers in an ANSI theme (what
    tmux over SSH shows right), RGB otherwise."""
    names = [theme.primary, theme.success, theme.accent, theme.secondary, theme.warning, theme.error]
    colours: list[PlotColour] = []
    for name in names:
        if not name:
            continue
        colour = Color.parse(name)
        value: PlotColour = colour.ansi if colour.ansi is not None and colour.ansi >= 0 else colour.rgb
        if value not in colours:
            colours.append(value)
    return colours or [4]


def _ticks(top: float, room: int) -> list[float]:
    """About `room` round integer ticks from 0, ending at `top` itself (the count so far)."""
    top = max(1, math.ceil(top))
    step = 1
    for candidate in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000):
        step = candidate
        if top / candidate <= max(1, room - 1):
            break
    ticks = list(range(0, top + 1, step))
    if top - ticks[-1] > step / 2:
        ticks.append(top)
    else:
        ticks[-1] = top
    return [float(v) for v in ticks]


def _integer_ticks(set_ticks, top: float, room: int) -> None:
    ticks = _ticks(top, room)
    set_ticks(ticks, [str(int(v)) for v in ticks])


def draw_text(plt: Plot, series: tuple[Series, ...], metric: Metric, width: int, height: int,
              colours: list[PlotColour]) -> Text:
    """`draw` as Rich text: plotext's 16-colour codes stay ANSI colours."""
    return Text.from_ansi(draw(plt, series, metric, width, height, colours))


def draw(plt: Plot, series: tuple[Series, ...], metric: Metric, width: int, height: int,
         colours: list[PlotColour]) -> str:
    """The plot as text with ANSI colour codes (pure: the same input, the same text)."""
    plt.clear_figure()
    plt.theme("clear")  # no colours of its own: the widget's background and text show
    # The widget's size, not the process's terminal's (80x24 under pytest): plotext offers this
    # only as its module function, over this private method of its figure.
    plt._limit_size(False, False)  # type: ignore[attr-defined]
    plt.plotsize(width, height)
    if metric == "resolved":
        _resolved(plt, series, height, colours)
    else:
        _cost(plt, series, width, height, colours)
    return plt.build()


def _resolved(plt: Plot, series: tuple[Series, ...], height: int, colours: list[PlotColour]) -> None:
    top, longest = 1, 1
    marked = False
    for s in series:
        colour = colours[s.colour % len(colours)]
        xs = list(range(len(s.curve.points) + 1))
        ys = [0, *(p.resolved for p in s.curve.points)]
        label = f"{s.name} {ys[-1]}/{xs[-1]}" + (" (no memory)" if s.twin else "")
        plt.plot(xs, ys, color=colour, marker="dot" if s.twin else "hd", label=label)
        marks = [x for x in s.curve.inductions if x <= xs[-1]]
        if marks:
            plt.scatter(marks, [ys[x] for x in marks], color=colour, marker="▼",
                        label=None if marked else "▼ induction")
            marked = True
        top, longest = max(top, ys[-1]), max(longest, xs[-1])
    plt.xlim(0, longest)
    plt.ylim(0, top)
    _integer_ticks(plt.xticks, longest, 6)
    _integer_ticks(plt.yticks, top, max(2, (height - 3) // 2))
    if height >= 14:
        plt.title("resolved over tasks done")


def _cost(plt: Plot, series: tuple[Series, ...], width: int, height: int, colours: list[PlotColour]) -> None:
    plt.subplots(1, 2)
    for column, (title, value) in enumerate((("tokens per task", lambda p: p.tokens),
                                             ("cost per task $", lambda p: p.cost)), 1):
        panel = plt.subplot(1, column)  # plotext's figure methods act on their own subplot
        panel.theme("clear")
        panel.title(title)
        _integer_ticks(panel.xticks, max((len(s.curve.points) for s in series), default=1), max(2, width // 24))
        for s in series:
            points = [(x, value(p)) for x, p in enumerate(s.curve.points, 1) if value(p) is not None]
            if points:
                panel.plot([x for x, _ in points], [y for _, y in points],
                         color=colours[s.colour % len(colours)], marker="dot" if s.twin else "hd")


class CurvesPlot(PlotextPlot):
    """The curves of one run (and its twin) or of the whole fleet; `show` them."""

    DEFAULT_CSS = "CurvesPlot { height: 1fr; }"
    REDRAW_INTERVAL = 0.5
    """Seconds: at most two redraws a second, however often tasks finish."""

    metric: reactive[Metric] = reactive("resolved")

    def __init__(self, *, empty: str = "no finished task yet", **kwargs) -> None:
        super().__init__(**kwargs)
        self.theme = "clear"  # PlotextPlot's "auto" paints RGB backgrounds; we paint none
        self._empty = empty
        self._series: tuple[Series, ...] = ()
        self._version = 0
        self._drawn: tuple[object, Text] | None = None
        self._timer: Timer | None = None
        self._building = False
        self._last_redraw = -math.inf
        self.builds = 0
        """How many times the plot was built (tests and benchmarks check it stays low)."""

    @property
    def series(self) -> tuple[Series, ...]:
        return self._series

    @property
    def redraw_pending(self) -> bool:
        """What is on screen (once displayed) is not yet the latest data at this size."""
        return self._timer is not None or self._building or self._drawn is None or self._drawn[0] != self._key()

    def show(self, series: Iterable[Series]) -> None:
        """New data; the same data again costs a comparison (the curves are immutable)."""
        series = tuple(series)
        if series == self._series:
            return
        self._series = series
        self._version += 1
        if self._timer is None and self.is_mounted:
            delay = self._last_redraw + self.REDRAW_INTERVAL - time.monotonic()
            if delay <= 0:
                self._redraw()
            else:
                self._timer = self.set_timer(delay, self._redraw)

    def _redraw(self) -> None:
        self._timer = None
        self._last_redraw = time.monotonic()
        self.refresh()  # a no-op for the screen while not displayed: render runs when shown

    def watch_metric(self) -> None:
        self.refresh()

    def _key(self) -> tuple[object, ...]:
        return (self._version, self.metric, self.size, self.app.theme)

    def render(self) -> RenderResult:
        key = self._key()
        if self._drawn is not None and self._drawn[0] == key:
            return self._drawn[1]
        width, height = self.size
        if not any(s.curve.points for s in self._series) or width < 20 or height < 5:
            text = Text(self._empty if width >= 20 and height >= 5 else "", style="italic")
            self._drawn = (key, text)
            return text
        if not self._building:  # one build at a time: the next starts when it is done
            self._building = True
            self.run_worker(self._build(key, self._series, self.metric, width, height,
                                        theme_colours(self.app.current_theme)),
                            group="curves", description="draw curves", exit_on_error=False)
        return self._drawn[1] if self._drawn is not None else Text("")

    async def _build(self, key: tuple[object, ...], series: tuple[Series, ...], metric: Metric, width: int,
                     height: int, colours: list[PlotColour]) -> None:
        try:
            text = await asyncio.to_thread(draw_text, self.plt, series, metric, width, height, colours)
        finally:
            self._building = False
        self.builds += 1
        self._drawn = (key, text)
        self.refresh()  # shows it, or starts the next build if the data or size moved on meanwhile
