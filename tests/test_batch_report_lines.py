"""What `--batch` prints for errors, steps and status, from the engine's events."""

from __future__ import annotations

import io

from awm_tui.batch.report import Reporter
from awm_tui.engine.events import (
    InductionDone, LLMCall, LogLine, MetricsData, RunStarted, StatusChanged, TaskFinished, TaskStarted,
)
from awm_tui.engine.outcomes import ErrorKind, Outcome


def reporter() -> tuple[Reporter, io.StringIO]:
    out = io.StringIO()
    return Reporter(json_lines=False, secrets=[], out=out, err=io.StringIO()), out


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_a_task_error_is_printed_once() -> None:
    # What AWMRun._task_error emits: the typed event, then its log line.
    rep, out = reporter()
    rep.sink(TaskFinished(run="r", instance_id="x__y-1", exit_status="", outcome=Outcome.ERROR,
                          resolved=False, reward=0.0, speedup=None, steps=0, elapsed_s=0.0, cost=0.0,
                          evaluated=False, error="no space left", error_kind=ErrorKind.SANDBOX))
    rep.sink(LogLine(run="r", level="error",
                     message="x__y-1: sandbox error: no space left (not checkpointed: a rerun retries it)"))
    [line] = lines(out)
    assert "task error x__y-1 (sandbox): no space left" in line


def test_an_induction_failure_is_printed_once() -> None:
    rep, out = reporter()
    rep.sink(InductionDone(run="r", mode="llm", ok=False, error="invalid JSON: Extra data"))
    rep.sink(LogLine(run="r", level="warning",
                     message="induction failed, memory kept as it was: invalid JSON: Extra data"))
    [line] = lines(out)
    assert "induction (llm) failed: invalid JSON: Extra data" in line


def test_other_warnings_still_print() -> None:
    rep, out = reporter()
    rep.sink(InductionDone(run="r", mode="llm", ok=False, error="invalid JSON"))
    rep.sink(LogLine(run="r", level="warning", message="dataset sample has only 3 tasks"))
    assert len(lines(out)) == 2 and "warning: dataset sample has only 3 tasks" in lines(out)[1]


def test_the_task_line_counts_commands_and_model_calls_apart() -> None:
    rep, out = reporter()
    rep.sink(TaskFinished(run="r", instance_id="x__y-1", exit_status="FormatError", outcome=Outcome.EMPTY_PATCH,
                          resolved=False, reward=0.0,
                          speedup=None, steps=0, elapsed_s=3.0, cost=0.0, model_calls=3))
    assert "0 commands, 3 model calls" in lines(out)[0]


def test_the_status_line_shows_the_step_and_the_last_call() -> None:
    rep, out = reporter()
    rep.sink(RunStarted(run="r", output_dir="/o", limit=3, model="m", sandbox="local", tasks_total=3))
    rep.status("r", MetricsData())
    assert "no model reply yet" in lines(out)[-1]
    rep.sink(TaskStarted(run="r", instance_id="x__y-1", index=1, total=3))
    rep.sink(StatusChanged(run="r", phase="running", instance_id="x__y-1", step=4))
    rep.sink(LLMCall(run="r", purpose="agent", latency_s=12.34, prompt_tokens=5120, completion_tokens=212,
                     model="gemma-3-270m-it"))
    rep.status("r", MetricsData(truncated_replies=2))
    status = lines(out)[-1]
    assert "0/3 done" in status and "x__y-1 step 4" in status
    assert "last call 12.3s, 5120→212 tokens" in status and "2 cut at max tokens" in status
    rep.sink(LLMCall(run="r", purpose="agent", latency_s=3.0, prompt_tokens=900, completion_tokens=50,
                     usage_estimated=True))   # a stream without usage (llama-cpp-python)
    rep.status("r", MetricsData())
    assert "last call 3.0s, ~900→50 tokens" in lines(out)[-1]


def test_the_served_model_is_said_once() -> None:
    rep, out = reporter()
    for _ in range(3):
        rep.sink(LLMCall(run="r", purpose="agent", latency_s=0.1, model="gemma-3-270m-it-Q4_K_M.gguf"))
    assert [line for line in lines(out) if "model as served: gemma-3-270m-it-Q4_K_M.gguf" in line] == lines(out)
    assert len(lines(out)) == 1


def test_the_status_line_carries_the_runs_key_health_and_low_credits_get_a_line() -> None:
    from awm_tui.engine.events import CreditsLow, KeyHealth

    rep, out = reporter()
    rep.sink(RunStarted(run="r", output_dir="/o", limit=3, model="m", sandbox="local", tasks_total=3))
    rep.sink(KeyHealth(run="", identity="0123456789ab", masked="sk-or-v1-…ab12", runs=("r", "s"), in_flight=1,
                       limit=2, rate_limited=5, retry_after_s=2.0, credits_limit=5.0, credits_remaining=0.4,
                       credits_low=True))
    assert len(lines(out)) == 1        # "run started": the key's health is no line of its own
    rep.status("r", MetricsData())
    assert lines(out)[-1].endswith("key sk-or-v1-…ab12 · 1/2 in flight · held 2.0s · 429s 5 · $0.40/$5.00 LOW")
    rep.sink(CreditsLow(run="", identity="0123456789ab", masked="sk-or-v1-…ab12", remaining=0.4, limit=5.0,
                        runs=("r", "s")))
    assert "warning: credits low on key sk-or-v1-…ab12: $0.40 of $5.00 left (runs r, s)" in lines(out)[-1]
    assert "" not in rep.tallies       # fleet-wide events make no run of their own


def test_the_start_line_counts_its_tasks_in_words() -> None:
    rep, out = reporter()
    rep.sink(RunStarted(run="r", output_dir="/o", limit=1, model="m", sandbox="local", tasks_total=1))
    rep.sink(RunStarted(run="s", output_dir="/p", limit=2, model="m", sandbox="local", tasks_total=2))
    one, two = lines(out)
    assert " · 1 task · " in one and " · 2 tasks · " in two
