"""Showing API keys safely: a masked form, and a format check that never echoes the key."""

from __future__ import annotations

import re

from pydantic import SecretStr

# Longest first: the most specific prefix wins.
KNOWN_PREFIXES = ("sk-or-v1-", "sk-proj-", "sk-ant-", "sk-or-", "sk-")
_OPENROUTER_KEY = re.compile(r"sk-or-v1-[0-9a-f]{64}")


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
    if key.startswith(("env:", "file:")):
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
