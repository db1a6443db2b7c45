import pytest

from textkit import slugify


def test_basic():
    assert slugify("Hello, World!") == "hello-world"


def test_collapses_runs_and_strips_edges():
    assert slugify("  --Python   3.11 -- release notes!! ") == "python-3-11-release-notes"


def test_custom_separator():
    assert slugify("Hello World", sep="_") == "hello_world"


def test_max_length_never_ends_with_separator():
    assert slugify("one two three", max_length=8) == "one-two"


def test_empty_and_symbols_only():
    assert slugify("") == ""
    assert slugify("!!!") == ""


def test_empty_separator_is_rejected():
    with pytest.raises(ValueError):
        slugify("a b", sep="")
