"""`awm-tui --batch` with `workers = K`: SIGKILL mid-run and resume, SIGUSR1 status.

The real CLI in a subprocess, the simulated model on loopback, the real Docker daemon.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
from pathlib import Path

import aiodocker
import pytest

from awm_tui.batch.report import Reporter
from awm_tui.engine.events import read_event_log
from awm_tui.engine.sandbox.docker import RUN_LABEL
from awm_tui.engine.scheduler import RunStatus, TaskStatus
from awm_tui.engine.state import OutputLayout, load_state
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions
from tests.test_batch import KEYS, write_config
from tests.test_batch_signals import finish, start_batch
from tests.test_workers import SAMPLE, assert_versions_and_uses

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def next_event(proc: asyncio.subprocess.Process, seen: list[dict]) -> dict:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert line, "the batch ended early"
    event = json.loads(line)
    seen.append(event)
    return event


@pytest.mark.docker
async def test_sigkill_with_four_workers_then_resume(docker_url: str, docker_client: aiodocker.Docker,
                                                     docker_run_name: str, tmp_path: Path) -> None:
    name, out = docker_run_name, tmp_path / "w"
    label = {"label": [f"{RUN_LABEL}={name}"]}
    async with SimLLMServer(SimOptions(seed=4, latency=0.25)) as sim:
        cfg = write_config(tmp_path / "c.toml", sim, key=KEYS[0], docker_url=docker_url, runs=[
            {"name": name, "output_dir": "w", "limit": len(SAMPLE), "include_medium": True, "workers": 4,
             "sandbox": "docker", "induction": "rule", "induce_every": 2, "command_timeout": 60}])
        seen: list[dict] = []
        proc = await start_batch("--config", cfg, cwd=tmp_path)
        in_flight: set[str] = set()
        finished = 0
        while not (finished >= 2 and len(in_flight) >= 3):
            event = await next_event(proc, seen)
            if event["kind"] == "task_started":
                in_flight.add(event["instance_id"])
            elif event["kind"] == "task_finished":
                in_flight.discard(event["instance_id"])
                finished += 1
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        done_at_kill = set(load_state(OutputLayout.of(out)).checkpoint.finished)
        assert len(done_at_kill) < len(SAMPLE)
        assert await docker_client.containers.list(all=True, filters=label), "no container left to sweep"

        rerun: list[dict] = []
        proc = await start_batch("--config", cfg, cwd=tmp_path)
        err = await finish(proc, rerun, timeout=200)
        assert proc.returncode == 0, err
    state = load_state(OutputLayout.of(out))
    assert sorted(state.checkpoint.finished) == sorted(SAMPLE)  # each task once (a dict: no repeats)
    assert sorted(json.loads((out / "preds.json").read_text())) == sorted(SAMPLE)
    assert sorted(e.instance_id for e in state.buffer.experiences) == sorted(SAMPLE)
    restarted = [e["instance_id"] for e in rerun if e["kind"] == "task_started"]
    assert restarted == [i for i in SAMPLE if i not in done_at_kill]  # only what was not committed
    events = [e.to_dict() for e in read_event_log(out / "events.jsonl")]
    launches = [i for i, e in enumerate(events) if e["kind"] == "run_started"]
    assert len(launches) == 2
    assert_versions_and_uses(out, events, killed_at=launches[1])
    assert await docker_client.containers.list(all=True, filters=label) == []


async def test_sigusr1_prints_every_run(tmp_path: Path) -> None:
    async with SimLLMServer(SimOptions(seed=5, latency=0.3)) as sim:
        cfg = write_config(tmp_path / "c.toml", sim, key=KEYS[0], runs=[
            {"name": "u-a", "output_dir": "a", "limit": 3, "workers": 2, "sandbox": "local", "skip_eval": True},
            {"name": "u-b", "output_dir": "b", "limit": 3, "workers": 2, "sandbox": "local", "skip_eval": True,
             "api_key": KEYS[1]}])
        seen: list[dict] = []
        proc = await start_batch("--config", cfg, cwd=tmp_path)
        while len({e["run"] for e in seen if e["kind"] == "agent_step"}) < 2:
            await next_event(proc, seen)
        proc.send_signal(signal.SIGUSR1)
        while (report := await next_event(proc, seen))["kind"] != "status_report":
            pass
        err = await finish(proc, seen, timeout=120)
        assert proc.returncode == 0, err  # the signal only printed: both runs went on to finish
    runs = {r["name"]: r for r in report["runs"]}
    assert set(runs) == {"u-a", "u-b"}
    for run in runs.values():
        assert run["workers"] == 2 and run["limit"] == 3 and run["last_call_latency_s"] >= 0.25
        assert 1 <= len(run["in_flight"]) <= 2
        assert all(t["instance_id"] and t["index"] >= 1 and t["elapsed_s"] > 0 for t in run["in_flight"])
        assert any(t["step"] >= 1 for t in run["in_flight"])
    finished = {e["run"] for e in seen if e["kind"] == "run_finished"}
    assert finished == {"u-a", "u-b"}


def test_the_status_report_names_each_task_in_flight() -> None:
    out = io.StringIO()
    reporter = Reporter(json_lines=False, secrets=[], out=out)
    reporter.full_status([RunStatus(
        name="r1", phase="running", paused=True, done=3, resolved=2, errors=0, limit=10, workers=2,
        tasks_total=10, memory_version=1, last_call_latency_s=1.25,
        in_flight=(TaskStatus("a__a-1", 4, 5, "running", 1, 12.0), TaskStatus("b__b-2", 5, 1, "evaluating", 1, 3.5)))])
    text = out.getvalue()
    assert "running (paused) · 3/10 done, 2 resolved, 0 errors · limit 10, workers 2" in text
    assert "last call 1.25s · 2 in flight" in text
    assert "task 4 a__a-1: running step 5, 12.0s, memory v1" in text
    assert "task 5 b__b-2: evaluating step 1, 3.5s, memory v1" in text
