"""Configuration: TOML in, validated pydantic models out."""

from awm_tui.config.models import (
    AppConfig,
    DockerConfig,
    EvalConfig,
    HttpConfig,
    LLMProfile,
    RunConfig,
    UIConfig,
)

__all__ = [
    "AppConfig",
    "DockerConfig",
    "EvalConfig",
    "HttpConfig",
    "LLMProfile",
    "RunConfig",
    "UIConfig",
]
