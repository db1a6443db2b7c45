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
    memory: bool = True
    """False for a no-memory run (a twin): no workflows in its prompts, no induction."""
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
    cached_tokens: int = 0
    """Prompt tokens the provider read from its cache."""
    instance_id: str = ""
    """The task an agent call was for (empty for induction), so figures per task need no
    assumption that a run works on one task at a time."""
    usage_estimated: bool = False
    """The server counted no tokens: these are estimated from characters."""


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


@_kind("sandbox_placed")
@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxPlaced(Event):
    """Which Docker host a task's container went to (with `[[docker.hosts]]`)."""

    instance_id: str
    host: str
    """The host's URL, without user or password."""


@_kind("host_status")
@dataclass(frozen=True, slots=True, kw_only=True)
class HostStatus(Event):
    """One Docker host of the pool, when it changes and every few seconds. `run` is ""."""

    url: str
    """Without user or password; TLS material is never part of it."""
    up: bool
    in_use: int
    """Task containers of this process on it now."""
    capacity: int | None
    """`max_containers`; None when unlimited."""
    exec_per_s: float = 0.0
    images: int = 0
    """Images present on the daemon."""
    free_bytes: int | None = None
    """Free space where the daemon keeps images, when this machine can see it."""
    error: str = ""
    """Why it is down."""
    labels: tuple[tuple[str, str], ...] = ()

    def line(self) -> str:
        """`tcp://127.0.0.1:2375 up 2/4 · 3.1 exec/s · 5 images · 12.3 GB free`."""
        if not self.up:
            return f"{self.url} DOWN" + (f" ({self.error})" if self.error else "")
        used = f"{self.in_use}/{self.capacity}" if self.capacity else f"{self.in_use}"
        free = f" · {self.free_bytes / 1e9:.1f} GB free" if self.free_bytes is not None else ""
        return f"{self.url} up {used} · {self.exec_per_s:.1f} exec/s · {self.images} images{free}"


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
    cached_tokens: int = 0
    """Prompt tokens read from the provider's prompt cache (part of prompt_tokens)."""
    cache_saving: float = 0.0
    """USD the cached tokens saved against the input price (when the profile prices the cache)."""

    def cache_text(self) -> str:
        """`12,345 cached tokens, saved $0.0123`; empty before any cache hit."""
        if not self.cached_tokens:
            return ""
        saved = f", saved ${self.cache_saving:.4f}" if self.cache_saving else ""
        return f"{self.cached_tokens:,} cached tokens{saved}"


@_kind("metrics")
@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSnapshot(Event):
    metrics: MetricsData


@_kind("log")
@dataclass(frozen=True, slots=True, kw_only=True)
class LogLine(Event):
    level: Literal["debug", "info", "warning", "error"] = "info"
    message: str


@dataclass(frozen=True, slots=True)
class Spend:
    """USD spent against a budget (`limit` None: no budget set)."""

    spent: float = 0.0
    limit: float | None = None

    def describe(self) -> str:
        """`$0.0123`, or `$0.0123/$0.0500 (25%)` against a budget."""
        if self.limit is None:
            return f"${self.spent:.4f}"
        return f"${self.spent:.4f}/${self.limit:.4f} ({self.spent / self.limit:.0%})"


@_kind("spend")
@dataclass(frozen=True, slots=True, kw_only=True)
class SpendUpdated(Event):
    """After each model call (and when a run starts): what its budgets stand at."""

    run_spend: Spend
    """The run's, checkpointed tasks of earlier sessions included."""
    fleet_spend: Spend
    """Every run of this process together."""
    key: str = ""
    """The run's key, masked."""
    key_spend: Spend | None = None
    """The run's key across every run on it, in this process."""

    def budgets_text(self) -> str:
        """`run $0.01/$0.05 (20%) · fleet $0.02/$1.00 (2%)`: each budget that is set; empty if none."""
        budgets = (("run", self.run_spend), ("key", self.key_spend), ("fleet", self.fleet_spend))
        return " · ".join(f"{scope} {spend.describe()}" for scope, spend in budgets
                          if spend is not None and spend.limit is not None)


@_kind("run_finished")
@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(Event):
    done: int
    resolved: int
    stopped: bool = False
    """True when the run stopped before its limit: by the user, or at a budget (`reason`)."""
    reason: str = ""
    """Why it stopped early, e.g. `budget reached: run budget …`."""


@_kind("run_failed")
@dataclass(frozen=True, slots=True, kw_only=True)
class RunFailed(Event):
    reason: str


@_kind("key_health")
@dataclass(frozen=True, slots=True, kw_only=True)
class KeyHealth(Event):
    """One API key's state, fleet-wide (`run` is ""; `runs` are the runs using it).
    Never the key: its mask and `key_identity` only."""

    identity: str
    masked: str
    runs: tuple[str, ...] = ()
    in_flight: int = 0
    waiting: int = 0
    """Calls queued on the key: held by a Retry-After or over its in-flight limit."""
    limit: int = 0
    """In-flight calls allowed now (adaptive: halved on a 429, grown back on successes)."""
    max_in_flight: int = 0
    calls: int = 0
    rate_limited: int = 0
    """429 answers on this key, all runs together."""
    retry_after_s: float = 0.0
    """Seconds left of the Retry-After every call on the key waits out (0: none in force)."""
    refused: int | None = None
    """401/402/403 when the provider last refused the key; None after a success."""
    refusal: str = ""
    credits_limit: float | None = None
    """USD: the key's credit limit (OpenRouter `GET /key`); None when unlimited or unknown."""
    credits_remaining: float | None = None
    credits_usage: float | None = None
    credits_checked_at: float | None = None
    credits_low: bool = False

    def line(self) -> str:
        """The key's state in one line, for the pane and the batch status lines."""
        parts = [f"key {self.masked}", f"{self.in_flight}/{self.limit} in flight"]
        if self.waiting:
            parts.append(f"{self.waiting} queued")
        if self.retry_after_s > 0:
            parts.append(f"held {self.retry_after_s:.1f}s")
        if self.rate_limited:
            parts.append(f"429s {self.rate_limited}")
        if self.refused:
            parts.append(f"refused {self.refused}")
        if self.credits_remaining is not None:
            of = f"/${self.credits_limit:.2f}" if self.credits_limit is not None else " left"
            parts.append(f"${self.credits_remaining:.2f}{of}" + (" LOW" if self.credits_low else ""))
        return " · ".join(parts)


@_kind("credits_low")
@dataclass(frozen=True, slots=True, kw_only=True)
class CreditsLow(Event):
    """Sent once when a key's credits fall below the warning threshold."""

    identity: str
    masked: str
    remaining: float
    limit: float | None
    runs: tuple[str, ...] = ()


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted, StatusChanged, TaskStarted, AgentStep, LLMCall, EvaluationDone,
        TaskFinished, ImagePull, InductionDone, MemoryUpdated, CheckpointSaved, MetricsSnapshot,
        LogLine, RunFinished, RunFailed, SpendUpdated, KeyHealth, CreditsLow,
        InductionStarted, RunControlled, SandboxPlaced, HostStatus,
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
    if cls is SpendUpdated:
        for name in ("run_spend", "fleet_spend", "key_spend"):
            if isinstance(kwargs.get(name), dict):
                kwargs[name] = Spend(**kwargs[name])
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
