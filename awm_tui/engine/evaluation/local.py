"""`[eval] mode = "local"`: the server's evaluation, run in-process on the agent's sandbox."""

from __future__ import annotations

import time

from awm_tui.config.models import EvalConfig
from awm_tui.engine.evaluation.harness import EvalOutcome, evaluate_in_sandbox
from awm_tui.engine.http.metrics import RunMetrics
from awm_tui.engine.sandbox.base import Sandbox
from awm_tui.engine.tasks import Task


class LocalEvaluator:
    """Same harness as the eval server, no HTTP: for one machine without a server."""

    description = "local"

    def __init__(self, config: EvalConfig | None = None, metrics: RunMetrics | None = None) -> None:
        self.config = config or EvalConfig()
        self.metrics = metrics

    async def ready(self) -> None:
        """In-process: nothing to reach before the first evaluation."""

    async def evaluate(self, *, sandbox: Sandbox, task: Task, patch: str | None = None,
                       metrics: RunMetrics | None = None, dataset_name: str = "", split: str = "",
                       exit_status: str = "") -> EvalOutcome:
        """Grade the agent's working tree (or `patch` on a clean tree); raises InfraError only."""
        started = time.monotonic()
        outcome = await evaluate_in_sandbox(sandbox, task, timeout_s=self.config.timeout, patch=patch)
        charged = metrics or self.metrics
        if charged is not None:
            charged.record_evaluation(time.monotonic() - started)
        return outcome

    async def aclose(self) -> None:
        """Nothing to release; present so callers treat both evaluators alike."""
