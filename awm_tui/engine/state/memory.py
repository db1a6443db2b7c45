"""`memory.json`: the induced workflows, and how they changed over time.

AWM memory grows: an induction adds new workflows and refines existing ones
(matched by normalised title) but keeps workflows it did not mention, since
those still encode experience from earlier tasks. Every induction that changes
something bumps `version` and keeps the previous workflow list in `history`,
so a user can see (and restore) what memory looked like before.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .atomic import read_validated

HISTORY_LIMIT = 50
MEMORY_FORMAT = 1


class Workflow(BaseModel):
    """A reusable multi-step procedure induced from successful experiences."""

    model_config = ConfigDict(extra="ignore")

    id: str
    """Stable id, `wf-001`; never reused after removal."""
    title: str
    description: str = ""
    steps: list[str]
    """Abstract steps; task-specific values are placeholders like `{file}`."""
    source_instances: list[str] = Field(default_factory=list)
    """Instance ids of the experiences it was induced (or refined) from."""
    repos: list[str] = Field(default_factory=list)
    """Repositories of those instances, for same-repo-first selection."""
    version: int = 1
    """Bumped each time an induction changes its steps or description."""
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    uses: int = 0
    """Tasks it was injected into."""
    successes: int = 0
    """Of those, tasks that were resolved."""

    @property
    def success_rate(self) -> float:
        return self.successes / self.uses if self.uses else 0.0


class InductionRecord(BaseModel):
    """One change of memory, with the workflow list as it was before."""

    version: int
    """Memory version this change produced."""
    at: float
    mode: str
    """`llm`, `rule` or `manual`."""
    added: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    """Instance ids of the experiences the induction saw."""
    previous: list[Workflow] = Field(default_factory=list)
    """All workflows of the previous version."""


@dataclass(frozen=True)
class InductionDiff:
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    version: int = 0
    """Memory version after the induction."""

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def normalise_title(title: str) -> str:
    return " ".join(re.sub(r"[^\w{}]+", " ", title.lower()).split())


def render_workflow(wf: Workflow) -> str:
    # The title leads its own "### " line: models (and sim-llm) read it as the name.
    lines = [f"### {wf.title}", f"({wf.id})" + (f" {wf.description}" if wf.description else "")]
    lines += [f"{i}. {step}" for i, step in enumerate(wf.steps, 1)]
    return "\n".join(lines)


class Memory(BaseModel):
    """The whole of `memory.json`."""

    model_config = ConfigDict(extra="ignore")

    format: int = MEMORY_FORMAT
    """File format version."""
    version: int = 0
    """Memory version: 0 when empty, +1 per induction that changed something."""
    next_id: int = 1
    """Number of the next workflow id."""
    workflows: list[Workflow] = Field(default_factory=list)
    history: list[InductionRecord] = Field(default_factory=list)
    """The last HISTORY_LIMIT changes, oldest first."""

    # -- files ----------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike) -> Memory:
        return read_validated(path, cls.model_validate, what="memory", default=cls)

    @classmethod
    async def aload(cls, path: str | os.PathLike) -> Memory:
        return await asyncio.to_thread(cls.load, path)

    def to_json(self) -> dict:
        """What `memory.json` holds."""
        return self.model_dump(mode="json")

    # -- queries ----------------------------------------------------------------

    def get(self, wf_id: str) -> Workflow | None:
        return next((w for w in self.workflows if w.id == wf_id), None)

    def at_version(self, version: int) -> list[Workflow] | None:
        """The workflows as of `version`, or None when it left the history."""
        if version == self.version:
            return list(self.workflows)
        rec = next((r for r in self.history if r.version == version + 1), None)
        return None if rec is None else list(rec.previous)

    @staticmethod
    def to_prompt_block(workflows: list[Workflow]) -> str:
        """Workflows as numbered steps for the agent (without the <workflows> tags)."""
        return "\n\n".join(render_workflow(w) for w in workflows)

    # -- changes ----------------------------------------------------------------

    def _new_id(self) -> str:
        wf_id = f"wf-{self.next_id:03d}"
        self.next_id += 1
        return wf_id

    def _commit(self, mode: str, added: list[str], changed: list[str], removed: list[str],
                sources: list[str], previous: list[Workflow], now: float) -> InductionDiff:
        if not (added or changed or removed):
            return InductionDiff(version=self.version)
        self.version += 1
        self.history.append(InductionRecord(
            version=self.version, at=now, mode=mode, added=added, changed=changed,
            removed=removed, sources=sources, previous=previous))
        del self.history[:-HISTORY_LIMIT]
        return InductionDiff(tuple(added), tuple(changed), tuple(removed), self.version)

    def apply_induction(self, new_workflows: list[dict], mode: Literal["llm", "rule"] | str,
                        sources: Sequence[str], repos: Sequence[str] = (), *,
                        replace: bool = False) -> InductionDiff:
        """Merge an induction's workflows (dicts with title, description, steps).

        A workflow whose normalised title matches an existing one updates it
        when its steps or description differ (its version is bumped); others
        are added. Existing workflows the induction did not mention are kept,
        unless `replace` is set. A dict may carry its own `source_instances`
        and `repos` (rule induction does); otherwise `sources`/`repos` apply.
        """
        now = time.time()
        previous = [w.model_copy(deep=True) for w in self.workflows]
        by_title = {normalise_title(w.title): w for w in self.workflows}
        added: list[str] = []
        changed: list[str] = []
        seen: set[str] = set()
        for item in new_workflows:
            key = normalise_title(str(item.get("title", "")))
            steps = [str(s) for s in item.get("steps") or [] if str(s).strip()]
            if not key or not steps or key in seen:
                continue  # first one wins when an answer repeats a title
            seen.add(key)
            desc = str(item.get("description", "")).strip()
            src = list(item.get("source_instances") or sources)
            rep = list(item.get("repos") or repos)
            old = by_title.get(key)
            if old is None:
                wf = Workflow(id=self._new_id(), title=str(item["title"]).strip(), description=desc,
                              steps=steps, source_instances=_union([], src), repos=_union([], rep),
                              created_at=now, updated_at=now)
                self.workflows.append(wf)
                added.append(wf.id)
                continue
            old.source_instances = _union(old.source_instances, src)
            old.repos = _union(old.repos, rep)
            if old.steps != steps or (desc and desc != old.description):
                old.steps, old.description = steps, desc or old.description
                old.version += 1
                old.updated_at = now
                changed.append(old.id)
        removed: list[str] = []
        if replace:
            removed = [w.id for w in self.workflows if normalise_title(w.title) not in seen]
            self.workflows = [w for w in self.workflows if w.id not in removed]
        return self._commit(mode, added, changed, removed, list(sources), previous, now)

    def remove(self, ids: list[str], mode: str = "manual") -> InductionDiff:
        """Drop workflows (e.g. the user deletes a bad one); kept in history."""
        previous = [w.model_copy(deep=True) for w in self.workflows]
        removed = [w.id for w in self.workflows if w.id in set(ids)]
        self.workflows = [w for w in self.workflows if w.id not in removed]
        return self._commit(mode, [], [], removed, [], previous, time.time())

    def counted_use(self, ids: list[str], success: bool) -> dict[str, list[int]]:
        """Each existing workflow's `[uses, successes]` once one more task had these
        injected (and resolved or not): absolute values, so recording them twice is
        harmless. Memory itself is not changed."""
        return {wf.id: [wf.uses + 1, wf.successes + int(success)]
                for wf in map(self.get, dict.fromkeys(ids)) if wf is not None}


def _union(old: list[str], new: list[str]) -> list[str]:
    return list(dict.fromkeys([*old, *new]))
