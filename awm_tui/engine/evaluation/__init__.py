"""Evaluate an agent's patch: the shared harness, local mode and the eval server's client."""

from awm_tui.engine.evaluation.client import EvalClient, EvaluationError
from awm_tui.engine.evaluation.evaluator import Evaluator, ServerEvaluator
from awm_tui.engine.evaluation.harness import EvalOutcome, evaluate_in_sandbox
from awm_tui.engine.evaluation.local import LocalEvaluator

__all__ = ["EvalClient", "EvalOutcome", "EvaluationError", "Evaluator", "LocalEvaluator", "ServerEvaluator",
           "evaluate_in_sandbox"]
