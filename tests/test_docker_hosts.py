"""Sandboxes spread over several real Docker daemons (scripts/docker-hosts): placement,
capacity, a daemon killed mid-run, TLS, and nothing of ours left on any host."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import aiohttp
import pytest
from pydantic import SecretStr

from awm_tui.config.models import AppConfig, DockerConfig, DockerHostConfig, EvalConfig, RunConfig
from awm_tui.config.plan import resolve_run
from awm_tui.engine.events import Event, HostStatus, SandboxPlaced, TaskFinished
from awm_tui.engine.fleet import Fleet, RunOutcome
from awm_tui.engine.outcomes import ErrorKind, Outcome
from awm_tui.engine.sandbox.base import SandboxError
from awm_tui.engine.sandbox.docker import LABEL
from awm_tui.engine.sandbox.factory import open_factory
from awm_tui.engine.sandbox.hosts import HostDown
from awm_tui.engine.sandbox.owner import OWNER_DIR
from awm_tui.servers.eval_server import EvalServer
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions
from tests.plugins.docker_hosts import DockerHosts, ExtraHost
from tests.test_engine_runs import profile_for

pytestmark = [pytest.mark.docker_hosts, pytest.mark.slow, pytest.mark.timeout(300)]


def runs_in(root: Path, n: int, limit: int, prefix: str) -> list[RunConfig]:
    return [RunConfig(name=f"{prefix}-{i}", llm="llm.sim", output_dir=root / f"{prefix}-{i}", limit=limit,
                      sandbox="docker", induce_every=2, induction="rule", command_timeout=60)
            for i in range(n)]


def key(i: int) -> SecretStr:
    return SecretStr(f"sim-hosts-key-{i:04d}-0123456789")


async def start_all(fleet: Fleet, config: AppConfig) -> None:
    for i, run in enumerate(config.runs):
        await fleet.start(resolve_run(config, run, api_key=key(i)))


async def ours(host: ExtraHost, dirs: list[Path]) -> list[str]:
    """Names of containers on the host that runs of these output directories made."""
    wanted = {str(d.resolve()) for d in dirs}
    async with aiodocker.Docker(url=host.socket) as docker:
        found = await docker.containers.list(all=True, filters={"label": [f"{LABEL}=1"]})
        return [c["Names"][0] for c in found if (c["Labels"] or {}).get(OWNER_DIR) in wanted]


async def assert_nothing_left(hosts: DockerHosts, dirs: list[Path]) -> None:
    for host in hosts.hosts:
        assert await ours(host, dirs) == [], f"containers left on {host.url}"


def assert_consistent(out: Path, done: int) -> list[str]:
    """checkpoint, preds and report say the same `done` tasks, each once; returns their ids."""
    finished = json.loads((out / "checkpoint.json").read_text())["finished"]
    ids = [entry["instance_id"] for entry in finished] if isinstance(finished, list) else list(finished)
    assert len(ids) == len(set(ids)) == done, ids
    preds = json.loads((out / "preds.json").read_text())
    assert sorted(preds) == sorted(ids)
    report = json.loads((out / "report.json").read_text())
    graded = report["resolved_ids"] + report["unresolved_ids"] + report["empty_patch_ids"]
    assert sorted(graded) == sorted(ids)
    return ids


@pytest.fixture
async def sim() -> AsyncIterator[SimLLMServer]:
    async with SimLLMServer(SimOptions(seed=11, latency=0.05)) as server:
        yield server


async def test_three_runs_over_three_hosts_each_task_once(docker_hosts: DockerHosts, sim: SimLLMServer,
                                                          tmp_path: Path) -> None:
    """3 runs x limit 4 over 3 daemons (one TLS): every host gets containers, each task runs
    once per run, the state files agree, and no container is left on any host."""
    runs = runs_in(tmp_path, 3, 4, "spread")
    config = AppConfig(llm={"llm.sim": profile_for(sim)}, runs=runs, eval=EvalConfig(mode="local"),
                       docker=DockerConfig(hosts=[h.config() for h in docker_hosts.hosts]))
    events: list[Event] = []
    async with Fleet(config, events.append, metrics_interval=0.2) as fleet:
        await start_all(fleet, config)
        outcomes = await fleet.wait()
    assert all(o.status == "finished" and o.done == 4 and o.errors == 0 for o in outcomes.values()), outcomes
    placed = [e for e in events if isinstance(e, SandboxPlaced)]
    assert {e.host for e in placed} == {h.url for h in docker_hosts.hosts}
    for run in runs:
        started = sorted(e.instance_id for e in placed if e.run == run.name)
        assert started == sorted(assert_consistent(run.output_dir, 4))  # each task placed once
    statuses = [e for e in events if isinstance(e, HostStatus)]
    assert {s.url for s in statuses if s.up} == {h.url for h in docker_hosts.hosts}
    assert all("client-key" not in json.dumps(s.to_dict()) for s in statuses)  # no TLS material
    await assert_nothing_left(docker_hosts, [r.output_dir for r in runs])


async def test_a_host_with_one_slot_never_holds_two(docker_hosts: DockerHosts, sim: SimLLMServer,
                                                    tmp_path: Path) -> None:
    """Two hosts with `max_containers = 1` and three runs: tasks wait for a slot, and a poll
    of each host's containers never sees two of ours at once."""
    small = [docker_hosts.hosts[0], docker_hosts.hosts[2]]
    runs = runs_in(tmp_path, 3, 2, "slot")
    config = AppConfig(llm={"llm.sim": profile_for(sim)}, runs=runs, eval=EvalConfig(mode="local"),
                       docker=DockerConfig(hosts=[h.config(max_containers=1) for h in small]))
    dirs = [r.output_dir for r in runs]
    most = {h.url: 0 for h in small}
    stop = asyncio.Event()

    async def poll() -> None:
        while not stop.is_set():
            for host in small:
                most[host.url] = max(most[host.url], len(await ours(host, dirs)))
            await asyncio.sleep(0.05)

    poller = asyncio.create_task(poll())
    try:
        async with Fleet(config, lambda e: None, metrics_interval=0.2) as fleet:
            await start_all(fleet, config)
            outcomes = await fleet.wait()
    finally:
        stop.set()
        await poller
    assert all(o.status == "finished" and o.done == 2 for o in outcomes.values()), outcomes
    assert most == {h.url: 1 for h in small}, most
    await assert_nothing_left(docker_hosts, dirs)


async def test_killed_daemon_errors_its_tasks_and_a_rerun_retries_them_elsewhere(
        docker_hosts: DockerHosts, tmp_path: Path) -> None:
    """SIGKILL one daemon mid-run: the tasks on it end as sandbox errors (not checkpointed),
    the host is reported down within seconds, the runs go on elsewhere and finish (no hang);
    a rerun retries the errored tasks on the hosts that answer; once the daemon is back, a
    start sweeps what the killed tasks left there."""
    victim = docker_hosts.hosts[2]
    runs = runs_in(tmp_path, 3, 3, "kill")
    dirs = [r.output_dir for r in runs]
    events: list[Event] = []
    async with SimLLMServer(SimOptions(seed=5, latency=0.4)) as sim:
        config = AppConfig(llm={"llm.sim": profile_for(sim)}, runs=runs, eval=EvalConfig(mode="local"),
                           docker=DockerConfig(hosts=[h.config() for h in docker_hosts.hosts]))
        try:
            async with Fleet(config, events.append, metrics_interval=0.2) as fleet:
                await start_all(fleet, config)
                for _ in range(1200):
                    if any(isinstance(e, SandboxPlaced) and e.host == victim.url for e in events) and \
                            await ours(victim, dirs):
                        break
                    await asyncio.sleep(0.05)
                else:
                    pytest.fail("no task was placed on the victim host")
                killed_at = time.time()
                await asyncio.to_thread(victim.kill)
                outcomes = await asyncio.wait_for(fleet.wait(), 240)

            down = [e for e in events if isinstance(e, HostStatus) and e.url == victim.url and not e.up]
            assert down and down[0].ts - killed_at < 8, "the host was not marked down within seconds"
            errors = [e for e in events if isinstance(e, TaskFinished) and e.outcome is Outcome.ERROR]
            assert errors and all(e.error_kind is ErrorKind.SANDBOX for e in errors), errors
            assert all(victim.url in e.error for e in errors), [e.error for e in errors]
            assert all(o.status == "finished" for o in outcomes.values()), [o.reason for o in outcomes.values()]
            assert sum(o.errors for o in outcomes.values()) == len(errors)
            for run in runs:  # what errored is not checkpointed
                assert_consistent(run.output_dir, outcomes[run.name].done)
                assert outcomes[run.name].done + outcomes[run.name].errors == 3

            # The rerun, the daemon still dead: the errored tasks go to the other hosts.
            rerun: list[Event] = []
            async with Fleet(config, rerun.append, metrics_interval=0.2) as fleet:
                await start_all(fleet, config)
                again: dict[str, RunOutcome] = await asyncio.wait_for(fleet.wait(), 240)
            assert all(o.status == "finished" and o.done == 3 and o.errors == 0 for o in again.values()), again
            hosts = {e.host for e in rerun if isinstance(e, SandboxPlaced)}
            assert hosts and victim.url not in hosts
            for run in runs:
                assert_consistent(run.output_dir, 3)
        finally:
            await asyncio.to_thread(victim.restart)
        # Back up: the killed tasks' containers are still there until a start sweeps them.
        async with Fleet(config, lambda e: None, metrics_interval=0.2) as fleet:
            await start_all(fleet, config)
            await asyncio.wait_for(fleet.wait(), 120)
    await assert_nothing_left(docker_hosts, dirs)


async def test_tls_host_with_a_wrong_ca_is_refused_with_one_line(docker_hosts: DockerHosts,
                                                                 tmp_path: Path) -> None:
    """The engine refuses the pool, and `--check`/`--batch` refuse the config before anything
    starts: one line naming the field, exit code 2, no traceback."""
    tls = docker_hosts.tls_host
    wrong = tls.config(ca=docker_hosts.wrong_ca)
    with pytest.raises(SandboxError) as raised:
        await open_factory("docker", DockerConfig(hosts=[docker_hosts.hosts[0].config(), wrong]))
    message = str(raised.value)
    assert "\n" not in message and "does not verify" in message and "docker.hosts[1]" in message
    right = await open_factory("docker", DockerConfig(hosts=[tls.config()]))  # the right CA: accepted
    await right.aclose()

    certs = docker_hosts.certs
    config = tmp_path / "config.toml"
    config.write_text(
        '[llm]\nmodel = "m"\napi_key = "sk-test-0000000000000000"\n'
        f'[[docker.hosts]]\nurl = "{tls.url}"\ntls_verify = true\nca = "{docker_hosts.wrong_ca}"\n'
        f'cert = "{certs / "client.pem"}"\nkey = "{certs / "client-key.pem"}"\n')
    out = ["--output-dir", str(tmp_path / "out")]
    for mode in (["--check", *out], ["--batch", *out], []):  # [] is the TUI: refused before it draws
        done = subprocess.run([sys.executable, "-m", "awm_tui", *mode, "--config", str(config)],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 2, (mode, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "docker.hosts[0].ca" in lines[0] and "does not verify" in lines[0], lines
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_docker_host_flag_takes_plain_urls_and_refuses_bad_ones(tmp_path: Path) -> None:
    """`--docker-host URL` (repeatable) with `--check`: listed; a bad URL is one line, exit 2."""
    base = [sys.executable, "-m", "awm_tui", "--check", "--output-dir", str(tmp_path / "o")]
    ok = subprocess.run([*base, "--docker-host", "tcp://127.0.0.1:1", "--docker-host", "unix:///x.sock"],
                        capture_output=True, text=True, timeout=60)
    assert "host tcp://127.0.0.1:1" in ok.stdout and "host unix:///x.sock" in ok.stdout, ok.stdout + ok.stderr
    bad = subprocess.run([*base, "--docker-host", "ftp://nowhere"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--docker-host" in bad.stderr


def test_host_config_is_checked() -> None:
    with pytest.raises(ValueError, match="tls_verify needs ca"):
        DockerHostConfig(url="tcp://127.0.0.1:2376", tls_verify=True)
    with pytest.raises(ValueError, match="cert and key go together"):
        DockerHostConfig(url="tcp://127.0.0.1:2376", cert=Path("c.pem"))


async def test_stopped_daemon_is_marked_down_its_exec_ends_and_it_comes_back(
        docker_hosts: DockerHosts, tmp_path: Path) -> None:
    """SIGSTOP a daemon under a running exec: within seconds the host is down and the exec
    ends with HostDown (no hang on a daemon that never answers), new containers go to the
    other host; after SIGCONT it is up again and the container left on it is removed."""
    victim, other = docker_hosts.hosts[0], docker_hosts.hosts[2]
    factory = await open_factory("docker", DockerConfig(hosts=[victim.config(), other.config()],
                                                        health_interval=0.5, health_timeout=1.0))
    assert factory.pool is not None
    events: list[Event] = []
    factory.pool.sink = events.append
    try:
        sandbox = await factory.create(run_name="sigstop", instance_id="t-1", output_dir=tmp_path)
        assert sandbox.host == victim.url
        await sandbox.start()
        running = asyncio.create_task(sandbox.exec("sleep 60", timeout_s=90))
        await asyncio.sleep(0.5)
        os.kill(victim.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            with pytest.raises(HostDown, match="stopped answering"):
                await asyncio.wait_for(running, 20)
            assert time.monotonic() - stopped_at < 8
            assert any(isinstance(e, HostStatus) and e.url == victim.url and not e.up for e in events)
            elsewhere = await factory.create(run_name="sigstop", instance_id="t-2", output_dir=tmp_path)
            assert elsewhere.host == other.url
            await elsewhere.close()
            await asyncio.wait_for(sandbox.close(), 5)  # its host is down: removed once it is back
        finally:
            os.kill(victim.pid, signal.SIGCONT)
        for _ in range(200):
            if factory.pool.hosts[0].up and not await ours(victim, [tmp_path]):
                break
            await asyncio.sleep(0.1)
        assert factory.pool.hosts[0].up
        assert await ours(victim, [tmp_path]) == []
    finally:
        await factory.aclose()
    await assert_nothing_left(docker_hosts, [tmp_path])


async def test_evaluation_server_reaches_the_host_the_request_names(docker_hosts: DockerHosts,
                                                                    sim: SimLLMServer, tmp_path: Path) -> None:
    """Server evaluation with containers on two daemons (one TLS): the body's `docker_host`
    takes the server to the right one; a host it was not given is a 400, one line."""
    hosts = [docker_hosts.hosts[0].config(), docker_hosts.tls_host.config()]
    runs = runs_in(tmp_path, 2, 2, "evalhosts")
    async with EvalServer(docker_hosts=hosts) as server:
        config = AppConfig(llm={"llm.sim": profile_for(sim)}, runs=runs,
                           eval=EvalConfig(mode="server", server_url=server.url), docker=DockerConfig(hosts=hosts))
        events: list[Event] = []
        async with Fleet(config, events.append, metrics_interval=0.2) as fleet:
            await start_all(fleet, config)
            outcomes = await fleet.wait()
        assert all(o.status == "finished" and o.done == 2 and o.errors == 0 for o in outcomes.values()), outcomes
        assert all(grader.startswith("server") for o in outcomes.values() for _, grader in o.graders)
        assert {e.host for e in events if isinstance(e, SandboxPlaced)} == {h.url for h in hosts}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{server.url}/evaluate", json={
                    "instance_id": "minicsv__minicsv-3", "container_id": "x", "result": "diff",
                    "docker_host": "tcp://127.0.0.1:1"}) as response:
                assert response.status == 400
                assert "is not a daemon this server knows" in (await response.json())["error"]
    await assert_nothing_left(docker_hosts, [r.output_dir for r in runs])


async def test_placement_prefers_the_host_with_the_image_then_the_least_loaded(
        docker_hosts: DockerHosts, tmp_path: Path) -> None:
    """A task whose image only one host has goes there even when it is the busier one; a task
    of the default image (on both) goes to the less loaded host."""
    holder, other = docker_hosts.hosts[0], docker_hosts.hosts[2]
    only_here = "awm-hosts-test-only-here:1"
    async with aiodocker.Docker(url=holder.socket) as docker:
        await docker.images.tag("awm-sandbox:bookworm", "awm-hosts-test-only-here", tag="1")
    factory = await open_factory("docker", DockerConfig(hosts=[holder.config(), other.config()]))
    assert factory.pool is not None
    try:
        for _ in range(100):  # the pool reads each host's images at its first ping
            if only_here in factory.pool.hosts[0].images:
                break
            await asyncio.sleep(0.05)
        first = await factory.create(run_name="place", instance_id="t-1", output_dir=tmp_path)
        assert first.host == holder.url  # both idle: the first listed
        second = await factory.create(run_name="place", instance_id="t-2", image=only_here, output_dir=tmp_path)
        assert second.host == holder.url  # busier, but the only one with the image
        third = await factory.create(run_name="place", instance_id="t-3", output_dir=tmp_path)
        assert third.host == other.url  # the least loaded
        for sandbox in (first, second, third):
            await sandbox.close()
        assert [h.in_use for h in factory.pool.hosts] == [0, 0]
    finally:
        await factory.aclose()
        async with aiodocker.Docker(url=holder.socket) as docker:
            await docker.images.delete(only_here)
