"""Benchmark — workers: one run, K of its tasks in flight at once.

One `AWMRun` over TASKS tasks (renamed copies of the sample's small ones) with
`workers` 1, 4 and 8, against the simulated model at realistic latency (LATENCY to
LATENCY + JITTER seconds per call, LLM induction every 2 successes) and the evaluation
server in simulate mode (EVAL_TIME per evaluation). Commands run in NullSandboxes
(they cost nothing), so the wall time is the model's and the evaluator's.

Ideal wall time at K = tasks × critical path / K, the critical path being one task's
time alone (the mean task time at K = 1: its model calls and its evaluation);
efficiency = ideal / measured, speedup = wall(K=1) / wall(K). Inductions are not in
the ideal: they are serial by design (one at a time, before the next task starts),
so they are what keeps the efficiency below 1, with the servers' and engine's own time.
Everything runs in this process, on one event loop (the servers answer after sleeping).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks.common import BenchResult, NullSandboxFactory, Target, synthetic_dataset, table

TASKS = 40
WORKERS = (1, 4, 8)
LATENCY = 1.0
JITTER = 1.0
"""Each call waits LATENCY + up to JITTER seconds: 1–2 s, as a hosted model answers."""
EVAL_TIME = 1.0
GOAL = 0.9
"""Speedup at K = 4 must reach GOAL × 4."""


async def trial(root: Path, *, tasks: int, workers: int, latency: float, jitter: float,
                eval_time: float) -> dict:
    from pydantic import SecretStr

    from awm_tui.config.models import EvalConfig, HttpConfig, LLMProfile, RunConfig
    from awm_tui.engine.evaluation import ServerEvaluator
    from awm_tui.engine.evaluation.client import EvalClient
    from awm_tui.engine.events import Event, LLMCall, TaskFinished
    from awm_tui.engine.run import AWMRun
    from awm_tui.engine.tasks import SAMPLE, load_dataset
    from awm_tui.servers.eval_server import EvalServer
    from awm_tui.servers.sim_llm import SimLLMServer, SimOptions

    copies = -(-tasks // 10)  # the sample has 10 small tasks
    dataset_path = synthetic_dataset(root, copies)
    datasets = (SAMPLE, str(dataset_path))
    finished: list[TaskFinished] = []
    calls: list[LLMCall] = []

    def sink(event: Event) -> None:
        if isinstance(event, TaskFinished):
            finished.append(event)
        elif isinstance(event, LLMCall):
            calls.append(event)

    async with SimLLMServer(SimOptions(latency=latency, latency_jitter=jitter, seed=7, datasets=datasets)) as sim:
        evaluator_server = EvalServer(list(datasets), simulate=eval_time)
        await evaluator_server.start("127.0.0.1", 0)
        http = HttpConfig()
        eval_config = EvalConfig(mode="server", server_url=evaluator_server.url, timeout=600)
        client = EvalClient(eval_config, http)
        try:
            profile = LLMProfile(model="awm-sim", base_url=sim.url, api_key=SecretStr("bench-workers-key"),
                                 timeout=600, num_retries=3, retry_min_wait=0.1, retry_max_wait=1.0)
            run = RunConfig(name=f"workers{workers}", output_dir=root / f"out-{workers}", limit=tasks,
                            dataset=str(dataset_path), workers=workers, induce_every=2, induction="llm",
                            sandbox="local")
            dataset = await asyncio.to_thread(load_dataset, str(dataset_path))
            awm = AWMRun(run, profile, http=http, sandboxes=NullSandboxFactory(),  # type: ignore[arg-type]
                         evaluator=ServerEvaluator(client, eval_config), dataset=dataset, sink=sink)
            await awm.prepare()
            t0 = time.perf_counter()
            outcome = await awm.execute()
            wall = time.perf_counter() - t0
        finally:
            await client.aclose()
            await evaluator_server.close()
    agent_calls = [c for c in calls if c.purpose == "agent"]
    inductions = [c for c in calls if c.purpose == "induction"]
    return {
        "workers": workers, "tasks": tasks, "wall_s": wall, "status": outcome.status, "reason": outcome.reason,
        "done": outcome.done, "resolved": outcome.resolved,
        "task_time_sum_s": sum(f.elapsed_s for f in finished),
        "agent_calls": len(agent_calls), "mean_call_s": sum(c.latency_s for c in agent_calls) / max(1, len(agent_calls)),
        "inductions": len(inductions), "induction_s": sum(c.latency_s for c in inductions),
    }


def run(quick: bool, log=print, *, tasks: int | None = None, workers: tuple[int, ...] | None = None,
        latency: float = LATENCY, jitter: float = JITTER, eval_time: float = EVAL_TIME) -> BenchResult:
    tasks = tasks or (16 if quick else TASKS)
    workers = workers or ((1, 4) if quick else WORKERS)
    results: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="awm-bench-workers-") as tmp:
        for k in workers:
            root = Path(tmp) / f"k{k}"
            root.mkdir()
            res = asyncio.run(trial(root, tasks=tasks, workers=k, latency=latency, jitter=jitter,
                                    eval_time=eval_time))
            if res["status"] != "finished" or res["done"] != tasks:
                raise RuntimeError(f"workers={k}: {res['status']} after {res['done']}/{tasks}: {res['reason']}")
            results[k] = res
            log(f"  [workers] K={k:<2} wall {res['wall_s']:.1f}s · {res['agent_calls']} agent calls "
                f"(mean {res['mean_call_s']:.2f}s) · {res['inductions']} inductions ({res['induction_s']:.1f}s)")
    base = results[workers[0]]
    critical = base["task_time_sum_s"] / tasks  # one task alone, at K = 1
    rows, data = [], {}
    for k, res in results.items():
        ideal = tasks * critical / k
        speedup = base["wall_s"] / res["wall_s"] * workers[0]
        row = {**res, "ideal_s": ideal, "efficiency": ideal / res["wall_s"], "speedup": speedup,
               "speedup_per_worker": speedup / k}
        data[str(k)] = row
        rows.append([k, res["wall_s"], ideal, speedup, row["speedup_per_worker"], row["efficiency"],
                     res["resolved"], res["inductions"]])
    text = table(f"workers: one run, {tasks} tasks, model {latency:g}–{latency + jitter:g} s per call, "
                 f"evaluation {eval_time:g} s",
                 ["K", "wall s", "ideal s", "speedup", "speedup/K", "efficiency", "resolved", "inductions"], rows,
                 note=f"critical path (one task alone, K=1 mean) {critical:.2f} s; ideal = tasks × critical / K")
    targets = []
    if 4 in results and workers[0] == 1:
        speedup = data["4"]["speedup"]
        targets.append(Target("workers", "speedup at workers=4", speedup, f"≥ {GOAL * 4:.1f} ({GOAL}·K)",
                              speedup >= GOAL * 4, f"efficiency vs ideal {data['4']['efficiency']:.2f}"))
    return BenchResult("workers", text, {"tasks": tasks, "critical_s": critical, "by_workers": data}, targets)


if __name__ == "__main__":
    print(run(False).text)
