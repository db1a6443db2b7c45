"""What a report shows, read from output directories with the engine's state modules.

One `RunReport` per directory: its tasks in finishing order (the curve's x axis),
the inductions placed on that axis, memory's versions with what each induction
added, changed or removed, per-workflow use and success, cost, tokens and time.
`Report` puts the runs side by side: the instances × runs outcome grid.
`--json` prints `Report.model_dump`; the HTML page renders the same object.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from awm_tui.config.twins import twin_of
from awm_tui.engine.events import LLMCall, RunStarted, TaskFinished, TaskStarted, read_event_log
from awm_tui.engine.outcomes import Outcome as TaskOutcome
from awm_tui.engine.state import (
    Memory, OutputLayout, ResolveCurve, RunState, StateError, Workflow, load_state, resolve_curve,
)

Outcome = Literal["resolved", "unresolved", "not evaluated", "error", "not run"]
OUTCOMES: tuple[Outcome, ...] = ("resolved", "unresolved", "not evaluated", "error", "not run")
REPORT_FORMAT = 1


class ReportError(Exception):
    """An input the report cannot use; the message is one line naming it and the fix."""


class TaskRow(BaseModel):
    instance_id: str
    outcome: Outcome
    reward: float = 0.0
    steps: int = 0
    cost: float = 0.0
    elapsed_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    workflows: list[str] = Field(default_factory=list)
    """Workflow ids injected into its prompt."""
    resolved_so_far: int = 0
    """Cumulative resolved after this task: the curve's y (errors are not on the curve)."""


class WorkflowChange(BaseModel):
    id: str
    title: str
    steps_before: list[str] = Field(default_factory=list)
    steps_after: list[str] = Field(default_factory=list)


class MemoryVersion(BaseModel):
    """One induction (or manual edit) that changed memory."""

    version: int
    at: float
    mode: str
    after_tasks: int
    """Tasks finished when it happened: where it sits on the curve."""
    added: list[WorkflowChange] = Field(default_factory=list)
    changed: list[WorkflowChange] = Field(default_factory=list)
    removed: list[WorkflowChange] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    workflows: int = 0
    """Workflows in memory after it."""


class WorkflowUse(BaseModel):
    id: str
    title: str
    version: int
    uses: int
    successes: int
    success_rate: float


class Tally(BaseModel):
    tasks: int = 0
    resolved: int = 0


class RunReport(BaseModel):
    name: str
    path: str
    model: str = ""
    with_memory: bool = True
    """False for a run that injected no workflows and induced none (a twin; from events.jsonl)."""
    twin_of: str | None = None
    """The run whose no-memory twin this is (`NAME-nomem`, config.twins), when it is one."""
    done: int
    resolved: int
    unresolved: int
    not_evaluated: int
    errors: int
    """Tasks that ended in an error and were never checkpointed (from events.jsonl)."""
    tasks: list[TaskRow]
    memory_version: int
    memory: list[MemoryVersion]
    workflows: list[WorkflowUse]
    with_workflows: Tally
    """Evaluated tasks whose prompt had workflows injected, and how many resolved."""
    without_workflows: Tally
    cost: float
    """Agent and induction calls, USD."""
    induction_cost: float
    prompt_tokens: int
    """Every model call's, induction included (per task: `TaskRow`)."""
    completion_tokens: int
    cached_tokens: int = 0
    """Prompt tokens read from the provider's prompt cache, every call's (part of prompt_tokens)."""
    task_time_s: float
    """Sum of the tasks' wall-clock times (evaluation included)."""
    wall_s: float | None
    """First run start to last task finished; None without events."""


class Report(BaseModel):
    format: int = REPORT_FORMAT
    runs: list[RunReport]
    instances: list[str]
    """Every instance any run touched, in first-seen order."""
    grid: dict[str, dict[str, Outcome]]
    """instance_id -> run name -> outcome."""


def _outcome(result) -> Outcome:
    if not result.evaluated:
        return "not evaluated"
    return "resolved" if result.resolved else "unresolved"


def _change(wf_id: str, before: dict[str, Workflow], after: dict[str, Workflow]) -> WorkflowChange:
    old, new = before.get(wf_id), after.get(wf_id)
    shown = new or old
    title = shown.title if shown else wf_id
    return WorkflowChange(id=wf_id, title=title, steps_before=list(old.steps) if old else [],
                          steps_after=list(new.steps) if new else [])


def _memory_versions(memory: Memory, curve: ResolveCurve) -> list[MemoryVersion]:
    versions = []
    for record, mark in zip(memory.history, curve.inductions):
        before = {w.id: w for w in record.previous}
        # None when the version after this one left the (bounded) history.
        after_list = memory.at_version(record.version) or []
        after = {w.id: w for w in after_list}
        versions.append(MemoryVersion(
            version=record.version, at=record.at, mode=record.mode,
            after_tasks=mark.after_tasks,
            added=[_change(i, before, after) for i in record.added],
            changed=[_change(i, before, after) for i in record.changed],
            removed=[_change(i, before, after) for i in record.removed],
            sources=list(record.sources), workflows=len(after_list)))
    return versions


def _load(path: Path) -> tuple[OutputLayout, RunState]:
    """The directory's state as its last commit left it (the views with the journal
    replayed), through the engine's one reader; reading touches nothing."""
    if not path.is_dir():
        what = "not a directory" if path.exists() else "no such directory"
        raise ReportError(f"{path}: {what}; pass a run's output directory (its --output-dir)")
    layout = OutputLayout.of(path)
    if not any(p.is_file() for p in (layout.checkpoint, layout.journal, layout.events)):
        raise ReportError(f"{path}: not an awm-tui output directory (no {layout.checkpoint.name}); "
                          "pass a run's output directory (its --output-dir)")
    try:
        return layout, load_state(layout)
    except StateError as exc:
        raise ReportError(str(exc)) from None


def read_run(path: str | os.PathLike) -> RunReport:
    """One output directory as a report (blocking file reads)."""
    layout, state = _load(Path(path).expanduser().absolute())
    checkpoint, memory, buffer = state.checkpoint, state.memory, state.buffer
    events = read_event_log(layout.events, {"run_started", "task_started", "task_finished", "llm_call"})
    tokens: dict[str, list[int]] = {}
    errors: dict[str, str] = {}
    injected: dict[str, list[str]] = {}  # for tasks the buffer lacks (not evaluated)
    current = None
    induction_cost = 0.0
    cost_from_events = 0.0
    total_tokens = [0, 0, 0]  # prompt, completion, cached: every call, induction included
    model, started, with_memory = "", None, True
    for event in events:
        if isinstance(event, RunStarted):
            model, with_memory = event.model or model, event.memory
            started = event.ts if started is None else started
        elif isinstance(event, TaskStarted):
            current = event.instance_id  # only for calls logged before they named their task
            injected[current] = list(event.injected_workflows)
        elif isinstance(event, LLMCall):
            cost_from_events += event.cost
            total_tokens[0] += event.prompt_tokens
            total_tokens[1] += event.completion_tokens
            total_tokens[2] += event.cached_tokens
            if event.purpose == "induction":
                induction_cost += event.cost
            elif task := event.instance_id or current:
                counts = tokens.setdefault(task, [0, 0])
                counts[0] += event.prompt_tokens
                counts[1] += event.completion_tokens
        elif isinstance(event, TaskFinished):
            if event.outcome is TaskOutcome.ERROR:
                errors[event.instance_id] = f"{event.error_kind} error: {event.error}"
            else:
                errors.pop(event.instance_id, None)
            current = None

    curve = resolve_curve(state)  # the engine's one derivation of the curve, as the TUI draws it
    rows, resolved_so_far = [], 0
    for result, resolved_so_far in zip(checkpoint.finished.values(), curve.resolved):
        experience = buffer.get(result.instance_id)
        # The task's own record (several tasks of a run may be in flight); older checkpoints
        # lack it, and their events are attributed by task.
        recorded = (result.prompt_tokens, result.completion_tokens)
        prompt, completion = recorded if any(recorded) else tokens.get(result.instance_id, (0, 0))
        rows.append(TaskRow(
            instance_id=result.instance_id, outcome=_outcome(result), reward=result.reward, steps=result.steps,
            cost=result.cost, elapsed_s=result.elapsed_s, prompt_tokens=prompt, completion_tokens=completion,
            workflows=list(experience.injected_workflows) if experience else injected.get(result.instance_id, []),
            resolved_so_far=resolved_so_far))
    for instance_id in errors:
        if not checkpoint.is_done(instance_id):
            prompt, completion = tokens.get(instance_id, (0, 0))
            rows.append(TaskRow(instance_id=instance_id, outcome="error", prompt_tokens=prompt,
                                completion_tokens=completion, workflows=injected.get(instance_id, []),
                                resolved_so_far=resolved_so_far))

    name = checkpoint.run_name or layout.path.name
    finished_at = [r.finished_at for r in checkpoint.finished.values()]
    task_cost = sum(r.cost for r in checkpoint.finished.values())
    count = {o: sum(1 for r in rows if r.outcome == o) for o in OUTCOMES}
    evaluated = [r for r in rows if r.outcome in ("resolved", "unresolved")]
    helped = [r for r in evaluated if r.workflows]
    alone = [r for r in evaluated if not r.workflows]
    return RunReport(
        name=name, path=str(layout.path), model=model, with_memory=with_memory,
        twin_of=None if with_memory else twin_of(name),
        done=checkpoint.done, resolved=checkpoint.resolved, unresolved=count["unresolved"],
        not_evaluated=count["not evaluated"], errors=count["error"], tasks=rows,
        memory_version=memory.version, memory=_memory_versions(memory, curve),
        workflows=[WorkflowUse(id=w.id, title=w.title, version=w.version, uses=w.uses, successes=w.successes,
                               success_rate=round(w.success_rate, 4)) for w in memory.workflows],
        with_workflows=Tally(tasks=len(helped), resolved=sum(r.outcome == "resolved" for r in helped)),
        without_workflows=Tally(tasks=len(alone), resolved=sum(r.outcome == "resolved" for r in alone)),
        # Events hold every call (induction and errored tasks too); without them, the checkpoint's.
        cost=cost_from_events if events else task_cost, induction_cost=induction_cost,
        prompt_tokens=total_tokens[0], completion_tokens=total_tokens[1], cached_tokens=total_tokens[2],
        task_time_s=sum(r.elapsed_s for r in checkpoint.finished.values()),
        wall_s=(max(finished_at) - started) if started is not None and finished_at else None)


def build_report(paths: list[str | os.PathLike]) -> Report:
    """Every directory read, runs named uniquely (two dirs may hold runs of one name)."""
    runs: list[RunReport] = []
    seen: dict[str, int] = {}
    for path in paths:
        run = read_run(path)
        n = seen[run.name] = seen.get(run.name, 0) + 1
        if n > 1:
            run.name = f"{run.name} ({n})"
        runs.append(run)
    instances = list(dict.fromkeys(t.instance_id for run in runs for t in run.tasks))
    grid: dict[str, dict[str, Outcome]] = {i: {r.name: "not run" for r in runs} for i in instances}
    for run in runs:
        for task in run.tasks:
            grid[task.instance_id][run.name] = task.outcome
    return Report(runs=runs, instances=instances, grid=grid)
