"""The report's figures: matplotlib drawn straight to inline SVG.

matplotlib because its SVG needs nothing at view time: no script, no font
(glyphs become paths), so the page opens offline under a CSP that forbids
every fetch, and prints the same. It is an optional extra (`awm-tui[report]`);
`--json` works without it.
"""

from __future__ import annotations

import io
import re

from .data import Report, ReportError

INSTALL_HINT = "the HTML report needs matplotlib: pip install 'awm-tui[report]' (or use --json)"


def _figure(width: float, height: float):
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise ReportError(INSTALL_HINT) from None
    # No pyplot: a bare Figure has no global state and no GUI backend.
    matplotlib.rcParams.update({"svg.fonttype": "path", "svg.hashsalt": "awm-tui", "font.size": 9})
    return Figure(figsize=(width, height), layout="constrained")


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    # Inline <svg> in HTML: drop the XML prolog and DOCTYPE.
    return re.sub(r"\A.*?(?=<svg)", "", text, flags=re.DOTALL)


def curves_svg(report: Report) -> str:
    """Cumulative resolved over tasks done, one line per run, inductions marked."""
    fig = _figure(7.5, 3.6)
    ax = fig.add_subplot()
    colours: dict[str, str] = {}
    for run in report.runs:
        rows = [t for t in run.tasks if t.outcome != "error"]
        xs = [0, *range(1, len(rows) + 1)]
        ys = [0, *(t.resolved_so_far for t in rows)]
        # A no-memory twin: dashed, in its run's colour, so the gap between the two reads at once.
        style = {"color": colours[run.twin_of], "linestyle": "--"} if run.twin_of in colours else {}
        (line,) = ax.step(xs, ys, where="post", label=f"{run.name} ({run.resolved}/{run.done})", linewidth=1.8,
                          **style)
        colours[run.name] = line.get_color()
        points = [m for m in run.memory if m.after_tasks <= len(rows)]
        if points:
            px = [m.after_tasks for m in points]
            py = [ys[m.after_tasks] for m in points]
            ax.plot(px, py, linestyle="none", marker="v", markersize=7, color=line.get_color())
            for m, x, y in zip(points, px, py):
                ax.annotate(f"v{m.version}", (x, y), textcoords="offset points", xytext=(0, 7),
                            ha="center", fontsize=7, color=line.get_color())
    ax.set_xlabel("tasks done")
    ax.set_ylabel("resolved (cumulative)")
    ax.set_title("Resolved over tasks (▼ = induction, memory version)")
    ax.grid(True, alpha=0.3)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.yaxis.get_major_locator().set_params(integer=True)
    if report.runs:
        ax.legend(loc="upper left", fontsize=8)
    return _svg(fig)


def cost_svg(report: Report) -> str:
    """Tokens and cost per task, per run."""
    fig = _figure(7.5, 2.8)
    tokens_ax, cost_ax = fig.subplots(1, 2)
    for run in report.runs:
        rows = [t for t in run.tasks if t.outcome != "error"]  # the curve's x axis
        xs = range(1, len(rows) + 1)
        tokens_ax.plot(xs, [t.prompt_tokens + t.completion_tokens for t in rows], marker=".", label=run.name)
        cost_ax.plot(xs, [t.cost for t in rows], marker=".", label=run.name)
    if report.runs:
        tokens_ax.legend(fontsize=8)
    tokens_ax.set_title("tokens per task")
    cost_ax.set_title("cost per task (USD)")
    for ax in (tokens_ax, cost_ax):
        ax.set_xlabel("tasks done")
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _svg(fig)


def workflows_svg(report: Report) -> str | None:
    """Uses and successes per workflow, every run's workflows in one chart."""
    bars = [(f"{run.name} {w.id}", w.uses, w.successes) for run in report.runs for w in run.workflows]
    if not bars:
        return None
    fig = _figure(7.5, 0.6 + 0.28 * len(bars))
    ax = fig.add_subplot()
    ys = range(len(bars))
    ax.barh(ys, [b[1] for b in bars], color="#9db4d0", label="used")
    ax.barh(ys, [b[2] for b in bars], color="#2f7d32", height=0.5, label="resolved")
    ax.set_yticks(list(ys), [b[0] for b in bars], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("tasks")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Workflow use and success")
    return _svg(fig)
