"""API keys: the one resolver of key references, the one choice of a run's key, and
how a key may be shown.

A reference is a literal key, `env:VAR_NAME`, or `file:path`. Every way a key
comes in (config file, `--api-key`, `--keys-file`, a TUI pane) goes through
`resolve_key`, and every run's key is picked by `choose_key`. A key becomes a
`SecretStr` the moment it is read and stays one: only `mask_key` is ever shown.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

REFERENCES = ("env:", "file:")
"""How a key reference starts; anything else is the key itself (a literal)."""
# Longest first: the most specific prefix wins.
KNOWN_PREFIXES = ("sk-or-v1-", "sk-proj-", "sk-ant-", "sk-or-", "sk-")
_OPENROUTER_KEY = re.compile(r"sk-or-v1-[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class KeyProblem:
    """Why there is no usable key (never holds the key)."""

    reference: str
    """The `env:`/`file:` reference as written, or "" (a literal key never lands here)."""
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.problem}; {self.fix}"


NO_KEY = KeyProblem("", "no API key",
                    "enter one in the run's pane, set api_key in the run or its [llm] profile, or pass --api-key")
"""The problem of a run for which nothing names a key."""


def is_file_reference(raw: str | SecretStr) -> bool:
    """`file:PATH`: resolving it reads a file, so the TUI does it off the event loop."""
    value = raw.get_secret_value() if isinstance(raw, SecretStr) else raw
    return value.strip().startswith("file:")


def key_file_path(reference: str, base_dir: Path | None = None) -> Path:
    """The file a `file:PATH` reference names; a relative PATH is relative to `base_dir`
    (the config file's folder) when given, else to the working directory."""
    path = Path(reference.strip()[5:].strip()).expanduser()
    return base_dir / path if base_dir is not None and not path.is_absolute() else path


def resolve_key(raw: str | SecretStr | None, *, base_dir: Path | None = None) -> SecretStr | KeyProblem | None:
    """The key a reference names; None when it is empty. A problem is returned, not
    raised, so `--check` can report it and the TUI can show it on the field.

    Blocking for `file:` (it reads the file): on the event loop use `aresolve_key`.
    """
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
        path = key_file_path(value, base_dir)
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


async def aresolve_key(raw: str | SecretStr | None, *, base_dir: Path | None = None) -> SecretStr | KeyProblem | None:
    """`resolve_key` for the event loop: a `file:` reference is read in a thread."""
    if raw is not None and is_file_reference(raw):
        return await asyncio.to_thread(resolve_key, raw, base_dir=base_dir)
    return resolve_key(raw, base_dir=base_dir)


@dataclass(frozen=True, slots=True)
class ChosenKey:
    key: SecretStr | None
    source: str
    """Where it came from: `override`, `runs[0].api_key`, `llm.NAME.api_key`, …"""
    problem: KeyProblem | None = None
    """Why `key` is None: the chosen reference's own problem, or NO_KEY."""


KeyCandidate = tuple[str, SecretStr | KeyProblem | None]
"""(source, what it resolved to): None when that place says nothing."""


def choose_key(*candidates: KeyCandidate) -> ChosenKey:
    """A run's key, candidates most specific first (override, the run's own, its profile's).

    The first place that names a key wins, even when its reference is broken: a run
    whose own `env:` variable is unset must fail on that, not quietly spend its
    profile's key. A blank key names nothing.
    """
    for source, value in candidates:
        if isinstance(value, KeyProblem):
            return ChosenKey(None, source, value)
        if value is not None and value.get_secret_value().strip():
            return ChosenKey(value, source)
    return ChosenKey(None, candidates[-1][0] if candidates else "api_key", NO_KEY)


def mask_key(secret: SecretStr | str | None) -> str:
    """`sk-or-v1-…ab12`: a known prefix, then only the last 4 characters.

    Short keys show fewer characters (2, then none) so the mask never gives away a
    large share of the key. `(none)` when there is no key.
    """
    if secret is None:
        return "(none)"
    key = (secret.get_secret_value() if isinstance(secret, SecretStr) else str(secret)).strip()
    if not key:
        return "(none)"
    prefix = next((p for p in KNOWN_PREFIXES if key.startswith(p)), "")
    body = key[len(prefix):]
    shown = 4 if len(body) >= 16 else 2 if len(body) >= 8 else 0
    return f"{prefix}…{body[-shown:] if shown else ''}"


def key_identity(secret: SecretStr) -> str:
    """A stable id for one key (per-key health, backoff and budgets are keyed by it).

    A truncated SHA-256: two runs given the same key share it, and nothing of the
    key can be read back from it, so it may appear in events and files. Shown to
    users next to `mask_key`, never instead of it.
    """
    return hashlib.sha256(secret.get_secret_value().strip().encode()).hexdigest()[:12]


def key_format_warning(key: str, provider: str | None) -> str | None:
    """One line on why `key` does not look like a `provider` key, or None if it does.

    A hint, not a verdict: a key that fails here may still be accepted, so callers
    warn and carry on. The key itself never appears in the message.
    """
    if not key or not key.strip():
        return "the API key is empty"
    if key != key.strip():
        return "the API key has leading or trailing whitespace"
    if any(c.isspace() for c in key):
        return "the API key contains whitespace"
    if key.startswith(REFERENCES):
        return "the API key looks like an unresolved env:/file: reference"
    if not key.isascii() or not key.isprintable():
        return "the API key contains non-ASCII or control characters"
    if provider == "openrouter":
        if _OPENROUTER_KEY.fullmatch(key):
            return None
        if key.startswith("sk-or-v1-"):
            body = key[len("sk-or-v1-"):]
            if len(body) != 64:
                return f"OpenRouter keys are sk-or-v1- and 64 hex characters; this one has {len(body)}"
            return "OpenRouter keys are sk-or-v1- and 64 hex characters; this one has other characters"
        if key.startswith("sk-or-"):
            return "the key has an unknown OpenRouter format (expected sk-or-v1-…)"
        if key.startswith("sk-"):
            return "this looks like an OpenAI key, but the model uses OpenRouter (sk-or-v1-…)"
        return "OpenRouter keys start with sk-or-v1-"
    if provider == "openai":
        if key.startswith("sk-or-"):
            return "this looks like an OpenRouter key, but the model uses OpenAI"
        if not key.startswith("sk-"):
            return "OpenAI keys start with sk-"
        if len(key) < 20:
            return "the key is too short for an OpenAI key"
    return None
