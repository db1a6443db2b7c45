"""Benchmark 4 — Docker: commands/s through `DockerSandbox` (aiodocker) vs `docker exec` subprocesses.

The subprocess contender is how mini-swe-agent runs a command:
`asyncio.create_subprocess_exec("docker", "exec", "-w", dir, id, "bash", "-lc", cmd)`.
Also: container create+start and remove latency through `DockerSandbox`.
Skipped, with one line, when no daemon answers or the image is missing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time

from benchmarks.common import BenchResult, Target, median, percentile, table

from awm_tui.config.models import DockerConfig

UNCAPPED = DockerConfig(cpus=None)
"""The default image, no CPU cap: the benchmark measures the daemon, not the limit."""
IMAGE = UNCAPPED.image
COMMAND = "echo ok"


async def _sandbox_rate(sandbox, concurrency: int, total: int) -> float:
    async def one() -> None:
        out = await sandbox.exec(COMMAND, timeout_s=30)
        assert out.exit_code == 0, out.output

    return await _rate(one, concurrency, total)


async def _subprocess_rate(container_id: str, concurrency: int, total: int) -> float:
    async def one() -> None:
        proc = await asyncio.create_subprocess_exec(
            "docker", "exec", "-w", "/testbed", container_id, "bash", "-lc", COMMAND,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        await proc.communicate()
        assert proc.returncode == 0

    return await _rate(one, concurrency, total)


async def _rate(one, concurrency: int, total: int) -> float:
    left = [total]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            await one()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - t0)


async def _bench(quick: bool, log) -> dict | str:
    from awm_tui.engine.sandbox.docker import DockerSandbox, connect_docker, image_exists

    docker = await connect_docker(os.environ.get("DOCKER_HOST"))
    if docker is None:
        return f"no Docker daemon answers at {os.environ.get('DOCKER_HOST') or 'the default socket'}"
    try:
        if not await image_exists(docker, IMAGE):
            return f"image {IMAGE} is missing (run scripts/sandbox-image)"
        if shutil.which("docker") is None:
            return "the docker CLI is not installed (needed for the subprocess contender)"
        reps = 2 if quick else 3
        sizes = {1: 20 if quick else 50, 16: 96 if quick else 240}
        rates: dict[str, list[float]] = {}
        sandbox = DockerSandbox(docker, limits=UNCAPPED, run_name="bench", instance_id="exec")
        await sandbox.start()
        try:
            await sandbox.exec("mkdir -p /testbed", timeout_s=30)
            await _sandbox_rate(sandbox, 1, 3)   # warm-up
            await _subprocess_rate(sandbox.id, 1, 3)
            for r in range(reps):
                for c, total in sizes.items():
                    pair = [("aiodocker", _sandbox_rate(sandbox, c, total)),
                            ("subprocess", _subprocess_rate(sandbox.id, c, total))]
                    for name, coro in (pair if r % 2 == 0 else pair[::-1]):
                        rate = await coro
                        rates.setdefault(f"{name}@{c}", []).append(rate)
                        log(f"  [docker] {name:<10} concurrency {c:<2}: {rate:.1f} commands/s")
        finally:
            await sandbox.close()
        create, remove = [], []
        for i in range(8 if quick else 20):
            sb = DockerSandbox(docker, limits=UNCAPPED, run_name="bench", instance_id=f"life{i}")
            t0 = time.perf_counter()
            await sb.start()
            t1 = time.perf_counter()
            await sb.close()
            t2 = time.perf_counter()
            create.append(t1 - t0)
            remove.append(t2 - t1)
        log(f"  [docker] create+start median {median(create):.3f}s, remove median {median(remove):.3f}s")
        return {"rates": rates, "create_start_s": create, "remove_s": remove}
    finally:
        await docker.close()


def run(quick: bool, log=print) -> BenchResult:
    data = asyncio.run(_bench(quick, log))
    if isinstance(data, str):
        text = f"\n== 4. Docker execution: SKIPPED: {data}"
        return BenchResult("docker", text, {"skipped": data},
                           [Target("docker", "Docker benchmark", None, "runs", None, detail=f"skipped: {data}")])
    rates = data["rates"]
    rows = []
    for c in (1, 16):
        a, s = median(rates[f"aiodocker@{c}"]), median(rates[f"subprocess@{c}"])
        rows.append([c, a, s, a / s])
    life = [["create+start", median(data["create_start_s"]), percentile(data["create_start_s"], 0.95)],
            ["remove (force)", median(data["remove_s"]), percentile(data["remove_s"], 0.95)],
            ["total", median([a + b for a, b in zip(data["create_start_s"], data["remove_s"])]),
             percentile([a + b for a, b in zip(data["create_start_s"], data["remove_s"])], 0.95)]]
    text = table(f"4. Docker execution (`{COMMAND}` in one container; commands/s, medians)",
                 ["concurrency", "DockerSandbox", "docker exec (subprocess)", "ratio"], rows)
    text += table(f"4b. Container lifecycle through DockerSandbox ({len(data['create_start_s'])} containers)",
                  ["step", "median s", "p95 s"], life)
    data["summary"] = {"rows": rows, "lifecycle": life}
    # No target was set for Docker: the figures are reported, not judged.
    return BenchResult("docker", text, data, [])
