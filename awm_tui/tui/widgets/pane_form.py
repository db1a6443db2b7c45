"""A pane's settings: name, API key, output directory, limit, workers, budget, LLM profile, twin,
Start/Stop.

While the run goes every field is read-only but limit, workers and budget: Enter in one of
them changes the running run (`Action("limit")`, `Action("workers")`, `Action("budget")`)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from awm_tui.config.keys import is_file_reference, mask_key, resolve_key
from awm_tui.config.models import LLMProfile

FIELDS = ("name", "key", "output", "limit", "workers", "budget", "profile")
LIVE_FIELDS = ("limit", "workers", "budget")
"""Fields a running run takes changes of."""


@dataclass(frozen=True)
class FormValues:
    """What the user has typed, as text; checked by the screen, built by `run_config`."""

    name: str
    key: SecretStr | None
    """Literal key, `env:VAR` or `file:PATH`; None means "use the profile's key"."""
    output: str
    limit: str
    profile: str | None
    workers: str = "1"
    twin: bool = False
    """Start a no-memory twin (`NAME-nomem`, its own pane) with this run."""
    budget: str = ""
    """USD for the run; empty: its config's budget, or none."""


@dataclass(frozen=True)
class Note:
    field: str
    level: str
    """`error` (blocks Start) or `warning`."""
    text: str


def usd_text(budget: float | None) -> str:
    """A budget as its field shows it: `2.5`, `0.05`; empty for none."""
    return "" if budget is None else f"{budget:.10g}"


class PaneForm(Vertical):
    """The editable half of a pane. Keys are taken out of the input as soon as
    the user leaves it or presses Enter, and only ever shown masked."""

    DEFAULT_CSS = """
    PaneForm { height: auto; }
    PaneForm .form-row { height: 1; margin-bottom: 0; }
    PaneForm Label { padding: 0 1 0 0; }
    PaneForm #name { width: 18; }
    PaneForm #limit { width: 6; }
    PaneForm #workers { width: 4; }
    PaneForm #budget { width: 7; }
    PaneForm #profile { width: 26; margin: 0 1; }
    PaneForm #key, PaneForm #output { width: 1fr; }
    PaneForm #key-shown { width: auto; padding: 0 1; }
    PaneForm #twin { width: auto; margin-left: 1; }
    PaneForm #no-memory { width: auto; margin-left: 1; color: $text-muted; }
    PaneForm Button { margin-left: 1; min-width: 7; }
    PaneForm #notes { height: auto; }
    """

    class Edited(Message):
        """A field changed: the screen re-checks every pane (duplicates span panes)."""

    class Action(Message):
        def __init__(self, action: str) -> None:
            super().__init__()
            self.action = action
            """`start`, `stop`, or a live field changed on a running run (`LIVE_FIELDS`)."""

    def __init__(self, *, name: str, output: str, limit: int, profile: str | None,
                 profiles: dict[str, LLMProfile], key: SecretStr | None = None, workers: int = 1,
                 twin: bool = False, memory: bool = True, budget: float | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._initial = (name, output, str(limit), profile)
        self._workers = str(workers)
        self._budget = budget
        """The config's budget: the field's first value, and what it means left empty."""
        self._twin, self.memory = twin, memory
        """`memory` False: a no-memory twin's pane, which says so and cannot have a twin itself."""
        self._profiles = profiles
        self._key = key
        self.running = False
        self.has_errors = False

    def compose(self) -> ComposeResult:
        name, output, limit, profile = self._initial
        options = [(p.label or n, n) for n, p in self._profiles.items()]
        with Horizontal(classes="form-row"):
            yield Input(name, placeholder="run name", id="name", compact=True)
            yield Select(options, value=profile if profile in self._profiles else Select.NULL,
                         allow_blank=not options, prompt="LLM profile", id="profile", compact=True)
            yield Label("limit")
            yield Input(limit, type="integer", id="limit", compact=True)
            yield Button("Start", id="start", variant="success", compact=True)
            yield Button("Stop", id="stop", variant="error", compact=True, disabled=True)
        with Horizontal(classes="form-row"):
            yield Label("key")
            yield Input(password=True, placeholder=self._key_placeholder(), id="key", compact=True)
            yield Label("out", classes="gap")
            yield Input(output, placeholder="output directory", id="output", compact=True)
            yield Label("workers", classes="gap")
            yield Input(self._workers, type="integer", id="workers", compact=True)
            yield Label("budget", classes="gap")
            yield Input(usd_text(self._budget), placeholder=self._budget_placeholder(), id="budget",
                        compact=True, tooltip="USD for the whole run (its earlier sessions included); "
                                              "empty: the config's budget, or none")
            if self.memory:
                yield Checkbox("twin", self._twin, id="twin", compact=True,
                               tooltip="also start a no-memory twin: NAME-nomem in DIR-nomem, same tasks")
            else:
                yield Label("no memory", id="no-memory")
        yield Static(id="notes").set_styles("display: none;")

    def _key_placeholder(self) -> str:
        if self._key is None:
            profile = self._profiles.get(str(self._selected_profile()))
            if profile is not None and profile.api_key is not None:
                # The run takes its profile's key: say so, not "no key".
                return f"{mask_key(profile.api_key.get_secret_value())} from the profile (type to replace)"
            return "API key, env:VAR or file:PATH"
        typed = self._key.get_secret_value()
        if is_file_reference(typed):
            return f"{typed} (read at start; type to replace)"
        if typed.startswith("env:"):
            # The reference is not secret and is what the user typed: show it, and
            # the key it resolves to masked (masking `env:VAR` itself read as a key).
            key = resolve_key(typed)
            shown = f"= {mask_key(key)}" if isinstance(key, SecretStr) else "(not set)"
            return f"{typed} {shown} (type to replace)"
        return f"{mask_key(typed)} (type to replace)"

    def _selected_profile(self) -> object:
        if not self.is_mounted:
            return self._initial[3]
        return self.query_one("#profile", Select).value

    # -- reading -----------------------------------------------------------------
    @property
    def composed(self) -> bool:
        return bool(self.query("#key"))

    def values(self) -> FormValues:
        if not self.composed:
            # Not composed yet: a pane is listed as soon as it is added, and a sibling's edit
            # checked meanwhile must see what this form will show, not take the app down.
            name, output, limit, initial_profile = self._initial
            return FormValues(name=name, key=self._key, output=output, limit=limit, profile=initial_profile,
                              workers=self._workers, twin=self.memory and self._twin, budget=usd_text(self._budget))
        typed = self.query_one("#key", Input).value.strip()
        key = SecretStr(typed) if typed else self._key
        profile = self.query_one("#profile", Select).value
        return FormValues(
            name=self.query_one("#name", Input).value.strip(),
            key=key,
            output=self.query_one("#output", Input).value.strip(),
            limit=self.query_one("#limit", Input).value.strip(),
            profile=None if profile is Select.NULL else str(profile),
            workers=self.query_one("#workers", Input).value.strip(),
            twin=self.memory and self.query_one("#twin", Checkbox).value,
            budget=self.query_one("#budget", Input).value.strip(),
        )

    def follow(self, name: str, output: str, limit: str, workers: str, profile: str | None,
               budget: float | None) -> None:
        """A twin pane takes its run's settings (its name and directory derived from them; its
        budget the same figure, for a spend of its own)."""
        self.query_one("#name", Input).value = name
        self.query_one("#output", Input).value = output
        self.show_live(limit=limit, workers=workers)
        self._budget = budget
        field = self.query_one("#budget", Input)
        field.value, field.placeholder = usd_text(budget), self._budget_placeholder()
        if profile is not None:
            self.query_one("#profile", Select).value = profile

    def _budget_placeholder(self) -> str:
        """What an empty budget field means: the config's budget, or none."""
        return usd_text(self._budget) or "none"

    def show_live(self, **values: str) -> None:
        """Live fields (`limit`, `workers`) set to what the run now takes."""
        for field, value in values.items():
            self.query_one(f"#{field}", Input).value = value

    def set_output(self, output: str) -> None:
        self.query_one("#output", Input).value = output

    # -- the key never stays in a widget ----------------------------------------
    def stash_key(self) -> None:
        field = self.query_one("#key", Input)
        typed = field.value.strip()
        if typed:
            self._key = SecretStr(typed)
            field.value = ""
            field.placeholder = self._key_placeholder()
            self.post_message(self.Edited())

    @on(Input.Submitted, "#key")
    @on(Input.Blurred, "#key")
    def _key_left(self) -> None:
        self.stash_key()

    @on(Input.Submitted, "#limit")
    @on(Input.Submitted, "#workers")
    @on(Input.Submitted, "#budget")
    def _live_submitted(self, event: Input.Submitted) -> None:
        if self.running and event.input.id in LIVE_FIELDS:
            event.stop()
            self.post_message(self.Action(str(event.input.id)))

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _edited(self, event: Message) -> None:
        event.stop()
        if isinstance(event, Select.Changed) and self._key is None:
            self.query_one("#key", Input).placeholder = self._key_placeholder()  # the new profile's key
        self.post_message(self.Edited())

    @on(Button.Pressed, "#start")
    def _start(self, event: Button.Pressed) -> None:
        event.stop()
        self.stash_key()
        self.post_message(self.Action("start"))

    @on(Button.Pressed, "#stop")
    def _stop(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.Action("stop"))

    # -- showing checks and state -------------------------------------------------
    def show_notes(self, notes: list[Note]) -> None:
        if not self.composed:
            return  # the screen checks every pane again once this one is mounted
        by_field = {f: [n for n in notes if n.field == f] for f in FIELDS}
        for field, found in by_field.items():
            widget = self.query_one(f"#{field}")
            widget.set_class(any(n.level == "error" for n in found), "-error")
            widget.set_class(bool(found) and all(n.level == "warning" for n in found), "-warning")
        lines = [f"[$error]✗ {n.field}: {escape(n.text)}[/]" if n.level == "error"
                 else f"[$warning]! {n.field}: {escape(n.text)}[/]" for n in notes]
        notes_widget = self.query_one("#notes", Static)
        notes_widget.update("\n".join(lines))
        notes_widget.display = bool(lines)
        self.has_errors = any(n.level == "error" for n in notes)
        self._refresh_buttons()

    def set_running(self, running: bool) -> None:
        self.running = running
        for widget in self.query("Input, Select, Checkbox"):
            # A running pane's settings are read-only, but for what a run takes live.
            widget.disabled = running and widget.id not in LIVE_FIELDS
        self._refresh_buttons()

    def _refresh_buttons(self) -> None:
        self.query_one("#start", Button).disabled = self.running or self.has_errors
        self.query_one("#stop", Button).disabled = not self.running
