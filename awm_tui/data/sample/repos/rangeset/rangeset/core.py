"""Half-open intervals [start, end) and operations on lists of them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Tuple, Union


class Interval(NamedTuple):
    """The integers ``start <= x < end``."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def contains(self, point: int) -> bool:
        return self.start <= point < self.end

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


IntervalLike = Union[Interval, Tuple[int, int]]


def coerce(value: IntervalLike) -> Interval:
    """An Interval from a 2-tuple, checking that it does not run backwards."""
    start, end = value
    if end < start:
        raise ValueError(f"interval ({start}, {end}) ends before it starts")
    return Interval(start, end)


def merge(intervals: Iterable[IntervalLike]) -> list[Interval]:
    """Merge overlapping or touching intervals.

    The input may be in any order.  The result is sorted, its intervals are
    disjoint and separated by gaps, and empty intervals are dropped.
    """
    ordered = sorted((coerce(iv) for iv in intervals), key=lambda iv: iv.end)
    merged: list[Interval] = []
    for iv in ordered:
        if iv.length == 0:
            continue
        if merged and iv.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Interval(last.start, max(last.end, iv.end))
        else:
            merged.append(iv)
    return merged


def total_length(intervals: Iterable[IntervalLike]) -> int:
    """How many integers the intervals cover together (overlaps count once)."""
    return sum(iv.length for iv in merge(intervals))


def intersect(a: Iterable[IntervalLike], b: Iterable[IntervalLike]) -> list[Interval]:
    """The parts covered by both ``a`` and ``b``, merged and sorted."""
    left, right = merge(a), merge(b)
    out: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i].start, right[j].start)
        end = min(left[i].end, right[j].end)
        if start < end:
            out.append(Interval(start, end))
        if left[i].end < right[j].end:
            i += 1
        else:
            j += 1
    return out
