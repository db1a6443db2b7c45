"""Benchmark 1 — concurrency efficiency: engine vs the users' "before" vs "three terminals".

N runs of M tasks each against the simulated model (fixed latency per call) and the
evaluation server in simulate mode (fixed evaluation time), with NullSandboxes.
Ideal wall time = one run's critical path = calls × latency + evaluations × eval time;
efficiency = ideal / measured. Contenders alternate, each in a fresh child process.

Every trial also records the CPU of the servers' process (the simulated model and the
evaluation server: psutil cpu_times before/after the trial) and the CPU budget
(client CPU + server CPU) / (wall × cores): near 1, the machine's cores are saturated by
client and peers together and no client can reach the ideal. A second engine-only
measurement at N=max with every latency ×SCALE (same M) keeps the budget well below 1,
which isolates the engine's own orchestration overhead from the machine's CPU limit.
"""

from __future__ import annotations

import os
import tempfile

from benchmarks.common import BenchResult, ServerProcess, Target, median, run_child, table

LATENCY = 0.05
EVAL_TIME = 0.2
NS = (1, 10, 50, 100)
CONTENDERS = ("engine", "before", "terminals", "floor")
SCALE = 4
"""The unsaturated engine-only row: latency and evaluation time ×SCALE."""
CORES = os.cpu_count() or 1


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
    if contender in ("engine", "floor"):
        return 3
    return 1 if n >= 50 else 2


def trial(server: ServerProcess, contender: str, n: int, m: int, pool: tuple[int, int],
          latency: float = LATENCY, eval_time: float = EVAL_TIME, extra: tuple[str, ...] = ()) -> dict:
    server.reset()
    with tempfile.TemporaryDirectory(prefix=f"awm-bench-{contender}-") as out:
        args = [contender, "--n", str(n), "--m", str(m), "--llm", server.llm_url, "--eval", server.eval_url,
                "--out", out, "--limit", str(pool[0]), "--limit-per-host", str(pool[1]), *extra]
        server_cpu0 = server.cpu_seconds()
        result = run_child("benchmarks.contenders", args, ports=(server.llm_port, server.eval_port))
        server_cpu = server.cpu_seconds() - server_cpu0
    stats = server.stats()
    result["server"] = stats
    result["latency_s"], result["eval_time_s"] = latency, eval_time
    result["ideal_s"] = result["llm_calls_max"] * latency + result["evals_max"] * eval_time
    result["efficiency"] = result["ideal_s"] / result["wall_s"]
    result["pool"] = list(pool)
    result["eval_port"] = server.eval_port
    # The servers idle while the child starts (imports, prepare()), so their CPU over the
    # child's life is their CPU over the timed window; the client's is its timed window only.
    result["server_cpu_s"] = server_cpu
    result["cpu_budget"] = (result["cpu_s"] + server_cpu) / (result["wall_s"] * CORES)
    return result


def log_trial(log, n: int, label: str, res: dict) -> None:
    log(f"  [concurrency] N={n:<3} {label:<9} wall {res['wall_s']:.2f}s (ideal {res['ideal_s']:.2f}s) "
        f"cpu {res['cpu_s']:.2f}s server cpu {res['server_cpu_s']:.2f}s budget {res['cpu_budget']:.2f} "
        f"rss {res['peak_rss_mb']:.0f}MB")


def run(quick: bool, log=print, ns: tuple[int, ...] = NS, m: int | None = None,
        scaled: bool = True) -> BenchResult:
    m = m or (2 if quick else 3)
    trials: dict[str, list[dict]] = {}
    with ServerProcess(latency=LATENCY, eval_time=EVAL_TIME) as server:
        for n in ns:
            most = max(repeats(quick, c, n) for c in CONTENDERS)
            for r in range(most):
                k = r % len(CONTENDERS)
                order = CONTENDERS[k:] + CONTENDERS[:k]  # alternate who goes first
                for contender in order:
                    if r >= repeats(quick, contender, n):
                        continue
                    res = trial(server, contender, n, m, pool_for(n))
                    trials.setdefault(f"{contender}@{n}", []).append(res)
                    log_trial(log, n, contender, res)
            if n == max(ns) and n > 50:
                # The same fleet with HttpConfig's defaults (100/50): the evaluation pool caps it.
                for _ in range(1 if quick else 3):
                    res = trial(server, "engine", n, m, (100, 50))
                    trials.setdefault(f"engine-default-pool@{n}", []).append(res)
                    log_trial(log, n, "engine (default pool 100/50)", res)
                # Diagnostic: the engine without its per-task state files (what they cost).
                for _ in range(3):
                    res = trial(server, "engine", n, m, pool_for(n), extra=("--no-state",))
                    trials.setdefault(f"engine-no-state@{n}", []).append(res)
                    log_trial(log, n, "engine (no state files)", res)
    top = max(ns)
    if scaled:
        # Every latency ×SCALE: the cores are no longer the limit. The engine, the floor
        # and the engine without state files alternate.
        variants = ((f"engine-x{SCALE}", "engine", ()), (f"floor-x{SCALE}", "floor", ()),
                    (f"engine-no-state-x{SCALE}", "engine", ("--no-state",)))
        with ServerProcess(latency=LATENCY * SCALE, eval_time=EVAL_TIME * SCALE) as server4:
            for r in range(3):
                for label, contender, extra in variants[r:] + variants[:r]:
                    res = trial(server4, contender, top, m, pool_for(top), LATENCY * SCALE, EVAL_TIME * SCALE,
                                extra=extra)
                    trials.setdefault(f"{label}@{top}", []).append(res)
                    log_trial(log, top, label, res)

    def med(key: str, field: str) -> float:
        return median([t[field] for t in trials.get(key, [])])

    rows, summary = [], {}
    extra = ("engine-default-pool", "engine-no-state", f"engine-x{SCALE}", f"floor-x{SCALE}",
             f"engine-no-state-x{SCALE}")
    for n in ns:
        a_wall = med(f"engine@{n}", "wall_s")
        for contender in CONTENDERS + tuple(e for e in extra if f"{e}@{n}" in trials):
            key = f"{contender}@{n}"
            if key not in trials:
                continue
            ts = trials[key]
            wall = med(key, "wall_s")
            srv_req = median([t["server"]["llm"]["requests"] + t["server"]["eval"]["requests"] for t in ts])
            srv_conn = median([t["server"]["llm"]["connections"] + t["server"]["eval"]["connections"] for t in ts])
            compared = contender in ("before", "terminals", "floor", "engine-default-pool", "engine-no-state")
            row = {
                "n": n, "contender": contender, "repeats": len(ts), "latency_s": ts[0]["latency_s"],
                "eval_time_s": ts[0]["eval_time_s"], "wall_s": wall,
                "ideal_s": med(key, "ideal_s"), "efficiency": med(key, "efficiency"),
                "speedup_of_engine": wall / a_wall if compared else None,
                "cpu_s": med(key, "cpu_s"), "server_cpu_s": med(key, "server_cpu_s"),
                "cpu_budget": med(key, "cpu_budget"), "cpu_total_s": med(key, "cpu_total_s"),
                "peak_rss_mb": med(key, "peak_rss_mb"),
                "requests": srv_req, "connections": srv_conn,
                "peak_established_eval": median([t["peak_established"][str(t["eval_port"])] for t in ts]),
                "resolved": median([t["resolved"] for t in ts]),
            }
            summary[key] = row
            rows.append([n, contender, ts[0]["latency_s"], len(ts), row["wall_s"], row["ideal_s"],
                         row["efficiency"], row["speedup_of_engine"], row["cpu_s"], row["server_cpu_s"],
                         row["cpu_budget"], row["cpu_total_s"], row["peak_rss_mb"], srv_req, srv_conn])
    text = table(
        f"1. Concurrency efficiency (M={m} tasks/run, latency {LATENCY}s/call, eval {EVAL_TIME}s"
        f" unless 'lat s' says otherwise; {CORES} cores; medians)",
        ["N", "contender", "lat s", "reps", "wall s", "ideal s", "effic.", "engine x", "cpu s", "srv cpu s",
         "budget", "cpu+start s", "peak RSS MB", "requests", "TCP conns"], rows,
        note=("engine x = this contender's wall / the engine's wall (the engine's speedup over it). "
              "cpu s = client CPU in the timed window; srv cpu s = the servers' process (model + evaluation); "
              f"budget = (cpu s + srv cpu s) / (wall s x {CORES} cores): near 1 the cores are saturated by "
              "client and peers together. cpu+start s adds interpreter start-up and imports. RSS summed over "
              "every process of the contender. engine pool = HttpConfig sized by its docs (100/50 up to 10 "
              "runs, 200/100 to 50, 500/200 beyond); 'engine-default-pool' keeps 100/50; 'floor' = bare "
              "aiohttp, same requests, nothing recorded: the best any one-process client gets here; "
              "'engine-no-state' = diagnostic, the engine without its per-task state files; "
              f"'engine-x{SCALE}' = every latency x{SCALE} (same M), the CPU no longer the limit."))
    eff = summary.get(f"engine@{top}", {}).get("efficiency")
    budget = summary.get(f"engine@{top}", {}).get("cpu_budget")
    spd = summary.get(f"before@{top}", {}).get("speedup_of_engine")
    x4 = summary.get(f"engine-x{SCALE}@{top}", {})
    floor = summary.get(f"floor@{top}", {})
    detail = f"CPU budget {budget:.2f} of {CORES} cores" if budget is not None else ""
    if floor:
        detail += f"; bare aiohttp floor reaches {floor['efficiency']:.2f}"
    targets = [
        Target("concurrency", f"engine efficiency at N={top}", eff, ">= 0.9", eff is not None and eff >= 0.9,
               detail=detail),
        Target("concurrency", f"engine speedup over 'before' at N={top}", spd, f">= {0.9 * top:g} (0.9*N)",
               spd is not None and spd >= 0.9 * top),
    ]
    if floor and eff is not None:
        targets.append(Target(
            "concurrency", f"engine efficiency / floor efficiency at N={top}", eff / floor["efficiency"],
            "information", None, detail="how much of what this machine allows the engine reaches"))
    floor4 = summary.get(f"floor-x{SCALE}@{top}", {})
    no_state4 = summary.get(f"engine-no-state-x{SCALE}@{top}", {})
    if floor4 and no_state4:
        targets.append(Target(
            "concurrency", f"efficiency at N={top}, latencies x{SCALE}: floor / engine without state files",
            floor4["efficiency"], "information", None,
            detail=f"the engine without its state files reaches {no_state4['efficiency']:.2f}"))
    if x4:
        targets.append(Target(
            "concurrency", f"engine efficiency at N={top}, latencies x{SCALE} (CPU not saturated)",
            x4["efficiency"], ">= 0.9", x4["efficiency"] >= 0.9,
            detail=f"CPU budget {x4['cpu_budget']:.2f}"))
        targets.append(Target(
            "concurrency", f"speedup over 'before' at N={top}, latencies x{SCALE}: lower bound N x efficiency",
            top * x4["efficiency"], f">= {0.9 * top:g} (0.9*N)", None,
            detail="derived, not measured: 'before' is serial, so its wall >= N x ideal"))
    for n in ns:
        if n == top:
            continue
        s = summary.get(f"before@{n}", {}).get("speedup_of_engine")
        if s is not None:
            targets.append(Target("concurrency", f"engine speedup over 'before' at N={n}", s,
                                  f">= {0.9 * n:g} (0.9*N)", s >= 0.9 * n))
    return BenchResult("concurrency", text, {"m": m, "latency_s": LATENCY, "eval_time_s": EVAL_TIME,
                                             "scale": SCALE, "cores": CORES, "summary": summary,
                                             "trials": trials}, targets)
