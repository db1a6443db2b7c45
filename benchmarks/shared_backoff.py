"""Benchmark 8 — two runs on one rate-limited key, with and without shared backoff.

The simulated model allows 4 requests/s per key and answers in 0.3 s, so two runs
calling at once go over the limit and one call at a time does not. Each run is an
agent's call loop (a call, 50 ms of "sandbox", the next call) through the engine's
`LLMClient`:
- `separate`: each run's client has a KeyState of its own (what every run had before
  issue 14: its own Retry-After, its own retries);
- `shared`: both clients hold the key's one KeyState (what the fleet hands them now):
  a 429 holds both, and the calls in flight on the key adapt.
Figures: 429s the simulator sent (its own per-key ledger), retries the clients made,
the busiest second's requests, wall time.

    python -m benchmarks.shared_backoff [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from benchmarks.common import BenchResult, Target, median, table

RATE = 4.0
LATENCY = 0.3
THINK_S = 0.05
RUNS = 2


def busiest_second(times: list[float]) -> int:
    best, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def trial(shared: bool, calls: int) -> dict:
    from pydantic import SecretStr

    from awm_tui.config.keys import mask_key
    from awm_tui.config.models import HttpConfig, LLMProfile
    from awm_tui.engine.http.metrics import RunMetrics
    from awm_tui.engine.llm import LLMClient, LLMError
    from awm_tui.engine.llm.keyhealth import KeyState
    from awm_tui.servers.sim_llm import SimLLMServer, SimOptions

    key = SecretStr("sk-bench-shared-backoff-0000")
    async with SimLLMServer(SimOptions(datasets=(), latency=LATENCY, key_rate_limit=RATE)) as sim:
        profile = LLMProfile(model="awm-sim", base_url=sim.url, timeout=30, num_retries=5,
                             retry_min_wait=0.2, retry_max_wait=2.0)
        one = KeyState(key)
        clients = [LLMClient(profile, api_key=key, http=HttpConfig(), metrics=RunMetrics(), run_name=f"r{i}",
                             key_state=one if shared else None) for i in range(RUNS)]
        failed = 0

        async def loop(client: LLMClient) -> None:
            nonlocal failed
            for i in range(calls):
                try:
                    await client.chat([{"role": "user", "content": f"call {i}"}])
                except LLMError:
                    failed += 1
                await asyncio.sleep(THINK_S)

        started = time.perf_counter()
        try:
            await asyncio.gather(*(loop(c) for c in clients))
        finally:
            for c in clients:
                await c.aclose()
        wall = time.perf_counter() - started
        account = sim.stats()["keys"][mask_key(key)]
    return {"mode": "shared" if shared else "separate", "calls": calls * RUNS, "wall_s": wall,
            "requests": len(account["arrivals"]), "rate_limited": account["rate_limited"],
            "retries": sum(c.metrics.snapshot().retries for c in clients), "failed": failed,
            "busiest_second": busiest_second(account["arrivals"]),
            "calls_per_s": calls * RUNS / wall}


def run(quick: bool, log=print, calls: int | None = None, reps: int | None = None) -> BenchResult:
    calls = calls or (15 if quick else 40)
    reps = reps or (1 if quick else 3)
    trials: dict[str, list[dict]] = {"separate": [], "shared": []}
    for _ in range(reps):
        for shared in (False, True):
            res = asyncio.run(trial(shared, calls))
            trials[res["mode"]].append(res)
            log(f"  [backoff] {res['mode']:<8} {res['rate_limited']:>3} × 429, {res['retries']:>3} retries, "
                f"busiest second {res['busiest_second']} requests, {res['wall_s']:.1f}s")
    data, rows = {}, []
    for mode, ts in trials.items():
        row = {f: median([t[f] for t in ts]) for f in ("wall_s", "requests", "rate_limited", "retries", "failed",
                                                       "busiest_second", "calls_per_s")}
        data[mode] = row
        rows.append([mode, len(ts), RUNS * calls, row["requests"], row["rate_limited"], row["retries"],
                     row["failed"], row["busiest_second"], row["wall_s"], row["calls_per_s"]])
    text = table(f"8. Shared backoff: {RUNS} runs on one key limited to {RATE:g} requests/s (replies {LATENCY} s; "
                 "medians)",
                 ["mode", "reps", "calls", "requests", "429s", "retries", "failed", "busiest 1s", "wall s",
                  "calls/s"], rows,
                 note="requests = what reached the simulator (429s included); busiest 1s = most requests "
                      f"in any one second (the limit is {RATE:g}).")
    sep, sh = data["separate"], data["shared"]
    targets = [
        Target("shared_backoff", "429s with shared backoff / without", sh["rate_limited"] / max(1, sep["rate_limited"]),
               "< 0.5", sh["rate_limited"] < 0.5 * max(1, sep["rate_limited"]),
               detail=f"{sh['rate_limited']:.0f} vs {sep['rate_limited']:.0f}; busiest second "
                      f"{sh['busiest_second']:.0f} vs {sep['busiest_second']:.0f} requests"),
        # The price of not overrunning the key: one call at a time uses less than its
        # whole rate at this latency. Reported, not a goal.
        Target("shared_backoff", "wall time with shared backoff / without", sh["wall_s"] / sep["wall_s"],
               "information", None, detail=f"{sh['wall_s']:.1f}s vs {sep['wall_s']:.1f}s"),
    ]
    return BenchResult("shared_backoff", text, data, targets)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    result = run(parser.parse_args().quick)
    print(result.text)
