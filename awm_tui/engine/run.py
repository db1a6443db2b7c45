"""One AWM online loop: task by task, with memory, buffer, induction and checkpoint."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from awm_tui.config.models import HttpConfig, LLMProfile, RunConfig
from awm_tui.engine.agent import Agent, AgentResult
from awm_tui.engine.evaluation import EvalOutcome, Evaluator
from awm_tui.engine.events import (
    CheckpointSaved, EvaluationDone, Event, EventSink, InductionDone, LLMCall, LogLine,
    MemoryUpdated, MetricsSnapshot, RunFailed, RunFinished, RunStarted, StatusChanged,
    TaskFinished, TaskStarted,
)
from awm_tui.engine.http.metrics import RunMetrics
from awm_tui.engine.induction import (
    InductionParseError, ParsedInduction, build_induction_messages, induce_rule, parse_induction_reply,
    transcript, write_transcript,
)
from awm_tui.engine.llm import ChatResult, LLMClient, LLMError, LLMFatalError
from awm_tui.engine.outcomes import ErrorKind, InfraError, Outcome, error_kind
from awm_tui.engine.sandbox.base import Sandbox, SandboxError
from awm_tui.engine.sandbox.factory import SandboxFactory
from awm_tui.engine.state import (
    EventLog, Experience, Memory, OutputDir, OutputDirLocked, StateError, StateStore, TaskResult,
    select_workflows,
)
from awm_tui.engine.state.atomic import dump_json, replace_files
from awm_tui.engine.state.report import build_report
from awm_tui.engine.tasks import Dataset, Size, Task

PREPARE_REPO = (
    "git init -q && printf '__pycache__/\\n*.pyc\\n.pytest_cache/\\n' >> .git/info/exclude && "
    "git add -A && git -c user.name=awm-tui -c user.email=awm-tui@localhost "
    "commit -q --allow-empty -m base"
)
INDUCTION_EXAMPLES = 8
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
                 sizes: Mapping[str, Size] | None = None) -> None:
        self.run, self.profile, self.http = run, profile, http
        self.sizes = dict(sizes or {})
        """`[dataset] sizes`: repo → size, for rows that carry none."""
        self.sandboxes, self.evaluator, self.dataset = sandboxes, evaluator, dataset
        self.sink, self.metrics_interval = sink, metrics_interval
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
        self.face_errors = 0
        self._events_failures_seen = 0

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
        except StateError as exc:
            await asyncio.to_thread(self.out.unlock)
            raise RunRefused(str(exc)) from None

    async def execute(self) -> RunOutcome:
        """Run to the limit. Cancelling the task stops the run cleanly."""
        status: Literal["finished", "failed", "stopped"] = "finished"
        reason = ""
        if self.profile.api_key is None:  # Fleet.start refuses such a run; a direct caller must not get further
            raise RunRefused(f"run {self.name!r} has no API key")
        ticker = asyncio.create_task(self._tick(), name=f"{self.name}-metrics")
        llm = LLMClient(self.profile, api_key=self.profile.api_key, http=self.http,
                        metrics=self.metrics, run_name=self.name)
        try:
            await self._loop(llm)
        except asyncio.CancelledError:
            status, reason = "stopped", "stopped by the user"
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
            self._emit(StatusChanged(run=self.name, phase="stopped" if status == "stopped" else "finished"))
            self._emit(RunFinished(run=self.name, done=self.checkpoint.done, resolved=self.checkpoint.resolved,
                                   stopped=status == "stopped"))
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
        # session that starts many runs must not keep every one in memory.
        self.buffer = self.preds = self.store = None  # type: ignore[assignment]

    # -- the loop ---------------------------------------------------------------

    async def _loop(self, llm: LLMClient) -> None:
        run = self.run
        chosen = self.dataset.select(limit=run.limit, include_medium=run.include_medium,
                                     filter=run.filter, slice=run.slice, shuffle=run.shuffle,
                                     sizes=self.sizes)
        self.chosen = [t.instance_id for t in chosen]
        await self._write_report()  # derived: a rerun rewrites it, whatever a kill left
        todo = [t for t in chosen if not self.checkpoint.is_done(t.instance_id)]
        self._emit(RunStarted(run=self.name, output_dir=str(self.out.path), limit=run.limit,
                              model=self.profile.model, sandbox=self.sandboxes.description,
                              tasks_total=len(chosen), resumed=len(chosen) - len(todo), memory=run.memory))
        if len(chosen) < run.limit:
            self._log("warning", f"dataset {self.dataset.name} has only {len(chosen)} tasks of the "
                                 f"sizes this run takes (limit {run.limit})")
        agent = Agent(llm, run, self._emit)
        since_induction, errors_in_a_row = self._successes_since_induction(), 0
        if since_induction >= run.induce_every:  # it was due when the last session stopped
            since_induction = 0
            await self._induce(llm)
        for index, task in enumerate(chosen, 1):
            if self.checkpoint.is_done(task.instance_id):
                continue
            try:
                resolved = await self._task(agent, task, index, len(chosen))
            except (LLMFatalError, asyncio.CancelledError):
                raise
            except (LLMError, InfraError, OSError) as exc:
                # EvaluationError: the server could not grade this one task (unknown to it,
                # 5xx after retries, unreachable); the run goes on, 3 in a row stop it.
                self.errors += 1
                errors_in_a_row += 1
                await self._task_error(task, exc)
                if errors_in_a_row >= MAX_TASK_ERRORS_IN_A_ROW:
                    raise _TooManyErrors(f"{errors_in_a_row} tasks in a row failed; last: {exc}") from None
                continue
            errors_in_a_row = 0
            if resolved and run.memory:
                since_induction += 1
                if since_induction >= run.induce_every:
                    since_induction = 0
                    await self._induce(llm)

    def _successes_since_induction(self) -> int:
        """Successes toward the next induction; a no-memory run (a twin) never induces."""
        return self.store.state.successes_since_induction() if self.run.memory else 0

    async def _task(self, agent: Agent, task: Task, index: int, total: int) -> bool:
        run = self.run
        # A no-memory run (a twin) gets no workflows: the same prompt otherwise.
        workflows = select_workflows(self.memory, task, run.memory_budget_chars) if run.memory else []
        injected = tuple(w.id for w in workflows)
        self._emit(TaskStarted(run=self.name, instance_id=task.instance_id, index=index, total=total,
                               injected_workflows=injected))
        self._log("info", f"task {index}/{total} {task.instance_id}"
                          + (f" with workflows {', '.join(injected)}" if injected else ""))
        started = time.monotonic()
        image = self.sandboxes.image_for(task)
        if image is not None:
            await self._ensure_image(task, image)
        try:
            sandbox = await self.sandboxes.create(run_name=self.name, instance_id=task.instance_id,
                                                  image=image, conda_env=self.sandboxes.env_for(task),
                                                  output_dir=self.out.path)
            try:
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
                    outcome = await self.evaluator.evaluate(
                        sandbox=sandbox, task=task, dataset_name=self.dataset.name, split=run.split,
                        exit_status=result.exit_status, patch=result.patch, metrics=self.metrics)
                    eval_s = time.monotonic() - eval_started
            finally:
                await sandbox.close()
        finally:
            if image is not None:
                await self._release_image(image)
        elapsed = time.monotonic() - started
        if outcome is not None and outcome.grader:
            self._emit(EvaluationDone(run=self.name, instance_id=task.instance_id, resolved=outcome.resolved,
                                      reward=outcome.reward, speedup=outcome.speedup,
                                      duration_s=eval_s,
                                      detail=str(outcome.info.get("summary", ""))[:200]))
        await self._record(task, result, outcome, injected, elapsed)
        return bool(outcome and outcome.resolved)

    async def _ensure_image(self, task: Task, image: str) -> None:
        """Pull the task's image when the daemon lacks it, its progress as events."""
        if await self.sandboxes.has_image(image):
            return
        self._emit(StatusChanged(run=self.name, phase="pulling", instance_id=task.instance_id,
                                 detail=f"pulling {image}"))
        self._log("info", f"{task.instance_id}: pulling image {image}")
        await self.sandboxes.pull(image, run=self.name, instance_id=task.instance_id, progress=self._emit)

    async def _release_image(self, image: str) -> None:
        """`[docker] keep_images = "none"`: the instance image goes once its task is done."""
        try:
            removed = await self.sandboxes.release_image(image)
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
                      elapsed: float) -> None:
        """Commit the task to the state files: all of it or, after a kill, none."""
        evaluated = outcome is not None
        verdict = outcome.outcome if outcome is not None else Outcome.NOT_EVALUATED
        grader = outcome.grader if outcome is not None else ""
        resolved = bool(outcome and outcome.resolved)
        reward = outcome.reward if outcome else 0.0
        speedup = outcome.speedup if outcome else None
        trajectory = {
            "instance_id": task.instance_id, "exit_status": result.exit_status,
            "injected_workflows": list(injected), "messages": result.messages,
            "patch": result.patch, "evaluation": outcome.info if outcome else None,
        }
        experience = None
        if evaluated:
            experience = Experience.condense(
                instance_id=task.instance_id, repo=task.repo, problem_statement=task.problem_statement,
                steps=[(s.command, s.exit_code, s.output) for s in result.steps],
                patch=result.patch, exit_status=result.exit_status, reward=reward, speedup=speedup,
                resolved=resolved, injected_workflows=list(injected))
        task_result = TaskResult(
            instance_id=task.instance_id, exit_status=result.exit_status, outcome=verdict, grader=grader,
            resolved=resolved, reward=reward, speedup=speedup, steps=len(result.steps), cost=result.cost,
            prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
            elapsed_s=elapsed, evaluated=evaluated)
        # One journal record is the commit point; the files users read follow it.
        await self.store.commit_task(task_result, model=self.profile.model, patch=result.patch,
                                     experience=experience, injected=injected, trajectory=trajectory)
        self.task_errors.pop(task.instance_id, None)
        await self._write_report()
        self._emit(CheckpointSaved(run=self.name, done=self.checkpoint.done, resolved=self.checkpoint.resolved))
        self._emit(TaskFinished(run=self.name, instance_id=task.instance_id, exit_status=result.exit_status,
                                outcome=verdict, resolved=resolved, reward=reward, speedup=speedup,
                                steps=len(result.steps), elapsed_s=elapsed, cost=result.cost,
                                evaluated=evaluated, grader=grader, model_calls=result.model_calls))
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
                                elapsed_s=0.0, cost=0.0, evaluated=False, error=message, error_kind=kind))
        self._log("error", f"{task.instance_id}: {kind} error: {message} (not checkpointed: a rerun retries it)")
        await self._write_report()

    async def _write_report(self) -> None:
        """report.json, derived from the committed state (so not itself journalled): written
        after each task and when the run starts, it is never behind after a rerun."""
        text = dump_json(self._report())  # on the loop: the state does not change under it
        try:
            await asyncio.to_thread(replace_files, [(self.out.layout.report, text)], durable=False)
        except OSError as failed:
            self._log("warning", f"could not write report.json: {failed}")

    # -- induction --------------------------------------------------------------

    async def _induce(self, llm: LLMClient) -> None:
        run = self.run
        started_at = time.time()
        examples = self.buffer.recent_successes(INDUCTION_EXAMPLES)
        self._emit(StatusChanged(run=self.name, phase="inducing", detail=f"from {len(examples)} successes"))
        try:
            if run.induction == "llm":
                workflows = await self._ask_model(llm, examples)
            else:
                workflows = induce_rule(examples)
        except (ValueError, LLMError) as exc:
            if isinstance(exc, LLMFatalError):
                raise
            await self.store.commit_induction(started_at, changed=False)  # ran: not due again on resume
            self._emit(InductionDone(run=self.name, mode=run.induction, ok=False, error=str(exc)[:300]))
            self._log("warning", f"induction failed, memory kept as it was: {exc}")
            return
        diff = self.memory.apply_induction(
            workflows, run.induction, sources=[e.instance_id for e in examples],
            repos=sorted({e.repo for e in examples}))
        await self.store.commit_induction(started_at, changed=bool(diff))
        self._emit(InductionDone(run=self.name, mode=run.induction, ok=True, added=diff.added,
                                 changed=diff.changed, removed=diff.removed))
        self._emit(MemoryUpdated(run=self.name, version=self.memory.version, workflows=len(self.memory.workflows)))
        self._log("info", f"induction: +{len(diff.added)} ~{len(diff.changed)} -{len(diff.removed)}, "
                          f"{len(self.memory.workflows)} workflows in memory (v{self.memory.version})")

    async def _ask_model(self, llm: LLMClient, examples: list[Experience]) -> list[dict]:
        """The workflows the model induces. Each prompt and reply is kept in inductions/,
        and a reply that cannot be used fails with its reason and where it is kept."""
        messages = build_induction_messages(examples, self.memory.workflows)
        reply = None
        started = time.monotonic()
        try:
            reply = await llm.chat(messages, purpose="induction")
            self._emit(LLMCall(run=self.name, purpose="induction", latency_s=time.monotonic() - started,
                               prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                               cost=reply.cost, retries=reply.retries))
            parsed = parse_induction_reply(reply.content)
        except LLMError as exc:
            await self._keep_transcript(messages, reply, None, str(exc), examples)
            raise
        except InductionParseError as exc:
            where = await self._keep_transcript(messages, reply, None, str(exc), examples)
            raise InductionParseError(f"{exc} (prompt and reply in {where})") from None
        where = await self._keep_transcript(messages, reply, parsed, "", examples)
        if parsed.note:
            self._log("warning", f"induction reply: {parsed.note} (prompt and reply in {where})")
        return parsed.workflows

    async def _keep_transcript(self, messages: list[dict], reply: ChatResult | None,
                               parsed: ParsedInduction | None, error: str,
                               examples: list[Experience]) -> Path:
        record = transcript(messages=messages, reply=reply, parsed=parsed, error=error,
                            memory_version=self.memory.version, sources=[e.instance_id for e in examples])
        saved = await asyncio.to_thread(write_transcript, self.out.layout.inductions, record)
        return saved.relative_to(self.out.path)

    # -- reporting --------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        if self.events is not None:
            self.events.append(event)
        try:
            self.sink(event)
        except Exception as exc:  # a broken face must not stop the run, but it must leave a trace
            self._face_failed(event, exc)

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
