"""API key references: a literal key, `env:VAR_NAME`, or `file:path`.

A key becomes a `SecretStr` the moment it is read and stays one: only its
masked form is ever printed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr


@dataclass(frozen=True, slots=True)
class KeyProblem:
    """Why a key reference could not be resolved (never holds the key)."""

    reference: str
    """The `env:`/`file:` reference as written (a literal key never lands here)."""
    problem: str
    fix: str


def describe_reference(raw: str) -> str:
    """How a reference may be shown: `env:`/`file:` as written, literals not at all."""
    return raw if raw.startswith(("env:", "file:")) else "(literal key)"


def resolve_key(raw: str | SecretStr | None, *, base_dir: Path | None = None) -> SecretStr | KeyProblem | None:
    """Resolve a key reference; a problem is returned, not raised, so `--check` can report it."""
    if raw is None:
        return None
    value = raw.get_secret_value() if isinstance(raw, SecretStr) else raw
    value = value.strip()
    if not value:
        return None
    if value.startswith("env:"):
        var = value[4:].strip()
        if not var:
            return KeyProblem(value, "empty environment variable name", "write env:VAR_NAME")
        found = os.environ.get(var, "").strip()
        if not found:
            return KeyProblem(value, f"environment variable {var} is unset or empty",
                              f"export {var}=… or put the key in a file and use file:PATH")
        return SecretStr(found)
    if value.startswith("file:"):
        path = Path(value[5:].strip()).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            found = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return KeyProblem(value, f"key file {path} does not exist", "create it or fix the path")
        except (PermissionError, IsADirectoryError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            return KeyProblem(value, f"key file {path} is unreadable ({reason})", "check its permissions")
        if not found:
            return KeyProblem(value, f"key file {path} is empty", "write the key into it")
        return SecretStr(found.splitlines()[0].strip())
    return SecretStr(value)
