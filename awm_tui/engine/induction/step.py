"""A run's induction step: recent successes in, new workflows committed to memory.json.

The run calls it when an induction falls due; one runs at a time, whoever asks
(with several workers two tasks can make one due together). A reply that
cannot be used leaves memory as it was and is not due again on resume.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from awm_tui.config.models import RunConfig
from awm_tui.engine.events import Event, InductionDone, InductionStarted, LLMCall, MemoryUpdated, StatusChanged
from awm_tui.engine.llm import ChatResult, LLMClient, LLMError, LLMFatalError
from awm_tui.engine.state import Experience, StateStore

from .parse import InductionParseError, ParsedInduction, parse_induction_reply
from .prompt import build_induction_messages
from .rules import induce_rule
from .transcript import transcript, write_transcript

INDUCTION_EXAMPLES = 8
"""The recent successes an induction learns from."""


class InductionStep:
    def __init__(self, run: RunConfig, store: StateStore, *, output_dir: Path,
                 emit: Callable[[Event], None], log: Callable[[str, str], None]) -> None:
        self.run, self.store, self.output_dir = run, store, output_dir
        self.name = run.name
        self._emit, self._log = emit, log
        self._lock = asyncio.Lock()

    async def __call__(self, llm: LLMClient) -> None:
        async with self._lock:
            await self._induce(llm)

    async def _induce(self, llm: LLMClient) -> None:
        run, memory = self.run, self.store.state.memory
        started_at = time.time()
        examples = self.store.state.buffer.recent_successes(INDUCTION_EXAMPLES)
        self._emit(InductionStarted(run=self.name, memory_version=memory.version, examples=len(examples)))
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
        diffs = []

        def change() -> bool:  # under the store's commit lock: no task's uses land in between
            diffs.append(memory.apply_induction(
                workflows, run.induction, sources=[e.instance_id for e in examples],
                repos=sorted({e.repo for e in examples})))
            return bool(diffs[0])

        await self.store.commit_induction(started_at, change=change)
        diff = diffs[0]
        self._emit(InductionDone(run=self.name, mode=run.induction, ok=True, added=diff.added,
                                 changed=diff.changed, removed=diff.removed))
        self._emit(MemoryUpdated(run=self.name, version=memory.version, workflows=len(memory.workflows)))
        self._log("info", f"induction: +{len(diff.added)} ~{len(diff.changed)} -{len(diff.removed)}, "
                          f"{len(memory.workflows)} workflows in memory (v{memory.version})")

    async def _ask_model(self, llm: LLMClient, examples: list[Experience]) -> list[dict]:
        """The workflows the model induces. Each prompt and reply is kept in inductions/,
        and a reply that cannot be used fails with its reason and where it is kept."""
        messages = build_induction_messages(examples, self.store.state.memory.workflows)
        reply = None
        started = time.monotonic()
        try:
            reply = await llm.chat(messages, purpose="induction")
            self._emit(LLMCall(run=self.name, purpose="induction", latency_s=time.monotonic() - started,
                               prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                               cost=reply.cost, retries=reply.retries, cached_tokens=reply.cached_tokens,
                               usage_estimated=reply.usage_estimated))
            self._emit(llm.budget.event(self.name))
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
                            memory_version=self.store.state.memory.version,
                            sources=[e.instance_id for e in examples])
        saved = await asyncio.to_thread(write_transcript, self.store.layout.inductions, record)
        return saved.relative_to(self.output_dir)
