"""Benchmark 3 — connection reuse: requests per TCP connection, connections created, ESTABLISHED.

Counted on the server side (a middleware in `benchmarks.servers` counts each
connection at its first request), so every contender is measured the same way.
Steady state = the second half of the run (by requests served): the connections
created there, and requests per new connection.
"""

from __future__ import annotations

import tempfile
import threading

from benchmarks.common import BenchResult, ServerProcess, Target, median, run_child, synthetic_dataset, table

LATENCY = 0.01
EVAL_TIME = 0.02
N = 10
DEFAULT_POOL = (100, 50)


class StatsPoller:
    """Polls the servers' counters during a trial, to split warm-up from steady state."""

    def __init__(self, server: ServerProcess, interval: float = 0.1) -> None:
        self.server, self.interval = server, interval
        self.series: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            s = self.server.stats()
            self.series.append((s["llm"]["requests"] + s["eval"]["requests"],
                                s["llm"]["connections"] + s["eval"]["connections"]))
            self._stop.wait(self.interval)

    def __enter__(self) -> "StatsPoller":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def trial(server: ServerProcess, contender: str, n: int, m: int, dataset: str, pool=DEFAULT_POOL) -> dict:
    server.reset()
    with tempfile.TemporaryDirectory(prefix=f"awm-bench-reuse-{contender}-") as out:
        args = [contender, "--n", str(n), "--m", str(m), "--llm", server.llm_url, "--eval", server.eval_url,
                "--out", out, "--dataset", dataset, "--limit", str(pool[0]), "--limit-per-host", str(pool[1])]
        with StatsPoller(server) as poller:
            result = run_child("benchmarks.contenders", args, ports=(server.llm_port, server.eval_port))
    end = server.stats()
    total_req = end["llm"]["requests"] + end["eval"]["requests"]
    total_conn = end["llm"]["connections"] + end["eval"]["connections"]
    half = next(((r, c) for r, c in poller.series if r >= total_req / 2), (total_req, total_conn))
    steady_req, steady_conn = total_req - half[0], total_conn - half[1]
    result.update({
        "requests": total_req, "connections": total_conn,
        "llm": end["llm"], "eval": end["eval"],
        "req_per_conn": total_req / max(total_conn, 1),
        "steady_requests": steady_req, "steady_new_connections": steady_conn,
        "steady_req_per_new_conn": (steady_req / steady_conn) if steady_conn else float("inf"),
        "peak_established_llm": result["peak_established"][str(server.llm_port)],
        "peak_established_eval": result["peak_established"][str(server.eval_port)],
    })
    return result


def run(quick: bool, log=print, n: int = N, m: int | None = None) -> BenchResult:
    m = m or (20 if quick else 30)
    reps = 1 if quick else 3
    trials: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="awm-bench-data-") as data:
        dataset = str(synthetic_dataset(data, copies=max(1, -(-m // 10))))
        with ServerProcess(latency=LATENCY, eval_time=EVAL_TIME, dataset=dataset) as server:
            for r in range(reps):
                for contender in ("engine", "before", "terminals")[r % 3:] + ("engine", "before", "terminals")[:r % 3]:
                    res = trial(server, contender, n, m, dataset)
                    trials.setdefault(contender, []).append(res)
                    log(f"  [reuse] {contender:<9} {res['requests']} requests over {res['connections']} "
                        f"connections; steady state: {res['steady_new_connections']} new")
            # 100 runs finishing their evaluations together: the pool must hold the line.
            res = trial(server, "engine", 100, 1, dataset)
            trials["engine@100 (burst)"] = [res]
            log(f"  [reuse] engine x100 burst: peak ESTABLISHED eval {res['peak_established_eval']}, "
                f"llm {res['peak_established_llm']}")
    rows, summary = [], {}
    for key, ts in trials.items():
        row = {k: median([t[k] for t in ts]) for k in (
            "requests", "connections", "req_per_conn", "steady_requests", "steady_new_connections",
            "steady_req_per_new_conn", "peak_established_llm", "peak_established_eval")}
        row["n"] = ts[0]["n"]
        summary[key] = row
        steady = row["steady_req_per_new_conn"]
        rows.append([key, row["n"], row["requests"], row["connections"], row["req_per_conn"],
                     row["steady_new_connections"], "inf (0 new)" if steady == float("inf") else steady,
                     row["peak_established_llm"], row["peak_established_eval"]])
    text = table(
        f"3. Connection reuse (N={n} runs x M={m} tasks; latency {LATENCY}s, eval {EVAL_TIME}s; "
        f"server-side counts, medians of {reps})",
        ["contender", "N", "requests", "TCP conns", "req/conn", "new conns 2nd half", "steady req/conn",
         "peak EST llm", "peak EST eval"], rows,
        note=(f"Engine pool limits: eval client limit_per_host={DEFAULT_POOL[1]} (shared by all runs); each run's "
              "LLM session makes its calls one after another, so it needs one connection. "
              "'before' = requests.post, a new connection per request."))
    eng = summary["engine"]
    burst = summary["engine@100 (burst)"]
    steady = eng["steady_req_per_new_conn"]
    targets = [
        Target("connection_reuse", "engine requests per connection (whole run, warm-up included)",
               eng["req_per_conn"], ">= 50", eng["req_per_conn"] >= 50),
        Target("connection_reuse", "engine requests per new connection, steady state (2nd half)",
               None if steady == float("inf") else steady, ">= 50", steady >= 50,
               detail=f"{eng['steady_new_connections']:g} new connections in the second half"),
        Target("connection_reuse", "ESTABLISHED to the eval server never above the pool limit (100-run burst)",
               burst["peak_established_eval"], f"<= {DEFAULT_POOL[1]}", burst["peak_established_eval"] <= DEFAULT_POOL[1]),
        Target("connection_reuse", "ESTABLISHED to the model: at most one per run (100-run burst)",
               burst["peak_established_llm"], "<= 100", burst["peak_established_llm"] <= 100),
    ]
    for name in ("before", "terminals"):
        if name in summary:
            summary[name]["engine_fewer_connections_pct"] = 100 * (1 - eng["connections"] / summary[name]["connections"])
    return BenchResult("connection_reuse", text, {"n": n, "m": m, "summary": summary, "trials": trials}, targets)
