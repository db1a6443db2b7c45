"""Event-loop lag of the TUI under a log flood: 8 panes, 5,000 lines/s for ~10 s.

Runs the real app headless (`run_test`) with a stand-in fleet, pushes LogLine and
MetricsSnapshot events through the app's own sink as the engine would, and
measures how late a 10 ms timer fires (scheduled vs actual): that lateness is
what a user typing into a field would feel. Also types into a field meanwhile.

    python -m benchmarks.tui_lag [--seconds 10] [--rate 5000] [--panes 8] [--json FILE] [--curves]
    python -m benchmarks.tui_lag --compare REV [--repeat 3] ...   # this tree vs commit REV, interleaved

On a shared machine the lag figures follow the load; the CPU figures (event-loop
thread and whole process, per 1,000 lines) move much less, so both are printed.
`--compare` runs this same file against a `git archive` of REV, alternating.

With --curves every pane shows its resolve curve (f5) and each run finishes a task
every second, so every curve is redrawn about once a second throughout. Panes under
30 rows show the curve in the log's place; `--rows 100` makes 8 panes tall enough to
show both (compare with the same --rows without --curves).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


async def _flood(app: AWMApp, runs: list[str], rate: int, seconds: float, last: dict[str, int],
                 curves: bool = False) -> int:
    sent, start, tasks = 0, time.perf_counter(), 0
    batch = max(1, rate // 100)  # 100 bursts a second, like many runs talking at once
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(batch):
            run = runs[sent % len(runs)]
            app.relay(LogLine(run=run, message=f"step {sent} $ cd /testbed && python -m pytest -q → 0"))
            last[run] = sent
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


async def main(seconds: float, rate: int, panes: int, curves: bool = False, rows: int = 60) -> dict[str, Any]:
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
        start, loop_cpu, cpu = time.perf_counter(), time.thread_time(), time.process_time()
        last: dict[str, int] = {}
        sent = await _flood(app, runs, rate, seconds, last, curves)
        stop.set()
        await probe
        wall = time.perf_counter() - start
        loop_cpu, cpu = time.thread_time() - loop_cpu, time.process_time() - cpu
        await pilot.pause(0.3)  # the relay's last flush
        await pilot.pause()
        shown = app.main_screen.panes
        lines = sum(p.log_view.line_count + p.log_view.waiting for p in shown)
        builds = sum(p.curves.builds for p in shown)
        logs_shown = sum(bool(p.log_view.display and p.log_view.shown) for p in shown)
        # Every pane's log ends with the last line sent to its run: nothing lost at the end, in order.
        # (A log hidden behind its curve holds its lines back until it is shown: count those too.)
        in_order = all((p.log_view.last_line or "").split(" step ")[-1].startswith(f"{last[p.run_name]} ")
                       for p in shown if p.run_name in last)
    # While the logs still grow, each flush changes their virtual size and so
    # costs a screen layout; once they hold max_lines, a flush only repaints.
    full_at = start + config.ui.log_lines * panes / rate
    lags = [lag for _, lag in samples]
    steady = [lag for t, lag in samples if t > full_at]
    return {
        "lines_sent": sent,
        "lines_per_s": sent / seconds,
        "lines_in_logs": lines,
        "last_lines_match": in_order,
        "curve_builds": builds,
        "logs_shown": logs_shown,
        "loop_cpu_share": loop_cpu / wall,
        "process_cpu_share": cpu / wall,
        "loop_cpu_ms_per_1k_lines": loop_cpu * 1e6 / max(1, sent),
        "lag_p50_ms": statistics.median(lags),
        "lag_p99_ms": _p(lags, 0.99),
        "lag_max_ms": max(lags),
        "steady_p50_ms": statistics.median(steady) if steady else float("nan"),
        "steady_p99_ms": _p(steady, 0.99),
    }


async def floor(seconds: float) -> dict[str, float]:
    """The same 10 ms probe on a loop doing nothing else: what the machine's load alone costs."""
    samples: list[tuple[float, float]] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(_lag(samples, stop))
    await asyncio.sleep(seconds)
    stop.set()
    await probe
    lags = [lag for _, lag in samples]
    return {"lag_p50_ms": statistics.median(lags), "lag_p99_ms": _p(lags, 0.99), "lag_max_ms": max(lags)}


def _print(result: dict, label: str = "") -> None:
    head = f"{label}: " if label else ""
    print(f"{head}tui_lag: {result['panes']} panes, {result['lines_per_s']:.0f} lines/s for {result['seconds']:.0f} s "
          f"({result['lines_sent']} lines, {result['lines_in_logs']} kept in logs, last lines "
          f"{'match' if result['last_lines_match'] else 'DO NOT match'})"
          + (f"; curves on: {result['curve_builds']} plots drawn, {result['logs_shown']} logs on screen"
             if result.get("curves") else ""))
    print(f"  event-loop lag p50 {result['lag_p50_ms']:.1f} ms, p99 {result['lag_p99_ms']:.1f} ms, "
          f"max {result['lag_max_ms']:.1f} ms; once the logs are full: p50 {result['steady_p50_ms']:.1f} ms, "
          f"p99 {result['steady_p99_ms']:.1f} ms")
    print(f"  CPU: event loop {result['loop_cpu_share']:.0%} of the wall ({result['loop_cpu_ms_per_1k_lines']:.1f} ms "
          f"per 1,000 lines), process {result['process_cpu_share']:.0%}; load average {result['load']}")


def _run_once(root: Path, args: argparse.Namespace) -> dict:
    """This benchmark file, run on the code under `root`, in a fresh process."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, "-m", "benchmarks.tui_lag", "--seconds", str(args.seconds), "--rate",
                   str(args.rate), "--panes", str(args.panes), "--rows", str(args.rows), "--json", out.name]
        command += ["--curves"] if args.curves else []
        env = {**os.environ, "PYTHONPATH": str(root)}
        subprocess.run(command, cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
        return json.loads(Path(out.name).read_text())


def compare(args: argparse.Namespace) -> None:
    here = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="tui-lag-") as tmp:
        old = Path(tmp)
        archive = subprocess.run(["git", "-C", str(here), "archive", args.compare], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        (old / "benchmarks" / "tui_lag.py").write_bytes(Path(__file__).read_bytes())  # the same measurement
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        sides = [(f"{args.compare}", old), (f"this tree ({head})", here)]
        results: dict[str, list[dict]] = {label: [] for label, _ in sides}
        for i in range(args.repeat):
            for label, root in sides[i % 2:] + sides[:i % 2]:  # alternate who goes first
                result = _run_once(root, args)
                results[label].append(result)
                _print(result, label)
    print(f"\n{args.panes} panes x {args.rate} lines/s asked, {args.seconds:.0f} s, {args.repeat} runs each, alternating")
    for label, runs in results.items():
        figures = [f"{r['lines_per_s']:.0f}/s p50 {r['lag_p50_ms']:.1f} p99 {r['lag_p99_ms']:.1f} "
                   f"loop {r['loop_cpu_share']:.0%}" for r in runs]
        print(f"  {label:<22} " + " | ".join(figures))


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=5000, help="combined log lines per second")
    parser.add_argument("--panes", type=int, default=8)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--curves", action="store_true", help="every pane shows its resolve curve, fed live")
    parser.add_argument("--rows", type=int, default=60, help="terminal rows (200 columns)")
    parser.add_argument("--compare", metavar="REV", help="run this tree and commit REV alternately")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side with --compare")
    parser.add_argument("--floor", action="store_true", help="only the probe, on an idle loop (the machine's floor)")
    args = parser.parse_args()
    if args.floor:
        idle = asyncio.run(floor(args.seconds))
        print(f"idle loop, {args.seconds:.0f} s: lag p50 {idle['lag_p50_ms']:.1f} ms, p99 {idle['lag_p99_ms']:.1f} ms, "
              f"max {idle['lag_max_ms']:.1f} ms; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        return
    if args.compare:
        compare(args)
        return
    result = asyncio.run(main(args.seconds, args.rate, args.panes, args.curves, args.rows))
    result.update(panes=args.panes, seconds=args.seconds, rate=args.rate, curves=args.curves,
                  load=" ".join(f"{x:.1f}" for x in os.getloadavg()))
    _print(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    cli()
