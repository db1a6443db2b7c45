"""`awm-tui`: the TUI, headless batch runs, config checks, and the two servers."""

from __future__ import annotations

# Only light imports up here: until main() runs, a Ctrl-C would print a traceback.
import argparse
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from awm_tui import __version__
from awm_tui.arguments import ArgumentParser
from awm_tui.exit_codes import EXIT_INTERRUPTED, EXIT_RUN_FAILED, EXIT_USAGE

if TYPE_CHECKING:
    from pydantic import SecretStr

INTERRUPTED = "awm-tui: interrupted; rerun to resume"

SUBCOMMANDS = {  # each module has main(argv) -> exit code
    "eval-server": "awm_tui.servers.eval_server",
    "sim-llm": "awm_tui.servers.sim_llm",
    "report": "awm_tui.report.cli",
}


def _secret(value: str) -> SecretStr:
    # argparse echoes the raw value on a plain ValueError; ArgumentTypeError
    # prints only our message, which never holds the key.
    from awm_tui.config.keys import KeyProblem, resolve_key

    resolved = resolve_key(value)
    if isinstance(resolved, KeyProblem):
        raise argparse.ArgumentTypeError(f"{resolved.problem}; {resolved.fix}")
    if resolved is None:
        raise argparse.ArgumentTypeError("empty key; pass the key, env:VAR_NAME or file:PATH")
    return resolved


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _usd(value: str) -> float:
    from awm_tui.config.models import parse_usd

    try:
        return parse_usd(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="awm-tui",
        description="Terminal control center for Agent Workflow Memory (AWM) experiments.",
        epilog="Servers: `awm-tui eval-server --help`, `awm-tui sim-llm --help`. "
               "Reports: `awm-tui report --help`. "
               "Exit codes: 0 success, 1 a run failed, 2 usage or config error, 130 interrupted.",
    )
    p.add_argument("--version", action="version", version=f"awm-tui {__version__}")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--batch", action="store_true", help="run headless, no TUI")
    mode.add_argument("--check", action="store_true",
                      help="validate the config, print the resolved plan (keys masked) and exit")
    p.add_argument("--config", type=Path, metavar="PATH",
                   help="config file (default: $AWM_TUI_CONFIG, ./config.toml, then the user config dir)")
    p.add_argument("--demo", action="store_true",
                   help="the offline embedded default: simulated model and bundled sample tasks")
    p.add_argument("--theme", metavar="NAME", help="TUI theme: awm-dark, awm-light, awm-ansi, …")
    p.add_argument("--require-keys", action="store_true",
                   help="with --check: a missing API key is an error (exit 2), as it is for --batch")

    single = p.add_argument_group("single run (the users' runner flags; with --batch, or --check to check them)")
    single.add_argument("--llm-config", metavar="NAME",
                        help="LLM profile from config.toml (default: llm.kimi-k2 if defined, else [llm])")
    single.add_argument("--api-key", type=_secret, metavar="KEY",
                        help="override the profile's key: the key, env:VAR_NAME or file:PATH")
    single.add_argument("--output-dir", type=Path, metavar="DIR", help="where this run writes its files")
    single.add_argument("--limit", type=_positive, metavar="N", help="number of task instances (default 5)")
    single.add_argument("--budget", type=_usd, metavar="USD",
                        help="most dollars all runs together may spend (sets [fleet] budget; their "
                             "checkpointed spend counts): the call that could cross it is not made")
    single.add_argument("--skip-eval", action="store_true", help="do not evaluate patches")
    single.add_argument("--include-medium", action="store_true", help="also take medium-sized tasks")
    single.add_argument("--dataset", metavar="PATH",
                        help="tasks: `sample` or a SWE-bench .json/.jsonl/.parquet file (overrides [[runs]] too)")
    single.add_argument("--filter", metavar="REGEX", help="only instance ids matching REGEX (re.match)")
    single.add_argument("--slice", metavar="START:STOP", help="only these rows (after --shuffle/--filter), e.g. 0:50")
    single.add_argument("--shuffle", type=int, metavar="SEED", help="shuffle the rows with this seed first")
    single.add_argument("--twin", action="store_true",
                        help="also run a no-memory twin of each run (NAME-nomem in DIR-nomem): same tasks, "
                             "no workflows in prompts, no induction")
    single.add_argument("--twin-api-key", type=_secret, metavar="KEY",
                        help="the twin's own key (the key, env:VAR_NAME or file:PATH); default: the run's")
    single.add_argument("--workers", type=_positive, metavar="K",
                        help="tasks of a run in flight at once (default 1: one after another)")
    single.add_argument("--stall-timeout", metavar="SECONDS",  # checked as RunConfig.stall_timeout
                        help="cancel a task after this long without a model reply or command output "
                             "(default 600; a rerun retries it)")
    single.add_argument("--docker-host", action="append", metavar="URL",
                        help="a Docker daemon to place task containers on (unix:// or tcp://); repeatable")

    par = p.add_argument_group("parallel runs (with --batch, or --check to check them)")
    par.add_argument("--parallel", type=_positive, metavar="N", help="start N runs run_1..run_N")
    par.add_argument("--keys-file", type=Path, metavar="FILE",
                     help="one API key per line (# comments, env:VAR lines allowed)")
    par.add_argument("--share-keys", action="store_true", help="allow fewer keys than runs")
    par.add_argument("--output-root", type=Path, metavar="DIR",
                     help="parent of the runs' output directories (--parallel, --demo)")

    out = p.add_argument_group("batch output")
    out.add_argument("--json", action="store_true", help="write the event stream as JSON lines to stdout")
    out.add_argument("--status-every", type=float, default=30.0, metavar="SECONDS",
                     help="print a status line per run this often (default 30)")
    return p


def main(argv: list[str] | None = None) -> int:
    # SIGTERM before a face installs its own handlers (e.g. while importing) stops
    # like Ctrl-C does: exit 130 with one line, not 143 or a traceback.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:  # main() called in-process (tests, scripts) leaves the caller's handler as it was
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _main(argv: list[str]) -> int:
    from awm_tui.config.errors import ConfigError

    try:
        if argv and argv[0] in SUBCOMMANDS:
            from importlib import import_module
            return import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
        args = build_parser().parse_args(argv)
        return _dispatch(args)
    except ConfigError as exc:
        print(f"awm-tui: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # last resort: one line, the traceback only on request
        if os.environ.get("AWM_TUI_DEBUG"):
            raise
        print(f"awm-tui: internal error: {type(exc).__name__}: {exc} "
              "(set AWM_TUI_DEBUG=1 to see the traceback)", file=sys.stderr)
        return EXIT_RUN_FAILED


def _dispatch(args: argparse.Namespace) -> int:
    from awm_tui.config.errors import ConfigError
    from awm_tui.config.loader import find_config_path, load_config

    single_flags = any(getattr(args, f) is not None for f in ("llm_config", "api_key", "output_dir"))
    if (single_flags or args.parallel) and not (args.batch or args.check):
        raise ConfigError("command line", "--batch", "single-run and --parallel flags need --batch (or --check)",
                          "add --batch (the TUI takes these in its run panes)")
    twin_flags = args.twin_api_key is not None or (args.twin and not args.demo)  # the TUI demo takes --twin
    if twin_flags and not (args.batch or args.check):
        raise ConfigError("command line", "--twin", "needs --batch (or --check)",
                          "add --batch; in the TUI, tick a pane's twin box or set twin = true in [[runs]]")
    if args.demo and args.config:
        raise ConfigError("command line", "--demo", "cannot be combined with --config",
                          "use one or the other")
    if args.check:
        from awm_tui.check import run_check
        return run_check(args)
    if args.batch:
        from awm_tui.batch import run_batch
        return run_batch(args)
    from awm_tui.tui.app import run_tui
    loaded = None if args.demo else load_config(find_config_path(args.config))
    if loaded is not None:
        from awm_tui.batch.preflight import check_docker_hosts
        from awm_tui.config.overrides import with_docker_hosts
        loaded.config = with_docker_hosts(loaded.config, getattr(args, "docker_host", None))
        check_docker_hosts(loaded.config.docker, str(loaded.config.source or "config"))
    for notice in loaded.notices if loaded else ():
        print(f"awm-tui: {notice}", file=sys.stderr)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as before: raising inside Textual's loop would not restore the terminal
    from awm_tui.config.overrides import with_budget
    config = with_budget(loaded.config, args.budget) if loaded else None
    return run_tui(config, theme=args.theme, demo=args.demo, twin=args.twin,
                   output_root=args.output_root, key_problems=loaded.key_problems if loaded else None)
