"""textkit: slugs, word statistics and text truncation."""

from .slugify import slugify
from .stats import (
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
from .wrap import truncate, wrap

__all__ = [
    "average_word_length",
    "dedupe",
    "reading_time",
    "sentence_count",
    "slugify",
    "top_words",
    "truncate",
    "unique_words",
    "word_count",
    "word_frequencies",
    "words",
    "wrap",
]
__version__ = "1.2.0"
