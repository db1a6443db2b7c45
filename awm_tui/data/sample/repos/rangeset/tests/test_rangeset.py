from rangeset import Interval, RangeSet


def test_contains():
    rs = RangeSet([(1, 3), (6, 9)])
    assert 1 in rs and 2 in rs and 6 in rs and 8 in rs
    assert 0 not in rs and 3 not in rs and 5 not in rs and 9 not in rs
    assert "2" not in rs


def test_add_merges_overlaps():
    rs = RangeSet([(1, 4)])
    rs.add(2, 7)
    assert list(rs) == [Interval(1, 7)]


def test_size_and_len():
    rs = RangeSet([(0, 3), (10, 12)])
    assert rs.size == 5
    assert len(rs) == 2
    assert not RangeSet()


def test_remove_tail():
    rs = RangeSet([(0, 10)])
    rs.remove(5, 10)
    assert list(rs) == [Interval(0, 5)]


def test_remove_outside_is_a_no_op():
    rs = RangeSet([(0, 10)])
    rs.remove(20, 30)
    assert list(rs) == [Interval(0, 10)]


def test_remove_whole_interval():
    rs = RangeSet([(0, 2), (5, 6)])
    rs.remove(0, 3)
    assert list(rs) == [Interval(5, 6)]


def test_equality_copy_and_repr():
    rs = RangeSet([(1, 3)])
    clone = rs.copy()
    assert clone == rs and clone is not rs
    assert repr(rs) == "RangeSet([1, 3))"
