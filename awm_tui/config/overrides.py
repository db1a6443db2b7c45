"""The users' own runner flags, turned into runs.

`--llm-config/--api-key/--output-dir/--limit/--skip-eval/--include-medium` make
one run like their old script did; `--parallel N --keys-file F --output-root D`
makes N runs with a key each. `--dataset/--filter/--slice/--shuffle` choose the
tasks (mini-swe-agent's flags), for these runs or over each `[[runs]]` entry.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr, ValidationError

from awm_tui.config.errors import ConfigError
from awm_tui.config.keys import KeyProblem, resolve_key
from awm_tui.config.loader import resolve_dir
from awm_tui.config.models import AppConfig, RunConfig, profile_for, profile_name

DEFAULT_PROFILE = "llm.kimi-k2"
"""The users' runner default; falls back to `[llm]` when the config has no such profile."""


SELECTION_FLAGS = {"dataset": "--dataset", "filter": "--filter", "slice": "--slice", "shuffle": "--shuffle",
                   "workers": "--workers", "stall_timeout": "--stall-timeout"}
"""RunConfig fields a flag sets on every run the command line starts (or on the config's
[[runs]]): those that choose a run's tasks, how many run at once, and the stall watchdog's timeout."""


def selection_of(args: object) -> dict[str, object]:
    """The selection flags given on the command line (a relative --dataset is from the cwd)."""
    chosen = {field: getattr(args, field, None) for field in SELECTION_FLAGS}
    chosen = {k: v for k, v in chosen.items() if v is not None}
    if "dataset" in chosen and chosen["dataset"] != "sample":
        chosen["dataset"] = str(Path(str(chosen["dataset"])).expanduser().absolute())
    return chosen


def default_profile(config: AppConfig) -> str:
    return DEFAULT_PROFILE if DEFAULT_PROFILE in config.llm else "llm"


def single_run(config: AppConfig, *, llm: str | None, api_key: SecretStr | None,
               output_dir: Path | None, limit: int | None, skip_eval: bool,
               include_medium: bool, selection: dict[str, object] | None = None,
               ) -> tuple[RunConfig, SecretStr | None]:
    """One run from the single-run flags (the users' old runner script)."""
    out = resolve_dir(output_dir or Path("outputs/run_1"), Path.cwd())
    name = profile_name(llm or default_profile(config))
    profile_for(config.llm, name, source=str(config.source or "command line"), where="--llm-config")
    fields = dict(name=_name_for(out), llm=name, output_dir=out, skip_eval=skip_eval,
                  include_medium=include_medium, **(selection or {}))
    if limit is not None:
        fields["limit"] = limit
    return _run(fields, "--output-dir"), api_key


def parallel_runs(config: AppConfig, *, n: int, keys: list[SecretStr], output_root: Path,
                  llm: str | None, limit: int | None, skip_eval: bool, include_medium: bool,
                  share_keys: bool, selection: dict[str, object] | None = None,
                  ) -> list[tuple[RunConfig, SecretStr]]:
    """`run_1..run_N` in `output_root/run_i`, each with its own key from the pool."""
    if n < 1:
        raise ConfigError("command line", "--parallel", f"must be at least 1 (got {n})", "pass --parallel N with N ≥ 1")
    if not keys:
        raise ConfigError("command line", "--keys-file", "no keys", "give a file with one key per line")
    # Distinct keys: a key listed twice is still one rate limit.
    distinct = list({key.get_secret_value(): key for key in keys}.values())
    if len(distinct) < n and not share_keys:
        repeated = f" ({len(keys) - len(distinct)} repeated)" if len(distinct) < len(keys) else ""
        raise ConfigError("command line", "--keys-file",
                          f"{len(distinct)} distinct keys{repeated} for {n} runs: runs would share a key "
                          "and its rate limit", "add keys, lower --parallel, or pass --share-keys")
    keys = distinct
    name = profile_name(llm or default_profile(config))
    profile_for(config.llm, name, source=str(config.source or "command line"), where="--llm-config")
    root = resolve_dir(output_root, Path.cwd())
    runs = []
    for i in range(1, n + 1):
        fields = dict(name=f"run_{i}", llm=name, output_dir=root / f"run_{i}",
                      skip_eval=skip_eval, include_medium=include_medium, **(selection or {}))
        if limit is not None:
            fields["limit"] = limit
        runs.append((_run(fields, "--output-root"), keys[(i - 1) % len(keys)]))
    return runs


def read_keys_file(path: Path) -> list[SecretStr]:
    """One key per line; `#` comments and blank lines skipped; `env:VAR` lines allowed."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(str(path), "--keys-file", f"cannot read ({exc.strerror or exc})",
                          "check the path and permissions") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "--keys-file", f"not UTF-8 text (byte {exc.start})",
                          "save it as plain UTF-8 text, one key per line") from None
    keys: list[SecretStr] = []
    for lineno, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        resolved = resolve_key(text, base_dir=path.parent)
        if isinstance(resolved, KeyProblem):
            raise ConfigError(str(path), f"line {lineno}", resolved.problem, resolved.fix)
        if resolved is not None:  # never None for a non-blank line; said for the type checker
            keys.append(resolved)
    return keys


def _name_for(out: Path) -> str:
    name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in out.name).lstrip("_.-")
    return name or "run_1"


def _run(fields: dict, flag: str) -> RunConfig:
    try:
        return RunConfig.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = str(err["loc"][0]) if err["loc"] else flag
        opt = {"limit": "--limit", "output_dir": flag, "name": flag, **SELECTION_FLAGS}.get(loc, flag)
        raise ConfigError("command line", opt, err["msg"], "fix the value") from None
