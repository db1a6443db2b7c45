"""The keys view: every API key the fleet uses, masked, with its health.

Fed by the fleet's `KeyHealth` events (the app keeps the latest per key and
calls `show` as they come): calls in flight and the in-flight limit, 429s and
the Retry-After in force, a refusal, and the credits left where the provider
reports them.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from awm_tui.engine.events import KeyHealth

COLUMNS = ("key", "id", "runs", "in flight", "waiting", "calls", "429s", "held", "refused", "credits left")


def key_row(health: KeyHealth) -> tuple[str, ...]:
    if health.credits_remaining is None:
        credits = "–"
    else:
        of = f" of ${health.credits_limit:.2f}" if health.credits_limit is not None else ""
        credits = f"${health.credits_remaining:.2f}{of}" + (" LOW" if health.credits_low else "")
    return (health.masked, health.identity, ", ".join(health.runs) or "–",
            f"{health.in_flight}/{health.limit}", str(health.waiting), str(health.calls),
            str(health.rate_limited), f"{health.retry_after_s:.1f}s" if health.retry_after_s > 0 else "–",
            str(health.refused) if health.refused else "–", credits)


class KeysScreen(Screen):
    DEFAULT_CSS = """
    KeysScreen DataTable { height: 1fr; }
    """

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, keys: Iterable[KeyHealth]) -> None:
        super().__init__(id="keys")
        self._initial = list(keys)

    def compose(self) -> ComposeResult:
        yield Static("API keys (masked) · shared by every run that uses them", id="keys-title")
        yield DataTable(id="keys-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="keys-empty")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.show(self._initial)

    def show(self, keys: Iterable[KeyHealth]) -> None:
        table = self.query_one(DataTable)
        table.clear()
        rows = list(keys)
        for health in rows:
            table.add_row(*key_row(health), key=health.identity)
        self.query_one("#keys-empty", Static).update(
            "" if rows else "no key in use yet: keys appear once a run starts")
