"""Which workflows a task's prompt gets: relevant first, within a size budget.

Ranking, fully deterministic: workflows induced from the same repository
first, then by how many words of the problem statement they share, then by
their success rate when injected, then the most recently updated, then id.
Every workflow is a candidate (AWM memory is meant to generalise across
repos); the character budget of the rendered block decides how many fit.
"""

from __future__ import annotations

import re
from typing import Protocol

from .memory import Memory, Workflow, render_workflow

STOPWORDS = frozenset("""
a an and are as at be been but by can could do does for from has have how i if in into is
it its itself may might must no not of on or our should so that the their them then there
these this those to too was we were what when where which while who why will with would you
your also all any some such than only just use used using get gets got make makes one two
""".split())

_WORD_RE = re.compile(r"[a-z0-9_]+")
_PLACEHOLDER_RE = re.compile(r"\{[a-z_]+\}")
_INSTANCE_REPO_RE = re.compile(r"^(?P<owner>[\w.-]+?)__(?P<name>[\w.-]+)-\d+$")


class TaskLike(Protocol):
    # Read-only: a frozen Task satisfies it.
    @property
    def repo(self) -> str: ...

    @property
    def problem_statement(self) -> str: ...


def tokens(text: str) -> set[str]:
    """Lower-case words, stopwords and placeholders dropped; snake_case also split."""
    words: set[str] = set()
    for word in _WORD_RE.findall(_PLACEHOLDER_RE.sub(" ", text.lower())):
        parts = [word, *word.split("_")] if "_" in word else [word]
        words.update(p for p in parts if len(p) > 1 and p not in STOPWORDS and not p.isdigit())
    return words


def repo_of_instance(instance_id: str) -> str | None:
    """`django__django-11099` → `django/django` (the SWE-bench id convention)."""
    match = _INSTANCE_REPO_RE.match(instance_id)
    return f"{match['owner']}/{match['name']}" if match else None


def workflow_repos(wf: Workflow) -> set[str]:
    if wf.repos:
        return set(wf.repos)
    return {r for r in map(repo_of_instance, wf.source_instances) if r}


def rank_workflows(memory: Memory, task: TaskLike) -> list[Workflow]:
    problem = tokens(task.problem_statement)

    def key(wf: Workflow):
        text = " ".join([wf.title, wf.description, *wf.steps])
        overlap = len(problem & tokens(text))
        same_repo = task.repo in workflow_repos(wf)
        return (not same_repo, -overlap, -wf.success_rate, -wf.updated_at, wf.id)

    return sorted(memory.workflows, key=key)


def select_workflows(memory: Memory, task: TaskLike, budget_chars: int) -> list[Workflow]:
    """The best-ranked workflows whose rendered block fits in `budget_chars`.

    A workflow too big for what is left is skipped so smaller, lower-ranked
    ones can still fit; the result keeps rank order.
    """
    chosen: list[Workflow] = []
    used = 0
    for wf in rank_workflows(memory, task):
        size = len(render_workflow(wf)) + (2 if chosen else 0)  # "\n\n" separator
        if used + size <= budget_chars:
            chosen.append(wf)
            used += size
    return chosen
