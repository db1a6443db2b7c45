"""What every benchmark shares: the free sandbox, the server process, samplers, tables.

The servers (simulated model + evaluation server in simulate mode) always run in a
process of their own, so the client process measured is only the client: its CPU
time, its memory, its event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from awm_tui.engine import protocol
from awm_tui.engine.agent import PATCH_COMMAND
from awm_tui.engine.sandbox.base import DEFAULT_MAX_OUTPUT, WORKDIR, ExecResult, Sandbox

FAKE_DIFF = (
    "diff --git a/bench.py b/bench.py\n"
    "--- a/bench.py\n+++ b/bench.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
)
"""What the null sandbox answers to the patch command: small, non-empty, so it is evaluated."""


# -- the free sandbox ----------------------------------------------------------------------

class NullSandbox(Sandbox):
    """A sandbox that costs nothing: every command returns at once.

    The submit command echoes its marker and the patch command returns a small
    fake diff, so the agent submits and the evaluation counts the task.
    """

    kind = "null"
    isolated = False
    _counter = 0

    def __init__(self) -> None:
        NullSandbox._counter += 1
        self._id = f"null-{NullSandbox._counter}"
        self.commands = 0

    @property
    def id(self) -> str:
        return self._id

    async def start(self) -> None:
        return None

    async def put_directory(self, src: Path, dest: str = WORKDIR) -> None:
        return None

    async def exec(self, command: str, *, timeout_s: float = 120.0, workdir: str | None = None,
                   max_output: int = DEFAULT_MAX_OUTPUT) -> ExecResult:
        return null_exec(command)

    async def close(self) -> None:
        return None


def null_exec(command: str) -> ExecResult:
    """The null sandbox's answer, shared with the synchronous "before" loops."""
    if command.strip() == protocol.SUBMIT_COMMAND:
        return ExecResult(0, protocol.SUBMIT_MARKER + "\n")
    if command == PATCH_COMMAND:
        return ExecResult(0, FAKE_DIFF)
    return ExecResult(0, "")


class NullSandboxFactory:
    """Quacks like `SandboxFactory` for `AWMRun`: one NullSandbox per task, no Docker."""

    kind = "null"
    docker = None
    isolated = False
    description = "null (benchmark: commands cost nothing)"

    def image_for(self, task: object) -> None:
        return None  # the run's default: nothing to pull or remove

    @staticmethod
    def env_for(task: object) -> None:
        return None

    async def create(self, *, run_name: str, instance_id: str, image: str | None = None,
                     conda_env: str | None = None, output_dir: object = None) -> Sandbox:
        return NullSandbox()

    async def aclose(self) -> None:
        return None


# -- the servers' process ----------------------------------------------------------------------

class ServerProcess:
    """`python -m benchmarks.servers` in a child process; `stats()` / `reset()` over its stdin."""

    def __init__(self, *, latency: float, eval_time: float, dataset: str | None = None) -> None:
        self.args = [sys.executable, "-m", "benchmarks.servers", "--latency", f"{latency}",
                     "--eval-time", f"{eval_time}"]
        if dataset:
            self.args += ["--dataset", dataset]
        self.proc: subprocess.Popen | None = None
        self.llm_url = self.eval_url = ""
        self.llm_port = self.eval_port = 0
        self._lock = threading.Lock()

    def __enter__(self) -> ServerProcess:
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1, cwd=str(repo_root()))
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("benchmark servers did not start")
        info = json.loads(line)
        self.llm_url, self.eval_url = info["llm_url"], info["eval_url"]
        self.llm_port, self.eval_port = info["llm_port"], info["eval_port"]
        return self

    def _ask(self, command: str) -> dict:
        assert self.proc is not None
        with self._lock:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
            return json.loads(self.proc.stdout.readline())

    def stats(self) -> dict:
        return self._ask("stats")

    def cpu_seconds(self) -> float:
        """User + system CPU the servers' process has burnt so far (psutil, from outside)."""
        assert self.proc is not None
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def reset(self) -> dict:
        return self._ask("reset")

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# -- sampling a process tree ---------------------------------------------------------------

@dataclass
class Samples:
    peak_rss: int = 0
    """Bytes: the highest sum of RSS over the sampled processes."""
    peak_established: dict[int, int] = field(default_factory=dict)
    """Per server port: most client sockets ESTABLISHED to it at one sample."""
    count: int = 0


class TreeSampler:
    """Samples RSS of a process and its descendants, and ESTABLISHED sockets to given ports.

    Runs in a thread of the *parent* (never inside the process being measured).
    """

    def __init__(self, pid: int, ports: tuple[int, ...] = (), interval: float = 0.1,
                 sockets_every: int = 2) -> None:
        self.pid, self.ports, self.interval, self.sockets_every = pid, ports, interval, sockets_every
        self.samples = Samples(peak_established={p: 0 for p in ports})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._procs: dict[int, psutil.Process] = {}

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _rss(self) -> int:
        try:
            root = psutil.Process(self.pid)
            procs = [root] + root.children(recursive=True)
        except psutil.Error:
            return 0
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _loop(self) -> None:
        tick = 0
        while not self._stop.is_set():
            s = self.samples
            s.peak_rss = max(s.peak_rss, self._rss())
            if self.ports and tick % self.sockets_every == 0:
                for port, n in established(self.ports).items():
                    s.peak_established[port] = max(s.peak_established[port], n)
            s.count += 1
            tick += 1
            self._stop.wait(self.interval)


def established(ports: tuple[int, ...]) -> dict[int, int]:
    """Client-side loopback sockets ESTABLISHED to each port (what `netstat | grep` counts)."""
    counts = {p: 0 for p in ports}
    try:
        conns = psutil.net_connections(kind="tcp4")
    except (psutil.Error, OSError):
        return counts
    for c in conns:
        if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port in counts:
            counts[c.raddr.port] += 1
    return counts


# -- child processes that report one JSON line ------------------------------------------------

def run_child(module: str, args: list[str], *, ports: tuple[int, ...] = (), timeout: float = 1800,
              env: dict[str, str] | None = None) -> dict:
    """Run `python -m module args` while sampling it; its last stdout line is JSON."""
    before = os.times()
    proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(repo_root()),
                            env={**os.environ, **(env or {})})
    with TreeSampler(proc.pid, ports) as sampler:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise RuntimeError(f"{module} {' '.join(args)} took longer than {timeout:g}s")
    after = os.times()
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed ({proc.returncode}): {err.strip()[-2000:]}")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1])
    result["peak_rss_mb"] = sampler.samples.peak_rss / 2**20
    result["peak_established"] = {str(k): v for k, v in sampler.samples.peak_established.items()}
    # Everything the child and its descendants burnt, start-up included.
    result["cpu_total_s"] = (after.children_user - before.children_user
                             + after.children_system - before.children_system)
    return result


def emit(result: dict) -> None:
    """A child's report: one JSON line on stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# -- event-loop lag ------------------------------------------------------------------------

class LoopLag:
    """A timer measuring how late the loop wakes it (scheduled vs actual)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self._task: asyncio.Task | None = None

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.lags.append(max(0.0, loop.time() - due))

    def start(self) -> None:
        self._task = asyncio.create_task(self._probe())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def percentile(self, q: float) -> float:
        return percentile(self.lags, q)


# -- figures -----------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def table(title: str, headers: list[str], rows: list[list[Any]], note: str = "") -> str:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths)))
    out = [f"\n== {title}", line, "-" * len(line)]
    for r in cells:
        out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
    if note:
        out.append(note)
    return "\n".join(out)


@dataclass
class Target:
    benchmark: str
    name: str
    value: float | None
    goal: str
    met: bool | None
    """None: not measured (skipped)."""
    detail: str = ""

    def as_dict(self) -> dict:
        return {"benchmark": self.benchmark, "name": self.name, "value": self.value, "goal": self.goal,
                "met": self.met, "detail": self.detail}


@dataclass
class BenchResult:
    name: str
    text: str
    data: dict
    targets: list[Target] = field(default_factory=list)


def now() -> float:
    return time.perf_counter()


# -- a longer dataset for steady-state and soak runs ----------------------------------------------

def synthetic_dataset(directory: str | Path, copies: int) -> Path:
    """`copies` renamed copies of every small sample task, snapshots pointing at the sample's.

    Both servers load it (the simulated model finds each task's script by id, the
    evaluation server checks the id), so runs can do many more tasks than the sample has.
    """
    from awm_tui.engine.tasks import SAMPLE, load_dataset

    sample = load_dataset(SAMPLE)
    path = Path(directory) / "bench_tasks.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for k in range(copies):
            for task in sample.tasks:
                if task.size != "small":
                    continue
                data = task.model_dump(mode="json")
                data["instance_id"] = f"{task.instance_id}-x{k}"
                snap = sample.snapshot_path(task)
                data["repo_snapshot"] = str(snap) if snap else None
                fh.write(json.dumps(data) + "\n")
    return path
