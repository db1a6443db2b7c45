"""`awm-tui --check`: validate a config and print what would run, keys masked.

A missing key is reported on its run's line but is not an error: the TUI can
take the key in the run's pane. `--require-keys` (and every `--batch` run)
makes it one, with exit code 2. Everything else a run would refuse is an error
here too (exit 2, one line): output directories that cannot be made, datasets
that do not load, an unknown theme. With the batch flags (`--output-dir`,
`--parallel N --keys-file F`, …) it checks the batch those flags would start.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from awm_tui.batch.preflight import RunInputs, preflight
from awm_tui.config.errors import ConfigError
from awm_tui.config.keys import NO_KEY
from awm_tui.config.loader import find_config_path, load_config
from awm_tui.config.models import RunConfig
from awm_tui.config.overrides import SELECTION_FLAGS, with_docker_hosts
from awm_tui.config.plan import ResolvedRun, require_keys, resolve_plan
from awm_tui.config.twins import twin_dir, twin_name, twin_of
from awm_tui.engine.sandbox.tls import display_url


def key_status(item: ResolvedRun) -> str:
    if item.api_key is not None:
        return item.masked_key
    problem = item.key_problem
    if problem is not None and problem is not NO_KEY:
        return f"missing: {problem.problem} ({item.key_path})"
    return f"missing: none set ({item.key_path})"


def uses_batch_flags(args: argparse.Namespace) -> bool:
    """Whether the flags change the plan: then --check shows the batch they would start."""
    flags = ("llm_config", "api_key", "output_dir", "limit", *SELECTION_FLAGS)
    return (bool(args.parallel) or bool(getattr(args, "twin", False))
            or any(getattr(args, f, None) is not None for f in flags))


def run_check(args: argparse.Namespace) -> int:
    path = find_config_path(args.config)
    require = args.require_keys
    loaded = load_config(path)
    source = str(path) if path else "(built-in defaults: no config file found)"
    if uses_batch_flags(args):
        from awm_tui.batch.plan import build_plan
        batch = build_plan(args, keys_required=require)
        plan, inputs = batch.runs, batch.inputs
        if batch.config is not None:
            loaded.config = batch.config  # with --docker-host
    else:
        loaded.config = with_docker_hosts(loaded.config, getattr(args, "docker_host", None))
        plan = resolve_plan(loaded)
        index = {run.name: i for i, run in enumerate(loaded.config.runs)}
        inputs = []
        for item in plan:  # a twin follows its run; its directory comes from the run's `twin`
            own = index.get(item.name)
            i = own if own is not None else index[twin_of(item.name) or ""]
            inputs.append(RunInputs(item.run, f"runs[{i}]." + ("output_dir" if own is not None else "twin"),
                                    f"runs[{i}].dataset"))
    console = Console(soft_wrap=True, highlight=False)
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    for notice in loaded.notices:
        err.print(f"awm-tui: {notice}", markup=False)
    console.print(f"config: {source}", markup=False)
    cfg = loaded.config
    budget = getattr(args, "budget", None) or cfg.fleet.budget
    console.print(f"fleet: budget {_usd(budget)}", markup=False)
    console.print(f"eval: {cfg.eval.mode}" + (f" ({cfg.eval.server_url})" if cfg.eval.mode == "server" else ""),
                  markup=False)
    console.print(f"docker: {cfg.docker.url or 'auto ($DOCKER_HOST or the default socket)'}, "
                  f"image {cfg.docker.image}", markup=False)
    for host in cfg.docker.hosts:
        tls = " (TLS)" if host.tls else ""
        room = f", max {host.max_containers} containers" if host.max_containers else ""
        console.print(f"  host {display_url(host.url)}{tls}{room}", markup=False)
    console.print(f"http: pool {cfg.http.limit}/{cfg.http.limit_per_host} per host, timeouts "
                  f"total={cfg.http.total} connect={cfg.http.connect} sock_read={cfg.http.sock_read}",
                  markup=False)
    if not plan:
        console.print("runs: none (add [[runs]] tables, or add run panes in the TUI)", markup=False)
    for item in plan:
        run = item.run
        label = f", {item.profile.label}" if item.profile.label else ""
        console.print(f"run {run.name}", style="bold", markup=False)
        for name, value in (
            ("profile", f"{item.profile_name} ({item.profile.model}{label})"),
            ("url", item.profile.chat_url + (f" (at most {item.profile.requests_per_minute:g} calls a minute "
                                             "per key)" if item.profile.requests_per_minute else "")),
            ("api key", key_status(item)),
            ("output", str(run.output_dir)),
            ("tasks", f"limit {run.limit} from {run.dataset} ({run.split})"
                      + (", medium too" if run.include_medium else "")
                      + (f", {run.workers} in flight at once" if run.workers > 1 else "")),
            ("eval", "skipped" if run.skip_eval else cfg.eval.mode),
            ("sandbox", run.sandbox),
            ("memory", _memory_line(run)),
            ("timeouts", f"command {run.command_timeout:g} s, stall {run.stall_timeout:g} s "
                         f"(no model reply or command output), task {run.task_timeout:g} s"),
            ("budget", f"{_usd(run.budget)} per run, {_usd(run.max_cost)} per task"
                       + (f", {_usd(item.profile.key_budget)} per key" if item.profile.key_budget else "")),
        ):
            console.print(f"  {name:<8} {value}", markup=False)
    if require:
        require_keys(plan, source)
    preflight(inputs, source, datasets=True, docker=cfg.docker)
    _check_theme(args.theme or cfg.ui.theme, source, "--theme" if args.theme else "ui.theme")
    missing = sum(1 for item in plan if item.api_key is None)
    if missing:
        err.print(f"awm-tui: {missing} run(s) have no API key yet: enter it in the TUI pane, "
                  "or set it before --batch (--require-keys makes this an error)", markup=False)
    return 0


def _usd(value: float | None) -> str:
    return "none" if value is None else f"${value:.2f}"


def _memory_line(run: RunConfig) -> str:
    if not run.memory:
        base = twin_of(run.name)
        return "off: no workflows in prompts, no induction" + (f" (the no-memory twin of {base})" if base else "")
    line = f"on, {run.induction} induction every {run.induce_every} successes"
    return line + (f"; twin {twin_name(run.name)} in {twin_dir(run.output_dir)}" if run.twin else "")


def _check_theme(name: str, source: str, field: str) -> None:
    """The TUI would fall back to the default theme with a notice; --check says so first."""
    from awm_tui.tui.themes import theme_names

    known = theme_names()
    if name not in known:
        raise ConfigError(source, field, f"unknown theme {name!r}",
                          f"use one of: {', '.join(sorted(known))} (or put {name}.toml in $AWM_TUI_THEMES)")
