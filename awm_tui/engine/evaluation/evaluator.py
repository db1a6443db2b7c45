"""One call shape for a run to evaluate a patch, whether over HTTP or in-process."""

from __future__ import annotations

from typing import Protocol

from awm_tui.config.models import EvalConfig
from awm_tui.engine.evaluation.client import EvalClient
from awm_tui.engine.evaluation.harness import EvalOutcome
from awm_tui.engine.http.metrics import RunMetrics
from awm_tui.engine.outcomes import ErrorKind, InfraError, Outcome
from awm_tui.engine.sandbox.base import Sandbox
from awm_tui.engine.tasks import Task


class Evaluator(Protocol):
    description: str

    async def ready(self) -> None:
        """Raise EvaluationError (one line) when evaluations cannot be had at all."""

    async def evaluate(self, *, sandbox: Sandbox, task: Task, dataset_name: str, split: str,
                       exit_status: str, patch: str, metrics: RunMetrics) -> EvalOutcome: ...


class ServerEvaluator:
    """POST to the evaluation server (the users' `evaluate_info` contract)."""

    def __init__(self, client: EvalClient, config: EvalConfig) -> None:
        self.client = client  # shared by every run of the fleet: one pool
        self.description = f"server {config.server_url}"

    async def ready(self) -> None:
        await self.client.check()

    async def evaluate(self, *, sandbox: Sandbox, task: Task, dataset_name: str, split: str,
                       exit_status: str, patch: str, metrics: RunMetrics) -> EvalOutcome:
        reward, speedup, info = await self.client.evaluate_info(
            exit_status, patch, sandbox.id, task.instance_id, dataset_name, split, metrics=metrics,
            docker_host=sandbox.host)
        info = info if isinstance(info, dict) else {"detail": info}
        resolved = bool(info.get("resolved", reward >= 1.0))
        # Our server names the outcome; the users' own servers say only reward/resolved.
        said = info.get("outcome")
        outcome = Outcome(said) if said in {o.value for o in Outcome} else (
            Outcome.RESOLVED if resolved else Outcome.UNRESOLVED)
        if outcome is Outcome.ERROR:
            said_kind = info.get("error_kind")
            kind = ErrorKind(said_kind) if said_kind in {k.value for k in ErrorKind} else ErrorKind.EVALUATION
            raise InfraError(f"evaluation server: {info.get('error') or 'no result'}", kind)
        grader = f"server {self.client.config.server_url}"
        if info.get("grader"):
            grader += f" ({info['grader']})"
        return EvalOutcome(reward=reward, speedup=speedup, resolved=resolved, info=info,
                           outcome=outcome, grader=grader)
