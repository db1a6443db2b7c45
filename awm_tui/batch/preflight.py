"""What a run would refuse, found before anything starts (`--batch` and `--check`).

Each problem is a ConfigError: one line naming the input and the fix, exit 2.
Reads a few small files and creates nothing; runs before the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from awm_tui.config.errors import ConfigError
from awm_tui.config.models import DockerConfig, RunConfig
from awm_tui.engine.sandbox.tls import tls_preflight
from awm_tui.engine.state.outputs import output_dir_problem
from awm_tui.engine.tasks import TaskError, load_dataset


@dataclass(frozen=True)
class RunInputs:
    run: RunConfig
    dir_field: str
    """Where the output directory came from: `--output-dir`, `--output-root`, `runs[0].output_dir`."""
    dataset_field: str = "dataset"


def check_output_dir(path: Path, source: str, field: str) -> None:
    if problem := output_dir_problem(path):
        raise ConfigError(source, field, problem)


def check_docker_hosts(docker: DockerConfig, source: str) -> None:
    """A `[[docker.hosts]]` TLS host whose certificate does not verify is refused at start."""
    if problem := tls_preflight(docker):
        raise ConfigError(source, *problem)


def preflight(items: list[RunInputs], source: str, *, datasets: bool,
              docker: DockerConfig | None = None) -> None:
    """Every run's output directory (and, with `datasets`, its dataset) as a run would take it,
    and the TLS Docker hosts' certificates."""
    if docker is not None:
        check_docker_hosts(docker, source)
    for item in items:
        check_output_dir(item.run.output_dir, source, item.dir_field)
    if not datasets:
        return  # --batch: the fleet loads each dataset once and refuses a bad one (exit 2)
    loaded: set[str] = set()
    for item in items:
        if item.run.dataset in loaded:
            continue
        try:
            load_dataset(item.run.dataset)
        except TaskError as exc:
            raise ConfigError(source, item.dataset_field, str(exc)) from None
        loaded.add(item.run.dataset)
