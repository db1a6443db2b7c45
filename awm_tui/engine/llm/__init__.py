"""OpenAI-compatible chat client with retries, cost accounting and safe key display."""

from awm_tui.engine.llm.client import ChatResult, LLMClient
from awm_tui.engine.llm.errors import (
    LLMAuthError, LLMContextLimit, LLMCreditsError, LLMError, LLMFatalError,
)
from awm_tui.engine.llm.keys import key_format_warning, mask_key

__all__ = [
    "ChatResult",
    "LLMAuthError",
    "LLMClient",
    "LLMContextLimit",
    "LLMCreditsError",
    "LLMError",
    "LLMFatalError",
    "key_format_warning",
    "mask_key",
]
