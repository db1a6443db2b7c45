"""A run killed with SIGKILL mid-task resumes where it stopped.

The run lives in a child process (tests/helpers/fleet_run.py). Once a task has
been checkpointed and the next one is in flight, the child gets SIGKILL: no
handler runs, nothing is cleaned up. The same command started again must take
the output directory, sweep the containers the dead process left, skip what the
checkpoint holds, and finish with every task recorded exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiodocker
import pytest

from awm_tui.engine.sandbox.docker import RUN_LABEL
from awm_tui.engine.state import Checkpoint, ExperienceBuffer, Memory
from awm_tui.engine.tasks import load_dataset

HELPER = Path(__file__).parent / "helpers" / "fleet_run.py"
LIMIT = 4

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def strict_json(text: str):
    """json.loads that refuses duplicate keys (a task recorded twice in one object)."""
    def pairs(items: list[tuple[str, object]]) -> dict:
        keys = [k for k, _ in items]
        dupes = sorted(k for k, n in Counter(keys).items() if n > 1)
        assert not dupes, f"duplicate keys {dupes}"
        return dict(items)
    return json.loads(text, object_pairs_hook=pairs)


def read_events(path: Path, *, complete: bool = True) -> list[dict]:
    """events.jsonl; while the writer is alive its last line may still be coming."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    tail = lines.pop()
    assert tail == "" or not complete, f"events.jsonl does not end with a newline: {tail[:80]!r}"
    return [json.loads(line) for line in lines]


def finished_ids(out: Path) -> list[str]:
    path = out / "checkpoint.json"
    return list(strict_json(path.read_text())["finished"]) if path.exists() else []


class Child:
    """One launch of the helper, its output in a file."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc, self.log = proc, log

    @classmethod
    async def launch(cls, out: Path, name: str, sandbox: str, log: Path, *,
                     docker_url: str | None = None, env: dict[str, str] | None = None) -> Child:
        args = [sys.executable, str(HELPER), str(out), "--name", name, "--sandbox", sandbox,
                "--limit", str(LIMIT), "--latency", "0.3"]
        if docker_url:
            args += ["--docker-url", docker_url]
        with open(log, "wb") as sink:
            proc = await asyncio.create_subprocess_exec(
                *args, stdout=sink, stderr=asyncio.subprocess.STDOUT, env={**os.environ, **(env or {})})
        return cls(proc, log)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def finish(self, timeout: float) -> str:
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            pytest.fail(f"the resumed run did not finish in {timeout:g}s:\n{self.output()[-3000:]}")
        assert self.proc.returncode == 0, f"exit {self.proc.returncode}:\n{self.output()[-3000:]}"
        return self.output()

    async def kill_mid_task(self, out: Path, ready: Callable[[], Awaitable[bool]] | None = None,
                            timeout: float = 60) -> str:
        """SIGKILL once ≥1 task is checkpointed and another has started; the in-flight id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                pytest.fail(f"the run ended (exit {self.proc.returncode}) before it could be killed:\n"
                            f"{self.output()[-3000:]}")
            done = finished_ids(out)
            started = [e["instance_id"] for e in read_events(out / "events.jsonl", complete=False)
                       if e["kind"] == "task_started"]
            in_flight = [i for i in started if i not in done]
            if done and in_flight and (ready is None or await ready()):
                self.proc.send_signal(signal.SIGKILL)
                await self.proc.wait()
                assert self.proc.returncode == -signal.SIGKILL
                return in_flight[-1]
            await asyncio.sleep(0.05)
        self.proc.kill()
        await self.proc.wait()
        pytest.fail(f"no task in flight after a checkpoint within {timeout:g}s:\n{self.output()[-3000:]}")


def check_resumed(out: Path, name: str, killed: str, done_at_kill: list[str]) -> list[dict]:
    """Every selected task exactly once in every file; the killed one ran again."""
    selected = [t.instance_id for t in load_dataset("sample").select(limit=LIMIT)]
    checkpoint = strict_json((out / "checkpoint.json").read_text())
    preds = strict_json((out / "preds.json").read_text())
    buffer = strict_json((out / "buffer.json").read_text())
    strict_json((out / "memory.json").read_text())
    assert sorted(checkpoint["finished"]) == sorted(selected)
    assert list(checkpoint["finished"])[:len(done_at_kill)] == done_at_kill  # kept, not redone
    assert sorted(preds) == sorted(selected)
    assert sorted(e["instance_id"] for e in buffer["experiences"]) == sorted(selected)
    assert sorted(p.stem for p in (out / "trajectories").glob("*.json")) == sorted(selected)
    assert not list(out.glob(".*.tmp")) and not list((out / "trajectories").glob(".*.tmp"))
    # ...and the engine's own readers take them
    ckpt = Checkpoint.load(out / "checkpoint.json", name)
    assert ckpt.done == LIMIT and ckpt.resolved == LIMIT
    assert len(ExperienceBuffer.load(out / "buffer.json")) == LIMIT
    Memory.load(out / "memory.json")

    events = read_events(out / "events.jsonl")
    assert all(e["run"] == name for e in events)
    starts = [e for e in events if e["kind"] == "run_started"]
    assert len(starts) == 2, "expected one run_started per launch"
    assert starts[1]["resumed"] == len(done_at_kill) and starts[1]["tasks_total"] == LIMIT
    after_restart = events[events.index(starts[1]):]
    restarted = [e["instance_id"] for e in after_restart if e["kind"] == "task_started"]
    assert restarted == [i for i in selected if i not in done_at_kill]
    if killed not in done_at_kill:  # (it could have finished in the instant before the kill)
        assert restarted[0] == killed
    finished = Counter(e["instance_id"] for e in events if e["kind"] == "task_finished")
    assert all(n == 1 for n in finished.values()), finished
    assert [e["kind"] for e in after_restart].count("run_finished") == 1
    return events


@pytest.mark.docker
async def test_sigkill_mid_task_then_resume_in_docker(
    docker_url: str, docker_client: aiodocker.Docker, docker_run_name: str, tmp_path: Path,
) -> None:
    name, out = docker_run_name, tmp_path / "out"
    label = {"label": [f"{RUN_LABEL}={name}"]}

    async def container_up() -> bool:
        return bool(await docker_client.containers.list(all=True, filters=label))

    first = await Child.launch(out, name, "docker", tmp_path / "first.log", docker_url=docker_url)
    killed = await first.kill_mid_task(out, container_up)
    done_at_kill = finished_ids(out)
    left = await docker_client.containers.list(all=True, filters=label)
    assert left, "the killed run left no container: nothing to prove the sweep on"

    second = await Child.launch(out, name, "docker", tmp_path / "second.log", docker_url=docker_url)
    output = await second.finish(90)
    assert f"removed {len(left)} container(s) left by an earlier crash" in output
    assert '"status": "finished"' in output
    check_resumed(out, name, killed, done_at_kill)
    assert await docker_client.containers.list(all=True, filters=label) == []


async def test_sigkill_mid_task_then_resume_locally(tmp_path: Path) -> None:
    name, out = "crash-local", tmp_path / "out"
    scratch = tmp_path / "tmp"  # the dead process's sandbox copies land here, not in /tmp
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}
    first = await Child.launch(out, name, "local", tmp_path / "first.log", env=env)
    killed = await first.kill_mid_task(out)
    done_at_kill = finished_ids(out)

    second = await Child.launch(out, name, "local", tmp_path / "second.log", env=env)
    output = await second.finish(90)
    assert '"status": "finished"' in output
    check_resumed(out, name, killed, done_at_kill)
