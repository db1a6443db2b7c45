"""No-memory twins: the one rule for what a run's twin is, and how to find it.

The twin of run `X` is the run named `X-nomem`, writing to `<output_dir>-nomem`:
the same tasks in the same order, the same profile and sandbox settings, with
`memory = false` (no workflows in its prompts, no induction). Its key is the run's
`twin_api_key` when one is given, else whatever key the run itself gets. The TUI's
curves, the batch summary and `awm-tui report` find a twin by this name alone.
"""

from __future__ import annotations

from pathlib import Path

from awm_tui.config.models import TWIN_SUFFIX, RunConfig

__all__ = ["TWIN_SUFFIX", "twin_config", "twin_dir", "twin_name", "twin_of"]


def twin_name(name: str) -> str:
    return f"{name}{TWIN_SUFFIX}"


def twin_dir(output_dir: Path) -> Path:
    path = output_dir if output_dir.name else output_dir.absolute()  # `.` has no name to extend
    return path.parent / f"{path.name}{TWIN_SUFFIX}"


def twin_of(name: str) -> str | None:
    """The run whose twin `name` is, or None when `name` is not a twin's."""
    base = name.removesuffix(TWIN_SUFFIX)
    return base if base != name and base else None


def twin_config(run: RunConfig) -> RunConfig:
    """The no-memory twin of `run` (validated like any run; `run` is left as it was)."""
    data = run.model_dump()  # python mode keeps SecretStr objects as they are
    data.update(name=twin_name(run.name), output_dir=twin_dir(run.output_dir), memory=False,
                twin=False, twin_api_key=None, api_key=run.twin_api_key or run.api_key)
    return RunConfig.model_validate(data)
