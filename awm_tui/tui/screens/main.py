"""The main screen: the fleet bar, the run panes and the footer.

Wide terminals (≥ WIDE_COLUMNS) show every pane in a grid; narrow ones show
one pane at a time under a tab bar. Panes are never re-mounted when the
layout changes, only shown or hidden, so their logs and forms keep state.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Container
from textual.events import DescendantFocus, Resize
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Tab, Tabs

from awm_tui.config.models import AppConfig
from awm_tui.tui.pane_checks import check_panes
from awm_tui.tui.widgets.fleet_bar import FleetBar
from awm_tui.tui.widgets.pane_form import PaneForm
from awm_tui.tui.widgets.run_pane import RunPane

WIDE_COLUMNS = 140


class MainScreen(Screen):
    def __init__(self, config: AppConfig) -> None:
        super().__init__(id="main")
        self._config = config
        """The app's config: its profiles are what the pane checks compare against."""
        self.current: RunPane | None = None
        self.wide = False
        self._mounted_panes: list[RunPane] = []
        """The panes in order, kept by add/remove: routing an event must not walk the DOM."""

    class Ready(Message):
        """The screen is composed: panes can be added."""

    def compose(self) -> ComposeResult:
        yield FleetBar()
        yield Tabs(id="pane-tabs")
        yield Container(id="pane-deck")
        yield Footer()

    def on_mount(self) -> None:
        self.post_message(self.Ready())

    @property
    def panes(self) -> list[RunPane]:
        # Empty while the screen is still composing, and only attached panes while it is
        # tearing down: engine events keep arriving then, and must not take the app down.
        # Kept by add/remove, not queried: this runs for every batch of events.
        return [pane for pane in self._mounted_panes if pane.is_attached]

    def pane_by_run(self, run: str) -> RunPane | None:
        # Called for every run in every batch of events: a DOM query here was a tenth
        # of the event loop's time in a log flood (benchmarks/tui_lag under py-spy).
        for pane in self.panes:
            if pane.run_name == run and pane.is_attached and not pane.removing:
                return pane
        return None

    # -- adding and removing --------------------------------------------------------
    async def add_pane(self, pane: RunPane, *, focus: bool = True) -> None:
        self._mounted_panes.append(pane)  # before awaiting: the run's events may come meanwhile
        await self.query_one("#pane-deck").mount(pane)
        await self.query_one(Tabs).add_tab(Tab(str(pane.border_title or pane.id), id=f"tab-{pane.id}"))
        if focus or self.current is None:
            self.show_pane(pane, focus=focus)
        self.check_panes()
        self._relayout()

    async def remove_pane(self, pane: RunPane) -> None:
        panes = self.panes
        index = panes.index(pane)
        pane.removing = True  # events for its run may still arrive while Textual takes it down
        self._mounted_panes.remove(pane)
        await self.query_one(Tabs).remove_tab(f"tab-{pane.id}")
        await pane.remove()
        rest = self.panes
        self.current = None
        if rest:
            self.show_pane(rest[min(index, len(rest) - 1)])
        self.check_panes()
        self._relayout()

    # -- which pane is current --------------------------------------------------------
    def show_pane(self, pane: RunPane, *, focus: bool = True) -> None:
        self.current = pane
        tabs = self.query_one(Tabs)
        if tabs.active != f"tab-{pane.id}":
            tabs.active = f"tab-{pane.id}"
        self._update_visibility()
        if focus and not (self.focused and pane in self.focused.ancestors):
            pane.form.query_one("#name").focus()

    def cycle(self, step: int) -> None:
        panes = self.panes
        if panes:
            index = panes.index(self.current) if self.current in panes else 0
            self.show_pane(panes[(index + step) % len(panes)])

    @on(Tabs.TabActivated, "#pane-tabs")
    def _tab_activated(self, event: Tabs.TabActivated) -> None:
        if event.tab.id != event.tabs.active:
            return  # stale: the active tab moved on while this message was queued
        pane_id = (event.tab.id or "").removeprefix("tab-")
        for pane in self.panes:
            if pane.id == pane_id and pane is not self.current:
                self.show_pane(pane)

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        for node in event.widget.ancestors_with_self:
            if isinstance(node, RunPane):
                if node is not self.current:
                    self.current = node
                    self.query_one(Tabs).active = f"tab-{node.id}"
                    self._update_visibility()
                return

    # -- layout ---------------------------------------------------------------------------
    def on_resize(self, event: Resize) -> None:
        self.wide = event.size.width >= WIDE_COLUMNS
        self.set_class(self.wide, "-wide")
        self._relayout()
        self._update_visibility()

    def _relayout(self) -> None:
        deck = self.query_one("#pane-deck")
        count = len(self.panes) if self.wide else 1
        deck.styles.grid_size_columns = 1 if count < 2 else 2 if count <= 4 else 3 if count <= 9 else 4

    def _update_visibility(self) -> None:
        for pane in self.panes:
            shown = self.wide or pane is self.current
            pane.set_class(pane is self.current, "-current")
            pane.set_shown(shown)

    # -- checks that span panes ------------------------------------------------------------
    @on(PaneForm.Edited)
    def check_panes(self) -> None:
        panes = self.panes
        notes = check_panes({str(pane.id): pane.values() for pane in panes}, self._config.llm)
        tabs = self.query_one(Tabs)
        for pane in panes:
            pane.show_notes(notes[str(pane.id)])
            for tab in tabs.query(f"#tab-{pane.id}").results(Tab):  # none while the tab is not mounted yet
                tab.label = str(pane.border_title or pane.id)
