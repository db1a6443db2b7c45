"""SIMULATION: what workflows in the prompt are worth to the simulated model.

With `memory_gain` g, a task whose prompt holds no workflows gets a wrong patch
for a share g of the tasks (drawn once per seed and instance id, so a run with
memory and its no-memory twin meet the same hard tasks), while the same task
with workflows injected is solved as before. It stands in for the effect AWM
measures on real models, so that the gap between a run and its twin shows; it
is no measurement of anything.
"""

from __future__ import annotations

from .sim_agent import SubmitChoice, first_workflow_title
from .sim_faults import chance


def memory_choice(first_user: str, task_id: str | None, *, seed: int, memory_gain: float) -> SubmitChoice | None:
    """`"wrong"` when this prompt has no workflows and the task is one memory would have
    solved; None (the script decides) otherwise."""
    if memory_gain <= 0 or not task_id or first_workflow_title(first_user) is not None:
        return None
    return "wrong" if chance(seed, "memory-gain", task_id) < memory_gain else None
