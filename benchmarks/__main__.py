"""`python -m benchmarks [--quick] [--json PATH] [--only NAME]` — prove the concurrency, side by side.

Runs each benchmark, prints a table per benchmark and a final summary with every
target met / missed, and writes JSON to benchmarks/results/<date>.json (and --json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import psutil

from benchmarks import concurrency, connection_reuse, cost_per_call, docker_exec, scale, state_files, workers
from benchmarks.common import fmt, repo_root

BENCHMARKS = {
    "concurrency": concurrency.run,
    "cost_per_call": cost_per_call.run,
    "connection_reuse": connection_reuse.run,
    "docker": docker_exec.run,
    "scale": scale.run,
    "state_files": state_files.run,
    "workers": workers.run,
}
OTHERS = {"tui_lag": "benchmarks/tui_lag.py (TUI event-loop lag; owned elsewhere: run it on its own)"}


def machine() -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=repo_root()).stdout.strip()
    return {"date": dt.datetime.now().isoformat(timespec="seconds"), "commit": commit,
            "nproc": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats, shorter soak (< 10 min)")
    p.add_argument("--json", metavar="PATH", help="also write the JSON results here")
    p.add_argument("--only", metavar="NAME", action="append",
                   help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    args = p.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    info = machine()
    print(f"awm-tui benchmarks{' (--quick)' if args.quick else ''}: {info['date']}, commit {info['commit']}, "
          f"{info['nproc']} CPUs, {info['memory_gb']} GB, Python {info['python']}", flush=True)
    for name, what in OTHERS.items():
        if (repo_root() / "benchmarks" / f"{name}.py").exists():
            print(f"  (not run here: {what})")
    results, targets, started = {}, [], time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        print(f"\n-- {name} ...", flush=True)
        try:
            res = BENCHMARKS[name](args.quick, log=lambda line: print(line, flush=True))
        except Exception as exc:  # one broken benchmark must not hide the others
            print(f"   {name} FAILED: {type(exc).__name__}: {exc}", flush=True)
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        print(res.text, flush=True)
        results[name] = {**res.data, "seconds": time.perf_counter() - t0}
        targets += res.targets
    print("\n== Summary: targets")
    for t in targets:
        verdict = {True: "MET   ", False: "MISSED", None: "info  "}[t.met]
        value = fmt(t.value) if t.value is not None else ("inf" if t.met else "-")
        print(f"  {verdict} {t.benchmark:<17} {t.name}: {value} (goal {t.goal})"
              + (f" — {t.detail}" if t.detail else ""))
    total = time.perf_counter() - started
    print(f"\n  total time {total:.0f} s")
    out = {"machine": info, "quick": args.quick, "seconds": total, "targets": [t.as_dict() for t in targets],
           "results": results}
    path = repo_root() / "benchmarks" / "results" / f"{info['date'][:10]}{'-quick' if args.quick else ''}.json"
    text = json.dumps(out, indent=1, default=str)
    path.write_text(text)
    print(f"  JSON: {path.relative_to(repo_root())}")
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
