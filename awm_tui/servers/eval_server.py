"""The evaluation server: `POST /evaluate` runs a task's tests inside the agent's own sandbox.

Each request attaches to the container the agent worked in (`container_id`, or
`local:<path>` for a local sandbox), so evaluations of different agents run side
by side with no shared lock. Grading is the engine's own (`evaluate_in_sandbox`):
SWE-bench rows with an `eval_script` by the swebench package, the others by pytest.
`info.outcome` names SWE-bench's category; a task no grader could grade answers
`outcome: "error"` with the reason (200: the client must not retry it). `--simulate SECONDS` skips sandboxes altogether, for
benchmarks that measure only the orchestration around evaluation.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from awm_tui.arguments import ArgumentParser, port_number

from awm_tui.config.models import DockerHostConfig
from awm_tui.engine.evaluation.harness import EvalOutcome, evaluate_in_sandbox
from awm_tui.engine.outcomes import InfraError, Outcome, error_kind
from awm_tui.engine.sandbox.base import Sandbox, SandboxError
from awm_tui.engine.sandbox.factory import SandboxFactory
from awm_tui.engine.sandbox.tls import display_url
from awm_tui.engine.tasks import SAMPLE, Dataset, Task, load_dataset
from awm_tui.servers.serving import serve_until_signal

log = logging.getLogger(__name__)

DEFAULT_PORT = 9528
MAX_BODY = 64 * 1024 * 1024
"""Patches can be large; aiohttp's 1 MiB default would refuse them."""


def says_submitted(exit_status: str) -> bool:
    """The contract's `exit_status` is the agent framework's own text (`Submitted`,
    `submitted (via …)`, `LimitsExceeded`…): it says whether the agent submitted."""
    return exit_status.strip().lower().startswith("submit")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": " ".join(message.split())[:500]}, status=status)


class EvalServer:
    """The aiohttp app plus its runner; `async with EvalServer(...) as server: server.url`."""

    def __init__(
        self,
        datasets: Sequence[Dataset | str | Path] = (SAMPLE,),
        *,
        docker_url: str | None = None,
        simulate: float | None = None,
        timeout_s: float = 900.0,
        docker_hosts: Sequence[DockerHostConfig] = (),
    ) -> None:
        self._specs = list(datasets)
        self.datasets: list[Dataset] = []
        self.docker_url = docker_url
        self.docker_hosts = {display_url(h.url): h for h in docker_hosts}
        """The daemons a request's `docker_host` may name (with their TLS material)."""
        self._host_clients: dict[str, Any] = {}
        self.simulate = simulate
        self.timeout_s = timeout_s
        self._docker: Any = None
        self._docker_lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self.served = 0
        self.failed = 0
        self.in_flight = 0
        self._total_s = 0.0
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_post("/evaluate", self._evaluate)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/stats", self._stats)

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("evaluation server not started")
        return self._url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Load the datasets, then listen; raises TaskError for a bad dataset, SandboxError
        for a `docker_url` no daemon answers at, OSError for a busy port."""
        if self._runner is not None:
            return
        for spec in self._specs:
            self.datasets.append(spec if isinstance(spec, Dataset) else await asyncio.to_thread(load_dataset, spec))
        if self.docker_url and self.simulate is None:
            # Asked for by name: a wrong URL must fail now, not at each agent's first evaluation.
            await self._connect_docker()
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self._url = f"http://{shown}:{bound[1]}"

    async def _connect_docker(self) -> Any:
        """The shared client, connected once (lazily unless --docker-url names a daemon:
        local-only users need none); SandboxError when no daemon answers."""
        from awm_tui.engine.sandbox.docker import connect_docker

        async with self._docker_lock:
            if self._docker is None:
                self._docker = await connect_docker(self.docker_url)
            if self._docker is None:
                where = f" at {self.docker_url}" if self.docker_url else ""
                raise SandboxError(f"no Docker daemon answers{where}; check --docker-url or $DOCKER_HOST")
            return self._docker

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        docker, self._docker = self._docker, None
        if docker is not None:
            await docker.close()
        clients, self._host_clients = list(self._host_clients.values()), {}
        for client in clients:
            await client.close()

    async def _host_client(self, url: str) -> Any:
        """The client for a request's `docker_host`: one of `--docker-host`/`--config`'s."""
        from awm_tui.engine.sandbox.hosts import connect_host

        async with self._docker_lock:
            if url not in self._host_clients:
                entry = self.docker_hosts.get(url)
                if entry is None:
                    raise _UnknownHost(f"docker_host {url!r} is not a daemon this server knows "
                                       f"({', '.join(self.docker_hosts) or 'none given'}); start it with "
                                       "--docker-host URL or --config FILE")
                host = await connect_host(entry, url)
                if not host.up:
                    await host.docker.close()
                    raise SandboxError(host.error)
                self._host_clients[url] = host.docker
            return self._host_clients[url]

    async def __aenter__(self) -> "EvalServer":
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- lookup -------------------------------------------------------------------------

    def find(self, instance_id: str, dataset_name: str | None = None) -> Task | None:
        """The task by id, in the named dataset when we know that name, else in any."""
        named = [d for d in self.datasets if dataset_name and d.name == dataset_name]
        for dataset in named or self.datasets:
            if (task := dataset.get(instance_id)) is not None:
                return task
        return None

    @property
    def task_count(self) -> int:
        return sum(len(d.tasks) for d in self.datasets)

    async def _attach(self, container_id: str, task: Task, docker_host: str | None = None) -> Sandbox:
        if container_id.startswith("local:"):
            from awm_tui.engine.sandbox.local import LocalSandbox

            sandbox: Sandbox = LocalSandbox.attach(container_id)
        else:
            from awm_tui.engine.sandbox.docker import DockerSandbox

            # SWE-bench images: the tests run in the `testbed` env, as the agent's commands did.
            docker = await (self._host_client(docker_host) if docker_host else self._connect_docker())
            sandbox = DockerSandbox.attach(docker, container_id, conda_env=SandboxFactory.env_for(task))
        try:
            await sandbox.start()  # attached: only checks it is there and running
        except BaseException:
            await sandbox.close()
            raise
        return sandbox

    # -- handlers -----------------------------------------------------------------------

    async def _evaluate(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "body is not JSON")
        problem = _check_body(body)
        if problem:
            return _error(400, problem)
        task = self.find(body["instance_id"], body.get("dataset_name"))
        if task is None:
            known = ", ".join(d.name for d in self.datasets)
            return _error(404, f"unknown instance {body['instance_id']!r} (datasets: {known})")
        result = body.get("result") or ""
        if not result.strip() and not says_submitted(body.get("exit_status") or ""):
            # Nothing to grade: SWE-bench's empty patch, a result and not an error. (A submitted
            # empty `result` still has the agent's working tree, graded below.)
            empty = EvalOutcome.empty(f"empty patch: nothing submitted (exit status {body.get('exit_status')!r})")
            return web.json_response({"reward": 0.0, "speedup": None, "info": empty.info})
        started = time.monotonic()
        self.in_flight += 1
        try:
            answer = await self._run(task, body["container_id"], result, body.get("docker_host"))
        except _UnknownHost as exc:
            self.failed += 1
            return _error(400, str(exc))
        except SandboxError as exc:
            self.failed += 1
            log.warning("evaluation of %s failed: %s", task.instance_id, exc)
            return _error(500, f"sandbox error: {exc}")
        except InfraError as exc:  # no grader could grade it: say so, do not invite a retry
            self.failed += 1
            log.warning("evaluation of %s gave no result: %s", task.instance_id, exc)
            return web.json_response({"reward": 0.0, "speedup": None, "info": {
                "resolved": False, "outcome": str(Outcome.ERROR), "error_kind": str(error_kind(exc)),
                "error": " ".join(str(exc).split())[:500]}})
        except Exception as exc:  # a bug: answer with one line, keep serving
            self.failed += 1
            log.exception("evaluation of %s crashed", task.instance_id)
            return _error(500, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self.in_flight -= 1
        duration = time.monotonic() - started
        self.served += 1
        self._total_s += duration
        log.info("evaluated %s in %.1fs: reward %s", task.instance_id, duration, answer["reward"])
        return web.json_response(answer)

    async def _run(self, task: Task, container_id: str, result: str, docker_host: str | None = None) -> dict:
        if self.simulate is not None:
            await asyncio.sleep(self.simulate)
            return {"reward": 1.0 if result.strip() else 0.0, "speedup": None,
                    "info": {"simulated": True, "resolved": bool(result.strip()),
                             "note": "simulated evaluation: no tests were run"}}
        sandbox = await self._attach(container_id, task, docker_host)
        try:
            outcome = await evaluate_in_sandbox(sandbox, task, timeout_s=self.timeout_s, patch=result)
        finally:
            await sandbox.close()  # attached: releases our handle, keeps the agent's container
        return {"reward": outcome.reward, "speedup": outcome.speedup, "info": outcome.info}

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "datasets": [d.name for d in self.datasets],
                                  "tasks": self.task_count, "simulate": self.simulate})

    async def _stats(self, request: web.Request) -> web.Response:
        mean = self._total_s / self.served if self.served else None
        return web.json_response({"served": self.served, "failed": self.failed,
                                  "in_flight": self.in_flight, "mean_duration_s": mean})


class _UnknownHost(Exception):
    """A request named a `docker_host` this server was not given: a 400, not a retry."""


def _check_body(body: object) -> str | None:
    if not isinstance(body, dict):
        return "body must be a JSON object"
    for key in ("instance_id", "container_id"):
        if not isinstance(body.get(key), str) or not body[key]:
            return f"field {key!r} must be a non-empty string"
    for key in ("exit_status", "result", "dataset_name", "split", "docker_host"):
        if body.get(key) is not None and not isinstance(body[key], str):
            return f"field {key!r} must be a string"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="awm-tui eval-server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks one)")
    parser.add_argument("--dataset", action="append", metavar="PATH",
                        help="dataset to serve (`sample` or a .json/.jsonl path); repeatable; default sample")
    parser.add_argument("--docker-url", metavar="URL", help="Docker daemon (default: $DOCKER_HOST or the local socket)")
    parser.add_argument("--docker-host", action="append", metavar="URL", default=[],
                        help="a daemon requests may name in `docker_host` (unix:// or tcp://); repeatable")
    parser.add_argument("--config", type=Path, metavar="PATH",
                        help="take the daemons requests may name from this config's [[docker.hosts]] (TLS too)")
    parser.add_argument("--simulate", type=float, metavar="SECONDS",
                        help="SIMULATION: run no tests, answer after SECONDS with reward 1 for any non-empty patch")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one evaluation may take (default 900)")
    return parser


async def _serve(args: argparse.Namespace) -> int:
    server = EvalServer(args.dataset or [SAMPLE], docker_url=args.docker_url,
                        simulate=args.simulate, timeout_s=args.timeout, docker_hosts=_hosts_of(args))
    mode = f" (SIMULATED evaluations, {args.simulate:g}s each)" if args.simulate is not None else ""
    return await serve_until_signal(server, args.host, args.port, name="eval-server",
                                    banner=lambda url: f"evaluation server listening on {url}{mode}")


def _hosts_of(args: argparse.Namespace) -> list[DockerHostConfig]:
    """`--config`'s `[[docker.hosts]]` and the `--docker-host` URLs (ConfigError for a bad one)."""
    from awm_tui.config.loader import load_config
    from awm_tui.config.models import AppConfig
    from awm_tui.config.overrides import with_docker_hosts

    hosts = list(load_config(args.config).config.docker.hosts) if args.config else []
    return hosts + list(with_docker_hosts(AppConfig(), args.docker_host).docker.hosts)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
