"""The Docker hosts of `[[docker.hosts]]`: up or down, containers in use / capacity,
exec/s, images present, disk free, as the engine's HostStatus events last said."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from awm_tui.engine.events import HostStatus

COLUMNS = ("host", "state", "containers", "exec/s", "images", "disk free", "labels")


def host_row(status: HostStatus) -> tuple[str | Text, ...]:
    state = Text("up", style="green") if status.up else Text("DOWN", style="bold red")
    used = f"{status.in_use}/{status.capacity}" if status.capacity else f"{status.in_use}/∞"
    free = f"{status.free_bytes / 1e9:.1f} GB" if status.free_bytes is not None else "–"
    labels = ", ".join(f"{k}={v}" for k, v in status.labels) or ("" if status.up else status.error[:60])
    return (status.url, state, used, f"{status.exec_per_s:.1f}", str(status.images), free, labels)


class HostsScreen(Screen):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, statuses: Iterable[HostStatus]) -> None:
        super().__init__(id="hosts")
        self.statuses = {s.url: s for s in statuses}

    def compose(self) -> ComposeResult:
        yield Static("Docker hosts", id="hosts-title")
        yield DataTable(id="hosts-table", cursor_type="row", zebra_stripes=True)
        yield Static(self._note(), id="hosts-note", markup=False)
        yield Footer()

    def _note(self) -> str:
        if not self.statuses:
            return "no [[docker.hosts]] in use yet: hosts appear once a run places a container"
        return "pinged every few seconds; a host that stops answering is marked down and its tasks end as errors"

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        self._fill()

    def update(self, status: HostStatus) -> None:
        self.statuses[status.url] = status
        if self.is_mounted:
            self._fill()
            self.query_one("#hosts-note", Static).update(self._note())

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for status in self.statuses.values():
            table.add_row(*host_row(status), key=status.url)
