"""The `report` subcommand: argument parsing, the page or JSON, exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from awm_tui.engine.state.atomic import write_text_atomic

from .data import ReportError, build_report

EXIT_OK, EXIT_USAGE = 0, 2


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="awm-tui report",
        description="One self-contained HTML report (opens offline) about one or more runs' output "
                    "directories: resolve curves with inductions marked, the per-task outcome grid, "
                    "memory's evolution, workflow use and success, cost, tokens and time.")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="a run's output directory (its --output-dir)")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="where to write the page (default report.html; with --json only when given)")
    p.add_argument("--json", action="store_true", help="print the report's data as JSON on stdout")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = build_report(args.dirs)
        if args.json:
            try:
                sys.stdout.write(json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
                sys.stdout.flush()
            except BrokenPipeError:  # `| head`: the reader has what it wanted
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        if args.output is not None or not args.json:
            from .html import render_html
            target = args.output or Path("report.html")
            page = render_html(report)
            try:
                write_text_atomic(target, page)
                os.chmod(target, 0o666 & ~_umask())  # a page to share, not a private temp file
            except OSError as exc:
                raise ReportError(f"{target}: cannot write the report ({exc.strerror}); "
                                  "choose another -o FILE") from None
            tasks = sum(len(r.tasks) for r in report.runs)
            print(f"wrote {target} ({len(report.runs)} run(s), {tasks} task(s))",
                  file=sys.stderr if args.json else sys.stdout)
    except ReportError as exc:
        print(f"awm-tui report: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
