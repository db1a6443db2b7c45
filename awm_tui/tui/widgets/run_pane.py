"""One pane = one run: its settings, live figures and log, composed."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, ValidationError
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Resize
from textual.message import Message
from textual.reactive import reactive

from awm_tui.config.models import AppConfig, RunConfig, parse_usd
from awm_tui.engine.events import Event, InductionDone, RunControlled, TaskStarted
from awm_tui.tui.run_view import Curve, RunView, apply_event
from awm_tui.config.twins import twin_name
from awm_tui.tui.widgets.curves import CurvesPlot, Series
from awm_tui.tui.widgets.pane_form import FormValues, Note, PaneForm
from awm_tui.tui.widgets.pane_stats import PaneStats
from awm_tui.tui.widgets.log_view import PaneLog

Lower = Literal["log", "resolved", "cost"]
LOWER_MODES: tuple[Lower, ...] = ("log", "resolved", "cost")
"""What fills the pane under its figures (f5 cycles): the log, or a curve instead of it
(beside it, above, when the pane is TALL_ROWS high or more)."""
TALL_ROWS = 30

# RunConfig field → the form field that shows its errors.
_FIELD_OF = {"name": "name", "output_dir": "output", "limit": "limit", "llm": "profile", "api_key": "key",
             "workers": "workers", "twin": "name", "budget": "budget"}


class RunProblem(ValueError):
    """A one-line reason a pane's settings cannot become a run, tied to a field."""

    def __init__(self, field: str, text: str) -> None:
        super().__init__(text)
        self.field = field
        self.text = text


class RunPane(Vertical):
    ALLOW_MAXIMIZE = True

    # No repaint of its own: the pane draws nothing from the view, its figure lines
    # repaint themselves. A repaint here redrew the whole pane, form and log included,
    # on every metrics tick (benchmarks/tui_lag).
    view: reactive[RunView] = reactive(RunView, always_update=True, repaint=False)

    class Requested(Message):
        """The user asked this pane's run to start or stop."""

        def __init__(self, pane: "RunPane", action: str) -> None:
            super().__init__()
            self.pane = pane
            self.action = action

    def __init__(self, *, base: RunConfig | None, name: str, output: str, limit: int,
                 profile: str | None, config: AppConfig, key: SecretStr | None = None, **kwargs) -> None:
        super().__init__(classes="run-pane", **kwargs)
        self.base = base
        """The config entry or opened directory this pane came from: other fields carry over."""
        self._config = config
        self._form = PaneForm(name=name, output=output, limit=limit, profile=profile,
                              profiles=config.llm, key=key, workers=base.workers if base else 1,
                              twin=bool(base and base.twin), memory=base.memory if base else True,
                              budget=base.budget if base else None)
        self.run_name: str | None = None
        """The name this pane's run was started under (events are routed by it)."""
        self.removing = False
        """Set when the user removes the pane: its run's late events are dropped, not routed here."""
        self.inductions: list[InductionDone] = []
        self.injected: dict[str, tuple[str, ...]] = {}
        self.border_title = name
        self.lower: Lower = "log"
        self.twin: Curve | None = None
        """The curve of this run's no-memory twin (the pane of `NAME-nomem`), when there is one."""
        self._shown = True
        self._curves = CurvesPlot(id="pane-curves")

    def compose(self) -> ComposeResult:
        yield self._form
        yield PaneStats().data_bind(RunPane.view)
        yield self._curves
        yield PaneLog(max_lines=self._config.ui.log_lines)

    @property
    def form(self) -> PaneForm:
        return self._form

    @property
    def log_view(self) -> PaneLog:
        return self.query_one(PaneLog)

    @property
    def curves(self) -> CurvesPlot:
        return self._curves

    @property
    def display_name(self) -> str:
        """The run's name as the fleet knows it (the form's until it is started)."""
        return self.run_name or str(self.border_title or "")

    @property
    def running(self) -> bool:
        return self._form.running

    # -- events in ------------------------------------------------------------------
    def apply_events(self, events: Iterable[Event]) -> None:
        view = self.view
        for event in events:
            if isinstance(event, RunControlled):
                self._show_live(view, event)
            view = apply_event(view, event)
            if isinstance(event, InductionDone):
                self.inductions.append(event)
            elif isinstance(event, TaskStarted):
                self.injected[event.instance_id] = event.injected_workflows
        self.view = view
        self._show_curves()
        if self.running and view.phase in ("finished", "stopped", "failed"):
            self.set_running(False)

    def _show_live(self, view: RunView, event: RunControlled) -> None:
        """A live field the run took a new value of shows it: a twin's follow its run's
        (`Fleet.set_limit` on the run reaches the twin)."""
        changed = {field: str(new) for field, old, new in (("limit", view.limit, event.limit),
                                                           ("workers", view.workers, event.workers))
                   if old != new}
        self._form.show_live(**changed)

    def add_log_lines(self, lines: Iterable[str]) -> None:
        self.log_view.add_lines(lines)

    def set_running(self, running: bool) -> None:
        self._form.set_running(running)
        self.set_class(running, "-running")

    def set_shown(self, shown: bool) -> None:
        self._shown = shown
        self.log_view.set_shown(shown and (self.lower == "log" or self.has_class("-tall")))

    # -- curves ---------------------------------------------------------------------
    def show_lower(self, lower: Lower) -> None:
        """The log, or a curve in its place (the log keeps its lines meanwhile)."""
        self.lower = lower
        self.set_class(self.size.height >= TALL_ROWS, "-tall")
        self.set_class(lower != "log", "-curves")
        if lower != "log":
            self.curves.metric = lower
        self.set_shown(self._shown)

    def cycle_lower(self) -> Lower:
        self.show_lower(LOWER_MODES[(LOWER_MODES.index(self.lower) + 1) % len(LOWER_MODES)])
        return self.lower

    def set_twin(self, curve: Curve | None) -> None:
        if curve is not self.twin:
            self.twin = curve
            self._show_curves()

    def _show_curves(self) -> None:
        name = self.display_name
        series = [Series(name, self.view.curve)]
        if self.twin is not None:
            series.append(Series(twin_name(name), self.twin, twin=True))
        self.curves.show(series)

    def on_resize(self, event: Resize) -> None:
        self._check_tall()

    def _check_tall(self) -> None:
        # Also checked when the curves are asked for (show_lower): under load, a pane laid
        # out at its final size from the start was not always sent a Resize.
        tall = self.size.height >= TALL_ROWS
        if tall != self.has_class("-tall"):
            self.set_class(tall, "-tall")
            self.set_shown(self._shown)

    # -- settings out ---------------------------------------------------------------
    def on_pane_form_action(self, message: PaneForm.Action) -> None:
        message.stop()
        self.post_message(self.Requested(self, message.action))

    def on_pane_form_edited(self, message: PaneForm.Edited) -> None:
        self.border_title = self._form.values().name or "(unnamed)"

    def values(self) -> FormValues:
        return self._form.values()

    def show_notes(self, notes: list[Note]) -> None:
        self._form.show_notes(notes)

    def live_value(self, field: str) -> int:
        """A live whole-number field (limit, workers) as a running run takes it; RunProblem otherwise."""
        text = getattr(self._form.values(), field)
        try:
            value = int(text)
        except ValueError:
            raise RunProblem(field, f"{field}: expected a whole number, got {text!r}") from None
        if value < 1:
            raise RunProblem(field, f"{field}: must be at least 1, got {value}")
        return value

    def budget_value(self) -> float | None:
        """The budget field in USD (empty: the config's budget, or None); RunProblem otherwise."""
        text = self._form.values().budget
        if not text:
            return self.base.budget if self.base else None
        try:
            return parse_usd(text)
        except ValueError as exc:
            raise RunProblem("budget", f"budget: {exc}") from None

    def build_run(self) -> tuple[RunConfig, SecretStr | None]:
        """A validated RunConfig from the form; RunProblem (one line) otherwise."""
        values = self._form.values()
        if not values.output:
            raise RunProblem("output", "an output directory is required")
        if values.profile is None:
            raise RunProblem("profile", "choose an LLM profile")
        data = {} if self.base is None else {k: getattr(self.base, k) for k in RunConfig.model_fields}
        data.update(name=values.name, output_dir=Path(values.output), limit=values.limit or "0",
                    workers=values.workers or "0", llm=values.profile, api_key=None, twin=values.twin,
                    budget=self.budget_value())
        try:
            run = RunConfig.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "name"
            raise RunProblem(_FIELD_OF.get(field, "name"), f"{field}: {first['msg']}") from None
        return run, values.key


def link_twins(panes: Iterable[RunPane]) -> None:
    """Give each pane the curve of its no-memory twin: the pane whose run is named
    `NAME-nomem` (`config.twins.twin_name`), or None when there is no such pane."""
    panes = list(panes)
    by_name = {pane.display_name: pane for pane in panes}
    for pane in panes:
        twin = by_name.get(twin_name(pane.display_name))
        pane.set_twin(None if twin is None else twin.view.curve)
