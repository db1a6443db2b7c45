"""The `swebench` extra is optional: without it the demo and the sample tasks run as before,
and only a row that needs the package gets one line naming the extra.

Each case runs in a fresh interpreter where `import swebench` fails (sys.modules['swebench']
= None, set before anything of ours is imported): our code is not patched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BLOCK = "import sys; sys.modules['swebench'] = None\n"
NO_DOCKER = "unix:///nonexistent/awm-test-docker.sock"


def run_without_swebench(code: str, *, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "DOCKER_HOST": NO_DOCKER, "HOME": str(cwd), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_block_works(tmp_path: Path) -> None:
    """The shim really makes the package unimportable (else the tests below prove nothing)."""
    res = run_without_swebench("""
        try:
            import swebench.harness.grading
        except ImportError:
            print("blocked")
    """, cwd=tmp_path)
    assert res.stdout.strip() == "blocked", res.stderr


@pytest.mark.slow
def test_demo_batch_runs_without_the_extra(tmp_path: Path) -> None:
    res = run_without_swebench(f"""
        from awm_tui.cli import main
        code = main(["--batch", "--demo", "--output-root", {str(tmp_path / "out")!r}, "--limit", "2"])
        assert "swebench" not in sys.modules or sys.modules["swebench"] is None
        raise SystemExit(code)
    """, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "run finished: 2 done, 2 resolved" in res.stdout
    assert "swebench" not in res.stdout + res.stderr
    summaries = sorted((tmp_path / "out").glob("*/summary.json"))
    assert len(summaries) >= 2
    for summary in summaries:  # the summary says what graded each task
        graders = json.loads(summary.read_text())["graders"]
        assert len(graders) == 2 and set(graders.values()) == {"pytest"}, graders


def test_a_harness_row_without_the_extra_is_one_line_naming_it(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    res = run_without_swebench(f"""
        import asyncio, subprocess
        from pathlib import Path
        from awm_tui.engine.evaluation import evaluate_in_sandbox
        from awm_tui.engine.outcomes import InfraError
        from awm_tui.engine.sandbox.local import LocalSandbox
        from awm_tui.engine.tasks import Task

        repo = Path({str(repo)!r})
        (repo / "a.py").write_text("x = 1\\n")
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
        subprocess.run([*git, "commit", "-qm", "base"], cwd=repo, check=True)
        (repo / "a.py").write_text("x = 2\\n")
        task = Task(instance_id="o__p-1", repo="o/p", problem_statement="p", image="img:1",
                    eval_script="#!/bin/bash\\npytest -rA", log_parser="parse_log_pytest",
                    FAIL_TO_PASS=["t.py::test_a"])

        async def main():
            sandbox = LocalSandbox.attach(f"local:{{repo}}")
            await sandbox.start()
            try:
                await evaluate_in_sandbox(sandbox, task)
            except InfraError as exc:
                print(f"{{exc.kind}}|{{exc}}")
            finally:
                await sandbox.close()

        asyncio.run(main())
    """, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    kind, _, message = res.stdout.strip().partition("|")
    assert kind == "setup" and "\n" not in message
    assert "pip install 'awm-tui[swebench]'" in message
    assert (repo / "a.py").read_text() == "x = 2\n"  # the agent's work is put back
