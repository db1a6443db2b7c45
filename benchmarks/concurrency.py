"""Benchmark 1 — concurrency efficiency: engine vs the users' "before" vs "three terminals".

N runs of M tasks each against the simulated model (fixed latency per call) and the
evaluation server in simulate mode (fixed evaluation time), with NullSandboxes.
Ideal wall time = one run's critical path = calls × latency + evaluations × eval time;
efficiency = ideal / measured. Contenders alternate, each in a fresh child process.
"""

from __future__ import annotations

import tempfile

from benchmarks.common import BenchResult, ServerProcess, Target, median, run_child, table

LATENCY = 0.05
EVAL_TIME = 0.2
NS = (1, 10, 50, 100)
CONTENDERS = ("engine", "before", "terminals")


def pool_for(n: int) -> tuple[int, int]:
    """HttpConfig (limit, limit_per_host) as its documentation tells users to size it."""
    if n <= 10:
        return 100, 50
    if n <= 50:
        return 200, 100
    return 500, 200


def repeats(quick: bool, contender: str, n: int) -> int:
    if not quick:
        return 3
    if contender == "engine":
        return 3
    return 1 if n >= 50 else 2


def trial(server: ServerProcess, contender: str, n: int, m: int, pool: tuple[int, int]) -> dict:
    server.reset()
    with tempfile.TemporaryDirectory(prefix=f"awm-bench-{contender}-") as out:
        args = [contender, "--n", str(n), "--m", str(m), "--llm", server.llm_url, "--eval", server.eval_url,
                "--out", out, "--limit", str(pool[0]), "--limit-per-host", str(pool[1])]
        result = run_child("benchmarks.contenders", args, ports=(server.llm_port, server.eval_port))
    stats = server.stats()
    result["server"] = stats
    result["ideal_s"] = result["llm_calls_max"] * LATENCY + result["evals_max"] * EVAL_TIME
    result["efficiency"] = result["ideal_s"] / result["wall_s"]
    result["pool"] = list(pool)
    return result


def run(quick: bool, log=print, ns: tuple[int, ...] = NS, m: int | None = None) -> BenchResult:
    m = m or (2 if quick else 3)
    trials: dict[str, list[dict]] = {}
    with ServerProcess(latency=LATENCY, eval_time=EVAL_TIME) as server:
        for n in ns:
            most = max(repeats(quick, c, n) for c in CONTENDERS)
            for r in range(most):
                order = CONTENDERS[r % 3:] + CONTENDERS[:r % 3]  # alternate who goes first
                for contender in order:
                    if r >= repeats(quick, contender, n):
                        continue
                    res = trial(server, contender, n, m, pool_for(n))
                    trials.setdefault(f"{contender}@{n}", []).append(res)
                    log(f"  [concurrency] N={n:<3} {contender:<9} wall {res['wall_s']:.2f}s "
                        f"(ideal {res['ideal_s']:.2f}s) cpu {res['cpu_s']:.2f}s rss {res['peak_rss_mb']:.0f}MB")
            if n == max(ns) and n > 50:
                # The same fleet with HttpConfig's defaults (100/50): the evaluation pool caps it.
                for _ in range(1 if quick else 3):
                    res = trial(server, "engine", n, m, (100, 50))
                    trials.setdefault(f"engine-default-pool@{n}", []).append(res)
                    log(f"  [concurrency] N={n:<3} engine (default pool 100/50) wall {res['wall_s']:.2f}s")

    def med(key: str, field: str) -> float:
        return median([t[field] for t in trials.get(key, [])])

    rows, summary = [], {}
    for n in ns:
        a_wall = med(f"engine@{n}", "wall_s")
        for contender in CONTENDERS + (("engine-default-pool",) if f"engine-default-pool@{n}" in trials else ()):
            key = f"{contender}@{n}"
            if key not in trials:
                continue
            ts = trials[key]
            wall = med(key, "wall_s")
            srv_req = median([t["server"]["llm"]["requests"] + t["server"]["eval"]["requests"] for t in ts])
            srv_conn = median([t["server"]["llm"]["connections"] + t["server"]["eval"]["connections"] for t in ts])
            row = {
                "n": n, "contender": contender, "repeats": len(ts), "wall_s": wall,
                "ideal_s": med(key, "ideal_s"), "efficiency": med(key, "efficiency"),
                "speedup_of_engine": wall / a_wall if contender != "engine" else 1.0,
                "cpu_s": med(key, "cpu_s"), "cpu_total_s": med(key, "cpu_total_s"),
                "peak_rss_mb": med(key, "peak_rss_mb"),
                "requests": srv_req, "connections": srv_conn,
                "peak_established_eval": median([t["peak_established"][str(server.eval_port)] for t in ts]),
                "resolved": median([t["resolved"] for t in ts]),
            }
            summary[key] = row
            rows.append([n, contender, len(ts), row["wall_s"], row["ideal_s"], row["efficiency"],
                         row["speedup_of_engine"] if contender != "engine" else None, row["cpu_s"],
                         row["cpu_total_s"], row["peak_rss_mb"], srv_req, srv_conn])
    text = table(
        f"1. Concurrency efficiency (M={m} tasks/run, latency {LATENCY}s/call, eval {EVAL_TIME}s; medians)",
        ["N", "contender", "reps", "wall s", "ideal s", "effic.", "engine x", "cpu s", "cpu+start s",
         "peak RSS MB", "requests", "TCP conns"], rows,
        note=("engine x = this contender's wall / the engine's wall (the engine's speedup over it). "
              "cpu s = CPU in the timed window; cpu+start s adds interpreter start-up and imports. "
              "RSS summed over every process of the contender. engine pool = HttpConfig sized by its "
              "docs (100/50 up to 10 runs, 200/100 to 50, 500/200 beyond); 'engine-default-pool' keeps 100/50."))
    top = max(ns)
    eff = summary.get(f"engine@{top}", {}).get("efficiency")
    spd = summary.get(f"before@{top}", {}).get("speedup_of_engine")
    targets = [
        Target("concurrency", f"engine efficiency at N={top}", eff, ">= 0.9", eff is not None and eff >= 0.9),
        Target("concurrency", f"engine speedup over 'before' at N={top}", spd, f">= {0.9 * top:g} (0.9*N)",
               spd is not None and spd >= 0.9 * top),
    ]
    for n in ns:
        if n == top:
            continue
        s = summary.get(f"before@{n}", {}).get("speedup_of_engine")
        if s is not None:
            targets.append(Target("concurrency", f"engine speedup over 'before' at N={n}", s,
                                  f">= {0.9 * n:g} (0.9*N)", s >= 0.9 * n))
    return BenchResult("concurrency", text, {"m": m, "latency_s": LATENCY, "eval_time_s": EVAL_TIME,
                                             "summary": summary, "trials": trials}, targets)
