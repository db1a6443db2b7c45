"""The end of a batch: a table per run and `summary.json` in each output directory."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich import box
from rich.table import Table
from rich.text import Text

from awm_tui.engine.events import MetricsData
from awm_tui.config.twins import twin_name
from awm_tui.engine.fleet import RunOutcome
from awm_tui.engine.state import Memory, OutputLayout, StateError, write_json_atomic


@dataclass(frozen=True)
class RunSummary:
    name: str
    status: str
    """`finished`, `failed`, `stopped`, or `not started`."""
    reason: str
    output_dir: str
    tasks: int
    """Tasks done in total (the checkpoint's count, so resumed ones included)."""
    limit: int
    resolved: int
    task_errors: int
    rate: float
    """resolved / tasks."""
    evaluations: int
    evals_per_minute: float
    """This session's evaluations over its wall-clock time."""
    prompt_tokens: int
    completion_tokens: int
    cost: float
    retries: int
    rate_limited: int
    workflows: int
    model: str
    sandbox: str
    api_key: str
    """Masked."""
    elapsed_s: float
    finished_at: str
    display_errors: int = 0
    """Events the batch reporter failed on (the first, with its traceback, is in events.jsonl)."""
    graders: dict[str, str] | None = None
    """instance_id -> what graded it (`swebench:<parser>`, `pytest`, `server <url>`)."""
    cached_tokens: int = 0
    """Prompt tokens read from the provider's prompt cache (part of prompt_tokens)."""
    cache_saving: float = 0.0
    """USD the cache saved against the input price (when the profile prices cached tokens)."""


def summarise(name: str, outcome: RunOutcome | None, metrics: MetricsData, *, limit: int, workflows: int,
              model: str, sandbox: str, masked_key: str, elapsed_s: float, output_dir: str) -> RunSummary:
    done = outcome.done if outcome else 0
    resolved = outcome.resolved if outcome else 0
    minutes = max(elapsed_s, 1e-6) / 60
    return RunSummary(
        name=name, status=outcome.status if outcome else "not started",
        reason=outcome.reason if outcome else "", output_dir=outcome.output_dir if outcome else output_dir,
        tasks=done, limit=limit, resolved=resolved, task_errors=outcome.errors if outcome else 0,
        rate=resolved / done if done else 0.0, evaluations=metrics.evaluations,
        evals_per_minute=metrics.evaluations / minutes if metrics.evaluations else 0.0,
        prompt_tokens=metrics.prompt_tokens, completion_tokens=metrics.completion_tokens, cost=metrics.cost,
        retries=metrics.retries, rate_limited=metrics.rate_limited, workflows=workflows, model=model,
        sandbox=sandbox, api_key=masked_key, elapsed_s=round(elapsed_s, 3),
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        display_errors=outcome.face_errors if outcome else 0,
        graders=dict(outcome.graders) if outcome else {},
        cached_tokens=metrics.cached_tokens, cache_saving=round(metrics.cache_saving, 6))


async def count_workflows(output_dir: str | Path) -> int:
    """Workflows in the run's memory.json now (a resumed run may have induced none this time)."""
    try:
        memory = await Memory.aload(OutputLayout.of(output_dir).memory)
    except (StateError, OSError):
        return 0
    return len(memory.workflows)


async def write_summary(summary: RunSummary, *, interrupted: bool) -> Path | None:
    """`summary.json` next to the run's state, atomically; None when the dir does not exist."""
    layout = OutputLayout.of(summary.output_dir)
    if not layout.path.is_dir():
        return None  # a run refused before it made its directory has nothing to summarise
    await asyncio.to_thread(write_json_atomic, layout.summary, {**asdict(summary), "interrupted": interrupted})
    return layout.summary


STATUS_STYLE = {"finished": "green", "failed": "red", "stopped": "yellow"}


def summary_table(rows: list[RunSummary]) -> Table:
    table = Table(title="AWM batch summary", box=box.SIMPLE_HEAD, title_justify="left", show_edge=False)
    for column in ("run", "status", "tasks", "resolved", "rate", "evals/min", "tokens", "cost", "retries",
                   "workflows"):
        table.add_column(column, justify="left" if column in ("run", "status") else "right")
    for r in rows:
        errors = f" +{r.task_errors} err" if r.task_errors else ""
        status = "budget reached" if r.reason.startswith("budget reached") else r.status
        status += f" ({r.display_errors} display errors)" if r.display_errors else ""
        table.add_row(Text(r.name), Text(status, style=STATUS_STYLE.get(r.status, "red")), f"{r.tasks}/{r.limit}{errors}",
                      str(r.resolved), f"{r.rate:.0%}", f"{r.evals_per_minute:.1f}",
                      f"{r.prompt_tokens + r.completion_tokens:,}" + (f" ({r.cached_tokens:,} cached)" if r.cached_tokens else ""),
                      f"${r.cost:.4f}" + (f" (cache saved ${r.cache_saving:.4f})" if r.cache_saving else ""),
                      str(r.retries),
                      str(r.workflows))
    return table


def twin_lines(rows: list[RunSummary]) -> list[str]:
    """One line per run whose no-memory twin ran beside it: what memory added."""
    by_name = {row.name: row for row in rows}
    lines = []
    for row in rows:
        if (twin := by_name.get(twin_name(row.name))) is None:
            continue
        gap = row.resolved - twin.resolved
        same = "" if row.tasks == twin.tasks else " (not the same number of tasks done: compare the rates)"
        lines.append(f"memory: {row.name} resolved {row.resolved}/{row.tasks} ({row.rate:.0%}), its no-memory "
                     f"twin {twin.name} {twin.resolved}/{twin.tasks} ({twin.rate:.0%}): {gap:+d}{same}")
    return lines
