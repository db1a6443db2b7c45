"""Benchmark 5 — scale and soak: a long-lived process where runs come and go; memory per task.

Soak (the target): N concurrent *slots* in one process. Each slot runs an `AWMRun` with a
small limit (M tasks) in a fresh output directory; when it finishes, the slot drops it,
deletes its directory and starts a new one — a TUI or batch session that lives for hours
while runs start and stop, which is what "bounded logs and metrics" must survive. Any
growth here is a leak (per-run objects, threads, files, metrics, logs that outlive their
run), not data the user asked to keep. RSS is sampled each second inside the process; a
10 ms timer measures how late the loop wakes it. Growth = RSS at the end / RSS after the
warm-up - 1; the slope (least squares over the soak) is reported too.

Long run (information, no target): ONE run on a long synthetic dataset, servers answering
at once, for a fixed time. Its checkpoint, predictions and experience buffer grow with
every task by design (they are the run's results, kept until the run ends); RSS slope per
task done tells users how much memory a big run needs.

    python -m benchmarks.scale slots --n 100 --m 3 --warmup 20 --soak 60 --llm URL --eval URL --out DIR
    python -m benchmarks.scale long --seconds 20 --llm URL --eval URL --dataset FILE --out DIR
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import (
    BenchResult, LoopLag, ServerProcess, Target, emit, percentile, run_child, synthetic_dataset, table,
)

LATENCY = 0.5
EVAL_TIME = 1.0
N = 100
M = 3
LONG_LATENCY = 0.001
"""The long run's servers answer (almost) at once: as many tasks per second as one run can do."""


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 when x does not vary)."""
    if len(points) < 2:
        return 0.0
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


class _Engine:
    """What every run of a child shares: dataset, one evaluation client, the sink."""

    async def open(self, args: argparse.Namespace, dataset_spec: str, pool: tuple[int, int]) -> None:
        from awm_tui.config.models import EvalConfig, HttpConfig
        from awm_tui.engine.evaluation.client import EvalClient
        from awm_tui.engine.evaluation import ServerEvaluator
        from awm_tui.engine.tasks import load_dataset
        from benchmarks.common import NullSandboxFactory

        self.args = args
        self.dataset_spec = dataset_spec
        self.dataset = await asyncio.to_thread(load_dataset, dataset_spec)
        self.http = HttpConfig(limit=pool[0], limit_per_host=pool[1])
        eval_config = EvalConfig(mode="server", server_url=args.eval, timeout=600)
        self.client = EvalClient(eval_config, self.http)
        self.evaluator = ServerEvaluator(self.client, eval_config)
        self.factory = NullSandboxFactory()
        self.events = 0
        self.tasks_done = 0

    def sink(self, event) -> None:
        # What a face does with an event: look at it, keep nothing.
        self.events += 1
        if event.kind == "checkpoint_saved":
            self.tasks_done += 1

    def awm_run(self, name: str, out: Path, limit: int):
        from pydantic import SecretStr

        from awm_tui.config.models import LLMProfile, RunConfig
        from awm_tui.engine.run import AWMRun

        profile = LLMProfile(model="awm-sim", base_url=self.args.llm, api_key=SecretStr(f"bench-key-{name}"),
                             timeout=600, num_retries=3, retry_min_wait=0.1, retry_max_wait=1.0)
        config = RunConfig(name=name, output_dir=out, limit=limit, dataset=self.dataset_spec, induce_every=2,
                           induction="rule", sandbox="local")
        return AWMRun(config, profile, http=self.http, sandboxes=self.factory,  # type: ignore[arg-type]
                      evaluator=self.evaluator, dataset=self.dataset, sink=self.sink)


async def slots_child(args: argparse.Namespace) -> dict:
    import psutil

    proc = psutil.Process()
    engine = _Engine()
    await engine.open(args, "sample", (500, 200))
    base = Path(args.out)
    stopping = False
    runs_done = [0]
    outcomes: dict[str, int] = {}

    async def slot(i: int) -> None:
        gen = 0
        while not stopping:
            out = base / f"slot{i}" / f"gen{gen}"
            run = engine.awm_run(f"slot{i}", out, args.m)
            await run.prepare()
            outcome = await run.execute()
            outcomes[outcome.status] = outcomes.get(outcome.status, 0) + 1
            runs_done[0] += 1
            del run, outcome  # the slot keeps nothing of a finished run
            await asyncio.to_thread(shutil.rmtree, out, True)
            gen += 1

    lag = LoopLag()
    lag.start()
    tasks = [asyncio.create_task(slot(i)) for i in range(args.n)]
    t0 = time.monotonic()
    series: list[tuple[float, int, int]] = []  # (seconds, RSS bytes, tasks done)
    warm: dict = {}
    while (elapsed := time.monotonic() - t0) < args.warmup + args.soak:
        await asyncio.sleep(1.0)
        elapsed = time.monotonic() - t0
        series.append((round(elapsed, 1), proc.memory_info().rss, engine.tasks_done))
        if not warm and elapsed >= args.warmup:
            warm = {"lags": len(lag.lags), "threads": threading.active_count(), "fds": proc.num_fds(),
                    "tasks": engine.tasks_done, "runs": runs_done[0]}
    end = {"threads": threading.active_count(), "fds": proc.num_fds()}
    stopping = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await lag.stop()
    await engine.client.aclose()
    soak_lags = lag.lags[warm["lags"]:]
    soak = [(t, r) for t, r, _ in series if t >= args.warmup]
    after_warmup, rss_end = soak[0][1], series[-1][1]
    return {
        "n": args.n, "m": args.m, "warmup_s": args.warmup, "soak_s": args.soak, "rss_series": series,
        "peak_rss_mb": max(r for _, r, _ in series) / 2**20, "rss_after_warmup_mb": after_warmup / 2**20,
        "rss_end_mb": rss_end / 2**20, "growth_pct": 100 * (rss_end / after_warmup - 1),
        "slope_mb_per_min": slope(soak) * 60 / 2**20,
        "lag_p50_ms": 1000 * percentile(soak_lags, 0.5), "lag_p99_ms": 1000 * percentile(soak_lags, 0.99),
        "lag_max_ms": 1000 * max(soak_lags, default=float("nan")),
        "tasks_done": engine.tasks_done, "tasks_in_soak": engine.tasks_done - warm["tasks"],
        "runs_done": runs_done[0], "runs_in_soak": runs_done[0] - warm["runs"], "outcomes": outcomes,
        "threads_after_warmup": warm["threads"], "threads_end": end["threads"],
        "fds_after_warmup": warm["fds"], "fds_end": end["fds"], "events": engine.events,
    }


async def long_child(args: argparse.Namespace) -> dict:
    import psutil

    proc = psutil.Process()
    engine = _Engine()
    await engine.open(args, args.dataset, (100, 50))
    run = engine.awm_run("long", Path(args.out) / "long", len(engine.dataset.tasks))
    await run.prepare()
    task = asyncio.create_task(run.execute())
    t0 = time.monotonic()
    series: list[tuple[float, int, int]] = []
    while (elapsed := time.monotonic() - t0) < args.seconds and not task.done():
        await asyncio.sleep(0.5)
        series.append((round(time.monotonic() - t0, 2), proc.memory_info().rss, engine.tasks_done))
    task.cancel()
    outcome = (await asyncio.gather(task, return_exceptions=True))[0]
    await engine.client.aclose()
    # Skip the first fifth (imports settling, pools and caches filling), fit RSS over tasks done.
    steady = [(done, rss) for t, rss, done in series if t >= args.seconds / 5]
    per_task = slope(steady)
    return {
        "seconds": args.seconds, "tasks_done": engine.tasks_done, "tasks_per_s": engine.tasks_done / elapsed,
        "rss_start_mb": series[0][1] / 2**20 if series else float("nan"),
        "rss_end_mb": series[-1][1] / 2**20 if series else float("nan"),
        "bytes_per_task": per_task, "rss_series": series, "status": getattr(outcome, "status", str(outcome)),
        "dataset_tasks": len(engine.dataset.tasks),
    }


def run(quick: bool, log=print, n: int = N, m: int = M, warmup: float | None = None, soak: float | None = None,
        long_s: float | None = None, latency: float = LATENCY, eval_time: float = EVAL_TIME) -> BenchResult:
    warmup = warmup if warmup is not None else (20.0 if quick else 30.0)
    soak = soak if soak is not None else (60.0 if quick else 300.0)
    long_s = long_s if long_s is not None else (20.0 if quick else 60.0)
    with tempfile.TemporaryDirectory(prefix="awm-bench-scale-") as tmp:
        with ServerProcess(latency=latency, eval_time=eval_time) as server:
            log(f"  [scale] {n} slots x runs of {m} tasks, warm-up {warmup:g}s + soak {soak:g}s ...")
            res = run_child("benchmarks.scale", ["slots", "--n", str(n), "--m", str(m), "--warmup", str(warmup),
                                                 "--soak", str(soak), "--llm", server.llm_url,
                                                 "--eval", server.eval_url, "--out", str(Path(tmp) / "slots")],
                            timeout=warmup + soak + 300)
        log(f"  [scale] soak: {res['runs_done']} runs, {res['tasks_done']} tasks; RSS "
            f"{res['rss_after_warmup_mb']:.1f} -> {res['rss_end_mb']:.1f} MB; threads "
            f"{res['threads_after_warmup']} -> {res['threads_end']}, fds {res['fds_after_warmup']} -> {res['fds_end']}")
        # Enough tasks that one run cannot finish them in long_s (sample: 10 small tasks per copy).
        dataset = str(synthetic_dataset(tmp, max(2, int(long_s * 100 / 10) + 1)))
        with ServerProcess(latency=LONG_LATENCY, eval_time=LONG_LATENCY, dataset=dataset) as server:
            log(f"  [scale] one long run for {long_s:g}s ...")
            long = run_child("benchmarks.scale", ["long", "--seconds", str(long_s), "--llm", server.llm_url,
                                                  "--eval", server.eval_url, "--dataset", dataset,
                                                  "--out", str(Path(tmp) / "long")], timeout=long_s + 300)
        log(f"  [scale] long run: {long['tasks_done']} tasks, {long['bytes_per_task'] / 1024:.1f} KB RSS per task")
    rows = [[n, m, res["runs_done"], res["tasks_done"], res["rss_after_warmup_mb"], res["rss_end_mb"],
             res["growth_pct"], res["slope_mb_per_min"], res["peak_rss_mb"], res["lag_p50_ms"], res["lag_p99_ms"],
             res["lag_max_ms"], f"{res['threads_after_warmup']}->{res['threads_end']}",
             f"{res['fds_after_warmup']}->{res['fds_end']}"]]
    text = table(f"5. Soak: {n} slots, each running AWMRuns of {m} tasks one after another in fresh directories "
                 f"(latency {latency}s/call, eval {eval_time}s; warm-up {warmup:g}s, soak {soak:g}s"
                 f"{' — quick: short soak' if quick else ''})",
                 ["slots", "M", "runs", "tasks", "RSS warm MB", "RSS end MB", "growth %", "MB/min", "peak MB",
                  "lag p50 ms", "lag p99 ms", "lag max ms", "threads", "fds"], rows,
                 note="runs/tasks = finished over warm-up + soak; growth = RSS end / RSS after warm-up - 1; "
                      "MB/min = least-squares RSS slope over the soak; threads/fds after warm-up -> end.")
    text += table(f"5b. One long run (information): servers answer in {LONG_LATENCY * 1000:g} ms, {long_s:g}s",
                  ["tasks done", "tasks/s", "RSS start MB", "RSS end MB", "KB RSS per task"],
                  [[long["tasks_done"], long["tasks_per_s"], long["rss_start_mb"], long["rss_end_mb"],
                    long["bytes_per_task"] / 1024]],
                  note="KB RSS per task = least-squares slope of RSS over tasks done (first fifth skipped): "
                       "the run's checkpoint records, predictions and experience buffer, kept until it ends.")
    targets = [Target("scale", f"memory growth over a {soak:g}s soak, runs coming and going", res["growth_pct"],
                      "< 5 %", res["growth_pct"] < 5.0,
                      detail=f"{res['runs_in_soak']} runs / {res['tasks_in_soak']} tasks in the soak"),
               Target("scale", f"event-loop lag p99 with {n} slots (ms)", res["lag_p99_ms"], "reported", None,
                      detail="no target set; a TUI frame is ~16 ms"),
               Target("scale", "one long run: RSS retained per task (KB)", long["bytes_per_task"] / 1024,
                      "reported", None, detail="results kept until the run ends: size big runs with it")]
    return BenchResult("scale", text, {"soak": res, "long": long}, targets)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale")
    p.add_argument("mode", choices=["slots", "long"])
    p.add_argument("--n", type=int, default=N)
    p.add_argument("--m", type=int, default=M)
    p.add_argument("--warmup", type=float, default=20)
    p.add_argument("--soak", type=float, default=60)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--llm", required=True)
    p.add_argument("--eval", required=True)
    p.add_argument("--dataset", default="sample")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    emit(asyncio.run(slots_child(args) if args.mode == "slots" else long_child(args)))


if __name__ == "__main__":
    main()
