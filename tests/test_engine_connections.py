"""The evaluation connections the engine reports are the ones the OS sees.

The fleet's single evaluation client serves every run; 20 simulated runs drive
200 evaluations through it concurrently, against the real evaluation server in
`--simulate` mode. The fleet's figure (`eval_metrics`, per host) is compared
with psutil's ESTABLISHED sockets to the server's port throughout.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from awm_tui.config.models import AppConfig, EvalConfig, HttpConfig
from awm_tui.engine.evaluation import ServerEvaluator
from awm_tui.engine.fleet import Fleet
from awm_tui.engine.http.metrics import RunMetrics
from awm_tui.engine.sandbox.local import LocalSandbox
from awm_tui.engine.tasks import load_dataset
from awm_tui.servers.eval_server import EvalServer
from tests.plugins.http_peers import established_to

RUNS = 20
PER_RUN = 10
LIMIT_PER_HOST = 8
PATCH = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"

pytestmark = pytest.mark.timeout(60)


async def test_reported_eval_connections_match_the_os(tmp_path: Path) -> None:
    dataset = load_dataset("sample")
    tasks = list(dataset.tasks)
    async with EvalServer([dataset], simulate=0.02) as server:
        port = int(server.url.rsplit(":", 1)[1])
        host = f"127.0.0.1:{port}"
        config = AppConfig(eval=EvalConfig(mode="server", server_url=server.url, timeout=30),
                           http=HttpConfig(limit=2 * LIMIT_PER_HOST, limit_per_host=LIMIT_PER_HOST,
                                           retry_min_wait=0.01, retry_max_wait=0.05))
        fleet = Fleet(config, lambda _event: None)
        sandbox = LocalSandbox.attach(f"local:{tmp_path}")  # the simulated server never opens it

        def reported() -> int:
            return next((h.open for h in fleet.eval_metrics.snapshot().per_host if h.host == host), 0)

        samples: list[tuple[int, int]] = []
        stop = asyncio.Event()

        async def sample() -> None:
            while not stop.is_set():
                samples.append((reported(), await asyncio.to_thread(established_to, port)))
                await asyncio.sleep(0.005)

        async with fleet:
            evaluator = fleet.evaluator  # the one evaluation path every run of this fleet takes
            assert isinstance(evaluator, ServerEvaluator)
            runs = [RunMetrics() for _ in range(RUNS)]

            async def one(metrics: RunMetrics, index: int) -> bool:
                outcome = await evaluator.evaluate(
                    sandbox=sandbox, task=tasks[index % len(tasks)], dataset_name=dataset.name,
                    split="test", exit_status="Submitted", patch=PATCH, metrics=metrics)
                return outcome.resolved

            sampler = asyncio.create_task(sample())
            try:
                for wave in range(PER_RUN):
                    results = await asyncio.gather(*(one(m, wave + i) for i, m in enumerate(runs)))
                    assert all(results)
                    await asyncio.sleep(0.02)  # a quiet point: every connection idle in the pool
                    os_count = await asyncio.to_thread(established_to, port)
                    assert reported() == os_count, f"wave {wave}: engine {reported()}, OS {os_count}"
                    assert 0 < os_count <= LIMIT_PER_HOST
            finally:
                stop.set()
                await sampler
        # the fleet closed its evaluation client: nothing open, by either count
        assert reported() == 0 and fleet.eval_metrics.connections_open == 0
        assert await asyncio.to_thread(established_to, port) == 0
        served = server.served

    assert served == RUNS * PER_RUN
    assert len(samples) > 20
    assert max(r for r, _ in samples) == LIMIT_PER_HOST  # 20 runs at once fill the pool...
    assert all(r <= LIMIT_PER_HOST and o <= LIMIT_PER_HOST for r, o in samples)  # ...never beyond it
    pool = fleet.eval_metrics.snapshot()
    assert pool.connections_created <= LIMIT_PER_HOST  # opened once, then reused
    assert pool.connections_created + pool.connections_reused == RUNS * PER_RUN
    for metrics in runs:  # each run is charged its own requests and evaluations
        snap = metrics.snapshot()
        assert (snap.requests, snap.evaluations, snap.errors) == (PER_RUN, PER_RUN, 0)
        assert snap.connections_open == 0  # open sockets belong to the shared pool, not a run
    assert sum(m.connections_created for m in runs) == pool.connections_created
