"""A pane's live figures: status, progress, throughput, connections, LLM, cost."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.markup import escape
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Sparkline

from awm_tui.tui.run_view import RunView, spark_data, status_text


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}s" if value < 10 else f"{value:.0f}s"


def _count(value: int) -> str:
    return f"{value / 1000:.1f}k" if value >= 10_000 else str(value)


def progress_line(view: RunView) -> str:
    limit = view.limit or view.tasks_total
    rate = "–" if view.resolve_rate is None else f"{view.resolve_rate:.0%}"
    where = f" · {escape(view.sandbox)}" if view.sandbox else ""
    return (f"tasks [b]{view.done}[/b]/{limit or '–'} · resolved [b]{view.resolved}[/b] ({rate})"
            f" · workflows [b]{view.workflows}[/b]{where}")


def connections_line(view: RunView, per_host: bool) -> str:
    m = view.metrics
    line = f"conn open [b]{m.connections_open}[/b] · created {m.connections_created} · reused {m.connections_reused}"
    if per_host:
        hosts = [f"  {escape(h.host)}: open {h.open} · created {h.created} · reused {h.reused}"
                 for h in m.per_host] or ["  (no connections yet)"]
        line += "\n" + "\n".join(hosts)
    return line


def llm_line(view: RunView) -> str:
    m = view.metrics
    served = f" [b]{escape(view.served_model)}[/b]" if view.served_model else ""
    cut = f" · cut at max tokens {m.truncated_replies}" if m.truncated_replies else ""
    return (f"LLM{served} p50 {_seconds(m.llm_latency_p50)} p95 {_seconds(m.llm_latency_p95)}"
            f" · retries {m.retries} · 429s {m.rate_limited}"
            f" · tokens {'~' if view.tokens_estimated else ''}{_count(m.prompt_tokens)}/{_count(m.completion_tokens)}"
            f"{cut} · ${m.cost:.4f}"
            + (f" · {m.cache_text()}" if m.cached_tokens else ""))


def budget_line(view: RunView) -> str:
    """Spend against each budget set (run, key, fleet); empty when none is."""
    text = view.spend.budgets_text() if view.spend is not None else ""
    return f"budget {escape(text)}" if text else ""


class FigureLine(Widget):
    """A line of figures. Unlike Static.update, a new value repaints only this
    line, not the whole screen's layout; the same value repaints nothing."""

    DEFAULT_CSS = "FigureLine { height: auto; }"

    text: reactive[str] = reactive("", layout=False)

    def __init__(self, *, markup: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self._markup = markup

    def render(self) -> Content:
        return Content.from_markup(self.text) if self._markup else Content(self.text)

    def update(self, text: str) -> None:
        lines_before = self.text.count("\n")
        self.text = text
        if text.count("\n") != lines_before:
            self.refresh(layout=True)  # the per-host list grew or shrank


class PaneStats(Vertical):
    """Figures for one run; the owning pane pushes `view` down with data_bind."""

    DEFAULT_CSS = """
    PaneStats { height: auto; }
    PaneStats #throughput { height: 1; }
    PaneStats #evals { width: auto; }
    PaneStats Sparkline { width: 1fr; height: 1; margin-left: 1; }
    """

    view: reactive[RunView] = reactive(RunView, always_update=True, repaint=False)  # as RunPane.view
    per_host: reactive[bool] = reactive(False)

    def compose(self) -> ComposeResult:
        yield FigureLine(id="status", classes="status", markup=False)
        yield FigureLine(id="progress")
        with Horizontal(id="throughput"):
            yield FigureLine(id="evals")
            yield Sparkline([], id="evals-spark")
        yield FigureLine(id="connections")
        yield FigureLine(id="llm")
        yield FigureLine(id="budget")
        yield FigureLine(id="key", markup=False)

    def on_mount(self) -> None:
        self._render_view()

    def watch_view(self) -> None:
        if self.is_mounted:
            self._render_view()

    def watch_per_host(self) -> None:
        if self.is_mounted:
            self._render_view()

    def _render_view(self) -> None:
        view = self.view
        status = self.query_one("#status", FigureLine)
        status.update(status_text(view))
        status.set_class(view.phase == "failed", "-failed")
        status.set_class(view.phase == "finished", "-finished")
        status.set_class(view.active, "-active")
        self.query_one("#progress", FigureLine).update(progress_line(view))
        self.query_one("#evals", FigureLine).update(
            f"evals/min [b]{view.metrics.evaluations_per_minute:.1f}[/b] ({view.metrics.evaluations} total)")
        # A new list each time: Sparkline only sees assignment, not mutation.
        spark = self.query_one(Sparkline)
        data = spark_data(view)
        if spark.data != data:
            spark.data = data
        self.query_one("#connections", FigureLine).update(connections_line(view, self.per_host))
        self.query_one("#llm", FigureLine).update(llm_line(view))
        budget = self.query_one("#budget", FigureLine)
        budget.update(budget_line(view))
        budget.display = bool(budget.text)
        key = self.query_one("#key", FigureLine)
        key.display = view.key is not None   # no line at all before the fleet reports the key
        key.update(view.key.line() if view.key is not None else "")
        key.set_class(bool(view.key and (view.key.credits_low or view.key.refused)), "-warning")
