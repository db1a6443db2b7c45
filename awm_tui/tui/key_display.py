"""How API keys appear on screen: masked (the LLM client's rules), and `env:`/`file:` references."""

from __future__ import annotations

import os

from awm_tui.engine.llm.keys import key_format_warning, mask_key

__all__ = ["is_file_reference", "key_format_warning", "mask_key", "resolve_reference"]


def resolve_reference(value: str) -> tuple[str | None, str | None]:
    """(key, problem): `env:VAR` is looked up in the environment; a literal key is itself.

    A `file:PATH` key is (None, None): reading a file is I/O, so it is read off the
    event loop when the run starts (`is_file_reference`), not on every keystroke.
    """
    if is_file_reference(value):
        return None, None
    if value.startswith("env:"):
        var = value[4:]
        found = os.environ.get(var)
        return (found, None) if found else (None, f"environment variable {var} is not set")
    return value, None


def is_file_reference(value: str) -> bool:
    return value.startswith("file:")
