"""LocalSandbox: the fallback that runs commands in a temp directory."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from awm_tui.config.models import DockerConfig
from awm_tui.engine.sandbox.base import SandboxError
from awm_tui.engine.sandbox.factory import open_factory
from awm_tui.engine.sandbox.local import LocalSandbox, sweep_local


@pytest.fixture
async def sandbox():
    async with LocalSandbox(run_name="test", instance_id="demo__demo-1") as sb:
        yield sb


async def _gone(pid: int, within_s: float = 3.0) -> bool:
    """True when `pid` has exited (a zombie awaiting its reaper counts as gone)."""
    for _ in range(int(within_s / 0.05)):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        await asyncio.sleep(0.05)
    return False


async def _read_pid(path: Path) -> int:
    for _ in range(200):
        text = await asyncio.to_thread(lambda: path.read_text() if path.exists() else "")
        if text.strip():
            return int(text)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} was never written")


async def test_is_labelled_not_isolated(sandbox: LocalSandbox) -> None:
    assert sandbox.kind == "local" and sandbox.isolated is False
    assert sandbox.id == f"local:{sandbox.workdir}"
    assert (await sandbox.exec("pwd")).output.strip() == os.path.realpath(sandbox.workdir)


async def test_pytest_from_the_running_venv(sandbox: LocalSandbox) -> None:
    result = await sandbox.exec("python3 -m pytest --version")
    assert result.exit_code == 0, result.output
    assert "pytest" in result.output


async def test_put_directory_and_write_file(sandbox: LocalSandbox, tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("VALUE = 'héllo'\n", encoding="utf-8")
    await sandbox.put_directory(tmp_path)  # default destination: /testbed
    result = await sandbox.exec("python3 -c 'import pkg.mod; print(pkg.mod.VALUE)'")
    assert result.output == "héllo\n", result.output
    patch = "".join(f"+line {i}\n" for i in range(50_000))
    await sandbox.write_file("/testbed/patches/fix.diff", patch)
    digest = (await sandbox.exec("sha256sum patches/fix.diff")).output.split()[0]
    assert digest == hashlib.sha256(patch.encode()).hexdigest()


async def test_exit_code_and_workdir(sandbox: LocalSandbox) -> None:
    await sandbox.exec("mkdir -p sub")
    result = await sandbox.exec("basename $PWD; echo oops >&2; exit 3", workdir="/testbed/sub")
    assert result.exit_code == 3
    assert result.output.split() == ["sub", "oops"]


async def test_output_is_truncated_to_max_output(sandbox: LocalSandbox) -> None:
    result = await sandbox.exec("seq 1 200000; echo THE-END", max_output=4000)
    assert result.truncated and result.exit_code == 0
    assert len(result.output.encode()) < 4000 + 100
    assert result.output.startswith("1\n2\n") and result.output.rstrip().endswith("THE-END")


async def test_timeout_kills_the_whole_process_group(sandbox: LocalSandbox) -> None:
    result = await sandbox.exec(
        "(trap '' TERM; exec sleep 3011) & echo $! > child.pid; sleep 3012", timeout_s=1
    )
    assert result.timed_out and result.exit_code == 124
    child = await _read_pid(Path(sandbox.workdir) / "child.pid")
    # The child ignored SIGTERM; `timeout -k` follows with SIGKILL to the group.
    assert await _gone(child, within_s=8)


async def test_cancelling_kills_the_process_group(sandbox: LocalSandbox) -> None:
    task = asyncio.create_task(
        sandbox.exec("sleep 3021 & echo $! > child.pid; wait", timeout_s=120)
    )
    child = await _read_pid(Path(sandbox.workdir) / "child.pid")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _gone(child)


async def test_background_job_neither_hangs_the_command_nor_outlives_close() -> None:
    sb = LocalSandbox(run_name="test", instance_id="background")
    async with sb:
        result = await sb.exec("sleep 3031 & echo $! > child.pid; echo started")
        assert result.exit_code == 0 and result.output == "started\n"
        assert not result.timed_out and result.duration_s < 5
        child = await _read_pid(Path(sb.workdir) / "child.pid")
        assert not await _gone(child, within_s=0.2)  # still serving, as the agent wanted
    assert await _gone(child)


async def test_close_removes_the_directory_but_attach_keeps_it() -> None:
    sb = LocalSandbox(run_name="test", instance_id="keep")
    await sb.start()
    root = Path(sb.workdir)
    await sb.exec("echo agent-was-here > mark")
    attached = LocalSandbox.attach(sb.id)
    async with attached:
        assert attached.workdir == str(root)
        assert (await attached.exec("cat mark")).output == "agent-was-here\n"
    assert (root / "mark").exists()
    await sb.close()
    await sb.close()
    assert not root.exists()
    with pytest.raises(SandboxError):
        await LocalSandbox.attach(root).start()


async def test_sweep_removes_the_copies_of_a_killed_process_only(tmp_path: Path, monkeypatch) -> None:
    code = ("import asyncio\nfrom awm_tui.engine.sandbox.local import LocalSandbox, sweep_local\n"
            "async def main():\n"
            "    sb = LocalSandbox(run_name='r', instance_id='t')\n"
            "    await sb.start()\n"
            "    print(sb.workdir, flush=True)\n"
            "    await asyncio.sleep(60)\n"
            "asyncio.run(main())\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, env={**os.environ, "TMPDIR": str(tmp_path)})
    killed = Path((await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip())
    proc.kill()  # SIGKILL: no chance to clean up
    await proc.wait()
    assert killed.parent == tmp_path and (killed / ".").is_dir()
    other = tmp_path / "awm-sbx-notapid-x"
    other.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    async with LocalSandbox(run_name="live", instance_id="t") as live:
        assert Path(live.workdir).parent == tmp_path
        assert await asyncio.to_thread(sweep_local, tmp_path) == 1
        assert not killed.exists()
        assert Path(live.workdir).is_dir() and other.is_dir()  # a live process's copy stays
        assert await asyncio.to_thread(sweep_local, tmp_path) == 0


async def test_auto_factory_without_docker_is_local() -> None:
    factory = await open_factory("auto", DockerConfig(url="unix:///nonexistent/awm-docker.sock"))
    async with factory:
        assert factory.kind == "local" and not factory.isolated
        assert factory.description.startswith("local (not isolated): no Docker daemon at")
        sb = await factory.create(run_name="test", instance_id="t1", image=None)
        async with sb:
            assert (await sb.exec("echo hi")).output == "hi\n"
    with pytest.raises(SandboxError, match="no Docker daemon"):
        await open_factory("docker", DockerConfig(url="unix:///nonexistent/awm-docker.sock"))
    with pytest.raises(ValueError, match="not like '2g'"):  # refused with the config, before any task
        DockerConfig(memory="lots")
