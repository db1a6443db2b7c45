import pytest

from rangeset import Interval, intersect, merge, total_length


def test_interval_basics():
    iv = Interval(2, 5)
    assert iv.length == 3
    assert iv.contains(2) and iv.contains(4) and not iv.contains(5)
    assert iv.overlaps(Interval(4, 9)) and not iv.overlaps(Interval(5, 9))


def test_merge_overlapping():
    assert merge([(1, 4), (2, 6), (8, 10)]) == [(1, 6), (8, 10)]


def test_merge_keeps_gaps():
    assert merge([(1, 2), (4, 5)]) == [(1, 2), (4, 5)]


def test_merge_drops_empty_intervals():
    assert merge([(3, 3), (5, 7)]) == [(5, 7)]
    assert merge([]) == []


def test_merge_rejects_backwards_interval():
    with pytest.raises(ValueError):
        merge([(5, 1)])


def test_merge_returns_intervals():
    (only,) = merge([(0, 1)])
    assert isinstance(only, Interval)


def test_total_length():
    assert total_length([(0, 5), (3, 8)]) == 8
    assert total_length([(0, 1), (10, 12)]) == 3


def test_intersect():
    assert intersect([(0, 5), (8, 12)], [(3, 10)]) == [(3, 5), (8, 10)]
    assert intersect([(0, 2)], [(5, 6)]) == []
