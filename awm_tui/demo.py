"""The embedded default: a simulated model on loopback and the bundled sample tasks.

Works offline on a fresh machine. Everything the demo shows is labelled
"simulated", so nobody mistakes its figures for a real model's.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import platformdirs
from pydantic import SecretStr

from awm_tui.config.models import AppConfig, LLMProfile, RunConfig
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions

DEMO_LABEL = "simulated model (offline demo)"
DEMO_OPTIONS = SimOptions(latency=0.15, latency_jitter=0.1, rate_429=0.03, retry_after=0.5,
                          wrong_patch_rate=0.1, seed=7, key_credit_limit=5.0)
"""Enough latency and faults to make the dashboard move, all of it simulated; $5 of
simulated credit per key, so the panes show what is left (GET /key)."""
DEMO_MEMORY_GAIN = 0.4
"""SIMULATION, with twins only: the share of tasks the simulated model solves only with workflows
in its prompt (sim_memory), so that the demo's runs and their twins draw apart."""


def default_output_root() -> Path:
    """A fresh folder per demo under the user's data dir, so a demo never just resumes."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(platformdirs.user_data_dir("awm-tui")) / "demo" / stamp


def demo_key(name: str) -> SecretStr:
    """The simulator takes any key; each run gets its own so per-key counts show isolation."""
    return SecretStr(f"sim-demo-key-{name}")


class DemoEnvironment:
    """`async with DemoEnvironment(root) as demo:` then `demo.config`."""

    def __init__(self, output_root: Path | None = None, *, runs: int = 2, limit: int = 5,
                 options: SimOptions = DEMO_OPTIONS, twin: bool = False) -> None:
        self.output_root = (output_root or default_output_root()).expanduser().resolve()
        if twin and not options.memory_gain:
            options = replace(options, memory_gain=DEMO_MEMORY_GAIN)
        self.runs, self.limit, self.options, self.twin = runs, limit, options, twin
        self.sim = SimLLMServer(options)
        self._config: AppConfig | None = None

    @property
    def config(self) -> AppConfig:
        """The demo's runs and simulated profile; there once the environment is entered."""
        if self._config is None:
            raise RuntimeError("enter the DemoEnvironment (`async with`) before reading its config")
        return self._config

    async def __aenter__(self) -> DemoEnvironment:
        await self.sim.start("127.0.0.1", 0)
        profile = LLMProfile(model="awm-sim", base_url=self.sim.url, label=DEMO_LABEL, key_endpoint=True,
                             timeout=60, num_retries=5, retry_min_wait=0.2, retry_max_wait=2.0,
                             input_cost_per_token=1e-7, output_cost_per_token=4e-7)
        runs = [
            RunConfig(name=f"demo-{letter}", llm="llm.sim", output_dir=self.output_root / f"demo-{letter}",
                      api_key=demo_key(letter), limit=self.limit, induce_every=2,
                      # one run asks the (simulated) model to induce, the other derives workflows offline
                      induction="llm" if i % 2 == 0 else "rule", command_timeout=60, twin=self.twin)
            for i, letter in enumerate("abcdefghijklmnopqrstuvwxyz"[: self.runs])
        ]
        self._config = AppConfig(llm={"llm": profile, "llm.sim": profile}, runs=runs)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sim.close()
