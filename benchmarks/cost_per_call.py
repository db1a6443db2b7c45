"""Benchmark 2 — client CPU per request: the engine's clients vs a bare aiohttp loop (the floor).

The same request pattern (per task: the agent's five chat calls with their real,
growing message lists, then one evaluation POST) is issued by
- `floor`:  one plain `aiohttp.ClientSession`, `post(json=...)`, read, `json.loads`;
- `engine`: `LLMClient.chat` and `EvalClient.evaluate_info`, telemetry on (traced
  session, `TelemetryConnector`, per-run `RunMetrics`), retries armed.
Servers answer at once (latency 0, evaluation 0) from their own process; the client
process's CPU (`time.process_time()`) per request is compared.

    python -m benchmarks.cost_per_call floor|engine --llm URL --eval URL --tasks T --concurrency C
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from benchmarks.common import BenchResult, ServerProcess, Target, emit, median, run_child, table

CONCURRENCY = 8


def conversations() -> list[tuple[object, list[list[dict]]]]:
    """Per sample task, the message lists of its five agent calls (replayed without a server)."""
    from awm_tui.engine.tasks import SAMPLE, load_dataset
    from awm_tui.servers.sim_agent import agent_reply, read_conversation
    from benchmarks.contenders import first_messages, next_step

    out = []
    dataset = load_dataset(SAMPLE)
    for task in dataset.select(limit=None):
        messages, calls = first_messages(task), []
        for _ in range(10):
            calls.append(list(messages))
            content = agent_reply(read_conversation(messages), task, seed=0, wrong_patch_rate=0.0)
            if next_step(messages, {"choices": [{"message": {"content": content}}]}):
                break
        out.append((task, calls))
    return out


async def child(args: argparse.Namespace) -> dict:
    import aiohttp
    from pydantic import SecretStr

    from awm_tui.config.models import EvalConfig, HttpConfig, LLMProfile
    from awm_tui.engine.evaluation.client import EvalClient
    from awm_tui.engine.http.metrics import RunMetrics
    from awm_tui.engine.llm import LLMClient
    from benchmarks.common import FAKE_DIFF

    convs = conversations()
    jobs = [convs[i % len(convs)] for i in range(args.tasks)]
    http = HttpConfig()
    body_extra = {"model": "awm-sim", "temperature": 0.0, "top_p": 1.0}
    requests = 0

    if args.contender == "floor":
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=http.limit,
                                                                      limit_per_host=http.limit_per_host))
        headers = {"Authorization": "Bearer bench-key"}

        async def chat(messages: list[dict]) -> None:
            async with session.post(args.llm + "/chat/completions", json={**body_extra, "messages": messages},
                                    headers=headers) as resp:
                data = json.loads(await resp.read())
                assert data["choices"][0]["message"]["content"]

        async def evaluate(task, metrics) -> None:
            payload = {"exit_status": "Submitted", "result": FAKE_DIFF, "container_id": "null-1",
                       "instance_id": task.instance_id, "dataset_name": "sample", "split": "test"}
            async with session.post(args.eval + "/evaluate", json=payload) as resp:
                data = json.loads(await resp.read())
                assert isinstance(data["reward"], float)

        async def close() -> None:
            await session.close()
        metrics_for = lambda i: None  # noqa: E731
    else:
        profile = LLMProfile(model="awm-sim", base_url=args.llm, timeout=600)
        per_worker = [RunMetrics() for _ in range(args.concurrency)]
        llms = [LLMClient(profile, api_key=SecretStr(f"bench-key-{i}"), http=http, metrics=per_worker[i])
                for i in range(args.concurrency)]
        evals = EvalClient(EvalConfig(mode="server", server_url=args.eval, timeout=600), http)
        worker_of: dict[int, int] = {}

        async def chat(messages: list[dict]) -> None:
            llm = llms[worker_of[id(asyncio.current_task())]]
            reply = await llm.chat(messages)
            assert reply.content

        async def evaluate(task, metrics) -> None:
            reward, _, _ = await evals.evaluate_info("Submitted", FAKE_DIFF, "null-1", task.instance_id,
                                                     "sample", "test", metrics=metrics)
            assert isinstance(reward, float)

        async def close() -> None:
            for llm in llms:
                await llm.aclose()
            await evals.aclose()
        metrics_for = lambda i: per_worker[i]  # noqa: E731

    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker(index: int) -> None:
        nonlocal requests
        if args.contender == "engine":
            worker_of[id(asyncio.current_task())] = index
        while not queue.empty():
            task, calls = queue.get_nowait()
            for messages in calls:
                await chat(messages)
                requests += 1
            await evaluate(task, metrics_for(index))
            requests += 1

    # Warm-up: open the connections, import lazily-imported modules.
    warm = [queue.get_nowait() for _ in range(min(args.concurrency, queue.qsize()))]
    for job in warm:
        queue.put_nowait(job)
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    await close()
    return {"contender": args.contender, "requests": requests, "cpu_s": cpu, "wall_s": wall,
            "cpu_per_request_us": cpu / requests * 1e6}


def run(quick: bool, log=print, tasks: int | None = None) -> BenchResult:
    tasks = tasks or (250 if quick else 600)
    reps = 3 if quick else 5
    results: dict[str, list[dict]] = {"floor": [], "engine": []}
    with ServerProcess(latency=0.0, eval_time=0.0) as server:
        for r in range(reps):
            for contender in (("floor", "engine") if r % 2 == 0 else ("engine", "floor")):
                res = run_child("benchmarks.cost_per_call", [contender, "--llm", server.llm_url, "--eval",
                                                             server.eval_url, "--tasks", str(tasks),
                                                             "--concurrency", str(CONCURRENCY)])
                results[contender].append(res)
                log(f"  [cost] {contender:<6} {res['requests']} requests, "
                    f"{res['cpu_per_request_us']:.0f} us CPU/request")
    floor = median([r["cpu_per_request_us"] for r in results["floor"]])
    engine = median([r["cpu_per_request_us"] for r in results["engine"]])
    ratio = median([e["cpu_per_request_us"] / f["cpu_per_request_us"]
                    for e, f in zip(results["engine"], results["floor"])])
    rows = [[name, len(rs), median([r["requests"] for r in rs]), median([r["cpu_s"] for r in rs]),
             median([r["cpu_per_request_us"] for r in rs]), median([r["wall_s"] for r in rs])]
            for name, rs in results.items()]
    text = table(f"2. Client CPU per request ({tasks} tasks x 6 requests, {CONCURRENCY} concurrent; medians)",
                 ["client", "reps", "requests", "cpu s", "us CPU/request", "wall s"], rows,
                 note=f"engine / floor = {ratio:.2f}x (median of paired ratios)")
    return BenchResult("cost_per_call", text,
                       {"floor_us": floor, "engine_us": engine, "ratio": ratio, "trials": results},
                       [Target("cost_per_call", "engine CPU per request / bare aiohttp", ratio, "<= 1.5",
                               ratio <= 1.5)])


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cost_per_call")
    p.add_argument("contender", choices=["floor", "engine"])
    p.add_argument("--llm", required=True)
    p.add_argument("--eval", required=True)
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=CONCURRENCY)
    emit(asyncio.run(child(p.parse_args())))


if __name__ == "__main__":
    main()
