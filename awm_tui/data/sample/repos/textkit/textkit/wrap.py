"""Truncation and greedy word wrapping."""

from __future__ import annotations


def truncate(text: str, width: int, ellipsis: str = "…") -> str:
    """Shorten ``text`` to at most ``width`` characters.

    When the text is cut, the result ends with ``ellipsis`` (which counts
    towards ``width``).  Text that already fits is returned unchanged.
    """
    if width < len(ellipsis):
        raise ValueError(f"width {width} cannot hold the ellipsis {ellipsis!r}")
    if len(text) <= width:
        return text
    return text[:width].rstrip() + ellipsis


def wrap(text: str, width: int) -> list[str]:
    """Split ``text`` into lines of at most ``width`` characters at spaces.

    A single word longer than ``width`` gets a line of its own.
    """
    if width <= 0:
        raise ValueError("width must be positive")
    lines: list[str] = []
    current = ""
    for word in text.split():
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= width:
            current += " " + word
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines
