"""The bash-only agent: one model reply, one command, one observation, until submit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from awm_tui.config.models import RunConfig
from awm_tui.engine import prompts, protocol, replies
from awm_tui.engine.context import PROBE, ContextWindow, probe_says_dropped, system_maybe_dropped
from awm_tui.engine.events import AgentStep, Event, LLMCall, LogLine, StatusChanged
from awm_tui.engine.llm import ChatResult, LLMClient, LLMContextLimit, LLMError, LLMFatalError
from awm_tui.engine.llm.budget import Budget, BudgetReached
from awm_tui.engine.llm.cost import CHARS_PER_TOKEN_ESTIMATE
from awm_tui.engine.sandbox.base import Sandbox
from awm_tui.engine.tasks import Task

PREVIEW_CHARS = 400
PATCH_COMMAND = "git add -A >/dev/null 2>&1; git diff --cached --no-color HEAD"
"""`git add -A` first, so files the agent created are part of the patch."""


@dataclass
class Step:
    command: str
    exit_code: int | None
    output: str
    timed_out: bool = False


@dataclass
class AgentResult:
    exit_status: str
    """`Submitted`, `FormatError`, `StepLimit`, `CostLimit`, `TimeLimit`, `ContextLimit`."""
    patch: str
    steps: list[Step] = field(default_factory=list)
    """The commands run; a reply without a usable command is a model call, not a step."""
    model_calls: int = 0
    messages: list[dict] = field(default_factory=list)
    cost: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    """This task's model calls' tokens: its own, however many tasks of the run are in flight."""
    elapsed_s: float = 0.0


class Agent:
    """Solves one task in one sandbox. Raises LLMFatalError (stop the run), LLMError
    (this task failed after retries) and BudgetReached (a run, key or fleet budget:
    stop the run); every other outcome is a result, a prompt too long for the model's
    window (`ContextLimit`) and a call that could cross `max_cost` (`CostLimit`) included."""

    def __init__(self, llm: LLMClient, run: RunConfig, emit: Callable[[Event], None]) -> None:
        self.llm, self.run, self.emit = llm, run, emit
        self._system_checked = llm.profile.system_prompt_mode != "system"
        """Whether the server's prompt count was compared with the system text (once per run)."""
        self._estimates_said = False

    async def solve(self, task: Task, sandbox: Sandbox, workflows_block: str) -> AgentResult:
        started = time.monotonic()
        result = AgentResult("Submitted", "", messages=[
            {"role": "system", "content": prompts.SYSTEM},
            {"role": "user", "content": prompts.instance_prompt(task, sandbox.workdir, workflows_block)},
        ])
        try:
            async with asyncio.timeout(self.run.task_timeout):
                result.exit_status = await self._loop(task, sandbox, result)
        except TimeoutError:
            if self.llm.rate_limited:
                # The time went on waiting out rate limits, not on the task: no result
                # to score (a 0 would be the provider's), so a task error a rerun retries.
                raise LLMError(f"rate limited past the task's time limit ({self.run.task_timeout:g}s) on key "
                               f"{self.llm.masked_key}: the call was still waiting out 429s", status=429) from None
            result.exit_status = "TimeLimit"
        result.patch = await self._patch(sandbox)
        result.elapsed_s = time.monotonic() - started
        return result

    async def _loop(self, task: Task, sandbox: Sandbox, result: AgentResult) -> str:
        run, messages = self.run, result.messages
        window = ContextWindow(self.llm.profile.max_input_tokens)
        budget = self.llm.budget.with_task(run.max_cost, task.instance_id)
        format_errors = 0
        for step in range(1, run.max_steps + 1):
            self.emit(StatusChanged(run=run.name, phase="running", instance_id=task.instance_id, step=step))
            sent, trim = window.fit(messages)
            if trim is not None:
                self._log("info", f"{task.instance_id}: {trim.describe(window.window or 0)}")
            try:
                reply = await self._chat(sent, budget, task.instance_id)
            except BudgetReached as exc:
                if exc.scope != "task":
                    raise
                self._log("info", f"{task.instance_id}: not calling the model: {exc}; the task ends with CostLimit")
                return "CostLimit"
            except LLMContextLimit as exc:
                self._log("warning", f"{task.instance_id}: {exc}; the task ends with ContextLimit"
                                     f"{self._window_hint(exc)}")
                return "ContextLimit"
            result.cost += reply.cost
            result.prompt_tokens += reply.prompt_tokens
            result.completion_tokens += reply.completion_tokens
            result.model_calls += 1
            if reply.usage_estimated:
                self._say_estimated()   # nothing to calibrate on
            else:
                window.observe(sent, reply.prompt_tokens)
            await self._check_system(sent, reply)
            messages.append({"role": "assistant", "content": reply.content})
            if reply.finish_reason == "length":
                limit = self.llm.profile.max_output_tokens
                shown = str(limit) if limit else "the server's default"
                command, why = None, f"reply cut at max_output_tokens ({shown}); raise it"
                correction = prompts.cut_reply(f"{limit} tokens" if limit else "the server's limit")
            else:
                command, why = replies.extract_command(reply.content)
                correction = prompts.format_error(why)
            if command is None:
                format_errors += 1
                self.emit(AgentStep(run=run.name, instance_id=task.instance_id, step=step, command="",
                                    exit_code=None, output_preview=why, format_error=True))
                if format_errors >= run.max_format_errors:
                    return "FormatError"
                messages.append({"role": "user", "content": correction})
                continue
            format_errors = 0
            out = await sandbox.exec(command, timeout_s=run.command_timeout, workdir=sandbox.workdir)
            result.steps.append(Step(command, out.exit_code, out.output, out.timed_out))
            self.emit(AgentStep(run=run.name, instance_id=task.instance_id, step=step, command=command,
                                exit_code=out.exit_code, output_preview=out.output[:PREVIEW_CHARS],
                                truncated=out.truncated, timed_out=out.timed_out))
            if out.output.lstrip().startswith(protocol.SUBMIT_MARKER):
                return "Submitted"
            messages.append({"role": "user", "content": prompts.observation(
                out.exit_code, out.output, truncated=out.truncated, timed_out=out.timed_out,
                timeout_s=run.command_timeout)})
        return "StepLimit"

    async def _chat(self, messages: list[dict], budget: Budget, instance_id: str) -> ChatResult:
        started = time.monotonic()
        try:
            reply = await self.llm.chat(messages, purpose="agent", budget=budget)
        except LLMError as exc:
            self.emit(LLMCall(run=self.run.name, purpose="agent", latency_s=time.monotonic() - started,
                              instance_id=instance_id, ok=False, error=str(exc), retries=getattr(exc, "retries", 0) or 0))
            raise
        self.emit(LLMCall(run=self.run.name, purpose="agent", latency_s=reply.latency_s, instance_id=instance_id,
                          prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                          cost=reply.cost, retries=reply.retries, model=reply.model,
                          finish_reason=reply.finish_reason, cached_tokens=reply.cached_tokens,
                          usage_estimated=reply.usage_estimated))
        self.emit(self.llm.budget.event(self.run.name))
        return reply

    def _say_estimated(self) -> None:
        if not self._estimates_said:
            self._estimates_said = True
            self._log("warning", f"the server reports no token usage (llama-cpp-python's streamed replies carry "
                                 f"none): tokens and cost are estimated at {CHARS_PER_TOKEN_ESTIMATE:g} characters "
                                 "per token, and budgets count the estimates")

    async def _check_system(self, sent: list[dict], reply: ChatResult) -> None:
        """Once per run: does the system message reach the model? The first call's prompt
        count screens for it (without counts, nothing can); a probe of two one-token
        calls settles it, so a server that keeps it is never warned about."""
        if self._system_checked:
            return
        self._system_checked = True
        if not reply.usage_estimated and not system_maybe_dropped(
                sent, reply.prompt_tokens, reply.content, reply.completion_tokens):
            return
        with_system, without = [await self.llm.count_prompt(messages) for messages in PROBE]
        fix = f'so the format rules never reach the model; set system_prompt_mode = "user" in [{self.run.llm}]'
        if with_system is not None and without is not None:
            if probe_says_dropped(with_system, without):
                self._log("warning", f"the server's chat template drops the system message (a probe counted "
                                     f"{with_system} prompt tokens with one, {without} without), {fix}")
        elif not reply.usage_estimated:
            self._log("warning", f"the server counted {reply.prompt_tokens} prompt tokens, about what the "
                                 f"prompt holds without its system message: its chat template seems to drop it, {fix}")

    def _window_hint(self, exc: LLMContextLimit) -> str:
        if self.llm.profile.max_input_tokens is not None:
            return ""
        size = f" (the server's window is {exc.window:,} tokens, less max_output_tokens)" if exc.window else ""
        return f"; set max_input_tokens in [{self.run.llm}]{size} so old outputs are elided instead"

    def _log(self, level: str, message: str) -> None:
        self.emit(LogLine(run=self.run.name, level=level, message=message))  # type: ignore[arg-type]

    async def _patch(self, sandbox: Sandbox) -> str:
        out = await sandbox.exec(PATCH_COMMAND, timeout_s=60, workdir=sandbox.workdir,
                                 max_output=4 * 1024 * 1024)
        return out.output if out.exit_code == 0 else ""


__all__ = ["Agent", "AgentResult", "LLMFatalError", "Step"]
