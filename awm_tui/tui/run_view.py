"""What one pane shows, folded from the engine's events.

`RunView` is immutable: every event gives a new one, so assigning it to a
reactive always triggers a refresh and tests can fold events without widgets.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from awm_tui.engine.events import (
    AgentStep,
    CheckpointSaved,
    EvaluationDone,
    Event,
    HostStatus,
    ImagePull,
    KeyHealth,
    InductionDone,
    LLMCall,
    LogLine,
    MemoryUpdated,
    MetricsData,
    MetricsSnapshot,
    Phase,
    RunControlled,
    RunFailed,
    RunFinished,
    RunStarted,
    Spend,
    SpendUpdated,
    SandboxPlaced,
    StatusChanged,
    TaskFinished,
    TaskStarted,
)
from awm_tui.engine.outcomes import Outcome

SPARK_POINTS = 60
"""Evaluation-throughput history kept for the sparkline (one point per metrics tick)."""

ACTIVE_PHASES: frozenset[Phase] = frozenset({"starting", "pulling", "running", "evaluating", "inducing",
                                             "paused"})


@dataclass(frozen=True, slots=True)
class TaskView:
    """One task in flight, as its pane shows it."""

    index: int
    step: int = 0
    phase: Phase = "running"
    memory_version: int = 0
    host: str = ""
    """The Docker host its container went to (`[[docker.hosts]]`), once placed."""


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One finished task on the curve's x axis (tasks that ended in an error are not)."""

    resolved: int
    """Cumulative resolved after this task."""
    tokens: int | None = None
    """The task's own agent tokens (prompt + completion), from the calls that name it; None
    for tasks of an older checkpoint, which did not keep them."""
    cost: float = 0.0


@dataclass(frozen=True, slots=True)
class Curve:
    """A run's resolve curve, tokens and cost per task, and where memory changed."""

    points: tuple[CurvePoint, ...] = ()
    inductions: tuple[int, ...] = ()
    """Tasks done when each induction changed memory (0 = before the first)."""

    @property
    def resolved(self) -> int:
        return self.points[-1].resolved if self.points else 0


def extend_curve(curve: Curve, event: Event, tokens: int = 0) -> Curve:
    """The live curve after `event`: a checkpointed task adds a point, an induction that
    changed memory adds a mark (the rule `engine.state.resolve_curve` applies to committed
    state, from which `output_reading.state_curve` seeds a resumed run's curve)."""
    match event:
        case TaskFinished() if event.outcome is not Outcome.ERROR:
            point = CurvePoint(curve.resolved + int(event.resolved), tokens, event.cost)
            return replace(curve, points=curve.points + (point,))
        case InductionDone() if event.ok and (event.added or event.changed or event.removed):
            return replace(curve, inductions=curve.inductions + (len(curve.points),))
        case _:
            return curve


@dataclass(frozen=True, slots=True)
class RunView:
    phase: Phase = "idle"
    instance_id: str | None = None
    step: int | None = None
    detail: str = ""
    reason: str = ""
    task_index: int = 0
    tasks_total: int = 0
    limit: int = 0
    done: int = 0
    resolved: int = 0
    resumed: int = 0
    model: str = ""
    served_model: str = ""
    """The model as the server names it in its replies; empty until the first one."""
    tokens_estimated: bool = False
    """Some reply came without token counts: the figures hold estimates."""
    sandbox: str = ""
    workflows: int = 0
    memory_version: int = 0
    metrics: MetricsData = field(default_factory=MetricsData)
    evals_history: tuple[float, ...] = ()
    started_at: float | None = None
    pull: ImagePull | None = None
    """The image pull under way (layers, bytes, free space), if any."""
    curve: Curve = field(default_factory=Curve)
    """Seeded from the output directory's state, then extended by events."""
    task_tokens: dict[str, int] = field(default_factory=dict)
    """Agent tokens of each task under way, by instance id (several with `workers` > 1), from
    the LLMCall events that name their task; never changed in place."""
    in_flight: dict[str, TaskView] = field(default_factory=dict)
    """The tasks under way by instance id, in start order (`workers` > 1: several). Never
    changed in place: each event that changes it gives the view a new dict."""
    paused: bool = False
    workers: int = 1
    spend: SpendUpdated | None = None
    """Spend against the run's, its key's and the fleet's budgets (latest)."""
    key: KeyHealth | None = None
    """The health of the run's key (shared with every run on it); None until the fleet says."""
    host: str = ""
    """The Docker host of the task in hand (`[[docker.hosts]]`)."""
    host_up: bool = True
    down_hosts: frozenset[str] = frozenset()
    """Hosts of tasks in flight that the pool has marked down."""

    @property
    def hosts(self) -> frozenset[str]:
        """Every Docker host a task of this run is on now (several with `workers` > 1)."""
        return frozenset({self.host} | {t.host for t in self.in_flight.values()}) - {""}

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE_PHASES

    @property
    def resolve_rate(self) -> float | None:
        return self.resolved / self.done if self.done else None


def _task_changed(view: RunView, instance_id: str | None, **changes: object) -> dict[str, TaskView]:
    task = view.in_flight.get(instance_id or "")
    if task is None:
        return view.in_flight
    return {**view.in_flight, instance_id or "": replace(task, **changes)}  # type: ignore[arg-type]


def apply_event(view: RunView, event: Event) -> RunView:
    """The view after `event`; events that change no figure return `view` itself."""
    match event:
        case RunStarted():
            return replace(
                view, phase="starting", reason="", limit=event.limit, tasks_total=event.tasks_total,
                model=event.model, sandbox=event.sandbox, resumed=event.resumed,
                done=max(view.done, event.resumed), started_at=view.started_at or event.ts,
                in_flight={}, paused=False, workers=event.workers,
            )
        case StatusChanged():
            in_flight = view.in_flight
            if event.instance_id in in_flight:
                task = in_flight[event.instance_id]
                in_flight = _task_changed(view, event.instance_id, phase=event.phase,
                                          step=event.step or task.step)
            return replace(view, phase=event.phase, instance_id=event.instance_id or view.instance_id,
                           step=event.step, detail=event.detail, in_flight=in_flight)
        case TaskStarted():
            task = TaskView(event.index, memory_version=event.memory_version)
            return replace(view, phase="running", instance_id=event.instance_id, step=0,
                           task_index=event.index, tasks_total=event.total,
                           in_flight={**view.in_flight, event.instance_id: task}, host="", host_up=True)
        case SandboxPlaced():
            return replace(view, host=event.host, host_up=True, down_hosts=view.down_hosts - {event.host},
                           in_flight=_task_changed(view, event.instance_id, host=event.host))
        case HostStatus() if event.url in view.hosts and (event.url in view.down_hosts) == event.up:
            down = view.down_hosts - {event.url} if event.up else view.down_hosts | {event.url}
            host_up = event.up if event.url == view.host else view.host_up
            return replace(view, host_up=host_up, down_hosts=down)
        case AgentStep():
            return replace(view, instance_id=event.instance_id, step=event.step,
                           in_flight=_task_changed(view, event.instance_id, step=event.step))
        case RunControlled():
            return replace(view, paused=event.paused, limit=event.limit, workers=event.workers,
                           tasks_total=event.tasks_total)
        case ImagePull():
            return replace(view, pull=None if event.done else event)
        case LLMCall():
            served = event.model if event.ok and event.model else view.served_model
            tokens = event.prompt_tokens + event.completion_tokens if event.purpose == "agent" else 0
            estimated = view.tokens_estimated or event.usage_estimated
            if served == view.served_model and not tokens and estimated == view.tokens_estimated:
                return view
            counts = view.task_tokens
            if tokens:
                counts = {**counts, event.instance_id: counts.get(event.instance_id, 0) + tokens}
            return replace(view, served_model=served, task_tokens=counts, tokens_estimated=estimated)
        case TaskFinished():
            # Not counted in done/resolved: the engine saves the checkpoint (CheckpointSaved,
            # which sets them) before it says the task finished, so counting both showed one
            # task too many; and a task that ended in an error is not checkpointed.
            counts = dict(view.task_tokens)
            curve = extend_curve(view.curve, event, counts.pop(event.instance_id, 0))
            in_flight = view.in_flight
            if event.instance_id in in_flight:
                in_flight = {k: v for k, v in in_flight.items() if k != event.instance_id}
            return replace(view, curve=curve, task_tokens=counts, in_flight=in_flight)
        case InductionDone():
            curve = extend_curve(view.curve, event)
            return view if curve is view.curve else replace(view, curve=curve)
        case CheckpointSaved():
            # The checkpoint is the truth (it counts resumed tasks too).
            return replace(view, done=event.done, resolved=event.resolved)
        case MemoryUpdated():
            return replace(view, workflows=event.workflows, memory_version=event.version)
        case MetricsSnapshot():
            history = (view.evals_history + (event.metrics.evaluations_per_minute,))[-SPARK_POINTS:]
            return replace(view, metrics=event.metrics, evals_history=history)
        case SpendUpdated():
            return replace(view, spend=event)
        case RunFinished():
            phase: Phase = "stopped" if event.stopped else "finished"
            return replace(view, phase=phase, done=event.done, resolved=event.resolved, step=None,
                           in_flight={}, paused=False, reason=event.reason)
        case RunFailed():
            return replace(view, phase="failed", reason=event.reason, step=None, in_flight={}, paused=False)
        case KeyHealth():
            return replace(view, key=event)
        case _:
            return view


def latest_fleet_spend(views: Iterable[RunView]) -> Spend | None:
    """The fleet's spend as the latest of its runs' events says it (every run's says the same ledger)."""
    latest = max((v.spend for v in views if v.spend is not None), key=lambda s: s.ts, default=None)
    return latest.fleet_spend if latest is not None else None


def spark_data(view: RunView) -> list[float]:
    """The sparkline's points, none before the first evaluation: Sparkline draws a
    lone point as a full bar in its max colour, a full red bar for "0.0"."""
    return list(view.evals_history) if view.metrics.evaluations else []


def _task_text(instance_id: str, task: TaskView, down: frozenset[str] = frozenset()) -> str:
    where = f" on {task.host}" + (" (host DOWN)" if task.host in down else "") if task.host else ""
    if task.phase in ("running", "starting"):
        return (f"{instance_id} step {task.step}" if task.step else instance_id) + where
    return f"{instance_id} {task.phase}{where}"


def status_text(view: RunView) -> str:
    """One line in the users' words: idle / running task X step N / evaluating / …;
    with several tasks in flight, each of them (instance id and step)."""
    task = view.instance_id or "?"
    if view.paused and view.phase not in ("finished", "stopped", "failed"):
        if not view.in_flight:
            return f"paused · {view.done} done; resume to go on"
        tasks = " · ".join(_task_text(i, t, view.down_hosts) for i, t in view.in_flight.items())
        return f"paused · finishing {len(view.in_flight)} in flight: {tasks}"
    if len(view.in_flight) > 1 and view.phase in ("running", "evaluating", "pulling", "starting"):
        tasks = " · ".join(_task_text(i, t, view.down_hosts) for i, t in view.in_flight.items())
        return f"running {len(view.in_flight)} of {view.workers} workers: {tasks}"
    match view.phase:
        case "idle":
            if view.done:
                return f"idle · checkpoint: {view.done} done, {view.resolved} resolved (Start resumes)"
            return "idle"
        case "starting":
            return "starting…"
        case "running":
            where = f" ({view.task_index}/{view.tasks_total})" if view.tasks_total else ""
            step = f" step {view.step}" if view.step else ""
            return f"running task {task}{where}{step}{host_text(view)}"
        case "evaluating":
            return f"evaluating {task}{host_text(view)}"
        case "pulling":
            pull = view.pull
            if pull is None:
                return f"pulling the image of {task}"
            return f"pulling {pull.image}{pull.figures()}"
        case "inducing":
            return "inducing workflows"
        case "paused":
            return f"paused · {view.done} done; resume to go on"
        case "finished":
            return f"finished · {view.done} done, {view.resolved} resolved"
        case "stopped" if view.reason.startswith("budget reached"):
            return (f"budget reached · {view.done} done, {view.resolved} resolved "
                    "(raise the budget, then Start resumes)")
        case "stopped":
            return f"stopped · {view.done} done, {view.resolved} resolved"
        case "failed":
            return f"failed: {view.reason or view.detail or 'unknown reason'}"
        case other:
            return other


def host_text(view: RunView) -> str:
    """` on tcp://host:2376`, with `(host DOWN)` once the pool has marked it down."""
    if not view.host:
        return ""
    return f" on {view.host}" + ("" if view.host_up else " (host DOWN)")


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def log_text(event: Event) -> str | None:
    """The log line an event adds to its pane, or None for events the log skips.

    The engine already logs task starts, task results and inductions as LogLine;
    only what it does not say in words is added here (steps, evaluations, the end)."""
    match event:
        case LogLine():
            mark = {"debug": "·", "info": " ", "warning": "!", "error": "✗"}[event.level]
            return f"{_clock(event.ts)} {mark} {event.message}"
        case AgentStep() if event.format_error or not event.command:
            # No command ran: say why the reply was refused (the model got the same reason).
            return f"{_clock(event.ts)} ! step {event.step}: reply not run: {event.output_preview or 'no command'}"
        case AgentStep():
            exit_code = "timeout" if event.timed_out else event.exit_code
            command = event.command.splitlines()[0][:160]
            return f"{_clock(event.ts)}   step {event.step} $ {command} → {exit_code}"
        case EvaluationDone():
            verdict = "resolved" if event.resolved else "not resolved"
            return f"{_clock(event.ts)}   evaluated {event.instance_id}: {verdict} in {event.duration_s:.1f}s"
        case SandboxPlaced():
            return f"{_clock(event.ts)}   sandbox of {event.instance_id} on {event.host}"
        case ImagePull() if event.done and not event.error:
            return f"{_clock(event.ts)}   pulled {event.image}{event.figures()}"
        case LLMCall() if not event.ok:
            return f"{_clock(event.ts)} ! LLM call failed after {event.retries} retries: {event.error}"
        case RunFinished() if event.reason.startswith("budget reached"):
            return f"{_clock(event.ts)} ● {event.reason}: {event.done} done, {event.resolved} resolved"
        case RunFinished():
            return f"{_clock(event.ts)} ● run {'stopped' if event.stopped else 'finished'}: {event.done} done, {event.resolved} resolved"
        case RunFailed():
            return f"{_clock(event.ts)} ✗ run failed: {event.reason}"
        case _:
            return None
