"""The memory browser: a run's workflows, its induction history, and which
workflows each task received."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import DataTable, Footer, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from awm_tui.tui.output_reading import OutputSummary, read_output_dir
from awm_tui.tui.screens.trajectory import TrajectoryScreen


def workflow_text(summary: OutputSummary, index: int) -> str:
    wf = summary.workflows[index]
    rate = f"{wf.successes}/{wf.uses} resolved" if wf.uses else "not used yet"
    lines = [f"[b]{escape(wf.title)}[/b]  ({wf.id}, v{wf.version})"]
    if wf.description:
        lines.append(escape(wf.description))
    lines.append(f"used in {wf.uses} task(s), {rate}")
    lines.append("")
    lines += [f"{i}. {escape(step)}" for i, step in enumerate(wf.steps, 1)]
    lines.append("")
    lines.append("sources: " + (escape(", ".join(wf.source_instances)) or "–"))
    return "\n".join(lines)


class MemoryScreen(Screen):
    # TabbedContent and TabPane are height: auto; with a list of 1fr inside, the
    # tabs took the whole screen, the title scrolled out of view above them.
    DEFAULT_CSS = """
    MemoryScreen > TabbedContent { height: 1fr; }
    MemoryScreen TabPane { height: 1fr; }
    MemoryScreen #workflows-tab > Horizontal { height: 1fr; }
    """

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self, run_label: str, output_dir: Path) -> None:
        super().__init__(id="memory")
        self.run_label = run_label
        self.output_dir = output_dir
        self.summary: OutputSummary | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"memory of {self.run_label} · {self.output_dir}", id="memory-title", markup=False)
        with TabbedContent():
            with TabPane("Workflows", id="workflows-tab"):
                with Horizontal():
                    yield OptionList(id="workflow-list")
                    with VerticalScroll(id="workflow-detail"):
                        yield Static("loading…", id="workflow-text")
            with TabPane("Inductions", id="inductions-tab"):
                yield DataTable(id="inductions", cursor_type="row", zebra_stripes=True)
            with TabPane("Tasks", id="tasks-tab"):
                yield DataTable(id="tasks", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#inductions", DataTable).add_columns("version", "time", "mode", "added", "changed", "removed")
        self.query_one("#tasks", DataTable).add_columns("task (enter: trajectory)", "resolved", "memory",
                                                     "workflows received")
        self.action_reload()

    def action_reload(self) -> None:
        self._load()

    @work(group="memory", exclusive=True, exit_on_error=False, description="read memory.json")
    async def _load(self) -> None:
        summary = await asyncio.to_thread(read_output_dir, self.output_dir)
        self.summary = summary
        self._show(summary)

    def _show(self, summary: OutputSummary) -> None:
        title = f"memory of {self.run_label} · {summary.path} · version {summary.memory_version}"
        title += f" · {len(summary.workflows)} workflow(s) · {summary.done} task(s) done"
        self.query_one("#memory-title", Static).update(title)
        options = self.query_one("#workflow-list", OptionList)
        options.clear_options()
        # Plain Content: an induced title like "list[int] args" is not markup.
        options.add_options(Option(Content(f"{wf.id} {wf.title} ({wf.successes}/{wf.uses})"), id=wf.id)
                            for wf in summary.workflows)
        text = self.query_one("#workflow-text", Static)
        if summary.workflows:
            options.highlighted = 0
            text.update(workflow_text(summary, 0))
        else:
            text.update("no workflows yet: they are induced after successful tasks")
        if summary.problems:
            self.notify("\n".join(summary.problems), severity="warning", title="unreadable files")
        inductions = self.query_one("#inductions", DataTable)
        inductions.clear()
        # DataTable reads str cells as markup; ids and names come from the user's files.
        for entry in reversed(summary.inductions):
            inductions.add_row(*map(Text, (
                str(entry.version), time.strftime("%H:%M:%S", time.localtime(entry.at)), entry.mode,
                ", ".join(entry.added) or "–", ", ".join(entry.changed) or "–", ", ".join(entry.removed) or "–")))
        tasks = self.query_one("#tasks", DataTable)
        tasks.clear()
        for task in summary.tasks:
            resolved = "…" if task.resolved is None else "yes" if task.resolved else "no"
            version = "–" if task.memory_version is None else f"v{task.memory_version}"
            tasks.add_row(Text(task.instance_id), Text(resolved), Text(version),
                          Text(", ".join(task.workflows) or "none"), key=task.instance_id)

    @on(DataTable.RowSelected, "#tasks")
    def _task_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a task opens its trajectory."""
        if event.row_key.value is not None:
            self.app.push_screen(TrajectoryScreen(self.output_dir, event.row_key.value, self.run_label))

    @on(OptionList.OptionHighlighted, "#workflow-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if self.summary is not None and event.option_index < len(self.summary.workflows):
            self.query_one("#workflow-text", Static).update(workflow_text(self.summary, event.option_index))
