"""What one reply cost, and what the next call could cost at worst.

Cost is the provider's `usage.cost` when it reports one (OpenRouter does), else
tokens × the profile's prices, cached prompt tokens at the cache prices when the
profile gives them. Cached tokens come in two shapes: OpenAI's (and OpenRouter's)
`usage.prompt_tokens_details.cached_tokens` / `cache_write_tokens`, and Anthropic's
`cache_read_input_tokens` / `cache_creation_input_tokens` that litellm-style
proxies pass through. Either way `prompt_tokens` counts them too (OpenAI's
convention); a reply whose prompt count is smaller than its cache counts follows
Anthropic's (input tokens without the cache) and is read that way.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from awm_tui.config.models import LLMProfile

CHARS_PER_TOKEN_WORST = 3.0
"""Until the server's counts say otherwise, a prompt is taken to be this dense: code
and JSON tokenise tighter than prose's 4 characters per token."""
OUTPUT_TOKENS_UNKNOWN = 4096
"""A reply's worst length when the profile sets no max_output_tokens and no reply came yet."""
RECENT = 32
CHARS_PER_TOKEN_ESTIMATE = 4.0
"""For a reply that reports no usage: English prose's rate (code is denser, so an
estimate errs low; the warning that comes with it says so)."""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens read from the provider's cache."""
    cache_write_tokens: int = 0
    """Prompt tokens written to the cache (Anthropic charges them above the input price)."""
    cost: float = 0.0
    """USD: the provider's figure when `reported`, else tokens × the profile's prices."""
    reported: bool = False
    saving: float = 0.0
    """USD the cached tokens saved against the input price (0 when the profile has no cache price)."""


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_of(usage: Any, profile: LLMProfile) -> Usage:
    """A reply's `usage` object read into tokens and USD."""
    if not isinstance(usage, dict):
        usage = {}
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    cached = _count(details.get("cached_tokens")) or _count(usage.get("cache_read_input_tokens"))
    written = _count(details.get("cache_write_tokens")) or _count(usage.get("cache_creation_input_tokens"))
    uncached = prompt - cached - written if prompt >= cached + written else prompt
    if prompt < cached + written:   # Anthropic's shape: input tokens exclude the cache
        prompt += cached + written
    read_price = _or(profile.cache_read_input_token_cost, profile.input_cost_per_token)
    write_price = _or(profile.cache_creation_input_token_cost, profile.input_cost_per_token)
    priced = (uncached * profile.input_cost_per_token + cached * read_price + written * write_price
              + completion * profile.output_cost_per_token)
    saving = cached * max(profile.input_cost_per_token - read_price, 0.0)
    cost = usage.get("cost")
    reported = isinstance(cost, (int, float)) and not isinstance(cost, bool) and cost >= 0
    return Usage(prompt, completion, cached, written, float(cost) if reported else priced, reported, saving)


def estimated_usage(usage: Any, prompt_chars: int, reply_chars: int, profile: LLMProfile) -> Usage:
    """Tokens of a reply whose server counted none (llama-cpp-python's streams send no
    usage), from characters, priced like counted ones so budgets still hold (a cost the
    server did report is kept)."""
    def tokens(chars: int) -> int:
        return math.ceil(max(chars, 0) / CHARS_PER_TOKEN_ESTIMATE)

    given = usage if isinstance(usage, dict) else {}
    return usage_of({**given, "prompt_tokens": tokens(prompt_chars), "completion_tokens": tokens(reply_chars)},
                    profile)


def has_counts(usage: Any) -> bool:
    """Whether a reply's `usage` holds token counts at all."""
    return isinstance(usage, dict) and bool(_count(usage.get("prompt_tokens")) or _count(usage.get("completion_tokens")))


def _or(price: float | None, fallback: float) -> float:
    return fallback if price is None else price


def prompt_chars(messages: list[dict[str, Any]]) -> int:
    """Characters of a prompt as the model reads them (typed parts' text included)."""
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            total += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
        else:
            total += len(str(content or ""))
        total += 16   # the chat template's role markers
    return total


class CostEstimator:
    """The worst cost of the next call, for the budget check made before it.

    With prices: prompt tokens (from characters, at the densest ratio seen) × input
    price + max_output_tokens (or twice the longest reply seen) × output price. The
    costs the provider reported lift that floor: each recent call's cost, scaled by how
    much longer this prompt is, so a prompt that grows keeps its estimate ahead of it.
    Without prices and before any reply, nothing is known: the estimate is 0.
    """

    def __init__(self, profile: LLMProfile) -> None:
        self.profile = profile
        self.chars_per_token = CHARS_PER_TOKEN_WORST
        self.longest_reply = 0
        self._recent: deque[tuple[float, int]] = deque(maxlen=RECENT)
        """(cost, prompt characters) of recent calls."""

    def worst(self, chars: int) -> float:
        p = self.profile
        tokens = chars / self.chars_per_token
        estimate = 0.0
        if p.input_cost_per_token or p.output_cost_per_token:
            out = p.max_output_tokens or (2 * self.longest_reply) or OUTPUT_TOKENS_UNKNOWN
            estimate = tokens * p.input_cost_per_token + out * p.output_cost_per_token
        for cost, seen in self._recent:
            estimate = max(estimate, cost * max(1.0, chars / max(seen, 1)))
        return estimate

    def observe(self, chars: int, prompt_tokens: int, completion_tokens: int, cost: float) -> None:
        """One call's prompt size and what the server counted and charged for it."""
        if prompt_tokens > 0 and chars > 0:
            self.chars_per_token = min(self.chars_per_token, chars / prompt_tokens)
        self.longest_reply = max(self.longest_reply, completion_tokens)
        self._recent.append((cost, chars))
