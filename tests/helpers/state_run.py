"""One AWM run as fast as it gets, for the state-file tests: commands cost nothing.

The simulated model and the evaluation server (simulating, no tests run) are real
aiohttp servers on loopback; the sandbox is the benchmarks' NullSandbox, because
what these tests exercise is the state files, not the sandbox.

In-process: `await run_once(out, ...)` → the run's events.

As a fork server (the fault-injection test): `python tests/helpers/state_run.py`
imports everything once, then for each stdin line `OUT KILL_AT` forks a child that
runs once on OUT with `AWM_TUI_KILL_AT_WRITE=KILL_AT` (`-` for none; `count:PATH`
to count the write points) and prints the child's exit status (-9: SIGKILLed).
Forking saves the interpreter start-up and imports, ~40 times per test.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from awm_tui.config.models import EvalConfig, HttpConfig, LLMProfile, RunConfig
from awm_tui.engine.evaluation.client import EvalClient
from awm_tui.engine.evaluator import ServerEvaluation
from awm_tui.engine.events import Event
from awm_tui.engine.run import AWMRun
from awm_tui.engine.state import OutputLayout
from awm_tui.engine.state.atomic import FAULT_ENV
from awm_tui.engine.tasks import load_dataset
from awm_tui.servers.eval_server import EvalServer
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.common import NullSandboxFactory  # noqa: E402

LIMIT, INDUCE_EVERY = 4, 2
"""Inductions after tasks 2 and 4; tasks 3 and 4 get workflows."""


async def run_once(out: Path, *, induction: str = "llm", limit: int = LIMIT,
                   on_event: Callable[[Event, asyncio.Task], None] | None = None,
                   runs: list[AWMRun] | None = None) -> list[Event]:
    """Run (or resume) on `out`; `on_event(event, run_task)` may cancel the run (a Ctrl-C);
    the AWMRun is appended to `runs` when given."""
    events: list[Event] = []
    async with SimLLMServer(SimOptions(seed=3)) as sim, EvalServer(simulate=0.0) as evals:
        http = HttpConfig()
        client = EvalClient(EvalConfig(mode="server", server_url=evals.url), http)
        profile = LLMProfile(model="awm-sim", base_url=sim.url, api_key=SecretStr("sim-state-key-0000"),
                             timeout=30, num_retries=2, retry_min_wait=0.05, retry_max_wait=0.1)
        config = RunConfig(name="state", output_dir=out, limit=limit, induce_every=INDUCE_EVERY,
                           induction=induction, sandbox="local")
        evaluator = ServerEvaluation(client, EvalConfig(mode="server", server_url=evals.url))
        task: asyncio.Task | None = None

        def sink(event: Event) -> None:
            events.append(event)
            if on_event is not None and task is not None:
                on_event(event, task)

        run = AWMRun(config, profile, http=http, sandboxes=NullSandboxFactory(),  # type: ignore[arg-type]
                     evaluator=evaluator, dataset=load_dataset("sample"), sink=sink, metrics_interval=60)
        if runs is not None:
            runs.append(run)
        try:
            await run.prepare()
            run.store.view_delay = 0.0  # views rewritten after every commit: more writes to kill at
            task = asyncio.ensure_future(run.execute())
            await task
        finally:
            await client.aclose()
    return events


def outcome(out: Path) -> dict:
    """What a user relies on after the run, without the timestamps a redone task changes."""
    layout = OutputLayout.of(out)
    memory = json.loads(layout.memory.read_text())
    buffer = json.loads(layout.buffer.read_text())
    checkpoint = json.loads(layout.checkpoint.read_text())
    return {
        "memory version": memory["version"], "next id": memory["next_id"],
        "workflows": [(w["id"], w["title"], w["steps"], w["version"], w["uses"], w["successes"],
                       w["source_instances"]) for w in memory["workflows"]],
        "inductions": [(r["version"], r["mode"], r["added"], r["changed"], r["removed"], r["sources"])
                       for r in memory["history"]],
        "injected": [(e["instance_id"], e["injected_workflows"], e["resolved"]) for e in buffer["experiences"]],
        "checkpoint": [(i, r["exit_status"], r["resolved"], r["steps"]) for i, r in checkpoint["finished"].items()],
        "preds": json.loads(layout.preds.read_text()),
        "trajectories": {p.stem: json.loads(p.read_text())["injected_workflows"]
                         for p in sorted(layout.trajectories.glob("*.json"))},
    }


def serve() -> None:
    for line in sys.stdin:
        out, kill_at = line.split()
        pid = os.fork()
        if pid == 0:
            if kill_at != "-":
                os.environ[FAULT_ENV] = kill_at
            try:
                asyncio.run(run_once(Path(out)))
            except BaseException as exc:  # noqa: BLE001 - reported as the child's status
                print(f"child failed: {exc!r}", file=sys.stderr, flush=True)
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    serve()
