"""Find, read and validate `config.toml`.

The file may be the users' existing OpenHands config.toml: its other sections
and unknown `[llm]` fields are ignored with a notice. Our own sections reject
unknown keys (a typo there would silently change an experiment).
"""

from __future__ import annotations

import difflib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import tomli
from pydantic import BaseModel, SecretStr, ValidationError

from awm_tui.config.errors import ConfigError
from awm_tui.config.keys import REFERENCES, KeyProblem, resolve_key
from awm_tui.config.models import (
    AppConfig,
    DatasetConfig,
    DockerConfig,
    EvalConfig,
    FleetConfig,
    HttpConfig,
    LLMProfile,
    RunConfig,
    UIConfig,
    profile_for,
)
from awm_tui.config.twins import twin_config

ENV_VAR = "AWM_TUI_CONFIG"
SECTIONS: dict[str, type[BaseModel]] = {
    "eval": EvalConfig, "docker": DockerConfig, "dataset": DatasetConfig, "http": HttpConfig, "ui": UIConfig,
    "fleet": FleetConfig,
}


@dataclass
class LoadedConfig:
    config: AppConfig
    notices: list[str] = field(default_factory=list)
    """Things worth telling the user that do not stop anything."""
    key_problems: dict[str, KeyProblem] = field(default_factory=dict)
    """Unresolved key references by key path (`runs[0].api_key`, `llm.NAME.api_key`)."""


def user_config_path() -> Path:
    return Path(platformdirs.user_config_dir("awm-tui")) / "config.toml"


def find_config_path(explicit: Path | None = None) -> Path | None:
    """`--config`, then `$AWM_TUI_CONFIG`, then `./config.toml`, then the user config dir."""
    if explicit is not None:
        return explicit
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    for candidate in (Path("config.toml"), user_config_path()):
        if candidate.is_file():
            return candidate
    return None


def load_config(path: Path | None) -> LoadedConfig:
    """Load and validate a config file; `None` gives the built-in defaults."""
    if path is None:
        return LoadedConfig(AppConfig(llm={"llm": LLMProfile()}))
    source = str(path)
    try:
        with open(path, "rb") as fh:  # tomli needs binary mode
            data = tomli.load(fh)
    except FileNotFoundError:
        raise ConfigError(source, "", "no such file", "check the path given to --config or $AWM_TUI_CONFIG") from None
    except IsADirectoryError:
        raise ConfigError(source, "", "is a directory", "point --config at a .toml file") from None
    except PermissionError:
        raise ConfigError(source, "", "permission denied", "make the file readable") from None
    except tomli.TOMLDecodeError as exc:
        raise ConfigError(source, f"line {exc.lineno}, column {exc.colno}",
                          f"invalid TOML ({exc.msg})", "fix the syntax there") from None
    except UnicodeDecodeError:
        raise ConfigError(source, "", "not UTF-8 text", "save the file as UTF-8") from None
    loaded = parse_config(data, source=source, base_dir=path.resolve().parent)
    loaded.config.source = path
    _warn_readable_keys(path, data, loaded)
    return loaded


def parse_config(data: dict[str, Any], *, source: str, base_dir: Path) -> LoadedConfig:
    notices: list[str] = []
    problems: dict[str, KeyProblem] = {}
    ignored = [f"[{name}]" for name in data if name not in (*SECTIONS, "llm", "runs")]
    profiles = _parse_llm(data.get("llm", {}), source, base_dir, ignored, problems)
    if ignored:
        # An OpenHands config.toml has a dozen of these: one line, not a screenful.
        notices.append(f"{source}: ignoring what awm-tui does not use (OpenHands settings): {', '.join(ignored)}")
    runs = _parse_runs(data.get("runs", []), source, base_dir, profiles, problems)
    _resolve_host_paths(data.get("docker"), base_dir)
    sections = {
        name: _validate(model, data.get(name, {}), source, name)
        for name, model in SECTIONS.items()
    }
    config = AppConfig(llm=profiles, runs=runs, **sections)
    return LoadedConfig(config, notices, problems)


def _parse_llm(raw: Any, source: str, base_dir: Path, ignored: list[str],
               problems: dict[str, KeyProblem]) -> dict[str, LLMProfile]:
    if not isinstance(raw, dict):
        raise ConfigError(source, "llm", "expected a table", "write [llm] with model, api_key, …")
    known = set(LLMProfile.model_fields)
    defaults = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    tables = {"llm": defaults} | {f"llm.{k}": v for k, v in raw.items() if isinstance(v, dict)}
    profiles: dict[str, LLMProfile] = {}
    base: dict[str, Any] = {}
    for full, table in tables.items():
        kept = {}
        for key, value in table.items():
            if key in known:
                kept[key] = value
            elif not isinstance(value, dict):
                ignored.append(f"{full}.{key}")
        if "api_key" in kept:
            kept["api_key"] = _key(kept["api_key"], f"{full}.api_key", source, base_dir, problems)
        merged = kept if full == "llm" else {**base, **kept}  # named profiles inherit [llm]
        if full != "llm" and "api_key" not in kept and "llm.api_key" in problems:
            problems[f"{full}.api_key"] = problems["llm.api_key"]  # ...and so its broken key reference
        profiles[full] = _validate(LLMProfile, merged, source, full)
        if full == "llm":
            base = kept
    return profiles


def _parse_runs(raw: Any, source: str, base_dir: Path, profiles: dict[str, LLMProfile],
                problems: dict[str, KeyProblem]) -> list[RunConfig]:
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise ConfigError(source, "runs", "expected an array of tables", "write each run as [[runs]]")
    runs: list[RunConfig] = []
    names: dict[str, str] = {}
    dirs: dict[Path, str] = {}
    for i, table in enumerate(raw):
        where = f"runs[{i}]"
        table = dict(table)
        for field_name in ("api_key", "twin_api_key"):
            if field_name in table:
                table[field_name] = _key(table[field_name], f"{where}.{field_name}", source, base_dir, problems)
        if isinstance(table.get("output_dir"), str):
            table["output_dir"] = resolve_dir(table["output_dir"], base_dir)
        run = _validate(RunConfig, table, source, where)
        # A twin (NAME-nomem in DIR-nomem) takes a name and a directory like any run.
        taken = [(run, f"{where}.name", f"{where}.output_dir", where)]
        if run.twin:
            taken.append((twin_config(run), f"{where}.twin", f"{where}.twin", f"the twin of {where}"))
        for each, name_field, dir_field, label in taken:
            if each.name in names:
                raise ConfigError(source, name_field, f"duplicate run name {each.name!r} (also {names[each.name]})",
                                  "give every run a unique name (a twin is named NAME-nomem)")
            names[each.name] = label
            if each.output_dir in dirs:
                raise ConfigError(source, dir_field, f"same directory as {dirs[each.output_dir]} ({each.output_dir})",
                                  "give each run its own output_dir (a twin writes to DIR-nomem): "
                                  "runs sharing one would mix memory, buffer and checkpoint")
            dirs[each.output_dir] = label
        profile_for(profiles, run.llm, source=source, where=f"{where}.llm")
        runs.append(run)
    return runs


def _resolve_host_paths(docker: Any, base_dir: Path) -> None:
    """`[[docker.hosts]]` TLS files are relative to the config file, like output dirs."""
    hosts = docker.get("hosts") if isinstance(docker, dict) else None
    for host in hosts if isinstance(hosts, list) else ():
        for name in ("ca", "cert", "key"):
            if isinstance(host, dict) and isinstance(host.get(name), str):
                host[name] = resolve_dir(host[name], base_dir)


def resolve_dir(value: str | Path, base_dir: Path) -> Path:
    """Absolute, normalised output directory, so `./a` and `a/` compare equal."""
    path = Path(value).expanduser()
    return (path if path.is_absolute() else base_dir / path).resolve()


def _key(value: Any, where: str, source: str, base_dir: Path,
         problems: dict[str, KeyProblem]) -> SecretStr | None:
    if not isinstance(value, str):
        raise ConfigError(source, where, f"expected a string, got {type(value).__name__}",
                          'write the key, "env:VAR_NAME" or "file:path" in quotes')
    resolved = resolve_key(value, base_dir=base_dir)
    if isinstance(resolved, KeyProblem):
        problems[where] = resolved
        return None
    return resolved


def _validate(model: type[BaseModel], data: Any, source: str, where: str):
    if not isinstance(data, dict):
        raise ConfigError(source, where, "expected a table", f"write [{where}] with key = value lines")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc, model, source, where) from None


def _translate(exc: ValidationError, model: type[BaseModel], source: str, where: str) -> ConfigError:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
    path = f"{where}.{loc}" if loc else where
    kind = err["type"]
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    if kind == "extra_forbidden":
        field_name = str(err["loc"][-1])
        close = difflib.get_close_matches(field_name, list(model.model_fields), n=1)
        fix = f"did you mean {close[0]!r}?" if close else f"remove it (known: {', '.join(model.model_fields)})"
        return ConfigError(source, path, "unknown field" + more, fix)
    if kind == "missing":
        return ConfigError(source, path, "required field is missing" + more, "add it")
    shown = "" if "api_key" in path else f" (got {err.get('input')!r})"
    msg = err["msg"].removeprefix("Value error, ")
    return ConfigError(source, path, f"{msg}{shown}{more}", "fix the value")


def _warn_readable_keys(path: Path, data: dict[str, Any], loaded: LoadedConfig) -> None:
    literal = any(
        isinstance(v, str) and v.strip() and not v.strip().startswith(REFERENCES)
        for v in _api_key_values(data)
    )
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if literal and mode & (stat.S_IRGRP | stat.S_IROTH):
        loaded.notices.append(
            f"warning: {path} holds literal API keys and is readable by group/others; "
            f"run chmod 600 {path} or use env:VAR / file:PATH keys")


def _api_key_values(data: dict[str, Any]):
    llm = data.get("llm", {})
    if isinstance(llm, dict):
        yield llm.get("api_key")
        for table in llm.values():
            if isinstance(table, dict):
                yield table.get("api_key")
    runs = data.get("runs", [])
    if isinstance(runs, list):
        for run in runs:
            if isinstance(run, dict):
                yield run.get("api_key")
                yield run.get("twin_api_key")
