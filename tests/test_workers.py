"""`workers = K`: up to K tasks of one run in flight, each with the memory version of its start.

Real peers: the simulated model on loopback, the real Docker daemon, local evaluation.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import aiodocker
import pytest
from pydantic import SecretStr

from awm_tui.config.models import AppConfig, DockerConfig, EvalConfig, LLMProfile, RunConfig
from awm_tui.config.plan import resolve_run
from awm_tui.engine.events import Event, TaskStarted, read_event_log
from awm_tui.engine.fleet import Fleet
from awm_tui.engine.sandbox.docker import RUN_LABEL
from awm_tui.engine.state import OutputLayout, load_state
from awm_tui.engine.tasks import load_dataset
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

KEY = SecretStr("sim-workers-key-0000-1111-2222")
SAMPLE = [t.instance_id for t in load_dataset("sample").select(limit=None, include_medium=True)]


def profile(sim: SimLLMServer) -> LLMProfile:
    return LLMProfile(model="awm-sim", base_url=sim.url, label="simulated", timeout=60,
                      num_retries=3, retry_min_wait=0.05, retry_max_wait=0.3)


def config_for(sim: SimLLMServer, run: RunConfig, docker_url: str | None) -> AppConfig:
    return AppConfig(llm={"llm.sim": profile(sim)}, runs=[run], eval=EvalConfig(mode="local"),
                     docker=DockerConfig(url=docker_url))


def max_in_flight(events: list[dict]) -> int:
    """The most tasks started and not yet finished at any point of the event stream."""
    in_flight: set[str] = set()
    most = 0
    for event in events:
        if event["kind"] == "task_started":
            in_flight.add(event["instance_id"])
            most = max(most, len(in_flight))
        elif event["kind"] == "task_finished":
            in_flight.discard(event["instance_id"])
    return most


def assert_versions_and_uses(out: Path, events: list[dict], killed_at: int | None = None) -> None:
    """Each task once; versions recorded everywhere and monotone in start order; inductions
    never overlap; every workflow's use counts equal a recount from the buffer. `killed_at`:
    where the launch after a SIGKILL begins in `events` (the killed one may end mid-induction)."""
    state = load_state(OutputLayout.of(out))
    starts = [e for e in events if e["kind"] == "task_started"]
    finished = Counter(e["instance_id"] for e in events if e["kind"] == "task_finished")
    assert all(n == 1 for n in finished.values()), finished
    versions = [e["memory_version"] for e in starts]
    assert versions == sorted(versions), f"memory versions not monotone in start order: {versions}"
    assert versions[-1] > 0, "no task started after an induction: nothing shows versions move"
    started_with = {e["instance_id"]: e["memory_version"] for e in starts}
    for iid, result in state.checkpoint.finished.items():
        assert result.memory_version == started_with[iid]
        experience = state.buffer.get(iid)
        assert experience is not None and experience.memory_version == started_with[iid]
        trajectory = json.loads((out / "trajectories" / f"{iid}.json").read_text())
        assert trajectory["memory_version"] == started_with[iid]
    for e in events:
        if e["kind"] == "task_finished":
            assert e["memory_version"] == started_with[e["instance_id"]]
    # Inductions one at a time: started/done strictly alternate, in time too.
    launches = [events] if killed_at is None else [events[:killed_at], events[killed_at:]]
    for number, launch in enumerate(launches, 1):
        marks = [e for e in launch if e["kind"] in ("induction_started", "induction_done")]
        if number < len(launches) and marks and marks[-1]["kind"] == "induction_started":
            marks.pop()  # killed during it: the next launch does it again
        assert [m["kind"] for m in marks] == ["induction_started", "induction_done"] * (len(marks) // 2)
        assert all(a["ts"] <= b["ts"] for a, b in zip(marks, marks[1:]))
    assert any(e["kind"] == "induction_done" for e in events), "no induction ran"
    # Use counts exact: injected into N evaluated tasks (M of them resolved) = uses N, successes M.
    for wf in state.memory.workflows:
        used = [x for x in state.buffer.experiences if wf.id in x.injected_workflows]
        assert (wf.uses, wf.successes) == (len(used), sum(x.resolved for x in used)), wf.id
    assert any(wf.uses > 1 for wf in state.memory.workflows), "no workflow was used twice"


@pytest.mark.docker
async def test_four_workers_on_the_sample_set(docker_url: str, docker_client: aiodocker.Docker,
                                              docker_run_name: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    seen: list[Event] = []
    async with SimLLMServer(SimOptions(seed=2, latency=0.2)) as sim:
        run = RunConfig(name=docker_run_name, llm="llm.sim", output_dir=out, limit=len(SAMPLE),
                        include_medium=True, sandbox="docker", workers=4, induce_every=2,
                        induction="rule", command_timeout=60)
        config = config_for(sim, run, docker_url)
        async with Fleet(config, seen.append, metrics_interval=0.5) as fleet:
            await fleet.start(resolve_run(config, run, api_key=KEY))
            outcome = (await fleet.wait())[run.name]
    assert outcome.status == "finished", outcome.reason
    events = [e.to_dict() for e in read_event_log(out / "events.jsonl")]
    assert sorted(state_ids := list(load_state(OutputLayout.of(out)).checkpoint.finished)) == sorted(SAMPLE)
    assert len(state_ids) == len(SAMPLE)
    assert [e["instance_id"] for e in events if e["kind"] == "task_started"] == SAMPLE  # dataset order
    assert 2 <= max_in_flight(events) <= 4
    assert_versions_and_uses(out, events)
    assert [e for e in seen if isinstance(e, TaskStarted)][0].memory_version == 0
    left = await docker_client.containers.list(all=True, filters={"label": [f"{RUN_LABEL}={run.name}"]})
    assert left == []


@pytest.mark.docker
async def test_stopping_cancels_every_task_in_flight(docker_url: str, docker_client: aiodocker.Docker,
                                                     docker_run_name: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    label = {"label": [f"{RUN_LABEL}={docker_run_name}"]}
    async with SimLLMServer(SimOptions(seed=2, latency=0.5)) as sim:
        run = RunConfig(name=docker_run_name, llm="llm.sim", output_dir=out, limit=8, sandbox="docker",
                        workers=3, induction="rule", command_timeout=60)
        config = config_for(sim, run, docker_url)
        async with Fleet(config, lambda event: None, metrics_interval=0.5) as fleet:
            await fleet.start(resolve_run(config, run, api_key=KEY))
            awm = fleet.handles[run.name].awm
            for _ in range(600):
                if len(awm.in_flight) == 3 and len(await docker_client.containers.list(all=True, filters=label)) == 3:
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail(f"never 3 tasks with containers in flight: {awm.status()}")
            status = fleet.status()[0]
            assert [t.index for t in status.in_flight] == [1, 2, 3] and status.workers == 3
            outcome = await fleet.stop(run.name)
    assert outcome is not None and outcome.status == "stopped"
    assert await docker_client.containers.list(all=True, filters=label) == []
    assert outcome.done < 8
