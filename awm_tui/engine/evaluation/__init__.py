"""Evaluate an agent's patch: the shared harness, local mode and the eval server's client."""

from awm_tui.engine.evaluation.harness import EvalOutcome, evaluate_in_sandbox

__all__ = ["EvalOutcome", "evaluate_in_sandbox"]
