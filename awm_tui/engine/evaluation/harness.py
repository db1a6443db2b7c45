"""Evaluate an agent's changes inside its own sandbox: the code both modes share.

The agent's work is the sandbox's working tree at `workdir` (a git repository
whose base is the task's snapshot). Switching between the base and the agent's
state goes through git tree objects written with a private index, so the
agent's files (untracked ones included) are recorded before anything moves
and are put back on every exit path, whatever the benchmark or tests did.
"""

from __future__ import annotations

import shlex
import statistics
import time
from dataclasses import dataclass, field

from awm_tui.engine.evaluation.pytest_report import SUMMARY_GREP, grade, parse_summary
from awm_tui.engine.outcomes import Outcome
from awm_tui.engine.sandbox.base import DEFAULT_MAX_OUTPUT, ExecResult, Sandbox, SandboxError
from awm_tui.engine.tasks import Task

DEFAULT_TEST_COMMAND = "python3 -m pytest -rA -q -p no:cacheprovider {tests}"
PYTEST_USAGE_ERROR = 4
BENCHMARK_RUNS = 3
GIT_TIMEOUT_S = 120.0
OUTPUT_TAIL = 2000
# `safe.directory`: the evaluator may not be the user that owns the checkout.
GIT = "git -c 'safe.directory=*' -c core.hooksPath=/dev/null"


PYTEST_GRADER = "pytest"
"""Our own fallback: FAIL_TO_PASS/PASS_TO_PASS run with pytest (or the row's test_command)."""


@dataclass(frozen=True, slots=True)
class EvalOutcome:
    reward: float
    speedup: float | None
    resolved: bool
    info: dict = field(default_factory=dict)
    """JSON-serialisable detail: per-test status, counts, timings, error text."""
    outcome: Outcome = Outcome.UNRESOLVED
    grader: str = ""
    """What graded it (`swebench:<log_parser>`, `pytest`, `server <url>`); empty when nothing ran."""

    def __post_init__(self) -> None:
        if self.resolved and self.outcome is not Outcome.RESOLVED:
            object.__setattr__(self, "outcome", Outcome.RESOLVED)

    @classmethod
    def empty(cls, detail: str = "empty patch: the agent made no changes") -> EvalOutcome:
        """No change to grade: SWE-bench's empty patch, a result and not an error."""
        return cls(reward=0.0, speedup=None, resolved=False, outcome=Outcome.EMPTY_PATCH,
                   info={"resolved": False, "outcome": str(Outcome.EMPTY_PATCH), "error": detail})


class _OutOfTime(Exception):
    pass


class _Repo:
    """Git operations on the sandbox's checkout, each under the evaluation deadline."""

    def __init__(self, sandbox: Sandbox, deadline: float) -> None:
        self.sandbox = sandbox
        self.deadline = deadline
        self.git_dir = ""

    def left(self, cap: float) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 1.0:
            raise _OutOfTime
        return min(cap, remaining)

    async def run(self, command: str, *, cap: float = GIT_TIMEOUT_S, max_output: int | None = None,
                  deadline: bool = True) -> ExecResult:
        timeout = self.left(cap) if deadline else cap
        return await self.sandbox.exec(command, timeout_s=timeout,
                                       max_output=DEFAULT_MAX_OUTPUT if max_output is None else max_output)

    async def must(self, command: str, what: str, **kwargs) -> str:
        """Run a command that only fails when the sandbox is broken; its output."""
        result = await self.run(command, **kwargs)
        if result.exit_code != 0:
            detail = result.output.strip().splitlines()[-1:] or ["no output"]
            raise SandboxError(f"{what} failed (exit {result.exit_code}): {detail[0][:200]}")
        return result.output.strip()

    def path(self, name: str) -> str:
        return shlex.quote(f"{self.git_dir}/awm-eval-{name}")

    async def open(self) -> None:
        found = await self.must(f"{GIT} rev-parse --absolute-git-dir", "finding the git repository")
        self.git_dir = found.splitlines()[-1]

    async def tree_of(self, commit: str) -> str | None:
        result = await self.run(f"{GIT} rev-parse --verify -q {shlex.quote(commit + '^{tree}')}")
        return result.output.strip().splitlines()[-1] if result.exit_code == 0 and result.output.strip() else None

    async def snapshot(self) -> str:
        """Tree of the working tree as it is (untracked, non-ignored files included)."""
        index = self.path("index")
        tree = await self.must(
            # -p keeps the index's mtime: git's racy-clean check needs it to notice a
            # same-size edit made in the second the index was written.
            f'cp -p "$({GIT} rev-parse --git-path index)" {index} 2>/dev/null || rm -f {index}; '
            f"GIT_INDEX_FILE={index} {GIT} add -A >/dev/null 2>&1 && "
            f"GIT_INDEX_FILE={index} {GIT} write-tree; rc=$?; rm -f {index}; exit $rc",
            "recording the agent's changes",
        )
        return tree.splitlines()[-1]

    async def checkout(self, tree: str, *, deadline: bool = True) -> None:
        """Make the working tree exactly `tree` (leftovers of earlier steps removed)."""
        await self.must(
            f"{GIT} read-tree -u --reset {tree} && {GIT} clean -fdq",
            f"switching the working tree to {tree[:12]}", deadline=deadline,
        )

    async def restore(self, tree: str) -> None:
        """Put the agent's state back and the index at HEAD, as the agent had it."""
        await self.checkout(tree, deadline=False)
        await self.must(f"{GIT} reset -q; rm -f {shlex.quote(self.git_dir)}/awm-eval-*", "resetting the index", deadline=False)

    async def write(self, name: str, text: str) -> str:
        await self.sandbox.write_file(f"{self.git_dir}/awm-eval-{name}", text)
        return self.path(name)

    async def apply(self, name: str, patch: str) -> str | None:
        """Apply a patch to the working tree; the error text when it does not apply."""
        path = await self.write(name, patch)
        result = await self.run(
            f"{GIT} apply --whitespace=nowarn {path} 2>&1 || "
            f"{{ command -v patch >/dev/null && patch --batch --fuzz=5 -p1 -i {path}; }}"
        )
        return None if result.exit_code == 0 else (result.output.strip()[-500:] or "patch does not apply")


async def evaluate_in_sandbox(
    sandbox: Sandbox,
    task: Task,
    *,
    timeout_s: float = 900,
    patch: str | None = None,
    benchmark_runs: int = BENCHMARK_RUNS,
) -> EvalOutcome:
    """Benchmark (performance tasks), apply the task's tests, run and grade them.

    `patch` is applied only when the working tree holds no changes (the agent's
    container was reset but its submitted diff is known). Test failures, a patch
    that does not apply and running out of time give reward 0 with the reason in
    `info`; only a broken sandbox raises (`SandboxError`).
    """
    started = time.monotonic()
    repo = _Repo(sandbox, started + timeout_s)
    info: dict = {"instance_id": task.instance_id, "resolved": False, "timings": {}}
    agent: str | None = None  # the tree put back at the end, once recorded
    try:
        await repo.open()
        base = (await repo.tree_of(task.base_commit) if task.base_commit else None) or await repo.tree_of("HEAD")
        if base is None:
            raise SandboxError("the repository has no base commit")
        agent = await repo.snapshot()
        source = "working tree"
        if agent == base and patch and patch.strip():
            error = await repo.apply("agent.patch", patch if patch.endswith("\n") else patch + "\n")
            if error:
                return _done(info, started, error=f"submitted patch does not apply: {error}")
            agent, source = await repo.snapshot(), "submitted result"
        if agent == base:
            return EvalOutcome.empty()
        changed = await repo.must(f"{GIT} diff --name-only {base} {agent}", "listing changed files")
        info["patch"] = {"source": source, "files": changed.splitlines()}
        speedup = None
        if task.benchmark_command:
            t0 = time.monotonic()
            speedup, info["benchmark"] = await _benchmark(repo, task.benchmark_command, base, agent, benchmark_runs)
            info["timings"]["benchmark_s"] = round(time.monotonic() - t0, 3)
        t0 = time.monotonic()
        if task.eval_script:
            from awm_tui.engine.evaluation.swebench_grading import run_eval_script

            grader = f"swebench:{task.log_parser}"
            tests = info["tests"] = await run_eval_script(repo, task)
        else:
            grader = PYTEST_GRADER
            tests = info["tests"] = await _run_tests(repo, task, base)
        info["timings"]["tests_s"] = round(time.monotonic() - t0, 3)
    except _OutOfTime:
        return _done(info, started, error=f"evaluation timed out after {timeout_s:g}s")
    finally:
        if agent is not None:
            await repo.restore(agent)
    resolved = bool(tests.get("resolved"))
    info["resolved"] = resolved
    return _done(info, started, resolved=resolved, speedup=speedup, error=tests.get("error"), grader=grader)


def _done(info: dict, started: float, *, resolved: bool = False, speedup: float | None = None,
          error: str | None = None, grader: str = PYTEST_GRADER) -> EvalOutcome:
    if error:
        info["error"] = error
    info["speedup"] = speedup
    info["timings"]["total_s"] = round(time.monotonic() - started, 3)
    outcome = Outcome.RESOLVED if resolved else Outcome.UNRESOLVED
    info["outcome"], info["grader"] = str(outcome), grader
    return EvalOutcome(reward=1.0 if resolved else 0.0, speedup=speedup, resolved=resolved, info=info,
                       outcome=outcome, grader=grader)


async def _benchmark(repo: _Repo, command: str, base: str, agent: str, runs: int) -> tuple[float | None, dict]:
    """Median wall time of `command` on the base and on the agent's tree; speedup = before/after."""
    report: dict = {"command": command, "runs": runs}
    for label, tree in (("before", base), ("after", agent)):
        await repo.checkout(tree)
        times = []
        for _ in range(max(1, runs)):
            seconds, error = await _timed(repo, command)
            if error:
                report["error"] = f"benchmark failed on the {'base' if label == 'before' else 'patched'} code: {error}"
                await repo.checkout(agent)
                return None, report
            times.append(seconds)
        report[f"{label}_s"] = times
    before, after = statistics.median(report["before_s"]), statistics.median(report["after_s"])
    speedup = round(before / max(after, 1e-3), 4)
    report["speedup"] = speedup
    return speedup, report


async def _timed(repo: _Repo, command: str) -> tuple[float, str | None]:
    # Timed inside the sandbox so exec round trips (docker) do not count.
    log, clock = repo.path("bench.log"), repo.path("bench.time")
    result = await repo.run(
        f"TIMEFORMAT=%3R; {{ time ( {command} ) >{log} 2>&1 ; }} 2>{clock}; rc=$?; "
        f'echo "__AWM_BENCH__ $rc $(tail -n1 {clock})"; [ $rc -eq 0 ] || tail -c {OUTPUT_TAIL} {log}',
        cap=3600,
    )
    if result.timed_out:
        return 0.0, "timed out"
    for line in result.output.splitlines():
        if line.startswith("__AWM_BENCH__ "):
            parts = line.split()
            if parts[1] != "0":
                tail = result.output.split(line, 1)[1].strip()
                return 0.0, f"exit {parts[1]}: {tail[-300:]}"
            try:
                return float(parts[2]), None
            except (IndexError, ValueError):
                break
    return result.duration_s, None


async def _run_tests(repo: _Repo, task: Task, base: str) -> dict:
    """Apply the test patch (over the base versions of its files), run and grade the tests."""
    ids = list(dict.fromkeys((*task.FAIL_TO_PASS, *task.PASS_TO_PASS)))
    if task.test_patch.strip():
        files = _patch_files(task.test_patch)
        if files:
            # SWE-bench semantics: the agent's edits to test files give way to the test patch.
            quoted = " ".join(shlex.quote(f) for f in files)
            await repo.must(
                f"for f in {quoted}; do "
                f'if {GIT} cat-file -e {base}:"$f" 2>/dev/null; then {GIT} checkout {base} -- "$f"; '
                f'else rm -f -- "$f"; fi; done',
                "resetting the files the test patch touches",
            )
        error = await repo.apply("test.patch", task.test_patch)
        if error:
            return {"resolved": False, "error": f"test patch does not apply: {error}"}
    if not ids:
        return {"resolved": True, "note": "the task lists no tests"}
    template = task.test_command or DEFAULT_TEST_COMMAND
    # SWE-bench's ids are its log parser's names, not always node ids pytest can find (a
    # parametrized id is cut at its first space): run their files, as its eval scripts do,
    # and match the summary lines against the ids.
    targets = ids if task.kind != "classic" else list(dict.fromkeys(t.split("::", 1)[0] for t in ids))
    command = template.replace("{tests}", " ".join(shlex.quote(t) for t in targets))
    log = repo.path("tests.log")
    run = await repo.run(f"export PY_COLORS=0; ( {command} ) >{log} 2>&1", cap=3600)
    # The summary is at the end of a possibly huge log; pull out only what we parse.
    extract = await repo.run(
        f"grep -aE {shlex.quote(SUMMARY_GREP)} {log}; echo __AWM_TAIL__; tail -c {OUTPUT_TAIL} {log}",
        max_output=4 * 1024 * 1024, deadline=False, cap=GIT_TIMEOUT_S,
    )
    summary, _, tail = extract.output.partition("__AWM_TAIL__")
    report = grade(parse_summary(summary, ids), task.FAIL_TO_PASS, task.PASS_TO_PASS)
    report.update(command=command, exit_code=run.exit_code, timed_out=run.timed_out,
                  duration_s=round(run.duration_s, 3), output_tail=tail.strip())
    if run.timed_out:
        report["error"] = "tests timed out"
    elif run.exit_code == PYTEST_USAGE_ERROR and not task.test_command:
        # pytest runs nothing when one listed id is unknown: say so, not just "missing".
        reason = next((line for line in tail.splitlines() if line.startswith("ERROR: ")), "")
        report["error"] = (f"pytest ran no tests (exit 4): {reason[7:300] or 'see output_tail'}; "
                           "check the task's FAIL_TO_PASS and PASS_TO_PASS ids")
    return report


def _patch_files(patch: str) -> list[str]:
    """Paths a unified git diff touches (both sides of renames)."""
    files: list[str] = []
    for line in patch.splitlines():
        if line.startswith(("--- a/", "+++ b/")):
            files.append(line[6:].split("\t")[0].rstrip())
    return list(dict.fromkeys(files))
