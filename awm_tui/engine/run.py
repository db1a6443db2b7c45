"""One AWM online loop: task by task, with memory, buffer, induction and checkpoint."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from awm_tui.config.models import HttpConfig, LLMProfile, RunConfig
from awm_tui.engine.agent import Agent, AgentResult
from awm_tui.engine.evaluation import EvalOutcome, Evaluator
from awm_tui.engine.events import (
    AgentStep, CheckpointSaved, EvaluationDone, Event, EventSink, LLMCall, LogLine, MetricsSnapshot,
    RunControlled, RunFailed, RunFinished, RunStarted, SandboxPlaced, StatusChanged, TaskFinished, TaskStarted,
)
from awm_tui.engine.http.metrics import RunMetrics
from awm_tui.engine.induction.step import InductionStep
from awm_tui.engine.llm import LLMClient, LLMError, LLMFatalError
from awm_tui.engine.llm.budget import Budget, BudgetReached, standalone
from awm_tui.engine.llm.keyhealth import KeyState
from awm_tui.engine.outcomes import ErrorKind, InfraError, Outcome, error_kind
from awm_tui.engine.sandbox.base import Sandbox, SandboxError
from awm_tui.engine.sandbox.factory import SandboxFactory
from awm_tui.engine.scheduler import FollowUp, InFlight, RunControl, RunStatus, Scheduler, TaskStatus
from awm_tui.engine.state import (
    EventLog, Experience, Memory, OutputDir, OutputDirLocked, StateError, StateStore, TaskResult,
    Workflow, select_workflows,
)
from awm_tui.engine.state.atomic import dump_json, replace_files
from awm_tui.engine.state.report import build_report
from awm_tui.engine.tasks import Dataset, Size, Task
from awm_tui.engine.watchdog import touch, unwatched, waiting_on, watched

PREPARE_REPO = (
    "git init -q && printf '__pycache__/\\n*.pyc\\n.pytest_cache/\\n' >> .git/info/exclude && "
    "git add -A && git -c user.name=awm-tui -c user.email=awm-tui@localhost "
    "commit -q --allow-empty -m base"
)
MAX_TASK_ERRORS_IN_A_ROW = 3

log = logging.getLogger(__name__)


class RunRefused(Exception):
    """The run cannot start; the message is one line for the user."""


@dataclass(frozen=True)
class RunOutcome:
    name: str
    status: Literal["finished", "failed", "stopped"]
    done: int
    resolved: int
    errors: int = 0
    """Tasks that ended in an error; they are not checkpointed, so a rerun retries them."""
    reason: str = ""
    output_dir: str = ""
    face_errors: int = 0
    """Events the face (TUI or batch reporter) failed on; the first is in events.jsonl."""
    graders: tuple[tuple[str, str], ...] = ()
    """(instance_id, what graded it) for every graded task in the checkpoint."""


class AWMRun:
    def __init__(self, run: RunConfig, profile: LLMProfile, *, http: HttpConfig,
                 sandboxes: SandboxFactory, evaluator: Evaluator | None, dataset: Dataset,
                 sink: EventSink, metrics_interval: float = 1.0,
                 sizes: Mapping[str, Size] | None = None, key_state: KeyState | None = None) -> None:
        self.run, self.profile, self.http = run, profile, http
        self.sizes = dict(sizes or {})
        """`[dataset] sizes`: repo → size, for rows that carry none."""
        self.sandboxes, self.evaluator, self.dataset = sandboxes, evaluator, dataset
        self.sink, self.metrics_interval = sink, metrics_interval
        self.key_state = key_state
        """The key's fleet-wide state (shared backoff); None: the client keeps its own."""
        self.name = run.name
        self.metrics = RunMetrics()
        self.out = OutputDir(run.output_dir)
        self.store: StateStore  # set by prepare()
        self.events: EventLog | None = None
        """`events.jsonl`, open while the run is prepared or running."""
        self.done = self.resolved = self.errors = 0
        self.task_errors: dict[str, tuple[ErrorKind, str]] = {}
        """This session's tasks that ended in an error (for report.json; a rerun retries them)."""
        self.chosen: list[str] = []
        self._pool: list[Task] = []
        """Every task the run's selection takes, in order; `limit` cuts it."""
        self._started_upto = 0
        """The highest position in `_pool` started in this session."""
        self.control = RunControl(limit=run.limit, workers=run.workers)
        self.in_flight: dict[str, InFlight] = {}
        self._versions: dict[str, int] = {}
        """Memory version each started, unrecorded task began with."""
        self._report_lock = asyncio.Lock()
        self.last_call_latency: float | None = None
        self.phase = "starting"
        self.face_errors = 0
        self._events_failures_seen = 0
        self.budget: Budget | None = None
        """The ledgers its calls are charged to (the fleet sets them after `prepare`)."""

    # -- lifecycle ------------------------------------------------------------

    async def prepare(self) -> None:
        """Lock the output directory and read its state; RunRefused if that fails."""
        try:
            await asyncio.to_thread(self.out.lock, self.name)
        except OutputDirLocked as exc:
            raise RunRefused(str(exc)) from None
        try:
            # Replays what the journal holds beyond the files and gives a fresh
            # directory valid (empty) state files at once.
            self.store = await StateStore.aopen(self.out.layout, self.name)
            state = self.store.state
            self.checkpoint, self.buffer, self.memory, self.preds = (
                state.checkpoint, state.buffer, state.memory, state.preds)
            self.events = await asyncio.to_thread(self.out.event_log)
            self._induce = InductionStep(self.run, self.store, output_dir=self.out.path, emit=self._emit,
                                         log=self._log)
        except StateError as exc:
            await asyncio.to_thread(self.out.unlock)
            raise RunRefused(str(exc)) from None

    def spent_before(self) -> float:
        """USD the checkpointed tasks cost (after `prepare`): what earlier sessions spent
        that counts against the run's budget."""
        return sum(result.cost for result in self.checkpoint.finished.values())

    async def execute(self) -> RunOutcome:
        """Run to the limit. Cancelling the task stops the run cleanly."""
        status: Literal["finished", "failed", "stopped"] = "finished"
        reason = ""
        if self.profile.api_key is None:  # Fleet.start refuses such a run; a direct caller must not get further
            raise RunRefused(f"run {self.name!r} has no API key")
        ticker = asyncio.create_task(self._tick(), name=f"{self.name}-metrics")
        if self.budget is None:
            self.budget = standalone(self.run, self.spent_before())
        llm = LLMClient(self.profile, api_key=self.profile.api_key, http=self.http,
                        metrics=self.metrics, run_name=self.name, key_state=self.key_state, budget=self.budget)
        try:
            await self._loop(llm)
        except asyncio.CancelledError:
            status, reason = "stopped", "stopped by the user"
        except BudgetReached as exc:
            # The task in flight is not checkpointed: a rerun with a higher budget redoes it.
            status, reason = "stopped", f"budget reached: {exc}"
            self._log("warning", f"{reason}; the run stops here (the task in flight is not "
                                 "checkpointed: rerun with a higher budget to continue)")
        except LLMFatalError as exc:
            status, reason = "failed", str(exc)
        except _TooManyErrors as exc:
            status, reason = "failed", str(exc)
        except Exception as exc:  # a bug must end this run only, never the fleet
            status, reason = "failed", f"{type(exc).__name__}: {exc}"
            self._log("error", "".join(traceback.format_exception(exc)).rstrip())
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            await llm.aclose()
        self._emit(MetricsSnapshot(run=self.name, metrics=self.metrics.snapshot()))
        if status == "failed":
            self._emit(StatusChanged(run=self.name, phase="failed", detail=reason))
            self._emit(RunFailed(run=self.name, reason=reason))
        else:
            self._emit(StatusChanged(run=self.name, phase="stopped" if status == "stopped" else "finished",
                                     detail=reason if reason.startswith("budget") else ""))
            self._emit(RunFinished(run=self.name, done=self.checkpoint.done, resolved=self.checkpoint.resolved,
                                   stopped=status == "stopped", reason=reason))
        await self._close()
        return self.outcome(status, reason)

    def outcome(self, status: Literal["finished", "failed", "stopped"], reason: str = "") -> RunOutcome:
        graders = tuple((i, r.grader) for i, r in self.checkpoint.finished.items() if r.grader)
        return RunOutcome(self.name, status, self.checkpoint.done, self.checkpoint.resolved,
                          self.errors, reason, str(self.out.path), self.face_errors, graders)

    async def abandon(self) -> None:
        """Release what `prepare` took, for a run whose `execute` never ran."""
        await self._close()

    async def _close(self) -> None:
        if self.events is not None:
            self._report_event_log_failures()
            await self.events.aclose()
        store = getattr(self, "store", None)  # None once closed
        if store is not None:
            await store.aclose()  # the views catch up with the journal before the lock goes
        await asyncio.to_thread(self.out.unlock)
        # A finished run's buffer and predictions live on in their files; a long
        # session that starts many runs must not keep every one in memory (the
        # induction step holds the store too).
        self.buffer = self.preds = self.store = self._induce = None  # type: ignore[assignment]

    # -- the loop ---------------------------------------------------------------

    async def _loop(self, llm: LLMClient) -> None:
        run = self.run
        self._pool = self.dataset.select(limit=None, include_medium=run.include_medium, filter=run.filter,
                                         slice=run.slice, shuffle=run.shuffle, sizes=self.sizes)
        chosen = self._chosen()
        await self._write_report()  # derived: a rerun rewrites it, whatever a kill left
        todo = [t for t in chosen if not self.checkpoint.is_done(t.instance_id)]
        self._emit(RunStarted(run=self.name, output_dir=str(self.out.path), limit=run.limit,
                              model=self.profile.model, sandbox=self.sandboxes.description,
                              tasks_total=len(chosen), resumed=len(chosen) - len(todo),
                              workers=self.control.workers, memory=run.memory))
        self._emit(llm.budget.event(self.name))
        if len(chosen) < run.limit:
            self._log("warning", f"dataset {self.dataset.name} has only {len(chosen)} tasks of the "
                                 f"sizes this run takes (limit {run.limit})")
        self._llm, self._agent = llm, Agent(llm, run, self._emit)
        self._since_induction, self._errors_in_a_row = self._successes_since_induction(), 0
        if self._since_induction >= run.induce_every:  # it was due when the last session stopped
            self._since_induction = 0
            await self._induce(llm)
        index = {t.instance_id: i for i, t in enumerate(self._pool, 1)}
        scheduler: Scheduler[Task] = Scheduler(
            self.control, lambda t: t.instance_id,
            # The watchdog cancels a task that stalls (Stalled, an InfraError, in _finished).
            lambda t: watched(self._task(self._agent, t, index[t.instance_id], len(self.chosen)),
                              self.run.stall_timeout, name=f"{self.name}-{t.instance_id}"),
            self._finished,
            paused=lambda: self._emit(StatusChanged(run=self.name, phase="paused", detail="nothing in flight")))
        await scheduler.run(lambda: [t for t in self._chosen() if not self.checkpoint.is_done(t.instance_id)])

    def _chosen(self) -> list[Task]:
        """The run's tasks under its current limit (a face may change it while the run goes).
        `self.chosen`, what report.json covers, keeps the tasks started before a shrink."""
        chosen = self._pool[:self.control.limit]
        self.chosen = [t.instance_id for t in self._pool[:max(self.control.limit, self._started_upto)]]
        return chosen

    async def _finished(self, task: Task, done: asyncio.Task) -> FollowUp | None:
        """One task's end, in completion order: errors in a row, and the induction it makes
        due, which then holds the task's worker (so with one worker no task starts before it)."""
        exc = None if done.cancelled() else done.exception()
        # BudgetReached (a run, key or fleet budget) is no task error: raised, it stops the run.
        if done.cancelled() or isinstance(exc, LLMFatalError) or (
                exc is not None and not isinstance(exc, (LLMError, InfraError, OSError))):
            raise exc if exc is not None else asyncio.CancelledError()
        if exc is not None:
            # EvaluationError: the server could not grade this one task (unknown to it,
            # 5xx after retries, unreachable); the run goes on, 3 in a row stop it.
            self.errors += 1
            self._errors_in_a_row += 1
            await self._task_error(task, exc)
            if self._errors_in_a_row >= MAX_TASK_ERRORS_IN_A_ROW:
                raise _TooManyErrors(f"{self._errors_in_a_row} tasks in a row failed; last: {exc}") from None
            return None
        self._errors_in_a_row = 0
        if done.result() and self.run.memory:  # a no-memory run (a twin) never induces
            self._since_induction += 1
            if self._since_induction >= self.run.induce_every:
                self._since_induction = 0
                return self._induce(self._llm)
        return None

    def _successes_since_induction(self) -> int:
        """Successes toward the next induction; a no-memory run (a twin) never induces."""
        return self.store.state.successes_since_induction() if self.run.memory else 0

    async def _task(self, agent: Agent, task: Task, index: int, total: int) -> bool:
        run = self.run
        # A no-memory run (a twin) gets no workflows: the same prompt otherwise.
        workflows = select_workflows(self.memory, task, run.memory_budget_chars) if run.memory else []
        version = self.memory.version
        self._versions[task.instance_id] = version
        self._started_upto = max(self._started_upto, index)
        self.in_flight[task.instance_id] = InFlight(task.instance_id, index, version)
        try:
            return await self._solve(agent, task, index, total, workflows, version)
        finally:
            self.in_flight.pop(task.instance_id, None)

    async def _solve(self, agent: Agent, task: Task, index: int, total: int, workflows: list[Workflow],
                     version: int) -> bool:
        run = self.run
        injected = tuple(w.id for w in workflows)
        self._emit(TaskStarted(run=self.name, instance_id=task.instance_id, index=index, total=total,
                               injected_workflows=injected, memory_version=version))
        self._log("info", f"task {index}/{total} {task.instance_id} (memory v{version})"
                          + (f" with workflows {', '.join(injected)}" if injected else ""))
        started = time.monotonic()
        image = self.sandboxes.image_for(task)
        # The backend places the sandbox (a Docker host with room, preferring one that has the
        # image; with every host full it waits for a slot, which is no stall); the image is then
        # made present where it was placed.
        with unwatched("a Docker host with room for the sandbox"):
            sandbox = await self.sandboxes.create(run_name=self.name, instance_id=task.instance_id,
                                                  image=image, conda_env=self.sandboxes.env_for(task),
                                                  output_dir=self.out.path)
        try:
            try:
                if sandbox.host:
                    self._emit(SandboxPlaced(run=self.name, instance_id=task.instance_id, host=sandbox.host))
                if image is not None:
                    with waiting_on(f"pulling image {image}"):
                        await self._ensure_image(task, image, sandbox)
                self._emit(StatusChanged(run=self.name, phase="running", instance_id=task.instance_id,
                                         detail="preparing sandbox"))
                await self._prepare(sandbox, task)
                result = await agent.solve(task, sandbox, Memory.to_prompt_block(workflows))
                outcome, eval_s = None, 0.0
                if not result.patch.strip():
                    outcome = EvalOutcome.empty()  # SWE-bench grades no empty patch
                elif not run.skip_eval and self.evaluator is not None:
                    self._emit(StatusChanged(run=self.name, phase="evaluating", instance_id=task.instance_id))
                    eval_started = time.monotonic()
                    with unwatched("the evaluation"):  # bounded by [eval] timeout, which may be longer
                        outcome = await self.evaluator.evaluate(
                            sandbox=sandbox, task=task, dataset_name=self.dataset.name, split=run.split,
                            exit_status=result.exit_status, patch=result.patch, metrics=self.metrics)
                    eval_s = time.monotonic() - eval_started
            finally:
                await sandbox.close()
        finally:
            if image is not None:
                await self._release_image(image, sandbox)
        elapsed = time.monotonic() - started
        if outcome is not None and outcome.grader:
            self._emit(EvaluationDone(run=self.name, instance_id=task.instance_id, resolved=outcome.resolved,
                                      reward=outcome.reward, speedup=outcome.speedup,
                                      duration_s=eval_s,
                                      detail=str(outcome.info.get("summary", ""))[:200]))
        with unwatched("saving the result"):  # a commit is never cut in two by the watchdog
            await self._record(task, result, outcome, injected, elapsed, version)
        return bool(outcome and outcome.resolved)

    async def _ensure_image(self, task: Task, image: str, sandbox: Sandbox) -> None:
        """Pull the task's image when the sandbox's daemon lacks it, its progress as events."""
        if await self.sandboxes.has_image(image, sandbox):
            return
        self._emit(StatusChanged(run=self.name, phase="pulling", instance_id=task.instance_id,
                                 detail=f"pulling {image}"))
        self._log("info", f"{task.instance_id}: pulling image {image}")
        def progress(event: Event) -> None:
            touch()  # a pull that reports progress is not stalled
            self._emit(event)

        await self.sandboxes.pull(image, run=self.name, instance_id=task.instance_id, progress=progress,
                                  sandbox=sandbox)

    async def _release_image(self, image: str, sandbox: Sandbox) -> None:
        """`[docker] keep_images = "none"`: the instance image goes once its task is done."""
        try:
            removed = await self.sandboxes.release_image(image, sandbox)
        except InfraError as exc:
            self._log("warning", f"could not remove image {image}: {exc}")
            return
        if removed:
            self._log("info", f"removed image {image} (keep_images = \"none\")")

    async def _prepare(self, sandbox: Sandbox, task: Task) -> None:
        await sandbox.start()
        snapshot = self.dataset.snapshot_path(task)
        if snapshot is None:
            return  # the task's image holds the repository already
        await sandbox.put_directory(snapshot, sandbox.workdir)
        out = await sandbox.exec(PREPARE_REPO, timeout_s=120, workdir=sandbox.workdir)
        if out.exit_code != 0:
            raise SandboxError(f"cannot prepare the repository: {out.output.strip()[-200:]}")

    async def _record(self, task: Task, result: AgentResult, outcome, injected: tuple[str, ...],
                      elapsed: float, version: int) -> None:
        """Commit the task to the state files: all of it or, after a kill, none."""
        evaluated = outcome is not None
        verdict = outcome.outcome if outcome is not None else Outcome.NOT_EVALUATED
        grader = outcome.grader if outcome is not None else ""
        resolved = bool(outcome and outcome.resolved)
        reward = outcome.reward if outcome else 0.0
        speedup = outcome.speedup if outcome else None
        trajectory = {
            "instance_id": task.instance_id, "exit_status": result.exit_status,
            "injected_workflows": list(injected), "memory_version": version, "messages": result.messages,
            "patch": result.patch, "evaluation": outcome.info if outcome else None,
        }
        experience = None
        if evaluated:
            experience = Experience.condense(
                instance_id=task.instance_id, repo=task.repo, problem_statement=task.problem_statement,
                steps=[(s.command, s.exit_code, s.output) for s in result.steps],
                patch=result.patch, exit_status=result.exit_status, reward=reward, speedup=speedup,
                resolved=resolved, injected_workflows=list(injected), memory_version=version)
        task_result = TaskResult(
            instance_id=task.instance_id, exit_status=result.exit_status, outcome=verdict, grader=grader,
            resolved=resolved, reward=reward, speedup=speedup, steps=len(result.steps), cost=result.cost,
            prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
            elapsed_s=elapsed, evaluated=evaluated, memory_version=version)
        # One journal record is the commit point; the files users read follow it.
        await self.store.commit_task(task_result, model=self.profile.model, patch=result.patch,
                                     experience=experience, injected=injected, trajectory=trajectory)
        self.task_errors.pop(task.instance_id, None)
        self._versions.pop(task.instance_id, None)
        await self._write_report()
        self._emit(CheckpointSaved(run=self.name, done=self.checkpoint.done, resolved=self.checkpoint.resolved))
        self._emit(TaskFinished(run=self.name, instance_id=task.instance_id, exit_status=result.exit_status,
                                outcome=verdict, resolved=resolved, reward=reward, speedup=speedup,
                                steps=len(result.steps), elapsed_s=elapsed, cost=result.cost,
                                evaluated=evaluated, grader=grader, model_calls=result.model_calls,
                                memory_version=version))
        graded = f", graded by {grader}" if grader else ""
        self._log("info", f"{task.instance_id}: {result.exit_status}, {verdict.replace('_', ' ')}{graded} "
                          f"({len(result.steps)} commands, {result.model_calls} model calls, {elapsed:.1f} s)")

    def _report(self) -> dict:
        return build_report(self.chosen, self.checkpoint, self.preds.entries, self.task_errors)

    async def _task_error(self, task: Task, exc: BaseException) -> None:
        kind, message = error_kind(exc), " ".join(str(exc).split()) or type(exc).__name__
        self.task_errors[task.instance_id] = (kind, message)
        self._emit(TaskFinished(run=self.name, instance_id=task.instance_id, exit_status="",
                                outcome=Outcome.ERROR, resolved=False, reward=0.0, speedup=None, steps=0,
                                elapsed_s=0.0, cost=0.0, evaluated=False, error=message, error_kind=kind,
                                memory_version=self._versions.pop(task.instance_id, None)))
        self._log("error", f"{task.instance_id}: {kind} error: {message} (not checkpointed: a rerun retries it)")
        await self._write_report()

    async def _write_report(self) -> None:
        """report.json, derived from the committed state (so not itself journalled): written
        after each task and when the run starts, it is never behind after a rerun. One at a
        time: tasks finishing together must not let an older report land last."""
        async with self._report_lock:
            text = dump_json(self._report())  # on the loop: the state does not change under it
            try:
                await asyncio.to_thread(replace_files, [(self.out.layout.report, text)], durable=False)
            except OSError as failed:
                self._log("warning", f"could not write report.json: {failed}")

    # -- live control -------------------------------------------------------------

    def pause(self) -> None:
        """The tasks in flight finish; no new one starts until `resume`."""
        self.control.pause()
        self._controlled("paused: the tasks in flight finish, no new one starts")

    def resume(self) -> None:
        self.control.resume()
        self._controlled("resumed")

    def set_limit(self, limit: int) -> None:
        """Grow or shrink the run; below what is done or started, it just starts no more."""
        self.control.set_limit(limit)
        if self._pool:
            self._chosen()
        self._controlled(f"limit set to {limit}")

    def set_workers(self, workers: int) -> None:
        """Tasks in flight at once from now on (fewer: the extra ones finish first)."""
        self.control.set_workers(workers)
        self._controlled(f"workers set to {workers}")

    def set_budget(self, budget: float | None) -> None:
        """The run's own budget from now on (None: none; its key's and the fleet's still hold).
        Below what it has spent, the run stops at its next model call ("budget reached")."""
        if budget is not None and not budget > 0:
            raise ValueError(f"budget must be more than 0 dollars, got {budget}")
        if self.budget is None:  # not started by a fleet and not executing yet: the chain it would make
            self.budget = standalone(self.run, self.spent_before())
        ledger = self.budget.get("run")
        assert ledger is not None  # every chain a run gets has its own ledger
        ledger.limit = budget
        self._emit(self.budget.event(self.name))  # the pane's spend line shows the new limit
        if budget is None:
            self._log("info", "budget removed: the run has none of its own now")
        elif ledger.spent >= budget:
            self._log("warning", f"budget set to ${budget:.4f}, below the ${ledger.spent:.4f} already spent: "
                                 "the run stops at its next model call")
        else:
            self._log("info", f"budget set to ${budget:.4f} (${ledger.spent:.4f} spent)")

    def _controlled(self, what: str) -> None:
        control = self.control
        self._emit(RunControlled(run=self.name, paused=control.paused, limit=control.limit,
                                 workers=control.workers, tasks_total=len(self._pool[:control.limit])))
        self._log("info", what)

    def status(self) -> RunStatus:
        now = time.monotonic()
        tasks = tuple(TaskStatus(t.instance_id, t.index, t.step, t.phase, t.memory_version, now - t.started)
                      for t in sorted(self.in_flight.values(), key=lambda t: t.index))
        checkpoint = getattr(self, "checkpoint", None)
        return RunStatus(
            name=self.name, phase=self.phase, paused=self.control.paused,
            done=checkpoint.done if checkpoint else 0, resolved=checkpoint.resolved if checkpoint else 0,
            errors=self.errors, limit=self.control.limit, workers=self.control.workers,
            tasks_total=len(self._pool[:self.control.limit]),
            memory_version=self.memory.version if getattr(self, "memory", None) is not None else 0,
            in_flight=tasks, last_call_latency_s=self.last_call_latency)

    # -- reporting --------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self._follow(event)
        if self.events is not None:
            self.events.append(event)
        try:
            self.sink(event)
        except Exception as exc:  # a broken face must not stop the run, but it must leave a trace
            self._face_failed(event, exc)

    def _follow(self, event: Event) -> None:
        """What `status()` reports, kept from the run's own events."""
        match event:
            case AgentStep() if (task := self.in_flight.get(event.instance_id)) is not None:
                task.step = event.step
            case StatusChanged():
                self.phase = event.phase
                if event.instance_id and (task := self.in_flight.get(event.instance_id)) is not None:
                    task.phase = event.phase
                    task.step = event.step or task.step
            case LLMCall() if event.ok:
                self.last_call_latency = event.latency_s

    def _face_failed(self, event: Event, exc: Exception) -> None:
        """Count every failure; the first goes to events.jsonl and the process log with its
        traceback (the face itself cannot be trusted to show it), and the count reaches the
        run's outcome, which batch mode and the TUI print."""
        self.face_errors += 1
        if self.face_errors > 1:
            return
        detail = "".join(traceback.format_exception(exc)).rstrip()
        message = (f"the display failed on a {event.kind} event; the run goes on and further "
                   f"failures are only counted: {type(exc).__name__}: {exc}")
        log.error("run %s: %s\n%s", self.name, message, detail)
        line = LogLine(run=self.name, level="error", message=message)
        if self.events is not None:
            self.events.append(LogLine(run=self.name, level="error", message=f"{message}\n{detail}"))
        try:  # the face may fail on one kind of event only: try to show it once
            self.sink(line)
        except Exception:  # noqa: BLE001 - counted above; nothing more can be shown
            pass

    def _report_event_log_failures(self) -> None:
        """Say once per new failure that events.jsonl lost events (a full disk, say)."""
        assert self.events is not None
        failures = self.events.failures
        if failures > self._events_failures_seen:
            self._events_failures_seen = failures
            self._log("error", f"events.jsonl: {self.events.dropped} event(s) could not be written "
                               f"({self.events.last_failure}); the state files are unaffected")

    def warn(self, message: str) -> None:
        """A warning in this run's log (and its events.jsonl), from the fleet too."""
        self._log("warning", message)

    def _log(self, level: str, message: str) -> None:
        self._emit(LogLine(run=self.name, level=level, message=message))  # type: ignore[arg-type]

    async def _tick(self) -> None:
        last = None
        while True:
            await asyncio.sleep(self.metrics_interval)
            if self.events is not None:
                self._report_event_log_failures()
            snap = self.metrics.snapshot()
            if snap != last:
                last = snap
                self._emit(MetricsSnapshot(run=self.name, metrics=snap))


class _TooManyErrors(Exception):
    pass
