"""The benchmarks' peers in a process of their own: simulated model + simulated evaluation.

    python -m benchmarks.servers --latency 0.05 --eval-time 0.2 [--dataset FILE]

Prints one JSON line with both URLs, then answers `stats`, `reset` and `quit` on stdin.
Each server counts, by a middleware, the requests it answered and the TCP
connections they came over (a connection is counted at its first request), so
connection reuse is measured the same way for every client, engine or not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from aiohttp import web

from awm_tui.engine.tasks import SAMPLE
from awm_tui.servers.eval_server import EvalServer
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions


class Counter:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.connections = 0
        self._peers: set = set()

    def middleware(self):
        @web.middleware
        async def count(request: web.Request, handler):
            self.requests += 1
            transport = request.transport
            if transport is not None and not getattr(transport, "_bench_counted", False):
                try:
                    transport._bench_counted = True  # type: ignore[attr-defined]
                    self.connections += 1
                except AttributeError:  # a transport with slots: fall back to the peer address
                    peer = transport.get_extra_info("peername")
                    if peer not in self._peers:
                        self._peers.add(peer)
                        self.connections += 1
            return await handler(request)
        return count

    def as_dict(self) -> dict:
        return {"requests": self.requests, "connections": self.connections}


async def serve(latency: float, eval_time: float, dataset: str | None) -> None:
    datasets = (SAMPLE, dataset) if dataset else (SAMPLE,)
    llm_count, eval_count = Counter(), Counter()
    sim = SimLLMServer(SimOptions(latency=latency, datasets=datasets))
    # SimLLMServer builds its app in start(); add the counter just before the app freezes.
    from awm_tui.servers import sim_llm as sim_module
    original = sim_module.build_app

    def build_counted(options, tasks=None):
        app = original(options, tasks)
        app.middlewares.append(llm_count.middleware())
        return app

    sim_module.build_app = build_counted
    try:
        await sim.start("127.0.0.1", 0)
    finally:
        sim_module.build_app = original
    evaluator = EvalServer(list(datasets), simulate=eval_time)
    evaluator.app.middlewares.append(eval_count.middleware())
    await evaluator.start("127.0.0.1", 0)
    print(json.dumps({"llm_url": sim.url, "llm_port": sim.port, "eval_url": evaluator.url,
                      "eval_port": int(evaluator.url.rsplit(":", 1)[1])}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while True:
            line = (await reader.readline()).decode().strip()
            if line in ("", "quit"):
                break
            if line == "reset":
                llm_count.reset()
                eval_count.reset()
            print(json.dumps({"llm": llm_count.as_dict(), "eval": eval_count.as_dict(),
                              "eval_served": evaluator.served}), flush=True)
    finally:
        await evaluator.close()
        await sim.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.servers")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--eval-time", type=float, default=0.2)
    parser.add_argument("--dataset", default=None)
    args = parser.parse_args()
    asyncio.run(serve(args.latency, args.eval_time, args.dataset))


if __name__ == "__main__":
    main()
