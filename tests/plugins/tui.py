"""Fixtures and helpers for driving the TUI: a fake-free fleet double, fixed events, screen text."""

from __future__ import annotations

import html
import re
from collections import defaultdict
from collections.abc import Iterable

import pytest

CELL_WIDTH = 12.2
_TEXT = re.compile(r'<text(?=[^>]*textLength)[^>]*\bx="([\d.]+)"[^>]*\by="([\d.]+)"[^>]*>(.*?)</text>', re.S)


def svg_text(svg: str) -> str:
    """The characters of a Textual SVG screenshot, one line per terminal row (for asserts and review)."""
    rows: dict[float, dict[int, str]] = defaultdict(dict)
    for x, y, body in _TEXT.findall(svg):
        text = html.unescape(re.sub(r"<[^>]+>", "", body)).replace("\xa0", " ")
        column = round(float(x) / CELL_WIDTH)
        for offset, char in enumerate(text):
            rows[float(y)][column + offset] = char
    lines = []
    for _, cells in sorted(rows.items()):
        width = max(cells) + 1 if cells else 0
        lines.append("".join(cells.get(i, " ") for i in range(width)).rstrip())
    return "\n".join(lines)


def screen_text(app) -> str:
    return svg_text(app.export_screenshot())


@pytest.fixture
def tui_screen_text():
    return screen_text


async def inject(pilot, events: Iterable) -> None:
    """Feed engine events through the app's own sink, flushing as its timers would.

    Metrics are flushed and processed one snapshot at a time (one per 4 Hz tick),
    so the sparkline sees every point, as it would live."""
    from awm_tui.engine.events import MetricsSnapshot

    relay = pilot.app.relay
    for event in events:
        relay(event)
        if isinstance(event, MetricsSnapshot):
            relay.flush_events()
            relay.flush_metrics()
            await pilot.pause()
    relay.flush_events()
    relay.flush_metrics()
    await pilot.pause()


# -- a stand-in Fleet for widget tests (the real one is used in test_tui_fleet.py) ---------------

class RecordingFleet:
    """Accepts runs and remembers them; the test injects the events a run would make."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str | None]] = []
        self.resolved: list = []
        """What each start was given (`config.plan.ResolvedRun`), for tests of the key it carries."""
        self.stopped: list[str] = []
        self.controls: list[tuple[str, str, float | None]] = []
        """(action, run, value) of each live control the app asked for."""
        self._active: list[str] = []

    @property
    def active(self) -> list[str]:
        return list(self._active)

    def open_connections(self) -> int:
        return 0

    async def start(self, resolved):
        """Takes what `config.plan.resolve_run` chose, like the real Fleet."""
        self.started.append((resolved.run.name, None if resolved.api_key is None else "<secret>"))
        self.resolved.append(resolved)
        self._active.append(resolved.run.name)

    async def stop(self, name: str) -> None:
        self.stopped.append(name)
        if name in self._active:
            self._active.remove(name)

    async def stop_all(self) -> None:
        for name in self.active:
            await self.stop(name)

    def _control(self, action: str, name: str, value: float | None = None) -> bool:
        self.controls.append((action, name, value))
        return name in self._active

    def pause(self, name: str) -> bool:
        return self._control("pause", name)

    def resume(self, name: str) -> bool:
        return self._control("resume", name)

    def set_limit(self, name: str, limit: int) -> bool:
        return self._control("set_limit", name, limit)

    def set_workers(self, name: str, workers: int) -> bool:
        return self._control("set_workers", name, workers)

    def set_budget(self, name: str, budget: float | None) -> bool:
        return self._control("set_budget", name, budget)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop_all()


class FrozenClock:
    """A monotonic clock the test moves by hand (the fleet bar's elapsed time)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


SECRET_KEY = "sk-or-v1-" + "0123456789abcdef" * 4
"""A well-formed OpenRouter key that must never appear on screen."""


def sample_config(root: str = "outputs", *, runs: int = 2, log_lines: int = 2000):
    from awm_tui.config.models import AppConfig, LLMProfile, RunConfig, UIConfig

    sim = LLMProfile(model="awm-sim", base_url="http://127.0.0.1:9/v1", label="simulated model")
    router = LLMProfile(model="openrouter/moonshotai/kimi-k2")
    return AppConfig(
        llm={"llm.sim": sim, "llm.kimi-k2": router},
        runs=[RunConfig(name=name, llm="llm.sim", output_dir=f"{root}/{name}", limit=5)
              for name in ("alpha", "beta", "gamma", "delta")[:runs]],
        ui=UIConfig(log_lines=log_lines),
    )


def fixed_events(run: str, ts: float = 1_767_225_600.0):
    """A run three tasks in: what the engine would have said, with fixed times."""
    from awm_tui.engine.events import (
        AgentStep, CheckpointSaved, EvaluationDone, HostConnections, LogLine, MemoryUpdated,
        MetricsData, MetricsSnapshot, RunStarted, StatusChanged, TaskFinished, TaskStarted,
    )
    from awm_tui.engine.outcomes import Outcome

    events = [
        RunStarted(run=run, ts=ts, output_dir=f"outputs/{run}", limit=5, model="awm-sim",
                   sandbox="docker", tasks_total=5),
        LogLine(run=run, ts=ts, message="task 1/5 minicsv__minicsv-3"),
    ]
    for i, instance in enumerate(("minicsv__minicsv-3", "minicsv__minicsv-7", "textkit__textkit-2"), 1):
        events += [
            TaskStarted(run=run, ts=ts + i, instance_id=instance, index=i, total=5,
                        injected_workflows=("wf-001",) if i > 2 else ()),
            AgentStep(run=run, ts=ts + i, instance_id=instance, step=1, command="cd /testbed && git status",
                      exit_code=0),
            EvaluationDone(run=run, ts=ts + i, instance_id=instance, resolved=i != 2, reward=float(i != 2),
                           speedup=None, duration_s=2.5),
            TaskFinished(run=run, ts=ts + i, instance_id=instance, exit_status="Submitted", resolved=i != 2,
                         outcome=Outcome.RESOLVED if i != 2 else Outcome.UNRESOLVED, reward=float(i != 2), speedup=None, steps=5, elapsed_s=11.0, cost=0.0012),
            CheckpointSaved(run=run, ts=ts + i, done=i, resolved=i - (i >= 2)),
        ]
    events += [
        MemoryUpdated(run=run, ts=ts + 4, version=1, workflows=2),
        TaskStarted(run=run, ts=ts + 5, instance_id="rangeset__rangeset-4", index=4, total=5,
                    injected_workflows=("wf-001", "wf-002")),
        StatusChanged(run=run, ts=ts + 5, phase="running", instance_id="rangeset__rangeset-4", step=3),
    ]
    for n, rate in enumerate((0.0, 1.0, 2.0, 2.5, 3.0, 2.0, 4.0)):
        events.append(MetricsSnapshot(run=run, ts=ts + 6 + n, metrics=MetricsData(
            requests=40, retries=2, rate_limited=1, connections_open=2, connections_created=3,
            connections_reused=37, per_host=(HostConnections("127.0.0.1:8088", 2, 3, 37),),
            llm_latency_p50=0.42, llm_latency_p95=1.37, evaluations=3, evaluations_per_minute=rate,
            prompt_tokens=12_345, completion_tokens=1_234, cost=0.0036)))
    return events


async def settle(app, group: str = "runs") -> None:
    """Wait for the app's workers of one group (the fleet's own worker lives until quit)."""
    workers = [w for w in app.workers if w.group == group]
    if workers:
        await app.workers.wait_for_complete(workers)


async def leftover_containers() -> int | None:
    """Containers labelled awm-tui=1 on the first daemon that answers; None without a daemon."""
    import asyncio

    import aiodocker

    from awm_tui.engine.sandbox.docker import LABEL, docker_url_candidates, normalize_docker_url

    for url in docker_url_candidates():
        docker = aiodocker.Docker(url=normalize_docker_url(url))
        try:
            found = await asyncio.wait_for(
                docker.containers.list(all=True, filters={"label": [f"{LABEL}=1"]}), 5)
            return len(found)
        except (aiodocker.DockerError, OSError, asyncio.TimeoutError, ValueError):
            continue
        finally:
            await docker.close()
    return None


# -- driving panes against the real engine -------------------------------------------------------

async def type_into(pilot, field, text: str) -> None:
    """Clear an Input, then type `text` key by key as a user would."""
    field.focus()
    field.value = ""
    await pilot.press(*text)


async def wait_until(pilot, condition, *, timeout: float = 30.0, what: str = "condition") -> None:
    """Let the app run until `condition()` holds (engine progress has no other signal to await)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.05)


async def run_finished(pilot, app) -> None:
    """Wait for the engine to end every run, then for its last events to reach the panes."""
    await app.fleet.wait()
    app.relay.flush_events()
    app.relay.flush_metrics()
    await pilot.pause()
