"""From a loaded config to what will actually run: each run with its profile and its one key.

`resolve_run` is the one place a run meets its profile and key; `Fleet.start`,
`--check`, `--batch` and the TUI all take what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from awm_tui.config.errors import ConfigError
from awm_tui.config.keys import NO_KEY, KeyProblem, choose_key, mask_key
from awm_tui.config.loader import LoadedConfig
from awm_tui.config.models import AppConfig, LLMProfile, RunConfig, profile_for
from awm_tui.config.twins import twin_config


OVERRIDE = "override"
"""The `key_path` of a key given beside the run (a pane's field, `--api-key`, a keys-file line)."""


@dataclass(frozen=True)
class ResolvedRun:
    """A run ready to start: its profile, with the run's chosen key in place."""

    run: RunConfig
    profile_name: str
    profile: LLMProfile
    """The run's profile with its own key in place: validated, never `model_copy`'d."""
    key_problem: KeyProblem | None = None
    """Why `api_key` is None (a broken reference, or NO_KEY); None when there is a key."""
    key_path: str = ""
    """Where the key came from (OVERRIDE, `runs[0].api_key` or `llm.NAME.api_key`)."""

    @property
    def name(self) -> str:
        return self.run.name

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


def resolve_run(config: AppConfig, run: RunConfig, index: int | None = None,
                problems: dict[str, KeyProblem] | None = None,
                api_key: SecretStr | KeyProblem | None = None) -> ResolvedRun:
    """`run` with its profile and key: `api_key` (the pane's field, `--api-key`, a keys-file
    line) over the run's own key over its profile's. ConfigError when the profile is missing.

    `index` is the run's place in `[[runs]]` (for key paths); `problems` are the
    loader's unresolved references by key path.
    """
    problems = problems or {}
    where = f"runs[{index}]" if index is not None else f"run {run.name}"
    profile = profile_for(config.llm, run.llm, source=str(config.source or "command line"), where=f"{where}.llm")
    run_path, prof_path = f"{where}.api_key", f"{run.llm}.api_key"
    chosen = choose_key(*([(OVERRIDE, api_key)] if api_key is not None else []),
                        (run_path, problems.get(run_path) or run.api_key),
                        (prof_path, problems.get(prof_path) or profile.api_key))
    return ResolvedRun(run, run.llm, with_key(profile, chosen.key), chosen.problem, chosen.source)


TWIN_OVERRIDE = "override (twin)"
"""The `key_path` of a twin's key given beside the run (`--twin-api-key`, the twin pane's field)."""


def resolve_pair(config: AppConfig, run: RunConfig, index: int | None = None,
                 problems: dict[str, KeyProblem] | None = None,
                 api_key: SecretStr | KeyProblem | None = None,
                 twin_api_key: SecretStr | KeyProblem | None = None) -> list[ResolvedRun]:
    """`run` resolved (`resolve_run`), followed by its no-memory twin when `run.twin`.

    The twin's key: `twin_api_key` (given beside the run) over the run's own
    `twin_api_key` over whatever key the run itself got; with none of its own,
    the twin shares the run's key (and so its rate limit and backoff).
    """
    first = resolve_run(config, run, index, problems, api_key)
    if not run.twin:
        return [first]
    problems = problems or {}
    twin_path = (f"runs[{index}]" if index is not None else f"run {run.name}") + ".twin_api_key"
    chosen = choose_key(*([(TWIN_OVERRIDE, twin_api_key)] if twin_api_key is not None else []),
                        (twin_path, problems.get(twin_path) or run.twin_api_key),
                        (first.key_path, first.key_problem or first.api_key))
    twin = twin_config(run)
    return [first, ResolvedRun(twin, twin.llm, with_key(first.profile, chosen.key), chosen.problem, chosen.source)]


def resolve_plan(loaded: LoadedConfig) -> list[ResolvedRun]:
    """Every `[[runs]]` entry resolved, each twin right after its run."""
    return [item for i, run in enumerate(loaded.config.runs)
            for item in resolve_pair(loaded.config, run, i, loaded.key_problems)]


def require_keys(plan: list[ResolvedRun], source: str) -> None:
    """Batch runs cannot ask for a key: a missing one is a config error."""
    for item in plan:
        if item.api_key is not None:
            continue
        problem = item.key_problem or NO_KEY
        text = f"{problem.problem} for run {item.name!r}" if problem is NO_KEY else problem.problem
        raise ConfigError(source, item.key_path, text, problem.fix)
