"""Event-loop lag of the TUI under a log flood: 8 panes, 5,000 lines/s for ~10 s.

Runs the real app headless (`run_test`) with a stand-in fleet, pushes LogLine and
MetricsSnapshot events through the app's own sink as the engine would, and
measures how late a 10 ms timer fires (scheduled vs actual): that lateness is
what a user typing into a field would feel. Also types into a field meanwhile.

    python -m benchmarks.tui_lag [--seconds 10] [--rate 5000] [--panes 8] [--curves]

With --curves every pane shows its resolve curve (f5) and each run finishes a task
every second, so every curve is redrawn about once a second throughout. Panes under
30 rows show the curve in the log's place; `--rows 100` makes 8 panes tall enough to
show both (compare with the same --rows without --curves).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from awm_tui.config.models import AppConfig, LLMProfile, RunConfig
from awm_tui.engine.events import CheckpointSaved, LogLine, MetricsData, MetricsSnapshot, StatusChanged, TaskFinished
from awm_tui.engine.outcomes import Outcome
from awm_tui.tui.app import AWMApp

TICK_S = 0.01


class _Fleet:
    active: list[str] = []

    def open_connections(self) -> int:
        return 0

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        return None


def _finish_tasks(app: AWMApp, runs: list[str], done: int) -> None:
    """Every run finishes its task number `done` (every third one resolved)."""
    for run in runs:
        resolved = done % 3 != 0
        app.relay(CheckpointSaved(run=run, done=done, resolved=done - done // 3))
        app.relay(TaskFinished(run=run, instance_id=f"pkg__pkg-{done}", exit_status="Submitted",
                               outcome=Outcome.RESOLVED if resolved else Outcome.UNRESOLVED, resolved=resolved,
                               reward=float(resolved), speedup=None, steps=5, elapsed_s=9.0, cost=0.002))


async def _flood(app: AWMApp, runs: list[str], rate: int, seconds: float, curves: bool = False) -> int:
    sent, start, tasks = 0, time.perf_counter(), 0
    batch = max(1, rate // 100)  # 100 bursts a second, like many runs talking at once
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(batch):
            run = runs[sent % len(runs)]
            app.relay(LogLine(run=run, message=f"step {sent} $ cd /testbed && python -m pytest -q → 0"))
            sent += 1
        if sent % (batch * 25) == 0:
            for run in runs:
                app.relay(MetricsSnapshot(run=run, metrics=MetricsData(
                    requests=sent, evaluations_per_minute=sent % 7, connections_open=3)))
        if curves and elapsed >= tasks:  # a task a second per run
            tasks += 1
            _finish_tasks(app, runs, tasks)
        await asyncio.sleep(max(0.0, sent / rate - elapsed))
    return sent


async def _lag(samples: list[tuple[float, float]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        scheduled = time.perf_counter() + TICK_S
        await asyncio.sleep(TICK_S)
        now = time.perf_counter()
        samples.append((now, (now - scheduled) * 1000))


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[max(0, int(len(values) * q) - 1)] if values else float("nan")


async def main(seconds: float, rate: int, panes: int, curves: bool = False, rows: int = 60) -> dict[str, float]:
    runs = [f"run_{i}" for i in range(1, panes + 1)]
    config = AppConfig(llm={"llm.sim": LLMProfile(model="awm-sim", label="simulated model")},
                       runs=[RunConfig(name=r, llm="llm.sim", output_dir=f"/nonexistent/bench/{r}") for r in runs])
    app = AWMApp(config, fleet_factory=lambda c, s: _Fleet())
    async with app.run_test(size=(200, rows)) as pilot:
        await app.panes_ready.wait()
        for pane in app.main_screen.panes:  # as if every run had been started
            pane.run_name = pane.values().name
            pane.set_running(True)
            app.relay(StatusChanged(run=pane.run_name, phase="running", instance_id="x", step=1))
            if curves:
                pane.show_lower("resolved")
        await pilot.pause()
        samples: list[tuple[float, float]] = []
        stop = asyncio.Event()
        probe = asyncio.create_task(_lag(samples, stop))
        start = time.perf_counter()
        sent = await _flood(app, runs, rate, seconds, curves)
        stop.set()
        await probe
        lines = sum(p.log_view.line_count for p in app.main_screen.panes)
        builds = sum(p.curves.builds for p in app.main_screen.panes)
        logs_shown = sum(p.log_view.display and p.log_view.shown for p in app.main_screen.panes)
    # While the logs still grow, each flush changes their virtual size and so
    # costs a screen layout; once they hold max_lines, a flush only repaints.
    full_at = start + config.ui.log_lines * panes / rate
    lags = [lag for _, lag in samples]
    steady = [lag for t, lag in samples if t > full_at]
    return {
        "lines_sent": sent,
        "lines_per_s": sent / seconds,
        "lines_in_logs": lines,
        "curve_builds": builds,
        "logs_shown": logs_shown,
        "lag_p50_ms": statistics.median(lags),
        "lag_p99_ms": _p(lags, 0.99),
        "lag_max_ms": max(lags),
        "steady_p50_ms": statistics.median(steady) if steady else float("nan"),
        "steady_p99_ms": _p(steady, 0.99),
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=5000, help="combined log lines per second")
    parser.add_argument("--panes", type=int, default=8)
    parser.add_argument("--curves", action="store_true", help="every pane shows its resolve curve, fed live")
    parser.add_argument("--rows", type=int, default=60, help="terminal rows (200 columns)")
    args = parser.parse_args()
    result = asyncio.run(main(args.seconds, args.rate, args.panes, args.curves, args.rows))
    print(f"tui_lag: {args.panes} panes, {result['lines_per_s']:.0f} lines/s for {args.seconds:.0f} s "
          f"({result['lines_sent']} lines, {result['lines_in_logs']} kept in logs)"
          + (f"; curves on: {result['curve_builds']} plots drawn, {result['logs_shown']} logs on screen"
             if args.curves else ""))
    print(f"event-loop lag p50 {result['lag_p50_ms']:.1f} ms, p99 {result['lag_p99_ms']:.1f} ms, "
          f"max {result['lag_max_ms']:.1f} ms")
    print(f"  once the logs are full: p50 {result['steady_p50_ms']:.1f} ms, p99 {result['steady_p99_ms']:.1f} ms")


if __name__ == "__main__":
    cli()
