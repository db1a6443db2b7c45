"""The evaluation server and client over real loopback sockets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import psutil
import pytest
from aiohttp import web

from awm_tui.config.models import DockerConfig, EvalConfig, HttpConfig
from awm_tui.engine.evaluation import EvalClient, EvaluationError, LocalEvaluator
from awm_tui.engine.http.metrics import RunMetrics
from awm_tui.engine.tasks import Dataset
from tests.plugins.eval_server import FIX_ADD

FAST_RETRY = HttpConfig(retry_attempts=3, retry_min_wait=0.01, retry_max_wait=0.05)


def client_for(url: str, http: HttpConfig = FAST_RETRY, **kwargs) -> EvalClient:
    return EvalClient(EvalConfig(mode="server", server_url=url, timeout=60), http, **kwargs)


async def test_round_trip_through_eval_client(eval_server, task_sandbox) -> None:
    good = await task_sandbox("calc__add-1")
    Path(good.workdir, "calc", "ops.py").write_text(FIX_ADD)
    wrong = await task_sandbox("calc__add-1")
    metrics, run_metrics = RunMetrics(), RunMetrics()
    async with client_for(eval_server.url, metrics=metrics) as client:
        reward, speedup, info = await client.evaluate_info(
            "Submitted", "", good.id, "calc__add-1", "tasks", "test", metrics=run_metrics)
        assert (reward, speedup) == (1.0, None)
        assert info["resolved"] and info["tests"]["FAIL_TO_PASS"]["passed"] == 3
        reward, _, info = await client.evaluate_info("Submitted", "", wrong.id, "calc__add-1", "tasks", "test")
        assert reward == 0.0 and "empty patch" in info["error"]
    # The run named per call is charged; the client's own metrics take the rest.
    assert run_metrics.evaluations == 1 and run_metrics.requests == 1
    assert metrics.evaluations == 1
    async with aiohttp.ClientSession() as session:
        async with session.get(eval_server.url + "/stats") as response:
            stats = await response.json()
    assert stats["served"] == 2 and stats["in_flight"] == 0 and stats["mean_duration_s"] > 0


async def test_submitted_result_is_evaluated_on_a_clean_container(eval_server, task_sandbox,
                                                                   calc_dataset: Dataset) -> None:
    sandbox = await task_sandbox("calc__add-1")
    async with client_for(eval_server.url) as client:
        reward, _, info = await client.evaluate_info(
            "Submitted", calc_dataset.get("calc__add-1").patch, sandbox.id, "calc__add-1", "", "test")
    assert reward == 1.0 and info["patch"]["source"] == "submitted result"


async def test_unknown_instance_is_404_with_the_servers_message(eval_server) -> None:
    async with aiohttp.ClientSession() as session:
        body = {"exit_status": "Submitted", "result": "x", "container_id": "local:/tmp",
                "instance_id": "nope-1", "dataset_name": "tasks", "split": "test"}
        async with session.post(eval_server.url + "/evaluate", json=body) as response:
            assert response.status == 404
            assert "unknown instance 'nope-1'" in (await response.json())["error"]
    async with client_for(eval_server.url) as client:
        with pytest.raises(EvaluationError, match="HTTP 404: unknown instance 'nope-1'"):
            await client.evaluate_info("Submitted", "x", "local:/tmp", "nope-1", "tasks", "test")


@pytest.mark.parametrize("body", [
    b"not json",
    b"[1, 2]",
    json.dumps({"instance_id": "calc__add-1"}).encode(),
    json.dumps({"instance_id": "calc__add-1", "container_id": "local:/x", "result": 5}).encode(),
])
async def test_bad_body_is_400(eval_server, body: bytes) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(eval_server.url + "/evaluate", data=body) as response:
            assert response.status == 400
            assert (await response.json())["error"]


async def test_health_lists_datasets(eval_server) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(eval_server.url + "/health") as response:
            assert await response.json() == {"ok": True, "datasets": ["tasks"], "tasks": 3, "simulate": None}


async def test_nothing_submitted_scores_zero_without_a_sandbox(eval_server) -> None:
    async with client_for(eval_server.url) as client:
        reward, speedup, info = await client.evaluate_info(
            "LimitsExceeded", "", "no-such-container", "calc__add-1", "tasks", "test")
    assert (reward, speedup) == (0.0, None) and "nothing submitted" in info["error"]


async def test_broken_sandbox_is_a_one_line_500(eval_server) -> None:
    async with aiohttp.ClientSession() as session:
        body = {"exit_status": "Submitted", "result": "diff", "container_id": "local:/nonexistent/awm",
                "instance_id": "calc__add-1"}
        async with session.post(eval_server.url + "/evaluate", json=body) as response:
            assert response.status == 500
            error = (await response.json())["error"]
    assert error.startswith("sandbox error:") and "\n" not in error
    async with client_for(eval_server.url) as client:
        with pytest.raises(EvaluationError, match="HTTP 500: sandbox error"):
            await client.evaluate_info("Submitted", "diff", "local:/nonexistent/awm", "calc__add-1", "", "test")


async def test_simulate_mode(eval_server_factory) -> None:
    server = await eval_server_factory(simulate=0.05)
    async with client_for(server.url) as client:
        reward, _, info = await client.evaluate_info("Submitted", "diff --git", "c1", "calc__add-1", "", "test")
        assert reward == 1.0 and info["simulated"] is True
        reward, _, info = await client.evaluate_info("Submitted", "", "c1", "calc__add-1", "", "test")
        assert reward == 0.0 and info["simulated"] is True


async def test_fifty_concurrent_evaluations_take_about_one(eval_server_factory) -> None:
    server = await eval_server_factory(simulate=0.5)
    async with client_for(server.url, HttpConfig()) as client:
        started = time.monotonic()
        await client.evaluate_info("Submitted", "p", "c", "calc__add-1", "", "test")
        single = time.monotonic() - started
        started = time.monotonic()
        answers = await asyncio.gather(*(
            client.evaluate_info("Submitted", "p", f"c{i}", "calc__add-1", "", "test") for i in range(50)))
        many = time.monotonic() - started
    assert all(reward == 1.0 for reward, _, _ in answers)
    assert many < 5 * single, (many, single)


def established_to(port: int) -> int:
    return sum(1 for c in psutil.Process().net_connections(kind="tcp")
               if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


async def test_connections_to_the_server_stay_within_limit_per_host(eval_server_factory) -> None:
    server = await eval_server_factory(simulate=0.2)
    port = int(server.url.rsplit(":", 1)[1])
    http = HttpConfig(limit=10, limit_per_host=4)
    metrics = RunMetrics()
    samples: list[int] = []
    async with client_for(server.url, http, metrics=metrics) as client:
        async def wave() -> None:
            await asyncio.gather(*(
                client.evaluate_info("Submitted", "p", f"c{i}", "calc__add-1", "", "test") for i in range(20)))

        async def sample(done: asyncio.Event) -> None:
            while not done.is_set():
                samples.append(established_to(port))
                await asyncio.sleep(0.02)

        for _ in range(2):
            done = asyncio.Event()
            sampler = asyncio.create_task(sample(done))
            await wave()
            done.set()
            await sampler
    assert max(samples) == 4, samples
    # The second wave reused the pooled connections instead of opening new ones.
    assert metrics.connections_created == 4 and metrics.connections_reused == 36
    assert metrics.evaluations == 40


async def test_client_retries_a_dropped_connection_and_5xx(aiohttp_server) -> None:
    calls = 0

    async def evaluate(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        await request.read()
        if calls == 1:
            request.transport.close()  # drop the connection without an answer
            return web.Response()
        if calls == 2:
            return web.json_response({"error": "busy"}, status=503)
        return web.json_response({"reward": 1.0, "speedup": 2.5, "info": {"attempt": calls}})

    app = web.Application()
    app.router.add_post("/evaluate", evaluate)
    peer = await aiohttp_server(app)
    metrics = RunMetrics()
    async with client_for(str(peer.make_url("")), metrics=metrics) as client:
        answer = await client.evaluate_info("Submitted", "p", "c", "i", "d", "test")
    assert answer == (1.0, 2.5, {"attempt": 3})
    assert metrics.retries == 2 and metrics.evaluations == 1


async def test_client_gives_up_after_the_configured_attempts(aiohttp_server) -> None:
    calls = 0

    async def evaluate(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response({"error": "disk full"}, status=500)

    app = web.Application()
    app.router.add_post("/evaluate", evaluate)
    peer = await aiohttp_server(app)
    async with client_for(str(peer.make_url(""))) as client:
        with pytest.raises(EvaluationError, match="HTTP 500: disk full"):
            await client.evaluate_info("Submitted", "p", "c", "i", "d", "test")
    assert calls == 3


async def test_unreachable_server_is_an_evaluation_error() -> None:
    async with client_for("http://127.0.0.1:9") as client:
        with pytest.raises(EvaluationError, match="unreachable"):
            await client.evaluate_info("Submitted", "p", "c", "i", "d", "test")


async def test_local_evaluator_uses_the_same_harness(task_sandbox, calc_dataset: Dataset) -> None:
    sandbox = await task_sandbox("calc__add-1")
    Path(sandbox.workdir, "calc", "ops.py").write_text(FIX_ADD)
    metrics = RunMetrics()
    outcome = await LocalEvaluator(EvalConfig(), metrics).evaluate(sandbox, calc_dataset.get("calc__add-1"))
    assert outcome.resolved and outcome.reward == 1.0
    assert metrics.evaluations == 1


async def test_main_as_a_subprocess_serves_and_exits_on_sigint(calc_dataset: Dataset) -> None:
    dataset = calc_dataset.root / "tasks.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "awm_tui.servers.eval_server", "--port", "0", "--dataset", str(dataset),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parent.parent, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("evaluation server listening on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].split()[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/health") as response:
                assert (await response.json())["tasks"] == 3
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_main_reports_a_bad_dataset(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "awm_tui.servers.eval_server", "--port", "0", "--dataset", str(tmp_path / "no.jsonl"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).parent.parent,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"no such file" in err


@pytest.mark.docker
async def test_evaluates_inside_a_real_container(eval_server_factory, calc_dataset: Dataset,
                                                 docker_client, docker_url, docker_run_name) -> None:
    from awm_tui.engine.sandbox.docker import DockerSandbox

    task = calc_dataset.get("calc__add-1")
    server = await eval_server_factory(docker_url=docker_url)
    async with DockerSandbox(docker_client, run_name=docker_run_name, instance_id=task.instance_id,
                             limits=DockerConfig(memory="512m")) as sandbox:
        await sandbox.put_directory(calc_dataset.snapshot_path(task))
        made = await sandbox.exec("git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm base")
        assert made.exit_code == 0, made.output
        await sandbox.write_file("calc/ops.py", FIX_ADD)
        async with client_for(server.url) as client:
            reward, _, info = await client.evaluate_info(
                "Submitted", "", sandbox.id, task.instance_id, "tasks", "test")
        assert reward == 1.0, info
        assert info["tests"]["PASS_TO_PASS"]["passed"] == 2
        # The agent's container is left as the agent had it: only its own edit.
        status = await sandbox.exec("git status --porcelain")
        assert status.output.split() == ["M", "calc/ops.py"]
