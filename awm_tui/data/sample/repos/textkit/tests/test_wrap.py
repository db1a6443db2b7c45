import pytest

from textkit import truncate, wrap


def test_short_text_is_unchanged():
    assert truncate("hello", 10) == "hello"
    assert truncate("hello", 5) == "hello"


def test_width_smaller_than_ellipsis():
    with pytest.raises(ValueError):
        truncate("hello", 2, ellipsis="...")


def test_wrap():
    assert wrap("the quick brown fox jumps", 10) == ["the quick", "brown fox", "jumps"]


def test_wrap_long_word():
    assert wrap("a extraordinarily b", 5) == ["a", "extraordinarily", "b"]


def test_wrap_empty_and_invalid():
    assert wrap("   ", 4) == []
    with pytest.raises(ValueError):
        wrap("x", 0)
