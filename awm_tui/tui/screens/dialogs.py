"""Small modal dialogs: confirm quitting with runs active, open an output directory."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


class QuitConfirm(ModalScreen[bool]):
    """Runs are active: stop them cleanly (checkpoint, containers removed) and quit?"""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Stop runs and quit"),
        Binding("n,escape", "answer(False)", "Keep running"),
    ]

    def __init__(self, active: list[str]) -> None:
        super().__init__(classes="dialog")
        self._active = active

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-body"):
            names = ", ".join(self._active)
            yield Label(f"{len(self._active)} run(s) active: {names}", markup=False)
            yield Label("Stop them (checkpoint saved, containers removed) and quit?")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Stop and quit [y]", id="yes", variant="error")
                yield Button("Keep running [n]", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class OpenOutputDir(ModalScreen[Path | None]):
    """Ask for an old output directory to show (and resume) in a new pane."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-body"):
            yield Label("Open an output directory (checkpoint.json, memory.json):")
            yield Input(placeholder="path/to/outputs/run_1", id="path")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Open", id="open", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#open")
    def _open(self) -> None:
        text = self.query_one("#path", Input).value.strip()
        if text:
            self.dismiss(Path(text).expanduser())

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
