import pytest

from textkit import (
    average_word_length,
    dedupe,
    reading_time,
    sentence_count,
    top_words,
    unique_words,
    word_count,
    word_frequencies,
    words,
)


def test_words_keep_apostrophes():
    assert words("don't stop, it's 9 o'clock") == ["don't", "stop", "it's", "9", "o'clock"]


def test_word_count():
    assert word_count("one two  three\nfour") == 4
    assert word_count("") == 0


def test_sentence_count():
    assert sentence_count("Hi. How are you? Fine!") == 3
    assert sentence_count("No full stop") == 1
    assert sentence_count("   ") == 0


def test_average_word_length():
    assert average_word_length("ab abcd") == 3.0
    assert average_word_length("") == 0.0


def test_word_frequencies():
    assert word_frequencies("a rose is a rose is a rose") == {"a": 3, "rose": 3, "is": 2}


def test_top_words_breaks_ties_alphabetically():
    assert top_words("b a c b a", 2) == [("a", 2), ("b", 2)]


def test_dedupe_keeps_first_seen_order():
    assert dedupe([3, 1, 3, 2, 1]) == [3, 1, 2]
    assert dedupe([]) == []


def test_unique_words_lowercases():
    assert unique_words("The cat and THE hat") == ["the", "cat", "and", "hat"]


def test_reading_time():
    assert reading_time("") == 0
    assert reading_time("word " * 10) == 1
    assert reading_time("word " * 401) == 3
    with pytest.raises(ValueError):
        reading_time("x", wpm=0)
