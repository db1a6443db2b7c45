"""From a loaded config to what will actually run: each run with its profile and key."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from awm_tui.config.errors import ConfigError
from awm_tui.config.keys import KeyProblem
from awm_tui.config.loader import LoadedConfig, profile_name
from awm_tui.config.models import AppConfig, LLMProfile, RunConfig
from awm_tui.engine.llm.keys import mask_key


@dataclass(frozen=True)
class ResolvedRun:
    run: RunConfig
    profile_name: str
    profile: LLMProfile
    """The run's profile with its own key in place: validated, never `model_copy`'d."""
    key_problem: KeyProblem | None = None
    key_path: str = ""
    """Where the key came from in the config (`runs[0].api_key` or `llm.NAME.api_key`)."""

    @property
    def api_key(self) -> SecretStr | None:
        return self.profile.api_key

    @property
    def masked_key(self) -> str:
        return mask_key(self.api_key)


def with_key(profile: LLMProfile, key: SecretStr | None) -> LLMProfile:
    """A copy of `profile` holding `key`, validated like any input.

    `model_copy(update=...)` would skip validation and could leave a plain str
    where a SecretStr belongs; the shared profile itself is never mutated.
    """
    data = profile.model_dump()  # python mode keeps SecretStr objects as they are
    data["api_key"] = key
    return LLMProfile.model_validate(data)


def resolve_run(config: AppConfig, run: RunConfig, index: int,
                problems: dict[str, KeyProblem] | None = None,
                api_key: SecretStr | None = None) -> ResolvedRun:
    problems = problems or {}
    full = profile_name(run.llm)
    try:
        profile = config.llm[full]
    except KeyError:
        source = str(config.source or "command line")
        raise ConfigError(source, f"runs[{index}].llm", f"no profile [{full}]",
                          f"define it or use one of: {', '.join(sorted(config.llm))}") from None
    run_path, prof_path = f"runs[{index}].api_key", f"{full}.api_key"
    if api_key is not None:
        key, path = api_key, "override"
    elif run.api_key is not None or run_path in problems:
        key, path = run.api_key, run_path
    else:
        key, path = profile.api_key, prof_path
    return ResolvedRun(run, full, with_key(profile, key), problems.get(path), path)


def resolve_plan(loaded: LoadedConfig) -> list[ResolvedRun]:
    return [resolve_run(loaded.config, run, i, loaded.key_problems)
            for i, run in enumerate(loaded.config.runs)]


def require_keys(plan: list[ResolvedRun], source: str) -> None:
    """Batch runs cannot ask for a key: a missing one is a config error."""
    for item in plan:
        if item.api_key is not None:
            continue
        if item.key_problem is not None:
            raise ConfigError(source, item.key_path, item.key_problem.problem, item.key_problem.fix)
        raise ConfigError(source, item.key_path, f"no API key for run {item.run.name!r}",
                          "set api_key in the run or its [llm] profile, or pass --api-key")
