"""Benchmark 6 — what recording a task costs: the state store's commit, on its own.

Benchmark 1's 'engine' vs 'engine-no-state' rows show the state files' share of a
fleet's wall time, but on a shared 2-core machine that difference drowns in noise.
Here the store alone: N runs commit M tasks each (condensed experiences of 8 steps,
a 20 kB trajectory) as fast as they can, on one event loop, into fresh directories:
(a) N=100, M=3, all at once, as benchmark 1's fleet; (b) N=1, M=300, one long run,
whose views grow. Figures: wall and CPU per commit, and the latency a run waits for
one commit (median, p95). Views follow within `view_delay`, flushed at the end.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from awm_tui.engine.state import Experience, OutputLayout, StateStore, TaskResult
from benchmarks.common import BenchResult, Target, median, table

STEPS = [(f"cd /repo && grep -n name src/module_{i}.py", 0, "match " * 60) for i in range(8)]
TRAJECTORY = {"messages": [{"role": "assistant", "content": "x" * 2000}] * 10}


def experience(i: int) -> Experience:
    return Experience.condense(instance_id=f"t-{i}", repo="o/r", problem_statement="word " * 120, steps=STEPS,
                               patch="diff --git a/x b/x\n" * 20, exit_status="Submitted", resolved=True)


async def trial(root: Path, n: int, m: int) -> dict:
    stores = []
    for r in range(n):
        layout = OutputLayout.of(root / f"run{r}")
        layout.trajectories.mkdir(parents=True)
        stores.append(await StateStore.aopen(layout, f"run{r}"))
    waits: list[float] = []

    async def one(store: StateStore) -> None:
        for i in range(m):
            t0 = time.perf_counter()
            await store.commit_task(TaskResult(instance_id=f"t-{i}", exit_status="Submitted", resolved=True),
                                    model="m", patch="diff", experience=experience(i), injected=(),
                                    trajectory=TRAJECTORY)
            waits.append(time.perf_counter() - t0)
        await store.aclose()

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(s) for s in stores))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    waits.sort()
    return {"n": n, "m": m, "wall_s": wall, "cpu_s": cpu, "ms_per_commit": wall / (n * m) * 1e3,
            "cpu_ms_per_commit": cpu / (n * m) * 1e3, "wait_ms_median": median(waits) * 1e3,
            "wait_ms_p95": waits[int(len(waits) * 0.95)] * 1e3}


def run(quick: bool, log=print) -> BenchResult:
    shapes = ((100, 3), (1, 100 if quick else 300))
    trials: dict[str, list[dict]] = {}
    for r in range(3):
        for n, m in shapes:
            with tempfile.TemporaryDirectory(prefix="awm-bench-state-") as root:
                res = asyncio.run(trial(Path(root), n, m))
            trials.setdefault(f"{n}x{m}", []).append(res)
            log(f"  [state] N={n:<3} M={m:<3} wall {res['wall_s']:.2f}s cpu {res['cpu_s']:.2f}s "
                f"wait median {res['wait_ms_median']:.1f} ms p95 {res['wait_ms_p95']:.1f} ms")
    rows, data = [], {}
    for key, ts in trials.items():
        row = {f: median([t[f] for t in ts]) for f in ts[0]}
        data[key] = row
        rows.append([row["n"], row["m"], len(ts), row["wall_s"], row["ms_per_commit"], row["cpu_ms_per_commit"],
                     row["wait_ms_median"], row["wait_ms_p95"]])
    text = table("6. State files: one commit per task (the store alone; medians)",
                 ["N", "M", "reps", "wall s", "ms/commit", "cpu ms/commit", "wait ms", "wait p95 ms"], rows,
                 note="wait = what a run awaits for one commit (trajectory file + one fsynced journal line); "
                      "the JSON views are rewritten off that path.")
    fleet = data["100x3"]
    targets = [Target("state_files", "a run's wait for one commit, N=100 at once (median ms)",
                      fleet["wait_ms_median"], "information", None,
                      detail=f"{fleet['cpu_ms_per_commit']:.2f} ms CPU per commit")]
    return BenchResult("state_files", text, data, targets)
