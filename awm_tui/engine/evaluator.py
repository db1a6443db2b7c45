"""One way for a run to evaluate a patch, whether over HTTP or in-process."""

from __future__ import annotations

import time
from typing import Protocol

from awm_tui.config.models import EvalConfig
from awm_tui.engine.evaluation.harness import EvalOutcome, evaluate_in_sandbox
from awm_tui.engine.http.metrics import RunMetrics
from awm_tui.engine.sandbox.base import Sandbox
from awm_tui.engine.tasks import Task


class Evaluator(Protocol):
    description: str

    async def evaluate(self, *, sandbox: Sandbox, task: Task, dataset_name: str, split: str,
                       exit_status: str, patch: str, metrics: RunMetrics) -> EvalOutcome: ...


class LocalEvaluation:
    """The evaluation server's own code, run in this process against the sandbox."""

    description = "local"

    def __init__(self, config: EvalConfig) -> None:
        self.timeout = config.timeout

    async def evaluate(self, *, sandbox: Sandbox, task: Task, dataset_name: str, split: str,
                       exit_status: str, patch: str, metrics: RunMetrics) -> EvalOutcome:
        started = time.monotonic()
        outcome = await evaluate_in_sandbox(sandbox, task, timeout_s=self.timeout)
        metrics.record_evaluation(time.monotonic() - started)
        return outcome


class ServerEvaluation:
    """POST to the evaluation server (the users' `evaluate_info` contract)."""

    def __init__(self, client) -> None:  # EvalClient, shared by every run of the fleet
        self.client = client
        self.description = f"server {client.url}" if hasattr(client, "url") else "server"

    async def evaluate(self, *, sandbox: Sandbox, task: Task, dataset_name: str, split: str,
                       exit_status: str, patch: str, metrics: RunMetrics) -> EvalOutcome:
        reward, speedup, info = await self.client.evaluate_info(
            exit_status, patch, sandbox.id, task.instance_id, dataset_name, split, metrics=metrics)
        resolved = bool(info.get("resolved", reward >= 1.0)) if isinstance(info, dict) else reward >= 1.0
        return EvalOutcome(reward=reward, speedup=speedup, resolved=resolved, info=info or {})
