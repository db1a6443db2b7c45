"""Headless batch mode: `awm-tui --batch …`. Never imports textual.

Exit codes: 0 every run finished, 1 a run failed or had task errors, 2 a usage
or config error (nothing ran), 130 interrupted (rerun the command to resume).
Signals are described in `awm_tui.batch.signals`.
"""

from __future__ import annotations

import argparse
import asyncio

__all__ = ["run_batch"]


def run_batch(args: argparse.Namespace) -> int:
    """Run the batch the parsed command line asks for; ConfigError propagates (the CLI prints it, exit 2)."""
    from awm_tui.batch.plan import build_plan
    from awm_tui.batch.runner import run_plan

    plan = build_plan(args)  # config and keys files are read before the loop starts
    return asyncio.run(run_plan(args, plan))
