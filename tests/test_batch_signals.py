"""Stopping `awm-tui --batch` with signals: clean state, no containers left, a rerun resumes."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiodocker
import pytest

from awm_tui.engine.sandbox.docker import (
    RUN_LABEL,
    docker_url_candidates,
    normalize_docker_url,
)
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions
from tests.test_batch import (
    KEYS,
    assert_no_raw_keys,
    batch,
    batch_env,
    summary,
    write_config,
)


async def start_batch(*args: str | Path, cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "awm_tui", "--batch", "--json", *map(str, args), cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=batch_env())


async def read_until(proc: asyncio.subprocess.Process, kind: str, seen: list[dict], runs: int = 1) -> None:
    """Read JSON event lines until `kind` arrived from `runs` runs (they are then truly under way)."""
    assert proc.stdout is not None
    while len({e["run"] for e in seen if e["kind"] == kind}) < runs:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line, "the batch ended before a task finished"
        event = json.loads(line)
        seen.append(event)


async def finish(proc: asyncio.subprocess.Process, seen: list[dict], timeout: float = 60) -> str:
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    seen.extend(json.loads(line) for line in out.decode().splitlines() if line.strip())
    return err.decode()


async def containers_of(run_names: list[str]) -> int | None:
    """Containers still labelled with these runs, or None when no Docker daemon answers."""
    for url in docker_url_candidates():
        docker = aiodocker.Docker(url=normalize_docker_url(url))
        try:
            found = 0
            for name in run_names:
                found += len(await docker.containers.list(all=True, filters={"label": [f"{RUN_LABEL}={name}"]}))
            return found
        except (aiodocker.DockerError, OSError):
            continue
        finally:
            await docker.close()
    return None


def finished_ids(out_dir: Path) -> list[str]:
    return list(json.loads((out_dir / "checkpoint.json").read_text())["finished"])


@pytest.fixture
async def slow_sim():
    # A little latency so a signal lands while tasks are in flight.
    async with SimLLMServer(SimOptions(seed=5, latency=0.15)) as server:
        yield server


async def test_sigint_stops_cleanly_and_rerun_does_each_task_once(tmp_path: Path, slow_sim: SimLLMServer) -> None:
    # sandbox "auto": Docker when a daemon answers, so container clean-up is checked for real.
    cfg = write_config(tmp_path / "c.toml", slow_sim, key=KEYS[0], docker_url=None, runs=[
        {"name": "sig-a", "output_dir": "a", "limit": 3},
        {"name": "sig-b", "output_dir": "b", "limit": 3, "api_key": KEYS[1]}])
    seen: list[dict] = []
    proc = await start_batch("--config", cfg, cwd=tmp_path)
    await read_until(proc, "task_finished", seen, runs=2)
    proc.send_signal(signal.SIGINT)
    err = await finish(proc, seen)
    assert proc.returncode == 130, err
    assert "SIGINT received" in err
    assert seen[-1]["kind"] == "batch_summary" and seen[-1]["interrupted"] is True
    assert {e["run"] for e in seen if e["kind"] == "run_finished" and e["stopped"]} == {"sig-a", "sig-b"}
    left = await containers_of(["sig-a", "sig-b"])
    assert left in (0, None)
    if left is not None:  # a daemon answers, so the runs used it (and removed their containers)
        assert summary(tmp_path / "a")["sandbox"].startswith("docker")
    first: dict[str, list[str]] = {}
    for name, out in (("sig-a", tmp_path / "a"), ("sig-b", tmp_path / "b")):
        first[name] = finished_ids(out)  # valid JSON, written atomically
        data = summary(out)
        assert data["status"] == "stopped" and data["interrupted"] is True
        assert not list(out.glob(".*.tmp"))
    assert sum(map(len, first.values())) < 6

    rerun: list[dict] = []
    proc = await start_batch("--config", cfg, cwd=tmp_path)
    err = await finish(proc, rerun, timeout=120)
    assert proc.returncode == 0, err
    for name, out in (("sig-a", tmp_path / "a"), ("sig-b", tmp_path / "b")):
        again = [e["instance_id"] for e in rerun if e["kind"] == "task_finished" and e["run"] == name]
        assert not set(again) & set(first[name])  # checkpointed tasks are not redone
        ids = finished_ids(out)
        assert len(ids) == 3 and set(ids) == set(first[name]) | set(again)
        preds = json.loads((out / "preds.json").read_text())
        assert sorted(preds) == sorted(ids)
        started = next(e for e in rerun if e["kind"] == "run_started" and e["run"] == name)
        assert started["resumed"] == len(first[name])
    assert_no_raw_keys(json.dumps(seen), json.dumps(rerun))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
async def test_sigterm_and_sighup_stop_cleanly(tmp_path: Path, slow_sim: SimLLMServer, sig: signal.Signals) -> None:
    """SIGHUP (a dropped SSH session) is a clean stop like SIGTERM: checkpoints written, exit 130."""
    cfg = write_config(tmp_path / "c.toml", slow_sim, key=KEYS[0], runs=[
        {"name": "t", "output_dir": "t", "limit": 3, "sandbox": "local", "skip_eval": True}])
    seen: list[dict] = []
    proc = await start_batch("--config", cfg, cwd=tmp_path)
    await read_until(proc, "task_finished", seen)
    proc.send_signal(sig)
    err = await finish(proc, seen)
    assert proc.returncode == 130, err
    assert f"{sig.name} received" in err
    assert summary(tmp_path / "t")["status"] == "stopped"
    assert 1 <= len(finished_ids(tmp_path / "t")) < 3


async def test_second_sigint_exits_at_once(tmp_path: Path, slow_sim: SimLLMServer) -> None:
    cfg = write_config(tmp_path / "c.toml", slow_sim, key=KEYS[0], runs=[
        {"name": "f", "output_dir": "f", "limit": 3, "sandbox": "local", "skip_eval": True}])
    seen: list[dict] = []
    proc = await start_batch("--config", cfg, cwd=tmp_path)
    await read_until(proc, "task_started", seen)
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    # Wait until the first one is handled: two signals sent back to back may merge into one.
    assert "SIGINT received" in (await asyncio.wait_for(proc.stderr.readline(), 10)).decode()
    proc.send_signal(signal.SIGINT)
    err = await finish(proc, seen, timeout=20)
    assert proc.returncode == 130, err
    assert "again" in err
    # The forced exit left the output dir lock behind; the rerun takes it over and finishes.
    res = await batch("--config", cfg, "--json", cwd=tmp_path)
    assert res.code == 0, res.err
    assert len(finished_ids(tmp_path / "f")) == 3
