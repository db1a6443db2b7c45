"""A mutable set of integers stored as sorted, disjoint intervals."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator

from .core import Interval, IntervalLike, coerce, merge


class RangeSet:
    """A set of integers kept as a sorted list of disjoint half-open intervals."""

    def __init__(self, intervals: Iterable[IntervalLike] = ()) -> None:
        self._intervals = merge(intervals)

    def __iter__(self) -> Iterator[Interval]:
        return iter(self._intervals)

    def __len__(self) -> int:
        """The number of disjoint intervals (not the number of integers)."""
        return len(self._intervals)

    def __bool__(self) -> bool:
        return bool(self._intervals)

    def __contains__(self, point: object) -> bool:
        if not isinstance(point, int):
            return False
        index = bisect_right([iv.start for iv in self._intervals], point) - 1
        return index >= 0 and self._intervals[index].contains(point)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RangeSet):
            return NotImplemented
        return self._intervals == other._intervals

    def __repr__(self) -> str:
        body = ", ".join(f"[{iv.start}, {iv.end})" for iv in self._intervals)
        return f"RangeSet({body})"

    @property
    def size(self) -> int:
        """How many integers the set holds."""
        return sum(iv.length for iv in self._intervals)

    def add(self, start: int, end: int) -> None:
        """Add the integers in [start, end)."""
        self._intervals = merge([*self._intervals, (start, end)])

    def remove(self, start: int, end: int) -> None:
        """Remove the integers in [start, end), splitting intervals as needed."""
        cut = coerce((start, end))
        kept: list[Interval] = []
        for iv in self._intervals:
            if not iv.overlaps(cut):
                kept.append(iv)
                continue
            if iv.start < cut.start:
                kept.append(Interval(iv.start, cut.start))
        self._intervals = kept

    def copy(self) -> RangeSet:
        return RangeSet(self._intervals)
