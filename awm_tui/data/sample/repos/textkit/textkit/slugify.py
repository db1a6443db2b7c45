"""URL slugs."""

from __future__ import annotations

import re

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def slugify(text: str, sep: str = "-", max_length: int | None = None) -> str:
    """Turn ``text`` into a slug: lowercase ASCII words joined by ``sep``.

    Accented letters keep their base letter ("Crème" becomes "creme"); every
    other run of non-alphanumeric characters becomes a single separator.  With
    ``max_length`` the slug is cut to at most that many characters, never
    ending with a separator.
    """
    if not sep:
        raise ValueError("sep must not be empty")
    slug = _NON_ALNUM.sub(sep, text.lower()).strip(sep)
    if max_length is not None:
        if max_length < 0:
            raise ValueError("max_length must not be negative")
        slug = slug[:max_length].rstrip(sep)
    return slug
