"""Two batches on one Docker daemon at once: neither touches the other's containers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiodocker
import pytest

from awm_tui.engine.sandbox.docker import RUN_LABEL
from tests.test_batch_signals import finish, start_batch

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(180)]


async def test_a_second_batch_leaves_the_first_batchs_containers(
        tmp_path: Path, docker_client: aiodocker.Docker) -> None:
    """Issue 12.1: both demo batches name their runs demo-a/demo-b; B's start-up sweep used
    to remove A's live containers ("No such container"), failing A's tasks."""
    first = await start_batch("--demo", "--output-root", tmp_path / "A", "--limit", "3", cwd=tmp_path)
    mine = {"label": [f"{RUN_LABEL}=demo-a"]}
    for _ in range(240):  # A's first containers exist: B starts while they are in use
        if await docker_client.containers.list(filters=mine):
            break
        await asyncio.sleep(0.25)
    else:
        first.kill()
        await first.communicate()
        pytest.fail("batch A made no container")
    second = await start_batch("--demo", "--output-root", tmp_path / "B", "--limit", "1", cwd=tmp_path)
    seen_b: list[dict] = []
    err_b = await finish(second, seen_b, timeout=120)
    seen_a: list[dict] = []
    err_a = await finish(first, seen_a, timeout=120)

    assert second.returncode == 0, err_b
    assert first.returncode == 0, err_a
    assert not [e for e in seen_b if e["kind"] == "log_line" and "removed" in e.get("message", "")]
    finished = [e for e in seen_a if e["kind"] == "task_finished"]
    assert len(finished) == 6 and all(e["exit_status"] == "Submitted" for e in finished), finished
    assert "No such container" not in err_a + str(seen_a)
