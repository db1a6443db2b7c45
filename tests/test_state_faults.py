"""Kill the run at every state write, resume it: it ends exactly where an uninterrupted run ends.

The fault-injection pass of issue 12: a one-run batch with two inductions (after
tasks 2 and 4; tasks 3 and 4 get workflows) is SIGKILLed at each of its state
writes in turn — every rename of a state file, trajectory or journal, and every
journal append (cut in half) — then resumed, once more killed early in the resume
(its compaction), and resumed to the end. Memory (workflows, their uses, every
induction), the buffer (injected workflows per task), the checkpoint, the
predictions and the trajectories must equal the uninterrupted run's at every point.

The kill is `AWM_TUI_KILL_AT_WRITE` (atomic.fault_point): strace's
`inject=rename:signal=KILL:when=N` counts per thread, and the writes run on
whichever worker thread `asyncio.to_thread` picks, so N would not name one write.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from awm_tui.engine.state import OutputLayout, load_state
from tests.helpers.state_run import outcome

HELPER = Path(__file__).parent / "helpers" / "state_run.py"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


class ForkServer:
    """tests/helpers/state_run.py: one child per run, forked from an imported process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def run(self, out: Path, kill_at: int | str = "-") -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{out} {kill_at}\n".encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        assert line, "the fork server died"
        return int(line)


async def test_kill_at_every_state_write_then_resume(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HELPER), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    server = ForkServer(proc)
    try:
        reference = tmp_path / "reference"
        count = tmp_path / "writes.txt"
        assert await server.run(reference, f"count:{count}") == 0
        points = count.read_text().splitlines()
        expected = outcome(reference)
        assert expected["memory version"] == 2 and len(expected["inductions"]) == 2
        # The first induction's workflows are used by tasks 3 and 4 (the last induction's come too late).
        first = expected["inductions"][0][2]
        assert first and all(w[4] == 2 for w in expected["workflows"] if w[0] in first)
        assert [i[1] != [] for i in expected["injected"]] == [False, False, True, True]
        kinds = {p.split()[1] for p in points}
        assert kinds == {"rename", "append"} and sum("append induction" in p for p in points) == 2

        failures = []
        for number, point in enumerate(points, 1):
            out = tmp_path / f"kill-{number}"
            status = await server.run(out, number)
            assert status == -signal.SIGKILL, f"not killed at {point}"
            # Killed again early in the resume (while it compacts), then resumed to the end.
            assert await server.run(out, 1 + number % 5) in (-signal.SIGKILL, 0)
            assert await server.run(out) == 0, f"the resume after a kill at {point} failed"
            got = outcome(out)
            if got != expected:
                uses = [w[4] for w in got["workflows"]]
                failures.append(f"kill at {point}: {sorted(k for k in expected if got[k] != expected[k])} differ "
                                f"(memory v{got['memory version']}, uses {uses}, "
                                f"{len(got['inductions'])} inductions)")
            # The engine's reader sees what the files say.
            state = load_state(OutputLayout.of(out))
            assert [w.uses for w in state.memory.workflows] == [w[4] for w in expected["workflows"]]
        assert not failures, "\n".join(failures)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        await proc.wait()
