"""One AWM run through `Fleet` in a process of its own, so a test can SIGKILL it.

    python tests/helpers/fleet_run.py OUTPUT_DIR --name NAME --sandbox docker|local
        [--limit 4] [--latency 0.3] [--docker-url URL] [--seed 0]

Starts the simulated model in-process, evaluates locally, prints the fleet's
warning/error log lines as `LOG <level> <message>` and finally one line
`OUTCOME <json>`; exits 0 when the run finished, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from pathlib import Path

from pydantic import SecretStr

from awm_tui.config.models import AppConfig, DockerConfig, EvalConfig, LLMProfile, RunConfig
from awm_tui.config.plan import resolve_run
from awm_tui.engine.events import Event, LogLine
from awm_tui.engine.fleet import Fleet
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions

KEY = SecretStr("sim-crash-key-00000000-c4a5")


def sink(event: Event) -> None:
    if isinstance(event, LogLine) and event.level in ("warning", "error"):
        print(f"LOG {event.level} {event.message}", flush=True)


async def main(args: argparse.Namespace) -> int:
    async with SimLLMServer(SimOptions(latency=args.latency, seed=args.seed)) as sim:
        profile = LLMProfile(model="awm-sim", base_url=sim.url, label="simulated", timeout=60,
                             num_retries=3, retry_min_wait=0.05, retry_max_wait=0.5)
        run = RunConfig(name=args.name, llm="llm.sim", output_dir=args.output_dir, limit=args.limit,
                        sandbox=args.sandbox, induce_every=2, induction="rule", command_timeout=60)
        config = AppConfig(llm={"llm.sim": profile}, runs=[run], eval=EvalConfig(mode="local"),
                           docker=DockerConfig(url=args.docker_url))
        async with Fleet(config, sink, metrics_interval=0.5) as fleet:
            await fleet.start(resolve_run(config, run, api_key=KEY))
            outcome = (await fleet.wait())[args.name]
    print("OUTCOME " + json.dumps(dataclasses.asdict(outcome)), flush=True)
    return 0 if outcome.status == "finished" else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--sandbox", choices=("docker", "local"), required=True)
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--docker-url")
    parser.add_argument("--seed", type=int, default=0)
    sys.exit(asyncio.run(main(parser.parse_args())))
