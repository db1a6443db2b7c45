"""The three ways of running N AWM loops that benchmark 1 and 3 compare.

Each contender runs in a child process of its own and prints one JSON line:

    python -m benchmarks.contenders engine    --n N --m M --llm URL --eval URL --out DIR
    python -m benchmarks.contenders before    ...   # async functions calling blocking `requests`
    python -m benchmarks.contenders terminals ...   # N processes, each a sync loop + requests.Session
    python -m benchmarks.contenders floor     ...   # bare aiohttp, nothing recorded: the machine's limit

(a) `engine`: N `AWMRun`s on one event loop, NullSandboxes, `ServerEvaluator` over one
    shared `EvalClient` — exactly what `Fleet` assembles.
(b) `before`: the users' loop before their fix, the same request pattern as the
    engine's agent (same prompts, same replies, same evaluation POST), written with
    `async def` but calling `requests.post` (a new connection per request), so the
    "concurrent" runs take turns on the event loop.
(c) `terminals`: the users' "three terminals" — one process per run, each a plain
    synchronous loop with its own `requests.Session`.
(d) `floor`: the least an asyncio client can do for the same request pattern — bare
    `aiohttp` sessions (one per run for the model, one shared pool for evaluation), no
    state files, events, retries or telemetry. Not a way users would run; it shows how
    close to the ideal this machine lets any single-process client come.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from awm_tui.engine import prompts, protocol, replies
from awm_tui.engine.agent import PATCH_COMMAND
from awm_tui.engine.sandbox.base import WORKDIR
from awm_tui.engine.tasks import Task, load_dataset

from benchmarks.common import NullSandbox, emit, null_exec

MAX_STEPS = 30
TIMEOUT_S = 600.0


# -- (a) the engine ------------------------------------------------------------------------

async def engine_trial(args: argparse.Namespace) -> dict:
    from pydantic import SecretStr

    from awm_tui.config.models import EvalConfig, HttpConfig, LLMProfile, RunConfig
    from awm_tui.engine.evaluation.client import EvalClient
    from awm_tui.engine.evaluation import ServerEvaluator
    from awm_tui.engine.run import AWMRun
    from benchmarks.common import NullSandboxFactory

    dataset = await asyncio.to_thread(load_dataset, args.dataset)
    http = HttpConfig(limit=args.limit, limit_per_host=args.limit_per_host)
    eval_config = EvalConfig(mode="server", server_url=args.eval, timeout=TIMEOUT_S)
    client = EvalClient(eval_config, http)
    try:
        evaluator = ServerEvaluator(client, eval_config)
    except TypeError:  # the older one-argument form
        evaluator = ServerEvaluator(client)  # type: ignore[call-arg]
    factory = NullSandboxFactory()
    events = [0]

    def sink(event) -> None:
        events[0] += 1

    runs = []
    for i in range(args.n):
        profile = LLMProfile(model="awm-sim", base_url=args.llm, api_key=SecretStr(f"bench-key-{i}"),
                             timeout=TIMEOUT_S, num_retries=3, retry_min_wait=0.1, retry_max_wait=1.0)
        config = RunConfig(name=f"run{i}", output_dir=Path(args.out) / f"run{i}", limit=args.m,
                           dataset=args.dataset, induce_every=10**6, induction="rule", sandbox="local")
        runs.append(AWMRun(config, profile, http=http, sandboxes=factory, evaluator=evaluator,  # type: ignore[arg-type]
                           dataset=dataset, sink=sink, metrics_interval=args.metrics_interval))
    prep0 = time.perf_counter()
    for run in runs:
        await run.prepare()
    prepare_s = time.perf_counter() - prep0
    if args.no_state:
        # Diagnostic only: what the per-task state files cost, measured side by side.
        # A real run always writes them (the checkpoint after every task).
        from awm_tui.engine.state.store import StateStore
        StateStore._append = StateStore._write_views = lambda self, *args: None  # type: ignore[method-assign]
    profiler = None
    if args.profile:
        import cProfile
        profiler = cProfile.Profile()  # the event loop's thread only
        profiler.enable()
    cpu0, t0 = time.process_time(), time.perf_counter()
    outcomes = await asyncio.gather(*(run.execute() for run in runs))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    pool = client._session.connector.metrics if client._session is not None else None  # type: ignore[union-attr]
    await client.aclose()
    llm_requests = [r.metrics.requests - r.metrics.evaluations for r in runs]
    return {
        "contender": "engine", "n": args.n, "m": args.m, "wall_s": wall, "cpu_s": cpu,
        "done": sum(o.done for o in outcomes), "resolved": sum(o.resolved for o in outcomes),
        "failed": [o.reason for o in outcomes if o.status != "finished"][:3],
        "llm_calls_max": max(llm_requests), "evals_max": max(r.metrics.evaluations for r in runs),
        "client_connections_created": sum(r.metrics.connections_created for r in runs),
        "eval_pool_connections_created": pool.connections_created if pool else 0,
        "events": events[0], "prepare_s": prepare_s,
    }


# -- the users' loop, shared by (b) and (c) ----------------------------------------------------

def first_messages(task: Task) -> list[dict]:
    return [{"role": "system", "content": prompts.SYSTEM},
            {"role": "user", "content": prompts.instance_prompt(task, WORKDIR, "")}]


def chat_body(messages: list[dict]) -> dict:
    return {"model": "awm-sim", "messages": messages, "temperature": 0.0, "top_p": 1.0}


def next_step(messages: list[dict], reply: dict) -> bool:
    """Append the reply and the null sandbox's observation; True when the agent submitted."""
    content = reply["choices"][0]["message"]["content"]
    messages.append({"role": "assistant", "content": content})
    command, why = replies.extract_command(content)
    if command is None:
        messages.append({"role": "user", "content": prompts.format_error(why)})
        return False
    out = null_exec(command)
    if out.output.lstrip().startswith(protocol.SUBMIT_MARKER):
        return True
    messages.append({"role": "user", "content": prompts.observation(
        out.exit_code, out.output, truncated=False, timed_out=False, timeout_s=120)})
    return False


def eval_payload(task: Task, patch: str, container: str, dataset_name: str) -> dict:
    return {"exit_status": "Submitted", "result": patch, "container_id": container,
            "instance_id": task.instance_id, "dataset_name": dataset_name, "split": "test"}


def save_state(out: Path, task: Task, messages: list[dict], patch: str, answer: dict, done: list) -> None:
    """What their loop wrote per task: the trajectory, then the checkpoint (blocking writes)."""
    (out / f"{task.instance_id}.traj.json").write_text(json.dumps(
        {"instance_id": task.instance_id, "messages": messages, "patch": patch, "evaluation": answer}))
    done.append({"instance_id": task.instance_id, "reward": answer.get("reward")})
    (out / "checkpoint.json").write_text(json.dumps({"done": done}))


# -- (b) async functions calling blocking requests ------------------------------------------------

async def before_run(index: int, tasks: list[Task], args: argparse.Namespace, dataset_name: str,
                     counts: dict) -> int:
    import requests

    out = Path(args.out) / f"run{index}"
    out.mkdir(parents=True, exist_ok=True)
    headers = {"Authorization": f"Bearer bench-key-{index}"}
    done: list = []
    calls = 0
    for task in tasks:
        sandbox = NullSandbox()
        await sandbox.start()
        messages = first_messages(task)
        for _ in range(MAX_STEPS):
            # The defect: a blocking call inside `async def` holds the whole event loop.
            reply = requests.post(args.llm + "/chat/completions", json=chat_body(messages),
                                  headers=headers, timeout=TIMEOUT_S).json()
            calls += 1
            if next_step(messages, reply):
                break
        patch = (await sandbox.exec(PATCH_COMMAND)).output
        answer = requests.post(args.eval + "/evaluate", json=eval_payload(task, patch, sandbox.id, dataset_name),
                               timeout=TIMEOUT_S).json()
        counts["evals"] = counts.get("evals", 0) + 1
        counts["resolved"] = counts.get("resolved", 0) + (answer.get("reward") == 1.0)
        save_state(out, task, messages, patch, answer, done)
        await sandbox.close()
    return calls


async def before_trial(args: argparse.Namespace) -> dict:
    dataset = load_dataset(args.dataset)
    tasks = dataset.select(limit=args.m)
    counts: dict = {}
    cpu0, t0 = time.process_time(), time.perf_counter()
    calls = await asyncio.gather(*(before_run(i, tasks, args, dataset.name, counts) for i in range(args.n)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"contender": "before", "n": args.n, "m": args.m, "wall_s": wall, "cpu_s": cpu,
            "done": counts.get("evals", 0), "resolved": counts.get("resolved", 0),
            "llm_calls_max": max(calls), "evals_max": len(tasks)}


# -- (d) the floor: bare aiohttp, nothing recorded ------------------------------------------------

async def floor_run(index: int, tasks: list[Task], args: argparse.Namespace, dataset_name: str,
                    evaluation, counts: dict) -> int:
    import aiohttp

    calls = 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer bench-key-{index}"}) as llm:
        for task in tasks:
            messages = first_messages(task)
            for _ in range(MAX_STEPS):
                async with llm.post(args.llm + "/chat/completions", json=chat_body(messages)) as resp:
                    reply = await resp.json()
                calls += 1
                if next_step(messages, reply):
                    break
            patch = null_exec(PATCH_COMMAND).output
            async with evaluation.post(args.eval + "/evaluate",
                                       json=eval_payload(task, patch, f"null-{index}", dataset_name)) as resp:
                answer = await resp.json()
            counts["evals"] = counts.get("evals", 0) + 1
            counts["resolved"] = counts.get("resolved", 0) + (answer.get("reward") == 1.0)
    return calls


async def floor_trial(args: argparse.Namespace) -> dict:
    import aiohttp

    dataset = load_dataset(args.dataset)
    tasks = dataset.select(limit=args.m)
    counts: dict = {}
    connector = aiohttp.TCPConnector(limit=args.limit, limit_per_host=args.limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as evaluation:
        cpu0, t0 = time.process_time(), time.perf_counter()
        calls = await asyncio.gather(*(floor_run(i, tasks, args, dataset.name, evaluation, counts)
                                       for i in range(args.n)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"contender": "floor", "n": args.n, "m": args.m, "wall_s": wall, "cpu_s": cpu,
            "done": counts.get("evals", 0), "resolved": counts.get("resolved", 0),
            "llm_calls_max": max(calls), "evals_max": len(tasks)}


# -- (c) one synchronous process per run ---------------------------------------------------------

def terminal_worker(args: argparse.Namespace) -> dict:
    import requests

    dataset = load_dataset(args.dataset)
    tasks = dataset.select(limit=args.m)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer bench-key-{args.index}"
    out = Path(args.out) / f"run{args.index}"
    out.mkdir(parents=True, exist_ok=True)
    print("ready", flush=True)
    sys.stdin.readline()  # the barrier: every process starts its loop at once
    cpu0, t0 = time.process_time(), time.perf_counter()
    done: list = []
    calls = resolved = 0
    for task in tasks:
        messages = first_messages(task)
        for _ in range(MAX_STEPS):
            reply = session.post(args.llm + "/chat/completions", json=chat_body(messages),
                                 timeout=TIMEOUT_S).json()
            calls += 1
            if next_step(messages, reply):
                break
        patch = null_exec(PATCH_COMMAND).output
        answer = session.post(args.eval + "/evaluate",
                              json=eval_payload(task, patch, f"null-{args.index}", dataset.name),
                              timeout=TIMEOUT_S).json()
        resolved += answer.get("reward") == 1.0
        save_state(out, task, messages, patch, answer, done)
    session.close()
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0,
            "calls": calls, "evals": len(tasks), "resolved": resolved}


def terminals_trial(args: argparse.Namespace) -> dict:
    base = [sys.executable, "-m", "benchmarks.contenders", "worker", "--m", str(args.m), "--llm", args.llm,
            "--eval", args.eval, "--out", args.out, "--dataset", args.dataset]
    started = time.perf_counter()
    procs = [subprocess.Popen(base + ["--index", str(i)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, bufsize=1) for i in range(args.n)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a terminal worker did not start")
    startup = time.perf_counter() - started
    t0 = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    reports = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"a terminal worker failed ({p.returncode})")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.perf_counter() - t0
    return {"contender": "terminals", "n": args.n, "m": args.m, "wall_s": wall,
            "cpu_s": sum(r["cpu_s"] for r in reports), "startup_s": startup,
            "done": sum(r["evals"] for r in reports), "resolved": sum(r["resolved"] for r in reports),
            "llm_calls_max": max(r["calls"] for r in reports), "evals_max": max(r["evals"] for r in reports)}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.contenders")
    p.add_argument("contender", choices=["engine", "before", "terminals", "floor", "worker"])
    p.add_argument("--n", type=int, default=1)
    p.add_argument("--m", type=int, default=3)
    p.add_argument("--llm", required=True)
    p.add_argument("--eval", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dataset", default="sample")
    p.add_argument("--limit", type=int, default=100, help="engine: HttpConfig.limit")
    p.add_argument("--limit-per-host", type=int, default=50, help="engine: HttpConfig.limit_per_host")
    p.add_argument("--index", type=int, default=0, help="worker: which run this process is")
    p.add_argument("--metrics-interval", type=float, default=1.0,
                   help="engine: AWMRun(metrics_interval=...), the per-run metrics ticker's period")
    p.add_argument("--no-state", action="store_true",
                   help="engine, diagnostic: skip the per-task state files in the timed window")
    p.add_argument("--profile", metavar="PATH", help="engine: cProfile the timed window into PATH (pstats)")
    return p


def main() -> None:
    args = parser().parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.contender == "engine":
        emit(asyncio.run(engine_trial(args)))
    elif args.contender == "before":
        emit(asyncio.run(before_trial(args)))
    elif args.contender == "terminals":
        emit(terminals_trial(args))
    elif args.contender == "floor":
        emit(asyncio.run(floor_trial(args)))
    else:
        emit(terminal_worker(args))


if __name__ == "__main__":
    main()
