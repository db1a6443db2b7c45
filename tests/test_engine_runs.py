"""Several runs on one event loop, each with its own key, model answers and output dir.

Real peers only: the simulated model on loopback (whose `/stats` count requests
per masked key), local sandboxes, local evaluation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from pathlib import Path

import aiodocker
import aiohttp
import pytest
from pydantic import SecretStr

from awm_tui.config.keys import mask_key
from awm_tui.config.models import AppConfig, DockerConfig, EvalConfig, HttpConfig, LLMProfile, RunConfig
from awm_tui.config.plan import resolve_run
from awm_tui.engine.events import (
    Event, LLMCall, MetricsSnapshot, RunFailed, RunFinished, TaskFinished, TaskStarted,
)
from awm_tui.engine.fleet import Fleet
from awm_tui.engine.outcomes import ErrorKind, Outcome
from awm_tui.engine.sandbox.docker import RUN_LABEL
from awm_tui.engine.state import OutputDir
from awm_tui.engine.tasks import load_dataset
from awm_tui.servers.eval_server import EvalServer
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def subset(root: Path, name: str, ids: list[str]) -> Path:
    """A dataset file holding only these sample tasks (snapshots point at the bundled repos)."""
    sample = load_dataset("sample")
    lines = []
    for iid in ids:
        task = sample.get(iid)
        assert task is not None and task.size == "small"
        record = task.model_dump(mode="json")
        record["repo_snapshot"] = str(sample.snapshot_path(task))
        lines.append(json.dumps(record))
    path = root / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def profile_for(sim: SimLLMServer, **overrides: object) -> LLMProfile:
    fields = dict(model="awm-sim", base_url=sim.url, label="simulated", timeout=30,
                  num_retries=3, retry_min_wait=0.05, retry_max_wait=0.2)
    fields.update(overrides)
    return LLMProfile(**fields)  # type: ignore[arg-type]


def assert_released(out: Path) -> None:
    """The run let go of its output directory: another run may take it now."""
    directory = OutputDir(out)
    directory.lock("next")
    directory.unlock()


def events_file(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


async def test_three_runs_three_keys_one_loop(tmp_path: Path) -> None:
    plan = {  # run name -> (key, its own tasks)
        "alpha": (SecretStr("sim-runs-key-alpha-00001111"), ["minicsv__minicsv-3", "minicsv__minicsv-7"]),
        "beta": (SecretStr("sim-runs-key-beta-000002222"), ["textkit__textkit-4", "textkit__textkit-9"]),
        "gamma": (SecretStr("sim-runs-key-gamma-00003333"), ["rangeset__rangeset-2", "rangeset__rangeset-5"]),
    }
    events: list[Event] = []
    async with SimLLMServer(SimOptions(seed=5)) as sim:
        runs = [RunConfig(name=name, llm="llm.sim", output_dir=tmp_path / f"out-{name}",
                          dataset=str(subset(tmp_path, name, ids)), limit=len(ids), sandbox="local",
                          induce_every=2, induction="llm", command_timeout=60)
                for name, (_, ids) in plan.items()]
        config = AppConfig(llm={"llm.sim": profile_for(sim)}, runs=runs, eval=EvalConfig(mode="local"))
        async with Fleet(config, events.append, metrics_interval=0.2) as fleet:
            for run in runs:
                await fleet.start(resolve_run(config, run, api_key=plan[run.name][0]))
            assert sorted(fleet.active) == sorted(plan)  # all three at once on this loop
            outcomes = await fleet.wait()
        # the same figures over HTTP, as any client of the simulator sees them
        async with aiohttp.ClientSession() as session, session.get(f"{sim.base_url}/stats") as response:
            stats = await response.json()

    for name, (_, ids) in plan.items():
        assert outcomes[name].status == "finished", outcomes[name]
        assert (outcomes[name].done, outcomes[name].resolved) == (len(ids), len(ids))

    # each key was used by exactly its own run's tasks, and by nothing else
    assert stats["tasks_by_key"] == {mask_key(key.get_secret_value()): ids for key, ids in plan.values()}
    for key, _ in plan.values():
        per_key = stats["by_key"][mask_key(key.get_secret_value())]
        assert per_key["induction"] == 1 and per_key["status"] == {"200": per_key["requests"]}
    assert stats["requests"] == sum(v["requests"] for v in stats["by_key"].values())

    # each run's LLM calls were charged to that run only
    for name in plan:
        calls = [e for e in events if isinstance(e, LLMCall) and e.run == name]
        key = mask_key(plan[name][0].get_secret_value())
        assert len(calls) == stats["by_key"][key]["requests"]

    # output dirs are disjoint: each holds its own run and nothing of the others'
    dirs = {name: Path(outcomes[name].output_dir) for name in plan}
    assert len(set(dirs.values())) == 3
    for name, (_, ids) in plan.items():
        out = dirs[name]
        checkpoint = json.loads((out / "checkpoint.json").read_text())
        assert checkpoint["run_name"] == name and list(checkpoint["finished"]) == ids
        assert list(json.loads((out / "preds.json").read_text())) == ids
        buffer = json.loads((out / "buffer.json").read_text())
        assert [e["instance_id"] for e in buffer["experiences"]] == ids
        memory = json.loads((out / "memory.json").read_text())
        assert {s for w in memory["workflows"] for s in w["source_instances"]} <= set(ids)
        assert sorted(p.stem for p in (out / "trajectories").iterdir()) == sorted(ids)
        logged = events_file(out)
        assert {e["run"] for e in logged} == {name}
        assert {e["instance_id"] for e in logged if e["kind"] == "task_finished"} == set(ids)
        assert_released(out)


async def test_invalid_key_fails_only_its_own_run(tmp_path: Path) -> None:
    bad = SecretStr("sk-sim-revoked-key-0123456789abcd")
    good = SecretStr("sk-sim-good-key-9876543210fedc")
    events: list[Event] = []
    async with SimLLMServer(SimOptions(seed=2, invalid_keys=frozenset({bad.get_secret_value()}))) as sim:
        runs = [RunConfig(name=name, llm="llm.sim", output_dir=tmp_path / name, limit=2, sandbox="local",
                          induce_every=2, induction="rule", command_timeout=60)
                for name in ("refused", "fine")]
        config = AppConfig(llm={"llm.sim": profile_for(sim)}, runs=runs, eval=EvalConfig(mode="local"))
        async with Fleet(config, events.append, metrics_interval=0.2) as fleet:
            await fleet.start(resolve_run(config, runs[0], api_key=bad))
            await fleet.start(resolve_run(config, runs[1], api_key=good))
            outcomes = await fleet.wait()
        stats = sim.stats()

    refused, fine = outcomes["refused"], outcomes["fine"]
    assert refused.status == "failed" and refused.done == 0
    assert "invalid API key" in refused.reason
    assert mask_key(bad) in refused.reason and bad.get_secret_value() not in refused.reason
    assert fine.status == "finished" and (fine.done, fine.resolved) == (2, 2)

    failed = [e for e in events if isinstance(e, RunFailed)]
    assert [(e.run, e.reason) for e in failed] == [("refused", refused.reason)]
    assert [e.run for e in events if isinstance(e, RunFinished)] == ["fine"]
    assert [e["kind"] for e in events_file(tmp_path / "refused")].count("run_failed") == 1
    # a refused key is not retried: one request, one 401
    assert stats["by_key"][mask_key(bad.get_secret_value())]["status"] == {"401": 1}
    # the whole key appears nowhere: not in an event, not in any file the runs wrote
    assert all(bad.get_secret_value() not in repr(e) for e in events)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert bad.get_secret_value() not in path.read_text(errors="replace"), path
    assert_released(tmp_path / "refused")  # the failed run let go of its directory


async def test_rate_limits_with_retry_after_are_waited_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="awm_tui.engine.llm.client")
    key = SecretStr("sim-busy-key-00000000-4290")
    events: list[Event] = []
    options = SimOptions(seed=9, rate_429=0.5, retry_after=0.05)
    async with SimLLMServer(options) as sim:
        # A backoff of 1-2 s: waits of 0.05 s show the server's Retry-After was used instead.
        profile = profile_for(sim, num_retries=10, retry_min_wait=1.0, retry_max_wait=2.0)
        run = RunConfig(name="busy", llm="llm.sim", output_dir=tmp_path / "busy", limit=2, sandbox="local",
                        skip_eval=True, command_timeout=60)
        config = AppConfig(llm={"llm.sim": profile}, runs=[run])
        async with Fleet(config, events.append, metrics_interval=0.2) as fleet:
            handle = await fleet.start(resolve_run(config, run, api_key=key))
            outcome = (await fleet.wait())["busy"]
        per_key = sim.stats()["by_key"][mask_key(key.get_secret_value())]

    assert outcome.status == "finished" and outcome.done == 2 and outcome.errors == 0, outcome
    limited = per_key["status"].get("429", 0)
    assert limited >= 3, f"the simulator rate-limited only {limited} requests: {per_key}"
    metrics = handle.metrics.snapshot()
    assert metrics.rate_limited == limited and metrics.retries == limited
    assert metrics.requests == per_key["requests"]
    assert sum(e.retries for e in events if isinstance(e, LLMCall)) == limited
    final = [e for e in events if isinstance(e, MetricsSnapshot)][-1]
    assert (final.metrics.retries, final.metrics.rate_limited) == (limited, limited)
    # The waits the client chose (its log), not wall time, which a loaded machine stretches.
    waits = [float(m.group(1)) for r in caplog.records if (m := re.search(r"LLM retry \d+ in ([\d.]+)s", r.getMessage()))]
    assert len(waits) == limited and max(waits) < 0.5, f"waits {waits}: Retry-After was not honoured"


async def test_a_429_storm_costs_no_task(tmp_path: Path) -> None:
    """Issue 12.7: with half the calls rate-limited and one retry allowed, calls that met
    two 429s in a row used to fail their task and discard its agent steps."""
    key = SecretStr("sim-storm-key-0000000-4291")
    options = SimOptions(seed=3, rate_429=0.5, retry_after=0.01)
    async with SimLLMServer(options) as sim:
        profile = profile_for(sim, num_retries=1, retry_min_wait=0.01, retry_max_wait=0.02)
        run = RunConfig(name="storm", llm="llm.sim", output_dir=tmp_path / "storm", limit=4, sandbox="local",
                        skip_eval=True, command_timeout=60)
        config = AppConfig(llm={"llm.sim": profile}, runs=[run])
        async with Fleet(config, lambda e: None) as fleet:
            await fleet.start(resolve_run(config, run, api_key=key))
            outcome = (await fleet.wait())["storm"]
        per_key = sim.stats()["by_key"][mask_key(key.get_secret_value())]
    assert per_key["status"].get("429", 0) >= 10, per_key
    assert (outcome.status, outcome.done, outcome.errors) == ("finished", 4, 0), outcome


async def test_a_failed_evaluation_is_a_task_error_not_the_end_of_the_run(tmp_path: Path) -> None:
    """The evaluation server does not know one task (an older dataset file): that task
    errors and is left for a rerun; the run goes on with the next one."""
    ids = ["minicsv__minicsv-7", "minicsv__minicsv-3"]
    unknown = ids[0]
    events: list[Event] = []
    served = subset(tmp_path, "served", [i for i in ids if i != unknown])
    async with SimLLMServer(SimOptions(seed=4)) as sim, \
            EvalServer([load_dataset(served)], simulate=0.01) as server:
        run = RunConfig(name="gap", llm="llm.sim", output_dir=tmp_path / "gap", limit=2, sandbox="local",
                        dataset=str(subset(tmp_path, "gap", ids)), induce_every=5, command_timeout=60)
        config = AppConfig(llm={"llm.sim": profile_for(sim)}, runs=[run],
                           eval=EvalConfig(mode="server", server_url=server.url, timeout=30),
                           http=HttpConfig(retry_min_wait=0.01, retry_max_wait=0.05))
        async with Fleet(config, events.append, metrics_interval=0.2) as fleet:
            await fleet.start(resolve_run(config, run, api_key=SecretStr("sim-gap-key-00000000-0404")))
            outcome = (await fleet.wait())["gap"]

    assert outcome.status == "finished", outcome
    assert (outcome.done, outcome.resolved, outcome.errors) == (1, 1, 1)
    finished = {e.instance_id: e for e in events if isinstance(e, TaskFinished)}
    assert list(finished) == ids
    assert finished[unknown].outcome is Outcome.ERROR and finished[unknown].error_kind is ErrorKind.EVALUATION
    assert "404" in finished[unknown].error and finished[ids[1]].outcome is Outcome.RESOLVED
    checkpoint = json.loads((tmp_path / "gap" / "checkpoint.json").read_text())
    assert list(checkpoint["finished"]) == ids[1:]  # the unknown one is left for a rerun
    report = json.loads((tmp_path / "gap" / "report.json").read_text())
    assert (report["error_ids"], report["resolved_ids"]) == ([unknown], ids[1:])
    assert "404" in report["failure_reasons"][unknown]


@pytest.mark.docker
async def test_stop_mid_task_removes_its_container_and_resumes(
    docker_url: str, docker_client: aiodocker.Docker, docker_run_name: str, tmp_path: Path,
) -> None:
    """`fleet.stop(name)` while a task runs in Docker: the run ends `stopped`, its
    container is gone, the directory is free, and starting it again finishes the rest."""
    name, out = docker_run_name, tmp_path / "out"
    label = {"label": [f"{RUN_LABEL}={name}"]}
    key = SecretStr("sim-stop-key-00000000-5709")
    events: list[Event] = []
    async with SimLLMServer(SimOptions(seed=6, latency=0.3)) as sim:
        run = RunConfig(name=name, llm="llm.sim", output_dir=out, limit=2, sandbox="docker",
                        induce_every=2, induction="rule", command_timeout=60)
        config = AppConfig(llm={"llm.sim": profile_for(sim)}, runs=[run],
                           eval=EvalConfig(mode="local"), docker=DockerConfig(url=docker_url))
        async with Fleet(config, events.append, metrics_interval=0.2) as fleet:
            await fleet.start(resolve_run(config, run, api_key=key))
            deadline = time.monotonic() + 240  # a loaded 2-core machine takes a minute a task
            while time.monotonic() < deadline:  # the second task has its container
                second = [e for e in events if isinstance(e, TaskStarted) and e.index == 2]
                if second and await docker_client.containers.list(all=True, filters=label):
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the second task never started")
            stopped = await fleet.stop(name)
            assert stopped is not None and stopped.status == "stopped" and stopped.done == 1, stopped
            assert fleet.active == []
            assert await docker_client.containers.list(all=True, filters=label) == []
            assert_released(out)
            assert [e.stopped for e in events if isinstance(e, RunFinished)] == [True]

            await fleet.start(resolve_run(config, run, api_key=key))  # the same run again: resumes from its checkpoint
            outcome = (await fleet.wait(name))[name]
    assert outcome.status == "finished" and (outcome.done, outcome.resolved) == (2, 2), outcome
    checkpoint = json.loads((out / "checkpoint.json").read_text())
    assert len(checkpoint["finished"]) == 2
    resumed = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["resumed"] for e in resumed if e["kind"] == "run_started"] == [0, 1]
    assert await docker_client.containers.list(all=True, filters=label) == []


async def test_a_resumed_run_induces_from_successes_before_the_stop(tmp_path: Path) -> None:
    """induce_every=2, one success, stop; the resumed run's first success triggers the
    induction: the count comes from buffer.json and memory.json, not from zero."""
    out = tmp_path / "run"
    async with SimLLMServer(SimOptions(seed=3)) as sim:
        config = AppConfig(llm={"llm": profile_for(sim)})

        async def run_once(limit: int) -> None:
            run = RunConfig(name="resume", output_dir=out, limit=limit, sandbox="local",
                            induce_every=2, induction="rule")
            async with Fleet(config, lambda event: None) as fleet:
                await fleet.start(resolve_run(config, run, api_key=SecretStr("sim-key-resume")))
                outcome = (await fleet.wait())["resume"]
            assert outcome.status == "finished", outcome.reason

        await run_once(1)
        assert json.loads((out / "memory.json").read_text())["workflows"] == []
        await run_once(2)
    memory = json.loads((out / "memory.json").read_text())
    checkpoint = json.loads((out / "checkpoint.json").read_text())
    assert len(checkpoint["finished"]) == 2
    assert memory["workflows"], "the second success should have triggered the first induction"
    assert memory["history"] and set(memory["history"][-1]["sources"]) == set(checkpoint["finished"])
