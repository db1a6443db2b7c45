"""Word statistics."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Hashable, Iterable
from typing import TypeVar

T = TypeVar("T", bound=Hashable)

_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")


def words(text: str) -> list[str]:
    """The words of ``text`` in order, as written (apostrophes kept: "don't")."""
    return _WORD.findall(text)


def word_count(text: str) -> int:
    return len(words(text))


def sentence_count(text: str) -> int:
    """Sentences end with ., ! or ?; trailing text without one still counts."""
    text = text.strip()
    if not text:
        return 0
    ends = _SENTENCE_END.findall(text)
    return len(ends) + (0 if _SENTENCE_END.search(text[-1] + " ") else 1)


def average_word_length(text: str) -> float:
    found = words(text)
    return sum(map(len, found)) / len(found) if found else 0.0


def word_frequencies(text: str) -> dict[str, int]:
    """How often each word occurs, ignoring case; keys are lowercase."""
    return dict(Counter(words(text)))


def top_words(text: str, n: int = 10) -> list[tuple[str, int]]:
    """The ``n`` most frequent words (lowercase), ties broken alphabetically."""
    freq = word_frequencies(text)
    return sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def dedupe(items: Iterable[T]) -> list[T]:
    """The distinct items in order of first appearance."""
    seen: list[T] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def unique_words(text: str) -> list[str]:
    """Distinct words (lowercase) in order of first appearance."""
    return dedupe(word.lower() for word in words(text))


def reading_time(text: str, wpm: int = 200) -> int:
    """Whole minutes needed to read ``text``; at least 1 for any text."""
    if wpm <= 0:
        raise ValueError("wpm must be positive")
    count = word_count(text)
    return math.ceil(count / wpm) if count else 0
