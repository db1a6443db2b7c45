"""From the command line to the runs a batch will start, each with its key.

Three ways in, checked before the event loop starts (reading a few small
files is all this does):
- `--config FILE`: every `[[runs]]` entry; `--limit`, `--skip-eval`,
  `--include-medium` apply to each run when given.
- the users' single-run flags (`--llm-config/--api-key/--output-dir`), or a
  config without `[[runs]]`: one run like their old runner script.
- `--parallel N --keys-file FILE`: `run_1..run_N`, one key each.
`--demo` is built later, inside the loop (it starts the simulated model).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr, ValidationError

from awm_tui.config.errors import ConfigError
from awm_tui.config.loader import find_config_path, load_config
from awm_tui.config.models import AppConfig, RunConfig
from awm_tui.config.overrides import (
    SELECTION_FLAGS, parallel_runs, read_keys_file, selection_of, single_run, with_budget, with_docker_hosts,
)
from awm_tui.batch.preflight import RunInputs, check_output_dir, preflight
from awm_tui.config.plan import ResolvedRun, require_keys, resolve_pair

DEFAULT_PARALLEL_ROOT = Path("outputs")
"""`--parallel` without `--output-root` writes `./outputs/run_i`, like the users' terminals did."""


@dataclass
class BatchPlan:
    config: AppConfig | None
    """None for `--demo`: the demo environment makes its config on the loop."""
    runs: list[ResolvedRun] = field(default_factory=list)
    """Each with its profile and its one key (`config.plan.resolve_run`)."""
    notices: list[str] = field(default_factory=list)
    demo_root: Path | None = None
    demo_root_chosen: bool = False
    """True when the demo's output root is the default one (so it is printed)."""
    inputs: list[RunInputs] = field(default_factory=list)
    """Where each run's output directory and dataset came from, for one-line errors."""

    @property
    def secrets(self) -> list[str]:
        """Raw keys, only so the reporter can scrub them from anything it prints."""
        return [r.api_key.get_secret_value() for r in self.runs if r.api_key is not None]


def build_plan(args: argparse.Namespace, *, keys_required: bool = True) -> BatchPlan:
    """Raises ConfigError (one line, exit 2) for anything the user must fix.
    `keys_required=False` (for `--check`) leaves a missing key to be reported."""
    single = any(getattr(args, f) is not None for f in ("llm_config", "api_key", "output_dir"))
    if args.demo:
        if single or args.parallel or args.keys_file or getattr(args, "twin_api_key", None) is not None:
            raise ConfigError("command line", "--demo", "cannot be combined with single-run or --parallel flags",
                              "drop --demo to use your own model, or drop the other flags")
        if args.output_root is not None:
            check_output_dir(args.output_root, "command line", "--output-root")
        return BatchPlan(config=None, demo_root=args.output_root, demo_root_chosen=args.output_root is None)
    if getattr(args, "twin_api_key", None) is not None and not args.twin:
        raise ConfigError("command line", "--twin-api-key", "only used with --twin", "add --twin")
    if args.keys_file and not args.parallel:
        raise ConfigError("command line", "--keys-file", "only used with --parallel N", "add --parallel N")
    if args.parallel and single and (args.api_key is not None or args.output_dir is not None):
        raise ConfigError("command line", "--parallel", "takes its keys from --keys-file and its dirs from "
                          "--output-root", "drop --api-key/--output-dir")
    path = find_config_path(args.config)
    loaded = load_config(path)
    config = loaded.config = with_docker_hosts(with_budget(loaded.config, getattr(args, "budget", None)),
                                               getattr(args, "docker_host", None))
    source = str(path) if path else "(built-in defaults: no config file found)"
    common = {"limit": args.limit, "skip_eval": args.skip_eval, "include_medium": args.include_medium,
              "selection": selection_of(args)}
    if args.parallel:
        if args.keys_file is None:
            raise ConfigError("command line", "--parallel", "needs --keys-file", "give a file with one key per line")
        pairs = parallel_runs(config, n=args.parallel, keys=read_keys_file(args.keys_file),
                              output_root=args.output_root or DEFAULT_PARALLEL_ROOT, llm=args.llm_config,
                              share_keys=args.share_keys, **common)
        overrides: list[SecretStr | None] = [key for _, key in pairs]
        runs = [run for run, _ in pairs]
        fields = ["--output-root"] * len(runs)
    elif single or not config.runs:
        if args.output_root is not None:
            raise ConfigError("command line", "--output-root", "applies to --parallel and --demo",
                              "use --output-dir for a single run")
        run, key = single_run(config, llm=args.llm_config, api_key=args.api_key,
                              output_dir=args.output_dir, **common)
        runs, overrides = [run], [key]
        fields = ["--output-dir"]
    else:
        if args.output_root is not None:
            raise ConfigError("command line", "--output-root", "applies to --parallel and --demo",
                              "set output_dir in each [[runs]] entry")
        runs = [_with_flags(run, args) for run in config.runs]
        overrides = [None] * len(runs)
        fields = [f"runs[{i}].output_dir" for i in range(len(runs))]
    if getattr(args, "twin", False):
        runs = [_validated(run, {"twin": True}, "--twin") for run in runs]
    twin_key = getattr(args, "twin_api_key", None)
    resolved: list[ResolvedRun] = []
    inputs: list[RunInputs] = []
    for i, (run, key, where) in enumerate(zip(runs, overrides, fields)):
        dataset_where = where.replace("output_dir", "dataset") if where.startswith("runs[") else "dataset"
        for item in resolve_pair(config, run, i, loaded.key_problems, api_key=key, twin_api_key=twin_key):
            resolved.append(item)
            inputs.append(RunInputs(item.run, where if item.run is run else f"{where} (its twin's DIR-nomem)",
                                    dataset_where))
    if keys_required:
        require_keys(resolved, source)
    preflight(inputs, "command line" if args.parallel or single else source, datasets=False, docker=config.docker)
    return BatchPlan(config=config, notices=list(loaded.notices), runs=resolved, inputs=inputs)


def _with_flags(run: RunConfig, args: argparse.Namespace) -> RunConfig:
    """A config run with the command line's --limit/--skip-eval/--include-medium, validated."""
    changes: dict[str, object] = {}
    if args.limit is not None:
        changes["limit"] = args.limit
    if args.skip_eval:
        changes["skip_eval"] = True
    if args.include_medium:
        changes["include_medium"] = True
    changes.update(selection_of(args))
    return _validated(run, changes)


def _validated(run: RunConfig, changes: dict[str, object], flag: str | None = None) -> RunConfig:
    """`run` with the command line's `changes`, validated; ConfigError naming the flag otherwise."""
    if not changes:
        return run
    # model_copy(update=...) would skip validation; the dump keeps SecretStr objects as they are.
    try:
        return RunConfig.model_validate({**run.model_dump(), **changes})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = str(err["loc"][0]) if err["loc"] else ""
        raise ConfigError("command line", flag or SELECTION_FLAGS.get(loc, f"--{loc.replace('_', '-')}"),
                          err["msg"].removeprefix("Value error, "), "fix the value") from None
