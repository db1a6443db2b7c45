"""Benchmark 9 — scale-out over Docker hosts: tasks/minute and exec/s with 1, 2 and 3 daemons.

The same total load each time — TASKS tasks, CONCURRENCY at once, each one container
created and started, EXECS commands (`echo ok`), then removed — placed by the engine's
`HostPool` over the first k daemons of scripts/docker-hosts. Each daemon's CPU (dockerd
and the containerd it started, from /proc/PID/stat) and the machine's busy CPU (/proc/stat)
are shown beside the rates: on one machine the daemons share its cores, so the figures tell
how placement spreads work and what each daemon costs, not a separate-host speed-up.
Skipped, with one line, when the extra daemons do not answer (run scripts/docker-hosts start).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from benchmarks.common import BenchResult, median, table

from awm_tui.config.models import DockerConfig, DockerHostConfig

PREFIX = os.environ.get("AWM_DOCKER_HOSTS_PREFIX", "/tmp/awm-dockerd-extra")
BASE_PORT = int(os.environ.get("AWM_DOCKER_HOSTS_PORT", "23750"))
"""Where scripts/docker-hosts puts its daemons (the same variables choose them there)."""
TLS_INDEX = 1
CONCURRENCY = 6
EXECS = 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


def host_configs() -> list[DockerHostConfig]:
    certs = Path(f"{PREFIX}-certs")
    hosts = []
    for i in range(3):
        tls = dict(tls_verify=True, ca=certs / "ca.pem", cert=certs / "client.pem",
                   key=certs / "client-key.pem") if i == TLS_INDEX else {}
        hosts.append(DockerHostConfig.model_validate({"url": f"tcp://127.0.0.1:{BASE_PORT + i}", **tls}))
    return hosts


def daemon_pids(i: int) -> list[int]:
    """dockerd of daemon i and its direct children (the containerd it runs)."""
    try:
        pid = int(Path(f"{PREFIX}-{i}/dockerd.pid").read_text())
    except (OSError, ValueError):
        return []
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
                pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


async def _trial(k: int, tasks: int, log) -> dict:
    from awm_tui.engine.sandbox.factory import open_factory

    hosts = host_configs()[:k]
    factory = await open_factory("docker", DockerConfig(hosts=hosts, cpus=None, memory=None))
    pids = {i: daemon_pids(i) for i in range(k)}
    placed: dict[str, int] = {}
    left = [tasks]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            sandbox = await factory.create(run_name="bench-hosts", instance_id=f"t{left[0]}")
            placed[sandbox.host or "?"] = placed.get(sandbox.host or "?", 0) + 1
            try:
                await sandbox.start()
                for _ in range(EXECS):
                    out = await sandbox.exec("echo ok", timeout_s=30)
                    assert out.exit_code == 0, out.output
            finally:
                await sandbox.close()

    try:
        cpu0 = {i: cpu_seconds(p) for i, p in pids.items()}
        busy0 = machine_busy()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        wall = time.perf_counter() - t0
        busy1 = machine_busy()
        cpu = {i: cpu_seconds(p) - cpu0[i] for i, p in pids.items()}
    finally:
        await factory.aclose()
    result = {"hosts": k, "wall_s": wall, "tasks_per_min": tasks * 60 / wall, "exec_per_s": tasks * EXECS / wall,
              "daemon_cpu_s": cpu, "placed": placed,
              "machine_busy": (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])}
    log(f"  [hosts] {k} daemon(s): {result['tasks_per_min']:.1f} tasks/min, {result['exec_per_s']:.1f} exec/s, "
        f"daemon CPU {', '.join(f'{c:.1f}s' for c in cpu.values())}, machine {result['machine_busy']:.0%} busy")
    return result


async def _bench(quick: bool, log) -> dict | str:
    from awm_tui.engine.sandbox.base import SandboxError

    tasks = 12 if quick else 30
    reps = 1 if quick else 2
    trials: dict[int, list[dict]] = {1: [], 2: [], 3: []}
    try:
        for _ in range(reps):
            for k in (1, 2, 3):
                trials[k].append(await _trial(k, tasks, log))
    except SandboxError as exc:
        return f"the extra Docker daemons do not answer ({exc}); run scripts/docker-hosts start"
    return {"tasks": tasks, "concurrency": CONCURRENCY, "execs_per_task": EXECS, "trials": trials}


def run(quick: bool, log=print) -> BenchResult:
    data = asyncio.run(_bench(quick, log))
    if isinstance(data, str):
        return BenchResult("hosts", f"\n== 7. Docker hosts: SKIPPED: {data}", {"skipped": data}, [])
    rows = []
    for k, trials in data["trials"].items():
        cpu = [sum(t["daemon_cpu_s"].values()) for t in trials]
        per = " / ".join(f"{median([t['daemon_cpu_s'][i] for t in trials]):.1f}" for i in range(k))
        rows.append([k, median([t["tasks_per_min"] for t in trials]), median([t["exec_per_s"] for t in trials]),
                     median(cpu), per, f"{median([t['machine_busy'] for t in trials]):.0%}",
                     " ".join(f"{n}" for n in trials[-1]["placed"].values())])
    text = table(f"7. Docker hosts ({data['tasks']} tasks x {data['execs_per_task']} execs, "
                 f"{data['concurrency']} at once; medians)",
                 ["daemons", "tasks/min", "exec/s", "daemon CPU s", "per daemon", "machine busy", "placed"], rows,
                 note="All daemons run on this machine's cores: see BENCHMARKS.md for what that can show.")
    data["summary"] = {"rows": rows}
    return BenchResult("hosts", text, data, [])
