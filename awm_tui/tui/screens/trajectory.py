"""The trajectory viewer: one task as the agent lived it, from `trajectories/<id>.json`.

Tabs: the steps (reasoning, command, exit code, output; each collapsible, all
searchable), the prompt with the injected workflows highlighted, the patch as
a diff, and the evaluation's verdict and log. Styles are theme variables, so
`awm-ansi` draws it in the terminal's 16 colours.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Collapsible, Footer, Input, Static, TabbedContent, TabPane

from awm_tui.engine.state import StateError
from awm_tui.engine.state.trajectory import Step, Trajectory, trajectory_path

OUTPUT_LINES = 400
"""Lines of a step's output shown (head and tail); the file keeps all of it."""


def verdict(trajectory: Trajectory) -> str:
    resolved = trajectory.resolved
    return "not evaluated" if resolved is None else "resolved" if resolved else "not resolved"


def prompt_content(trajectory: Trajectory) -> Content:
    """The task prompt, its injected workflows block highlighted."""
    prompt = trajectory.prompt
    span = trajectory.workflow_span()
    if span is None:
        return Content(prompt or "(no prompt recorded)")
    start, end = span
    return Content.assemble(prompt[:start], (prompt[start:end], "bold $text-accent on $accent-muted"), prompt[end:])


def diff_content(patch: str) -> Content:
    if not patch.strip():
        return Content("(empty patch: the agent changed nothing)")
    parts: list[Content | tuple[str, str] | str] = []
    for line in patch.splitlines():
        if line.startswith(("+++", "---", "diff --git", "index ")):
            parts.append((line, "bold"))
        elif line.startswith("+"):
            parts.append((line, "$text-success"))
        elif line.startswith("-"):
            parts.append((line, "$text-error"))
        elif line.startswith("@@"):
            parts.append((line, "$text-accent"))
        else:
            parts.append(line)
        parts.append("\n")
    return Content.assemble(*parts[:-1])


def evaluation_content(trajectory: Trajectory) -> Content:
    info = trajectory.evaluation
    if info is None:
        return Content("not evaluated (--skip-eval, or the evaluation failed before answering)")
    style = "bold $text-success" if trajectory.resolved else "bold $text-error"
    parts: list[Content | tuple[str, str] | str] = [(verdict(trajectory), style)]
    rest = dict(info)
    for key in ("instance_id", "resolved"):
        rest.pop(key, None)
    if rest.get("error"):
        parts += ["\n", ("error: ", "bold"), str(rest.pop("error"))]
    tests = rest.pop("tests", None)
    if isinstance(tests, dict):
        for group in ("FAIL_TO_PASS", "PASS_TO_PASS"):
            report = tests.get(group)
            if not isinstance(report, dict):
                continue
            counts = ", ".join(f"{report.get(k, 0)} {k}" for k in ("passed", "failed", "missing"))
            parts += ["\n\n", (f"{group}: ", "bold"), counts]
            for name, status in (report.get("status") or {}).items():
                mark = "$text-success" if status == "PASSED" else "$text-error"
                parts += ["\n  ", (f"{status:<8}", mark), f" {name}"]
        for key, value in tests.items():
            if key not in ("FAIL_TO_PASS", "PASS_TO_PASS", "resolved"):
                text = value if isinstance(value, str) else json.dumps(value, indent=2)
                parts += ["\n\n", (f"{key}:", "bold"), "\n", text]
    for key, value in rest.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts += ["\n", (f"{key}: ", "bold"), text]
    return Content.assemble(*parts)


def _clip_output(output: str) -> str:
    lines = output.splitlines()
    if len(lines) <= OUTPUT_LINES:
        return output.rstrip("\n")
    half = OUTPUT_LINES // 2
    return "\n".join([*lines[:half], f"[… {len(lines) - OUTPUT_LINES} lines not shown …]", *lines[-half:]])


def step_title(step: Step) -> str:
    code = "not run" if step.exit_code is None else f"exit {step.exit_code}"
    command = (step.command or "(no command: format error)").splitlines()[0]
    return f"{step.number:>2} · {code} · {command[:90]}"


def step_text(step: Step) -> str:
    """Everything a search looks at."""
    return "\n".join((step.reasoning, step.command or "", step.output, step.note))


class StepView(Collapsible):
    """One step: the reasoning, the command, its exit code and output."""

    def __init__(self, step: Step) -> None:
        self.step = step
        self.haystack = step_text(step).lower()
        code = ("$text-success" if step.exit_code == 0 else "$text-error") if step.exit_code is not None else "dim"
        exit_line = Content.assemble(("exit code ", "dim"),
                                     ("not run" if step.exit_code is None else str(step.exit_code), code))
        if step.note:
            exit_line = Content.assemble(exit_line, "  ", (step.note, "$text-warning"))
        super().__init__(
            Static(Content(step.reasoning or "(no reasoning)"), classes="reasoning"),
            Static(Content.assemble(("$ ", "bold"), (step.command or "(none)", "bold")), classes="command"),
            Static(exit_line, classes="exit"),
            Static(Content(_clip_output(step.output) or "(no output)"), classes="output"),
            title=step_title(step), collapsed=True, id=f"step-{step.number}")

    def show_matches(self, needle: str) -> None:
        """Highlight `needle` in the output and the command (case-insensitive)."""
        pattern = re.compile(re.escape(needle), re.IGNORECASE) if needle else None
        for widget, text in ((self.query_one(".output", Static), _clip_output(self.step.output) or "(no output)"),
                             (self.query_one(".reasoning", Static), self.step.reasoning or "(no reasoning)")):
            content = Content(text)
            if pattern is not None:
                content = content.highlight_regex(pattern, style="reverse $text-warning")
            widget.update(content)


class TrajectoryScreen(Screen):
    DEFAULT_CSS = """
    TrajectoryScreen > TabbedContent { height: 1fr; }
    TrajectoryScreen TabPane { height: 1fr; padding: 0; }
    TrajectoryScreen #step-search { height: 1; border: none; padding: 0 1; }
    TrajectoryScreen #search-status { height: 1; padding: 0 1; color: $text-muted; }
    TrajectoryScreen #steps { height: 1fr; }
    /* One line per closed step: at 80x24 a dozen steps fit. */
    TrajectoryScreen StepView { padding: 0; margin: 0; border-top: none; }
    TrajectoryScreen StepView:focus-within { background-tint: $foreground 5%; }
    TrajectoryScreen StepView > Contents { padding: 0 1 1 3; }
    TrajectoryScreen StepView .command { color: $text-accent; }
    TrajectoryScreen StepView .output { background: $boost; padding: 0 1; }
    TrajectoryScreen StepView.-hidden { display: none; }
    TrajectoryScreen #trajectory-title { height: auto; padding: 0 1; background: $panel; }
    """

    BINDINGS = [
        Binding("escape,q", "back", "Back"),
        Binding("slash", "search", "Search"),
        Binding("e", "expand_all", "Expand all"),
        Binding("c", "collapse_all", "Collapse all"),
    ]

    def __init__(self, output_dir: Path, instance_id: str, run_label: str = "") -> None:
        super().__init__(id="trajectory")
        self.output_dir, self.instance_id, self.run_label = output_dir, instance_id, run_label
        self.trajectory: Trajectory | None = None
        self.steps: list[Step] = []

    def compose(self) -> ComposeResult:
        where = f"{self.run_label} · " if self.run_label else ""
        yield Static(Content(f"trajectory of {self.instance_id} · {where}loading…"), id="trajectory-title")
        with TabbedContent(initial="steps-tab"):
            with TabPane("Steps", id="steps-tab"):
                yield Input(placeholder="search reasoning, commands and output (/)", id="step-search")
                yield Static("", id="search-status")
                yield VerticalScroll(id="steps")
            with TabPane("Prompt", id="prompt-tab"):
                with VerticalScroll():
                    yield Static("", id="prompt")
            with TabPane("Patch", id="patch-tab"):
                with VerticalScroll():
                    yield Static("", id="patch")
            with TabPane("Evaluation", id="evaluation-tab"):
                with VerticalScroll():
                    yield Static("", id="evaluation")
        yield Footer()

    def on_mount(self) -> None:
        self._load()

    @work(group="trajectory", exclusive=True, exit_on_error=False, description="read a trajectory")
    async def _load(self) -> None:
        path = await asyncio.to_thread(trajectory_path, self.output_dir, self.instance_id)
        try:
            trajectory = await asyncio.to_thread(Trajectory.load, path)
        except StateError as exc:
            self.query_one("#trajectory-title", Static).update(Content(str(exc)))
            self.notify(str(exc), severity="warning", title="no trajectory")
            return
        await self.show(trajectory)

    async def show(self, trajectory: Trajectory) -> None:
        self.trajectory = trajectory
        self.steps = trajectory.steps()
        workflows = ", ".join(trajectory.injected_workflows) or "none"
        style = {"resolved": "$text-success", "not resolved": "$text-error"}.get(verdict(trajectory), "dim")
        where = f"{self.run_label} · " if self.run_label else ""
        self.query_one("#trajectory-title", Static).update(Content.assemble(
            ("trajectory of ", "dim"), (trajectory.instance_id, "bold"), f" · {where}",
            (verdict(trajectory), f"bold {style}"),
            f" · {trajectory.exit_status or '?'} · {len(self.steps)} step(s) · workflows: {workflows}"))
        self.query_one("#prompt", Static).update(prompt_content(trajectory))
        self.query_one("#patch", Static).update(diff_content(trajectory.patch))
        self.query_one("#evaluation", Static).update(evaluation_content(trajectory))
        container = self.query_one("#steps", VerticalScroll)
        await container.remove_children()
        await container.mount_all(StepView(step) for step in self.steps)
        self._filter("")

    # -- searching -----------------------------------------------------------------------------

    @on(Input.Changed, "#step-search")
    def _search_changed(self, event: Input.Changed) -> None:
        self._filter(event.value)

    def _filter(self, needle: str) -> None:
        needle = needle.strip()
        views = list(self.query(StepView))
        shown = 0
        for view in views:
            match = not needle or needle.lower() in view.haystack
            view.set_class(not match, "-hidden")
            if needle:
                view.collapsed = not match
            view.show_matches(needle)
            shown += match
        status = self.query_one("#search-status", Static)
        if needle:
            status.update(Content(f"{shown} of {len(views)} step(s) contain {needle!r}"))
        else:
            status.update(Content(f"{len(views)} step(s) · enter on a step opens it · e/c expand/collapse all"))

    def action_search(self) -> None:
        self.query_one(TabbedContent).active = "steps-tab"
        self.query_one("#step-search", Input).focus()

    def action_expand_all(self) -> None:
        for view in self.query(StepView):
            if not view.has_class("-hidden"):
                view.collapsed = False

    def action_collapse_all(self) -> None:
        for view in self.query(StepView):
            view.collapsed = True

    def action_back(self) -> None:
        search = self.query_one("#step-search", Input)
        if search.has_focus and search.value:
            search.value = ""  # escape clears the search first
            return
        self.app.pop_screen()
