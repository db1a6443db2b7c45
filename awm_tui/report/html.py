"""The report as one self-contained HTML page: inline CSS and SVG, no script.

The page forbids itself every fetch (`Content-Security-Policy: default-src
'none'`), so it opens the same offline, from a mail attachment or an archive
years later. Every value from the user's files is escaped.
"""

from __future__ import annotations

import difflib
import time
from html import escape

from . import plots
from .data import OUTCOMES, MemoryVersion, Report, RunReport

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 76em; padding: 0 1em;
       color: #1d232a; background: #fff; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccd; }
.muted { color: #667; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #d5d9e0; padding: 0.25em 0.55em; text-align: left; vertical-align: top; }
th { background: #f1f3f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.figure svg { max-width: 100%; height: auto; }
td.o { text-align: center; font-size: 0.85em; white-space: nowrap; }
.o-resolved { background: #c8e6c9; } .o-unresolved { background: #ffcdd2; }
.o-error { background: #ffe0b2; } .o-not-evaluated { background: #e1e5ea; } .o-not-run { background: #fafafa; color: #99a; }
.legend span { display: inline-block; padding: 0.1em 0.6em; margin-right: 0.4em; border: 1px solid #d5d9e0; }
pre.diff { background: #f7f8fa; padding: 0.5em; overflow-x: auto; font-size: 0.85em; }
.add { color: #1b5e20; } .del { color: #b71c1c; }
details { margin: 0.4em 0; } summary { cursor: pointer; }
code { font-size: 0.9em; }
#runs td, #runs th { white-space: nowrap; } .wide { overflow-x: auto; }
"""


def _num(value: float | int, fmt: str = "{:,}") -> str:
    return fmt.format(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _cls(outcome: str) -> str:
    return "o o-" + outcome.replace(" ", "-")


def _memory_cell(run: RunReport) -> str:
    if run.with_memory:
        return f"v{run.memory_version}"
    return "off" + (f" (twin of {escape(run.twin_of)})" if run.twin_of else "")


def _summary_table(report: Report) -> str:
    head = ("run", "model", "done", "resolved", "unresolved", "not evaluated", "errors", "rate", "memory",
            "workflows", "cost (USD)", "tokens (prompt + completion)", "task time", "wall")
    rows = []
    for run in report.runs:
        rate = f"{run.resolved / run.done:.0%}" if run.done else "–"
        cells = [
            f"<th>{escape(run.name)}</th>", f"<td>{escape(run.model) or '–'}</td>",
            f'<td class="num" data-field="done">{run.done}</td>',
            f'<td class="num" data-field="resolved">{run.resolved}</td>',
            f'<td class="num" data-field="unresolved">{run.unresolved}</td>',
            f'<td class="num" data-field="not-evaluated">{run.not_evaluated}</td>',
            f'<td class="num" data-field="errors">{run.errors}</td>',
            f'<td class="num">{rate}</td>', f'<td class="num">{_memory_cell(run)}</td>',
            f'<td class="num">{len(run.workflows)}</td>',
            f'<td class="num" data-field="cost">{run.cost:.4f}</td>',
            f'<td class="num">{_num(run.prompt_tokens)} + {_num(run.completion_tokens)}</td>',
            f'<td class="num">{_duration(run.task_time_s)}</td>', f'<td class="num">{_duration(run.wall_s)}</td>',
        ]
        rows.append(f'<tr data-run="{escape(run.name)}">{"".join(cells)}</tr>')
    paths = "".join(f"<li>{escape(r.name)}: <code>{escape(r.path)}</code></li>" for r in report.runs)
    return (f'<div class="wide"><table id="runs"><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>'
            f'{"".join(rows)}</table></div>'
            f'<ul class="muted">{paths}</ul>')


def _grid(report: Report) -> str:
    if not report.instances:
        return '<p class="muted">No task has finished in these runs yet.</p>'
    legend = "".join(f'<span class="{_cls(o)}">{o}</span>' for o in OUTCOMES)
    head = "".join(f"<th>{escape(r.name)}</th>" for r in report.runs)
    rows = []
    for instance in report.instances:
        cells = "".join(f'<td class="{_cls(o)}" data-run="{escape(run)}">{o}</td>'
                        for run, o in report.grid[instance].items())
        rows.append(f"<tr><th><code>{escape(instance)}</code></th>{cells}</tr>")
    return (f'<p class="legend">{legend}</p><table id="grid"><tr><th>instance</th>{head}</tr>'
            f'{"".join(rows)}</table>')


def _steps_diff(before: list[str], after: list[str]) -> str:
    lines = []
    for line in difflib.unified_diff(before, after, "before", "after", lineterm="", n=1):
        if line.startswith(("---", "+++", "@@")):
            continue
        css = "add" if line.startswith("+") else "del" if line.startswith("-") else ""
        lines.append(f'<span class="{css}">{escape(line)}</span>' if css else escape(line))
    return f'<pre class="diff">{chr(10).join(lines)}</pre>'


def _version(v: MemoryVersion) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v.at))
    parts = [f"<summary><b>v{v.version}</b> after {v.after_tasks} task(s) · {escape(v.mode)} · {when} · "
             f"+{len(v.added)} ~{len(v.changed)} −{len(v.removed)} · {v.workflows} workflow(s)</summary>"]
    for wf in v.added:
        steps = "".join(f"<li>{escape(s)}</li>" for s in wf.steps_after)
        parts.append(f"<p class='add'>added {escape(wf.id)} <b>{escape(wf.title)}</b></p><ol>{steps}</ol>")
    for wf in v.changed:
        parts.append(f"<p>changed {escape(wf.id)} <b>{escape(wf.title)}</b></p>"
                     + _steps_diff(wf.steps_before, wf.steps_after))
    for wf in v.removed:
        parts.append(f"<p class='del'>removed {escape(wf.id)} <b>{escape(wf.title)}</b></p>")
    if v.sources:
        parts.append(f"<p class='muted'>from: {escape(', '.join(v.sources))}</p>")
    return f"<details>{''.join(parts)}</details>"


def _memory(run: RunReport) -> str:
    if not run.memory:
        why = "no induction yet" if run.with_memory else f"a run without memory: {_memory_cell(run)}"
        return f"<h3>{escape(run.name)}</h3><p class='muted'>memory never changed ({why})</p>"
    return f"<h3>{escape(run.name)}</h3>" + "".join(_version(v) for v in run.memory)


def _with_and_without(report: Report) -> str:
    def cell(t) -> str:
        return f"{t.resolved}/{t.tasks} ({t.resolved / t.tasks:.0%})" if t.tasks else "–"

    rows = "".join(f'<tr data-run="{escape(r.name)}"><th>{escape(r.name)}</th>'
                   f'<td class="num" data-field="with">{cell(r.with_workflows)}</td>'
                   f'<td class="num" data-field="without">{cell(r.without_workflows)}</td></tr>'
                   for r in report.runs)
    return ('<table id="with-without"><tr><th>run</th><th>resolved with workflows in the prompt</th>'
            f'<th>without</th></tr>{rows}</table>')


def _workflow_table(report: Report) -> str:
    rows = []
    for run in report.runs:
        for w in run.workflows:
            rate = f"{w.success_rate:.0%}" if w.uses else "–"
            rows.append(f"<tr><td>{escape(run.name)}</td><td>{escape(w.id)}</td><td>{escape(w.title)}</td>"
                        f'<td class="num">v{w.version}</td><td class="num">{w.uses}</td>'
                        f'<td class="num">{w.successes}</td><td class="num">{rate}</td></tr>')
    if not rows:
        return "<p class='muted'>No workflows in memory yet.</p>"
    head = "".join(f"<th>{h}</th>" for h in ("run", "id", "title", "version", "used", "resolved", "success"))
    return f'<table id="workflows"><tr>{head}</tr>{"".join(rows)}</table>'


def _task_tables(report: Report) -> str:
    out = []
    head = "".join(f"<th>{h}</th>" for h in ("#", "instance", "outcome", "steps", "tokens", "cost (USD)",
                                                "time", "workflows"))
    for run in report.runs:
        rows = "".join(
            f'<tr><td class="num">{i}</td><td><code>{escape(t.instance_id)}</code></td>'
            f'<td class="{_cls(t.outcome)}">{t.outcome}</td><td class="num">{t.steps}</td>'
            f'<td class="num">{_num(t.prompt_tokens + t.completion_tokens)}</td><td class="num">{t.cost:.4f}</td>'
            f'<td class="num">{_duration(t.elapsed_s)}</td><td>{escape(", ".join(t.workflows)) or "–"}</td></tr>'
            for i, t in enumerate(run.tasks, 1))
        out.append(f"<details><summary>{escape(run.name)}: {len(run.tasks)} task(s)</summary>"
                   f"<table><tr>{head}</tr>{rows}</table></details>")
    return "".join(out)


def render_html(report: Report) -> str:
    """The whole page. Raises ReportError when matplotlib is missing."""
    curves = plots.curves_svg(report)
    costs = plots.cost_svg(report)
    workflows = plots.workflows_svg(report)
    names = ", ".join(r.name for r in report.runs)
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>AWM report: {escape(names)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>AWM report</h1>
<p class="muted">{len(report.runs)} run(s): {escape(names)} · generated {generated} by awm-tui report</p>
<h2>Runs</h2>
{_summary_table(report)}
<h2>Resolved over tasks</h2>
<div class="figure" id="curves">{curves}</div>
<h2>Outcome per task</h2>
{_grid(report)}
<h2>Memory's evolution</h2>
{"".join(_memory(r) for r in report.runs)}
<h2>Workflows: use and success</h2>
{_with_and_without(report)}
{_workflow_table(report)}
{f'<div class="figure" id="workflow-chart">{workflows}</div>' if workflows else ""}
<h2>Cost, tokens and time</h2>
<div class="figure" id="costs">{costs}</div>
{_task_tables(report)}
</body>
</html>
"""
