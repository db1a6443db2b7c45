"""Fitting a conversation into the model's context window, and checking what arrived.

Tokens are estimated from characters (4 per token until the server's own
`usage.prompt_tokens` says what this model's tokenizer makes of our text). When
a prompt would exceed `max_input_tokens`, the oldest command outputs, then the
oldest replies, are replaced by a one-line note (OpenHands' observation-masking
condenser does the same): the task, the system rules and the latest exchange stay.
The agent keeps the full conversation as its trajectory; only the copy sent is cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 4.0
GENEROUS_CHARS_PER_TOKEN = 5.0
MESSAGE_OVERHEAD_CHARS = 16
"""The chat template's role markers around each message, in characters."""
SAFETY = 0.95
"""Aim below the window: estimates are off by a few percent."""
KEEP_LAST = 2
"""The latest reply and its observation are never elided."""
ELIDED = "[{what} elided to fit the context window: {chars} characters]"


@dataclass(frozen=True, slots=True)
class Trim:
    observations: int
    replies: int
    chars: int
    estimate: int
    """Estimated prompt tokens after eliding."""

    def describe(self, window: int) -> str:
        parts = []
        if self.observations:
            parts.append(f"{self.observations} old command output{'s' if self.observations != 1 else ''}")
        if self.replies:
            parts.append(f"{self.replies} old repl{'ies' if self.replies != 1 else 'y'}")
        return (f"context: elided {' and '.join(parts)} ({self.chars:,} characters) to stay within "
                f"max_input_tokens {window:,} (prompt now ~{self.estimate:,} tokens)")


def _chars(message: dict[str, Any]) -> int:
    return len(str(message.get("content") or "")) + MESSAGE_OVERHEAD_CHARS


class ContextWindow:
    """One task's view of the profile's window; `fit` before each call, `observe` after."""

    def __init__(self, max_input_tokens: int | None) -> None:
        self.window = max_input_tokens
        self.chars_per_token = CHARS_PER_TOKEN
        self.elided: set[int] = set()
        """Indices of messages sent as a note; an elided message stays elided."""

    def estimate(self, messages: list[dict[str, Any]]) -> int:
        return round(sum(_chars(m) for m in messages) / self.chars_per_token)

    def observe(self, sent: list[dict[str, Any]], prompt_tokens: int) -> None:
        """Calibrate on the server's count of the prompt just sent."""
        if prompt_tokens > 0:
            ratio = sum(_chars(m) for m in sent) / prompt_tokens
            self.chars_per_token = min(max(ratio, 1.0), 8.0)

    def fit(self, messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Trim | None]:
        """The messages to send, and what was newly elided (None when nothing was)."""
        if self.window is None:
            return messages, None
        budget = self.window * SAFETY
        sent = [self._shown(i, m) for i, m in enumerate(messages)]
        if self.estimate(sent) <= budget:
            return sent, None
        # Observations (user turns after the task) first, oldest first; then replies.
        middle = range(2, max(2, len(messages) - KEEP_LAST))
        order = ([i for i in middle if messages[i].get("role") == "user"]
                 + [i for i in middle if messages[i].get("role") == "assistant"])
        observations = replies = chars = 0
        for i in order:
            if i in self.elided:
                continue
            self.elided.add(i)
            sent[i] = self._shown(i, messages[i])
            chars += len(str(messages[i].get("content") or ""))
            if messages[i].get("role") == "user":
                observations += 1
            else:
                replies += 1
            if self.estimate(sent) <= budget:
                break
        if not chars:
            return sent, None   # nothing left to elide: the server will say whether it fits
        return sent, Trim(observations, replies, chars, self.estimate(sent))

    def _shown(self, index: int, message: dict[str, Any]) -> dict[str, Any]:
        if index not in self.elided:
            return message
        what = "command output" if message.get("role") == "user" else "earlier reply"
        return {**message, "content": ELIDED.format(what=what, chars=len(str(message.get("content") or "")))}


def system_maybe_dropped(sent: list[dict[str, Any]], prompt_tokens: int, reply: str,
                         completion_tokens: int) -> bool:
    """True when the server's prompt count is nearer the prompt without its system
    message than with it: worth a probe (`PROBE`), which settles it.

    Checked on a run's first call, where the system text is a large share of the
    prompt. Characters per token are this model's own reply rate (clamped to 2.5–5;
    4 for a reply too short to tell). A screen, not a verdict: a prompt of sparse
    prose beside a reply of dense code can look like a drop, and only the probe warns.
    """
    system = sum(_chars(m) for m in sent if m.get("role") == "system")
    if not system or prompt_tokens <= 0:
        return False
    rate = min(max(len(reply) / completion_tokens, 2.5), GENEROUS_CHARS_PER_TOKEN) if completion_tokens >= 16 \
        else CHARS_PER_TOKEN
    total = sum(_chars(m) for m in sent)
    return system / rate >= 50 and prompt_tokens < (total - system / 2) / rate


PROBE_SYSTEM = ("You are a careful software engineer working in a Linux shell. Answer every message with "
                "exactly one fenced bash block holding one command, and nothing else: no prose, no other "
                "fenced blocks, no explanation before or after the command.")
PROBE = ([{"role": "system", "content": PROBE_SYSTEM}, {"role": "user", "content": "List the files."}],
         [{"role": "user", "content": "List the files."}])
"""The same user turn with and without a system message: a server that keeps the system
text counts its ~40 tokens more for the first."""


def probe_says_dropped(with_system: int, without: int) -> bool:
    """The probe's two counts: the system text made (almost) no difference."""
    return with_system - without < len(PROBE_SYSTEM) / GENEROUS_CHARS_PER_TOKEN / 2
