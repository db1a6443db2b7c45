"""DockerSandbox against a real daemon and the awm-sandbox:bookworm image."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import subprocess
from pathlib import Path

import aiodocker
import pytest
from aiodocker.exceptions import DockerError

from awm_tui.config.models import DockerConfig
from awm_tui.engine.sandbox.base import SandboxError
from awm_tui.engine.sandbox.docker import (
    DEFAULT_IMAGE,
    DockerSandbox,
    connect_docker,
    default_docker_url,
    sweep,
    sweep_leftovers,
)
from awm_tui.engine.sandbox.factory import open_factory
from awm_tui.engine.sandbox.owner import Owner, process_started

pytestmark = pytest.mark.docker


async def _containers(docker: aiodocker.Docker, run_name: str) -> list[str]:
    found = await docker.containers.list(
        all=True, filters={"label": [f"awm-tui.run={run_name}"]}
    )
    return [c.id for c in found]


async def _exists(docker: aiodocker.Docker, container_id: str) -> bool:
    try:
        await docker.containers.get(container_id)
    except DockerError as exc:
        assert exc.status == 404
        return False
    return True


@pytest.fixture
async def sandbox(docker_client, docker_run_name):
    async with DockerSandbox(
        docker_client, run_name=docker_run_name, instance_id="demo__demo-1", limits=DockerConfig(memory="512m")
    ) as sb:
        yield sb


async def test_python_runs_in_the_container(sandbox: DockerSandbox) -> None:
    result = await sandbox.exec("python3 --version")
    assert result.exit_code == 0
    assert result.output.startswith("Python 3.")
    assert not result.timed_out and not result.truncated


async def test_container_is_labelled_limited_and_offline(
    sandbox: DockerSandbox, docker_client, docker_run_name
) -> None:
    info = await docker_client.containers.get(sandbox.id)
    labels = info["Config"]["Labels"]
    assert labels["awm-tui"] == "1"
    assert labels["awm-tui.run"] == docker_run_name
    assert labels["awm-tui.instance"] == "demo__demo-1"
    assert info["HostConfig"]["Memory"] == 512 * 1024**2
    assert info["Name"].lstrip("/") == sandbox.name
    # Only loopback: the agent's commands cannot reach any network.
    interfaces = await sandbox.exec("ls /sys/class/net")
    assert interfaces.output.split() == ["lo"]
    assert (await sandbox.exec("pwd")).output.strip() == "/testbed"


async def test_exit_code_and_workdir(sandbox: DockerSandbox) -> None:
    result = await sandbox.exec(
        "pwd; for i in 1 2 3; do echo out$i; echo err$i >&2; done; exit 3", workdir="/tmp"
    )
    assert result.exit_code == 3
    # The agent reads stdout and stderr as a terminal would show them: in order.
    assert result.output.split() == ["/tmp", "out1", "err1", "out2", "err2", "out3", "err3"]
    assert not result.timed_out


async def test_put_directory_then_read_back(sandbox: DockerSandbox, tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("VALUE = 'héllo'\n", encoding="utf-8")
    (tmp_path / "README").write_text("readme\n")
    await sandbox.put_directory(tmp_path)
    result = await sandbox.exec("cat README && python3 -c 'import pkg.mod; print(pkg.mod.VALUE)'")
    assert result.exit_code == 0, result.output
    assert result.output == "readme\nhéllo\n"
    # A destination that does not exist yet is created.
    await sandbox.put_directory(tmp_path / "pkg", "/opt/new/place")
    assert (await sandbox.exec("ls /opt/new/place")).output.strip() == "mod.py"


async def test_write_file_larger_than_an_argument(sandbox: DockerSandbox) -> None:
    patch = "".join(f"+line {i} with some text\n" for i in range(20_000))  # ~500 KB
    await sandbox.write_file("/tmp/patches/fix.diff", patch)
    result = await sandbox.exec("sha256sum /tmp/patches/fix.diff")
    assert result.output.split()[0] == hashlib.sha256(patch.encode()).hexdigest()
    await sandbox.write_file("relative.txt", "in testbed\n")
    assert (await sandbox.exec("cat /testbed/relative.txt")).output == "in testbed\n"


async def test_output_is_truncated_to_max_output(sandbox: DockerSandbox) -> None:
    result = await sandbox.exec(
        "seq 1 200000; echo THE-END", max_output=4000
    )
    assert result.exit_code == 0
    assert result.truncated
    assert len(result.output.encode()) < 4000 + 100
    assert result.output.startswith("1\n2\n3\n")
    assert result.output.rstrip().endswith("THE-END")  # the tail is kept too
    assert "bytes of output dropped" in result.output


async def test_timeout_kills_the_command_inside_the_container(sandbox: DockerSandbox) -> None:
    result = await sandbox.exec("sleep 3001 & sleep 3002", timeout_s=1)
    assert result.timed_out
    assert result.exit_code == 124
    assert 1 <= result.duration_s < 5
    ps = await sandbox.exec("ps -eo stat,args")
    assert "sleep 300" not in ps.output, ps.output


async def test_timeout_kills_a_command_that_ignores_sigterm(sandbox: DockerSandbox) -> None:
    result = await sandbox.exec("trap '' TERM; sleep 3003", timeout_s=1)
    assert result.timed_out
    assert result.exit_code == 137
    ps = await sandbox.exec("ps -eo args")
    assert "sleep 3003" not in ps.output


async def test_timeout_kills_a_background_child_that_ignores_sigterm(
    sandbox: DockerSandbox,
) -> None:
    result = await sandbox.exec("(trap '' TERM; exec sleep 3004) & sleep 3005", timeout_s=1)
    assert result.timed_out and result.exit_code == 124
    assert result.duration_s < 5
    ps = await sandbox.exec("ps -eo stat,args")
    assert "sleep 300" not in ps.output, ps.output


async def test_cancelling_an_exec_stops_it_in_the_container(sandbox: DockerSandbox) -> None:
    task = asyncio.create_task(sandbox.exec("sleep 3006", timeout_s=120))
    for _ in range(100):
        if "sleep 3006" in (await sandbox.exec("ps -eo args")).output:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the command never started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(40):
        if "sleep 3006" not in (await sandbox.exec("ps -eo args")).output:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the cancelled command is still running in the container")


async def test_cancelling_the_task_removes_the_container(
    docker_client, docker_run_name
) -> None:
    started = asyncio.Event()

    async def agent() -> None:
        async with DockerSandbox(
            docker_client, run_name=docker_run_name, instance_id="cancelled"
        ) as sb:
            started.set()
            await sb.exec("sleep 60", timeout_s=120)

    task = asyncio.create_task(agent())
    await asyncio.wait_for(started.wait(), 30)
    assert len(await _containers(docker_client, docker_run_name)) == 1
    await asyncio.sleep(0.3)  # let the exec begin
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _containers(docker_client, docker_run_name) == []


@pytest.mark.parametrize("delay_s", [0.0, 0.01, 0.03, 0.1])
async def test_cancelling_start_leaves_no_container(
    docker_client, docker_run_name, delay_s
) -> None:
    sb = DockerSandbox(docker_client, run_name=docker_run_name, instance_id="early")
    task = asyncio.create_task(sb.start())
    await asyncio.sleep(delay_s)
    task.cancel()
    # On a fast daemon start may already be done; either way nothing is left.
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await sb.close()
    assert await _containers(docker_client, docker_run_name) == []


async def test_close_is_idempotent(docker_client, docker_run_name) -> None:
    sb = DockerSandbox(docker_client, run_name=docker_run_name, instance_id="twice")
    await sb.start()
    await sb.start()
    assert len(await _containers(docker_client, docker_run_name)) == 1
    await sb.close()
    await sb.close()
    assert await _containers(docker_client, docker_run_name) == []


async def test_sweep_removes_a_runs_containers_only(docker_client, docker_run_name) -> None:
    left = [
        DockerSandbox(docker_client, run_name=docker_run_name, instance_id=f"crashed-{i}")
        for i in range(2)
    ]
    other = DockerSandbox(docker_client, run_name=docker_run_name + "-other", instance_id="x")
    try:
        await asyncio.gather(*(sb.start() for sb in [*left, other]))
        assert await sweep(docker_client, docker_run_name) == 2
        assert await _containers(docker_client, docker_run_name) == []
        assert await _exists(docker_client, other.id)
        assert await sweep(docker_client, docker_run_name) == 0
    finally:
        await other.close()


async def test_sweep_leftovers_spares_live_owners(docker_client, docker_run_name, tmp_path) -> None:
    """Issue 12.1: a starting run removes only what a gone process (or its own
    directory) left, never the containers of another live batch with the same run name."""
    here = Owner.this_process(tmp_path / "mine")
    dead = subprocess.Popen(["true"])
    dead.wait()
    owners = {
        "live-other-dir": Owner.this_process(tmp_path / "other"),
        "live-other-host": dataclasses.replace(here, host=here.host + "-elsewhere", pid=dead.pid,
                                               output_dir=str(tmp_path / "other")),
        "same-dir": here,  # alive, but its directory is the one whose lock the sweeper holds
        "dead": dataclasses.replace(here, pid=dead.pid, output_dir=str(tmp_path / "old")),
        "pid-reused": dataclasses.replace(here, started="another-boot:1", output_dir=str(tmp_path / "old")),
    }
    boxes = {name: DockerSandbox(docker_client, run_name=docker_run_name, instance_id=name, owner=owner)
             for name, owner in owners.items()}
    await asyncio.gather(*(box.start() for box in boxes.values()))
    ids = {name: box.id for name, box in boxes.items()}
    try:
        assert await sweep_leftovers(docker_client, docker_run_name, tmp_path / "mine") == 3
        kept = {name for name, cid in ids.items() if await _exists(docker_client, cid)}
        assert kept == {"live-other-dir", "live-other-host"}
    finally:
        for box in boxes.values():
            await box.close()


def test_process_start_time_tells_a_reused_pid() -> None:
    child = subprocess.Popen(["sleep", "5"])
    try:
        started = process_started(child.pid)
        assert started and started != process_started(1)
    finally:
        child.kill()
        child.wait()
    assert process_started(child.pid) is None


async def test_attach_then_close_keeps_the_container(sandbox: DockerSandbox, docker_client) -> None:
    await sandbox.exec("echo agent-was-here > /testbed/mark")
    attached = DockerSandbox.attach(docker_client, sandbox.id)
    async with attached:
        assert attached.id == sandbox.id
        assert (await attached.exec("cat mark")).output == "agent-was-here\n"
    assert await _exists(docker_client, sandbox.id)
    assert (await sandbox.exec("cat mark")).exit_code == 0


async def test_attach_to_a_missing_container_fails_clearly(docker_client) -> None:
    with pytest.raises(SandboxError):
        await DockerSandbox.attach(docker_client, "no-such-container-awm").start()


async def test_missing_image_fails_clearly_and_leaves_nothing(
    docker_client, docker_run_name
) -> None:
    sb = DockerSandbox(docker_client, image="awm-no-such-image:0", run_name=docker_run_name)
    with pytest.raises(SandboxError, match="awm-no-such-image"):
        await sb.start()
    assert await _containers(docker_client, docker_run_name) == []


async def test_connect_docker_finds_the_daemon(docker_url: str, monkeypatch) -> None:
    docker = await connect_docker(docker_url)
    assert docker is not None
    await docker.close()
    monkeypatch.setenv("DOCKER_HOST", docker_url)
    assert default_docker_url() == docker_url
    assert await connect_docker("unix:///nonexistent/awm.sock") is None
    assert await connect_docker("tcp://127.0.0.1:9") is None


async def test_auto_factory_picks_docker(docker_url: str, docker_run_name) -> None:
    async with await open_factory("auto", DockerConfig(url=docker_url)) as factory:
        assert factory.kind == "docker" and factory.isolated
        assert factory.description == f"docker ({DEFAULT_IMAGE})"
        async with await factory.create(
            run_name=docker_run_name, instance_id="from-factory", image=None
        ) as sb:
            assert sb.kind == "docker"
            assert (await sb.exec("python3 -m pytest --version")).exit_code == 0


async def test_factory_falls_back_to_local_without_the_image(docker_url: str) -> None:
    factory = await open_factory("auto", DockerConfig(url=docker_url, image="awm-no-such-image:0"))
    assert factory.kind == "local"
    assert "awm-no-such-image:0 is missing" in factory.description
    await factory.aclose()
    with pytest.raises(SandboxError, match="missing"):
        await open_factory("docker", DockerConfig(url=docker_url, image="awm-no-such-image:0"))
