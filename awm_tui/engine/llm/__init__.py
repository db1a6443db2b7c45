"""OpenAI-compatible chat client with retries and cost accounting (keys shown via `config.keys.mask_key`)."""

from awm_tui.engine.llm.client import ChatResult, LLMClient
from awm_tui.engine.llm.errors import (
    LLMAuthError, LLMContextLimit, LLMCreditsError, LLMError, LLMFatalError,
)

__all__ = [
    "ChatResult",
    "LLMAuthError",
    "LLMClient",
    "LLMContextLimit",
    "LLMCreditsError",
    "LLMError",
    "LLMFatalError",
]
