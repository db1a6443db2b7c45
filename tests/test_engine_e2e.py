"""The whole AWM loop against real peers: the evaluation server as its own process,
the simulated model on loopback, task sandboxes in a real Docker daemon.

One run of eight tasks through `Fleet`, then everything a user reads afterwards is
checked against everything else: the state files, the recorded prompts, the event
log, and the daemon's list of containers.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import aiohttp
import pytest
from pydantic import SecretStr

from awm_tui.config.keys import mask_key
from awm_tui.config.models import AppConfig, DockerConfig, EvalConfig, LLMProfile, RunConfig
from awm_tui.config.plan import resolve_run
from awm_tui.engine import protocol
from awm_tui.engine.events import EVENT_TYPES, Event, InductionDone, StatusChanged, TaskStarted
from awm_tui.engine.fleet import Fleet
from awm_tui.engine.sandbox.docker import RUN_LABEL
from awm_tui.engine.tasks import load_dataset
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(120)]

LIMIT = 8
KEY = SecretStr("sim-e2e-key-00000000-e2e1")


@pytest.fixture
async def eval_server_url(docker_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """`python -m awm_tui eval-server` as a child process, on a port the OS picks."""
    env = {**os.environ, "DOCKER_HOST": docker_url}
    with open(tmp_path / "eval-server.log", "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "awm_tui", "eval-server", "--host", "127.0.0.1", "--port", "0",
            stdout=asyncio.subprocess.PIPE, stderr=log, env=env)
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            found = re.search(r"listening on (http://\S+)", line)
            assert found, f"eval-server did not start: {line!r} {(tmp_path / 'eval-server.log').read_text()}"
            yield found.group(1)
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            if proc.stdout is not None:
                await proc.stdout.read()


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


async def test_eight_tasks_through_the_server_in_docker(
    docker_url: str, docker_client: aiodocker.Docker, docker_run_name: str,
    eval_server_url: str, tmp_path: Path,
) -> None:
    name = docker_run_name
    out = tmp_path / "run"
    events: list[Event] = []
    async with SimLLMServer(SimOptions(seed=11)) as sim:
        profile = LLMProfile(model="awm-sim", base_url=sim.url, label="simulated", timeout=60,
                             num_retries=3, retry_min_wait=0.05, retry_max_wait=0.5)
        run = RunConfig(name=name, llm="llm.sim", output_dir=out, limit=LIMIT, sandbox="docker",
                        induce_every=2, induction="llm", command_timeout=60)
        config = AppConfig(llm={"llm.sim": profile}, runs=[run],
                           eval=EvalConfig(mode="server", server_url=eval_server_url, timeout=120),
                           docker=DockerConfig(url=docker_url))
        async with Fleet(config, events.append, metrics_interval=0.2) as fleet:
            handle = await fleet.start(resolve_run(config, run, api_key=KEY))
            outcome = (await fleet.wait())[name]
        stats = sim.stats()

    # -- the outcome ----------------------------------------------------------------
    assert outcome.status == "finished", outcome
    assert (outcome.done, outcome.resolved, outcome.errors) == (LIMIT, LIMIT, 0), outcome
    selected = [t.instance_id for t in load_dataset("sample").select(limit=LIMIT)]
    assert handle.metrics.evaluations == LIMIT
    async with aiohttp.ClientSession() as session:  # ...and every one of them went to the server
        async with session.get(f"{eval_server_url}/stats") as response:
            served = await response.json()
    assert (served["served"], served["failed"], served["in_flight"]) == (LIMIT, 0, 0)

    # -- the state files agree with one another ----------------------------------------
    checkpoint = read_json(out / "checkpoint.json")
    preds = read_json(out / "preds.json")
    buffer = read_json(out / "buffer.json")
    memory = read_json(out / "memory.json")
    assert checkpoint["run_name"] == name
    assert list(checkpoint["finished"]) == selected
    assert list(preds) == selected
    experiences = {e["instance_id"]: e for e in buffer["experiences"]}
    assert list(experiences) == selected
    for iid in selected:
        result, exp, pred = checkpoint["finished"][iid], experiences[iid], preds[iid]
        assert result["resolved"] is exp["resolved"] is True
        assert result["evaluated"] is True
        assert pred["instance_id"] == iid and pred["model_name_or_path"] == "awm-sim"
        assert pred["model_patch"].startswith("diff --git") and pred["model_patch"] == exp["patch"]

    # -- memory: induced every two successes, with history -----------------------------
    workflows = {w["id"]: w for w in memory["workflows"]}
    assert workflows, "induction produced no workflows"
    inductions = [e for e in events if isinstance(e, InductionDone)]
    assert len(inductions) == LIMIT // 2 and all(e.ok and e.mode == "llm" for e in inductions)
    assert stats["by_key"][mask_key(KEY.get_secret_value())]["induction"] == LIMIT // 2
    assert memory["history"] and memory["version"] == len(memory["history"])
    for record in memory["history"]:
        assert set(record["sources"]) <= set(selected)
    assert {wid for r in memory["history"] for wid in r["added"]} == set(workflows)

    # -- what each task was shown, and how memory counted it ------------------------------
    started = {e.instance_id: e for e in events if isinstance(e, TaskStarted)}
    assert list(started) == selected
    uses = {wid: 0 for wid in workflows}
    wins = {wid: 0 for wid in workflows}
    for index, iid in enumerate(selected):
        trajectory = read_json(out / "trajectories" / f"{iid}.json")
        injected = trajectory["injected_workflows"]
        assert injected == experiences[iid]["injected_workflows"] == list(started[iid].injected_workflows)
        prompt = trajectory["messages"][1]["content"]
        assert trajectory["messages"][1]["role"] == "user"
        if index < 2:  # memory is empty until the first induction (after two successes)
            assert injected == [] and protocol.WORKFLOWS_OPEN not in prompt, iid
            continue
        assert injected, f"{iid}: no workflows injected after induction"
        block = protocol.between(prompt, protocol.WORKFLOWS_OPEN, protocol.WORKFLOWS_CLOSE)
        assert block, f"{iid}: prompt has no <workflows> block"
        for wid in injected:
            assert wid in workflows, f"{iid}: injected {wid} is not in memory.json"
            assert f"### {workflows[wid]['title']}\n({wid})" in block, f"{iid}: {wid} text not in prompt"
            uses[wid] += 1
            wins[wid] += experiences[iid]["resolved"]
    for wid, wf in workflows.items():
        assert (wf["uses"], wf["successes"]) == (uses[wid], wins[wid]), wid

    # -- events.jsonl: one JSON event per line, the same the sink saw -----------------------
    lines = (out / "events.jsonl").read_text(encoding="utf-8").splitlines()
    logged = [json.loads(line) for line in lines]
    assert all(e["kind"] in EVENT_TYPES and e["run"] == name for e in logged)
    from_run = [e for e in events   # not the fleet's own: its "starting", its keys' health (run "")
                if e.run == name and not (isinstance(e, StatusChanged) and e.phase == "starting")]
    assert logged == [json.loads(json.dumps(e.to_dict(), default=str)) for e in from_run]
    assert logged[0]["kind"] == "run_started" and logged[-1]["kind"] == "run_finished"
    assert [e["kind"] for e in logged].count("run_finished") == 1
    assert KEY.get_secret_value() not in (out / "events.jsonl").read_text()

    # -- the daemon: nothing left behind ------------------------------------------------
    left = await docker_client.containers.list(all=True, filters={"label": [f"{RUN_LABEL}={name}"]})
    assert left == []
