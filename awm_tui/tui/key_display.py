"""How API keys appear on screen: masked (the LLM client's rules), and `env:` references."""

from __future__ import annotations

import os

from awm_tui.engine.llm.keys import key_format_warning, mask_key

__all__ = ["key_format_warning", "mask_key", "resolve_reference"]


def resolve_reference(value: str) -> tuple[str | None, str | None]:
    """(key, problem): `env:VAR` is looked up in the environment; a literal key is itself."""
    if value.startswith("env:"):
        var = value[4:]
        found = os.environ.get(var)
        return (found, None) if found else (None, f"environment variable {var} is not set")
    return value, None
