"""SIMULATION of Anthropic-style prompt caching, per key: what a repeated prefix costs.

A request's messages marked with `cache_control` (on a content part, as OpenRouter
passes them to Anthropic) are breakpoints. The longest marked prefix this key sent
before is read from the cache; the marked prefixes beyond it are written to it.
Unmarked requests are neither read nor written, as with Anthropic.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .sim_agent import text_of

MOST_PREFIXES = 4096
"""Per key; the oldest go first (a real cache expires them after minutes)."""


@dataclass(frozen=True, slots=True)
class CacheUse:
    read: int = 0
    """Prompt tokens read from the cache."""
    written: int = 0
    """Prompt tokens written to it."""


def _marked(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(part, dict) and isinstance(part.get("cache_control"), dict) for part in content)


class PromptCache:
    def __init__(self) -> None:
        self._seen: dict[str, OrderedDict[str, None]] = {}

    def use(self, key: str, messages: list[dict[str, Any]], tokens: list[int]) -> CacheUse:
        """`tokens[i]`: the prompt tokens message i counts for."""
        seen = self._seen.setdefault(key, OrderedDict())
        digest = hashlib.sha256()
        read, written, hit_end = 0, 0, 0
        prefixes: list[tuple[str, int]] = []
        for i, message in enumerate(messages):
            # The markers are not part of the prefix: a message marked once and not the next time is the same text.
            digest.update(repr((message.get("role"), text_of(message.get("content")))).encode())
            if _marked(message):
                prefixes.append((digest.copy().hexdigest(), i + 1))
        for prefix, end in prefixes:
            if prefix in seen:
                seen.move_to_end(prefix)
                hit_end = end
        read = sum(tokens[:hit_end])
        for prefix, end in prefixes:
            if end > hit_end and prefix not in seen:
                seen[prefix] = None
                if len(seen) > MOST_PREFIXES:
                    seen.popitem(last=False)
        if prefixes and prefixes[-1][1] > hit_end:
            written = sum(tokens[hit_end:prefixes[-1][1]])
        return CacheUse(read, written)
