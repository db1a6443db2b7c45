"""Run a batch plan on one event loop: start the runs, report, stop on a signal, summarise."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import asdict

from awm_tui.batch.plan import BatchPlan
from awm_tui.batch.report import Reporter
from awm_tui.batch.signals import StatusSignal, StopSignals
from awm_tui.batch.summary import (
    RunSummary,
    count_workflows,
    summarise,
    summary_table,
    write_summary,
)
from awm_tui.config.models import AppConfig
from awm_tui.config.plan import ResolvedRun, resolve_run
from awm_tui.demo import DemoEnvironment, default_output_root
from awm_tui.engine.events import MetricsData
from awm_tui.engine.fleet import Fleet, RunOutcome, RunRefused
from awm_tui.exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE


async def run_plan(args: argparse.Namespace, plan: BatchPlan) -> int:
    reporter = Reporter(json_lines=args.json, secrets=plan.secrets)
    for notice in plan.notices:
        reporter.error(notice)
    with StopSignals(asyncio.get_running_loop(), reporter.note) as signals:
        if plan.config is not None:
            return await _run_fleet(plan.config, plan.runs, reporter, signals, args)
        root = plan.demo_root or default_output_root()
        kwargs = {"limit": args.limit} if args.limit else {}
        async with DemoEnvironment(root, **kwargs) as demo:
            assert demo.config is not None
            if plan.demo_root_chosen:
                reporter.note(f"demo output: {demo.output_root} (pass --output-root DIR to choose)")
            reporter.note("demo: every figure below comes from a simulated model", style="dim")
            runs = [resolve_run(demo.config, run, i) for i, run in enumerate(demo.config.runs)]
            return await _run_fleet(demo.config, runs, reporter, signals, args)


async def _run_fleet(config: AppConfig, runs: list[ResolvedRun], reporter: Reporter, signals: StopSignals,
                     args: argparse.Namespace) -> int:
    started = time.monotonic()
    async with Fleet(config, reporter.sink) as fleet:
        for planned in runs:
            reporter.keys[planned.run.name] = planned.masked_key
            if signals.requested.is_set():
                break
            try:
                await fleet.start(planned)
            except RunRefused as exc:
                reporter.error(f"error: {exc}")
                return EXIT_USAGE  # leaving the Fleet stops the runs already started, checkpoints kept
        with StatusSignal(asyncio.get_running_loop(), lambda: reporter.full_status(fleet.status())):
            outcomes = await _wait(fleet, reporter, signals, args.status_every)
        metrics = {name: handle.metrics.snapshot() for name, handle in fleet.handles.items()}
    interrupted = signals.requested.is_set()
    rows = await _summaries(runs, outcomes, metrics, reporter, time.monotonic() - started, interrupted)
    code = _exit_code(rows, interrupted)
    reporter.renderable(summary_table(rows))
    reporter.json_line({"kind": "batch_summary", "exit_code": code, "interrupted": interrupted,
                        "runs": [asdict(r) for r in rows]})
    if interrupted:
        reporter.note("interrupted: rerun the same command to resume from the checkpoints", style="yellow")
    return code


async def _wait(fleet: Fleet, reporter: Reporter, signals: StopSignals,
                every: float) -> dict[str, RunOutcome]:
    """Every run's outcome; a stop signal first cancels them all (checkpoints and containers settled)."""
    waiter = asyncio.create_task(fleet.wait(), name="batch-wait")
    stopper = asyncio.create_task(signals.requested.wait(), name="batch-stop")
    ticker = asyncio.create_task(_status_lines(fleet, reporter, every), name="batch-status")
    try:
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            await fleet.stop_all()
        return await waiter
    finally:
        for task in (stopper, ticker, waiter):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(stopper, ticker, waiter, return_exceptions=True)


async def _status_lines(fleet: Fleet, reporter: Reporter, every: float) -> None:
    if every <= 0:
        return
    while True:
        await asyncio.sleep(every)
        for name in fleet.active:
            handle = fleet.handles[name]
            reporter.status(name, handle.metrics.snapshot(), handle.awm.status().in_flight)


async def _summaries(runs: list[ResolvedRun], outcomes: dict[str, RunOutcome], metrics: dict[str, MetricsData],
                     reporter: Reporter, elapsed: float, interrupted: bool) -> list[RunSummary]:
    rows = []
    for planned in runs:
        name = planned.run.name
        outcome = outcomes.get(name)
        tally = reporter.tallies.get(name)
        out_dir = outcome.output_dir if outcome else str(planned.run.output_dir)
        row = summarise(name, outcome, metrics.get(name, MetricsData()), limit=planned.run.limit,
                        workflows=await count_workflows(out_dir), model=tally.model if tally else "",
                        sandbox=tally.sandbox if tally else "", masked_key=planned.masked_key,
                        elapsed_s=elapsed, output_dir=out_dir)
        try:
            await write_summary(row, interrupted=interrupted)
        except OSError as exc:
            reporter.error(f"warning: cannot write {out_dir}/summary.json ({exc.strerror or exc})")
        rows.append(row)
    return rows


def _exit_code(rows: list[RunSummary], interrupted: bool) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    if any(r.status != "finished" or r.task_errors for r in rows):
        return EXIT_RUN_FAILED
    return EXIT_OK
