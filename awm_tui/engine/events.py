"""Typed, immutable events: the only way the engine reports to its faces.

The TUI turns them into messages, batch mode into lines, and every run
appends them to its `events.jsonl`. No event ever carries an API key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from awm_tui.engine.outcomes import ErrorKind, Outcome

Phase = Literal["idle", "starting", "pulling", "running", "evaluating", "inducing", "finished", "failed",
                "stopped", "paused"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    run: str
    ts: float = field(default_factory=time.time)
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict. Shallow on purpose: `dataclasses.asdict` deep-copies,
        which cost a sixth of the engine's CPU at 100 runs; fields are immutable
        scalars and tuples, so only nested dataclasses need converting."""
        data: dict[str, Any] = {"kind": self.kind}
        for name in _field_names(type(self)):
            value = getattr(self, name)
            data[name] = (dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type)
                          else value)
        return data


_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


EventSink = Callable[[Event], None]
"""Called on the event loop for every event; must not block."""


def _kind(name: str):
    def deco(cls):
        cls.kind = name
        return cls
    return deco


@_kind("run_started")
@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Event):
    output_dir: str
    limit: int
    model: str
    sandbox: str
    """`docker` or `local (not isolated)`."""
    tasks_total: int
    resumed: int = 0
    """Tasks already finished in the checkpoint, skipped now."""
    workers: int = 1
    """Tasks in flight at once."""


@_kind("status")
@dataclass(frozen=True, slots=True, kw_only=True)
class StatusChanged(Event):
    phase: Phase
    instance_id: str | None = None
    step: int | None = None
    detail: str = ""


@_kind("task_started")
@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStarted(Event):
    instance_id: str
    index: int
    """1-based position among this run's tasks."""
    total: int
    injected_workflows: tuple[str, ...] = ()
    memory_version: int = 0
    """The memory version the task started with (its workflows were chosen from it)."""


@_kind("agent_step")
@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStep(Event):
    instance_id: str
    step: int
    command: str
    exit_code: int | None
    output_preview: str = ""
    truncated: bool = False
    timed_out: bool = False
    format_error: bool = False


@_kind("llm_call")
@dataclass(frozen=True, slots=True, kw_only=True)
class LLMCall(Event):
    purpose: Literal["agent", "induction"]
    latency_s: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    retries: int = 0
    ok: bool = True
    error: str = ""
    model: str = ""
    """The model as the server reported it in its reply."""
    finish_reason: str = ""
    """`stop`, `length` (the reply was cut at max_output_tokens), …"""


@_kind("evaluation_done")
@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluationDone(Event):
    instance_id: str
    resolved: bool
    reward: float
    speedup: float | None
    duration_s: float
    detail: str = ""


@_kind("task_finished")
@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFinished(Event):
    instance_id: str
    exit_status: str
    """The agent's: `Submitted`, `FormatError`, `StepLimit`, `CostLimit`, `TimeLimit`, `ContextLimit`
    (empty when the task failed before the agent finished)."""
    outcome: Outcome
    resolved: bool
    reward: float
    speedup: float | None
    steps: int
    """Commands run; replies without a usable command are counted in `model_calls` only."""
    elapsed_s: float
    cost: float
    evaluated: bool = True
    model_calls: int = 0
    error: str = ""
    """One line, for `Outcome.ERROR` (the task is not checkpointed: a rerun retries it)."""
    error_kind: ErrorKind | None = None
    grader: str = ""
    """What graded it: `swebench:<log_parser>`, `pytest`, `server <url>`; empty when nothing did."""
    memory_version: int | None = None
    """The memory version the task started with."""


@_kind("image_pull")
@dataclass(frozen=True, slots=True, kw_only=True)
class ImagePull(Event):
    """Progress of pulling a task's missing image (one event per layer change, throttled)."""

    instance_id: str
    image: str
    layers_done: int = 0
    layers_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    free_bytes: int | None = None
    """Free space where the daemon keeps images, when this machine can see it."""
    done: bool = False
    error: str = ""

    def figures(self) -> str:
        """` (3/7 layers, 412/980 MB, 61.2 GB free)`: what the pull has done so far."""
        parts = []
        if self.layers_total:
            parts.append(f"{self.layers_done}/{self.layers_total} layers")
        if self.bytes_total:
            parts.append(f"{self.bytes_done / 1e6:.0f}/{self.bytes_total / 1e6:.0f} MB")
        if self.free_bytes is not None:
            parts.append(f"{self.free_bytes / 1e9:.1f} GB free")
        return f" ({', '.join(parts)})" if parts else ""


@_kind("induction_started")
@dataclass(frozen=True, slots=True, kw_only=True)
class InductionStarted(Event):
    memory_version: int
    """The version it starts from; inductions of one run never overlap."""
    examples: int


@_kind("run_control")
@dataclass(frozen=True, slots=True, kw_only=True)
class RunControlled(Event):
    """The run's live settings after a face changed them (pause, resume, limit, workers)."""

    paused: bool
    limit: int
    workers: int
    tasks_total: int


@_kind("induction_done")
@dataclass(frozen=True, slots=True, kw_only=True)
class InductionDone(Event):
    mode: Literal["llm", "rule"]
    ok: bool
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    error: str = ""


@_kind("memory_updated")
@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryUpdated(Event):
    version: int
    workflows: int


@_kind("checkpoint_saved")
@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointSaved(Event):
    done: int
    resolved: int


@dataclass(frozen=True, slots=True)
class HostConnections:
    host: str
    open: int
    created: int
    reused: int


@dataclass(frozen=True, slots=True)
class MetricsData:
    """A point-in-time copy of one run's counters; safe to hand to any thread."""

    requests: int = 0
    errors: int = 0
    retries: int = 0
    rate_limited: int = 0
    """HTTP 429 answers seen."""
    connections_open: int = 0
    connections_created: int = 0
    connections_reused: int = 0
    per_host: tuple[HostConnections, ...] = ()
    llm_latency_p50: float | None = None
    llm_latency_p95: float | None = None
    evaluations: int = 0
    evaluations_per_minute: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    truncated_replies: int = 0
    """Replies cut at max_output_tokens (`finish_reason: "length"`)."""


@_kind("metrics")
@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSnapshot(Event):
    metrics: MetricsData


@_kind("log")
@dataclass(frozen=True, slots=True, kw_only=True)
class LogLine(Event):
    level: Literal["debug", "info", "warning", "error"] = "info"
    message: str


@_kind("run_finished")
@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(Event):
    done: int
    resolved: int
    stopped: bool = False
    """True when the user stopped the run before its limit."""


@_kind("run_failed")
@dataclass(frozen=True, slots=True, kw_only=True)
class RunFailed(Event):
    reason: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted, StatusChanged, TaskStarted, AgentStep, LLMCall, EvaluationDone,
        TaskFinished, ImagePull, InductionDone, MemoryUpdated, CheckpointSaved, MetricsSnapshot,
        LogLine, RunFinished, RunFailed,
        InductionStarted, RunControlled,
    )
}


def _typed_outcome(kwargs: dict[str, Any]) -> None:
    """A task_finished line's outcome as the enum; lines written before outcomes existed
    said an error as `exit_status = "Error: …"` and the rest by `resolved`/`evaluated`."""
    outcome, kind = kwargs.get("outcome"), kwargs.get("error_kind")
    if outcome is None:
        status = str(kwargs.get("exit_status", ""))
        if status.startswith("Error"):
            outcome, kwargs["error"], kwargs["exit_status"] = Outcome.ERROR, status.partition(": ")[2], ""
        else:
            outcome = (Outcome.RESOLVED if kwargs.get("resolved") else
                       Outcome.UNRESOLVED if kwargs.get("evaluated", True) else Outcome.NOT_EVALUATED)
    if outcome in {o.value for o in Outcome}:
        kwargs["outcome"] = Outcome(outcome)
    if kind in {k.value for k in ErrorKind}:
        kwargs["error_kind"] = ErrorKind(kind)


def event_from_dict(data: dict[str, Any]) -> Event | None:
    """The typed event an `events.jsonl` line holds (`to_dict`'s inverse), or None when
    its kind is unknown (written by a newer awm-tui) or its fields do not fit."""
    cls = EVENT_TYPES.get(str(data.get("kind")))
    if cls is None:
        return None
    kwargs: dict[str, Any] = {}
    for name in _field_names(cls):
        if name in data:
            value = data[name]
            kwargs[name] = tuple(value) if isinstance(value, list) else value  # JSON has no tuples
    if cls is TaskFinished:
        _typed_outcome(kwargs)
    if cls is MetricsSnapshot and isinstance(kwargs.get("metrics"), dict):
        metrics = dict(kwargs["metrics"])
        metrics["per_host"] = tuple(HostConnections(**h) for h in metrics.get("per_host") or ())
        kwargs["metrics"] = MetricsData(**metrics)
    try:
        return cls(**kwargs)
    except TypeError:
        return None


def read_event_log(path: str | os.PathLike, kinds: Collection[str] | None = None) -> list[Event]:
    """The events of an `events.jsonl` (blocking: call it through `asyncio.to_thread`).

    `kinds` keeps only those kinds and skips parsing the rest. A torn last line
    (a run still writing, or killed mid-write) and unknown kinds are skipped;
    a missing file is no events."""
    # A cheap byte test first: most lines of a long log are metrics and log lines.
    wanted = None if kinds is None else tuple(f'"{k}"'.encode() for k in kinds)
    found: list[Event] = []
    try:
        with open(path, "rb") as handle:
            for raw in handle:
                if wanted is not None and not any(w in raw for w in wanted):
                    continue
                try:
                    data = json.loads(raw)
                except ValueError:
                    continue
                event = event_from_dict(data) if isinstance(data, dict) else None
                if event is not None and (kinds is None or event.kind in kinds):
                    found.append(event)
    except FileNotFoundError:
        pass
    return found
