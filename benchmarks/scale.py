"""Benchmark 5 — scale: one process, 100 concurrent runs: peak RSS, event-loop lag, memory over a soak.

The runs work through a long synthetic dataset at a realistic pace (the simulated
model answers in LATENCY s, evaluations take EVAL_TIME s) for warm-up + soak seconds,
then are cancelled. RSS is sampled each second inside the process; a 10 ms timer
measures how late the loop wakes it. Growth = RSS at the end / RSS after warm-up - 1.

    python -m benchmarks.scale --n 100 --warmup 20 --soak 60 --llm URL --eval URL --dataset FILE
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks.common import (BenchResult, LoopLag, ServerProcess, Target, emit, run_child, synthetic_dataset,
                               table)

LATENCY = 0.5
EVAL_TIME = 1.0
N = 100


async def child(args: argparse.Namespace) -> dict:
    import psutil
    from pydantic import SecretStr

    from awm_tui.config.models import EvalConfig, HttpConfig, LLMProfile, RunConfig
    from awm_tui.engine.evaluation.client import EvalClient
    from awm_tui.engine.evaluator import ServerEvaluation
    from awm_tui.engine.run import AWMRun
    from awm_tui.engine.tasks import load_dataset
    from benchmarks.common import NullSandboxFactory

    proc = psutil.Process()
    dataset = await asyncio.to_thread(load_dataset, args.dataset)
    http = HttpConfig(limit=500, limit_per_host=200)
    eval_config = EvalConfig(mode="server", server_url=args.eval, timeout=600)
    client = EvalClient(eval_config, http)
    try:
        evaluator = ServerEvaluation(client, eval_config)
    except TypeError:
        evaluator = ServerEvaluation(client)  # type: ignore[call-arg]
    events = [0]

    def sink(event) -> None:
        events[0] += 1

    runs = []
    for i in range(args.n):
        profile = LLMProfile(model="awm-sim", base_url=args.llm, api_key=SecretStr(f"bench-key-{i}"),
                             timeout=600, num_retries=3, retry_min_wait=0.1, retry_max_wait=1.0)
        config = RunConfig(name=f"run{i}", output_dir=Path(args.out) / f"run{i}", limit=len(dataset.tasks),
                           dataset=args.dataset, induce_every=2, induction="rule", sandbox="local")
        runs.append(AWMRun(config, profile, http=http, sandboxes=NullSandboxFactory(),  # type: ignore[arg-type]
                           evaluator=evaluator, dataset=dataset, sink=sink))
    for run in runs:
        await run.prepare()
    lag = LoopLag()
    lag.start()
    tasks = [asyncio.create_task(run.execute()) for run in runs]
    t0 = time.monotonic()
    series = []
    warm_lags = 0
    while (elapsed := time.monotonic() - t0) < args.warmup + args.soak:
        await asyncio.sleep(1.0)
        series.append((round(elapsed, 1), proc.memory_info().rss))
        if elapsed < args.warmup:
            warm_lags = len(lag.lags)
    for task in tasks:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    await lag.stop()
    await client.aclose()
    soak_lags = lag.lags[warm_lags:]
    after_warmup = next(r for t, r in series if t >= args.warmup)
    return {
        "n": args.n, "warmup_s": args.warmup, "soak_s": args.soak, "rss_series": series,
        "peak_rss_mb": max(r for _, r in series) / 2**20, "rss_after_warmup_mb": after_warmup / 2**20,
        "rss_end_mb": series[-1][1] / 2**20, "growth_pct": 100 * (series[-1][1] / after_warmup - 1),
        "lag_p50_ms": 1000 * _pct(soak_lags, 0.5), "lag_p99_ms": 1000 * _pct(soak_lags, 0.99),
        "lag_max_ms": 1000 * max(soak_lags), "tasks_done": sum(r.checkpoint.done for r in runs),
        "events": events[0], "not_stopped": sum(1 for o in outcomes if getattr(o, "status", "") != "stopped"),
    }


def _pct(values: list[float], q: float) -> float:
    from benchmarks.common import percentile
    return percentile(values, q)


def run(quick: bool, log=print, n: int = N, warmup: float | None = None, soak: float | None = None) -> BenchResult:
    warmup = warmup if warmup is not None else (20.0 if quick else 30.0)
    soak = soak if soak is not None else (60.0 if quick else 300.0)
    per_task = 5 * LATENCY + EVAL_TIME
    copies = int((warmup + soak) / per_task / 10) + 2
    with tempfile.TemporaryDirectory(prefix="awm-bench-scale-") as tmp:
        dataset = str(synthetic_dataset(tmp, copies))
        with ServerProcess(latency=LATENCY, eval_time=EVAL_TIME, dataset=dataset) as server:
            log(f"  [scale] {n} runs, warm-up {warmup:g}s + soak {soak:g}s ...")
            res = run_child("benchmarks.scale", ["--n", str(n), "--warmup", str(warmup), "--soak", str(soak),
                                                 "--llm", server.llm_url, "--eval", server.eval_url,
                                                 "--dataset", dataset, "--out", str(Path(tmp) / "out")],
                            timeout=warmup + soak + 300)
    rows = [[n, res["tasks_done"], res["peak_rss_mb"], res["rss_after_warmup_mb"], res["rss_end_mb"],
             res["growth_pct"], res["lag_p50_ms"], res["lag_p99_ms"], res["lag_max_ms"]]]
    text = table(f"5. Scale: {n} runs in one process (latency {LATENCY}s/call, eval {EVAL_TIME}s; "
                 f"warm-up {warmup:g}s, soak {soak:g}s{' — quick: short soak' if quick else ''})",
                 ["runs", "tasks done", "peak RSS MB", "RSS after warm-up", "RSS end", "growth %",
                  "lag p50 ms", "lag p99 ms", "lag max ms"], rows)
    targets = [Target("scale", f"memory growth over a {soak:g}s soak", res["growth_pct"], "< 5 %",
                      res["growth_pct"] < 5.0),
               Target("scale", f"event-loop lag p99 with {n} runs (ms)", res["lag_p99_ms"], "reported", None,
                      detail="no target set; a TUI frame is ~16 ms")]
    return BenchResult("scale", text, res, targets)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale")
    p.add_argument("--n", type=int, default=N)
    p.add_argument("--warmup", type=float, default=20)
    p.add_argument("--soak", type=float, default=60)
    p.add_argument("--llm", required=True)
    p.add_argument("--eval", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True)
    emit(asyncio.run(child(p.parse_args())))


if __name__ == "__main__":
    main()
