"""Batch output details that need no runs: colour decisions, key scrubbing, no textual."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys

import pytest

from awm_tui.batch.report import Reporter, use_colour
from awm_tui.engine.events import ImagePull, LogLine, MetricsData, RunFailed, TaskFinished
from awm_tui.engine.outcomes import ErrorKind, Outcome

KEY = "sk-or-v1-outputtestsecret0123456789wxyz"


@pytest.fixture
def tty():
    leader, follower = pty.openpty()
    try:
        with open(follower, "w", encoding="utf-8", closefd=True) as stream:
            yield stream
    finally:
        os.close(leader)


def test_colour_only_on_a_tty_and_never_with_no_color(tty, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(tty) and not use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(tty)
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: an empty value does not count
    assert use_colour(tty)


def test_plain_lines_for_logs_and_keys_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # our decision wins over rich's own guesses
    out = io.StringIO()
    reporter = Reporter(json_lines=False, secrets=[KEY], out=out, err=io.StringIO())
    reporter.keys["r"] = "sk-or-v1-…wxyz"
    reporter.sink(TaskFinished(run="r", instance_id="x__y-1", exit_status="Submitted", outcome=Outcome.RESOLVED,
                               resolved=True, reward=1.0, speedup=1.5, steps=4, elapsed_s=2.0, cost=0.01))
    reporter.sink(LogLine(run="r", level="error", message=f"leaked {KEY} here\ntraceback line"))
    reporter.sink(RunFailed(run="r", reason="invalid API key sk-or-v1-…wxyz (401)"))
    text = out.getvalue()
    assert "\x1b[" not in text
    assert "x__y-1 resolved" in text and "speedup 1.50x" in text
    assert KEY not in text and "traceback line" not in text
    assert "run failed" in text and "sk-or-v1-…wxyz" in text


def test_lines_for_each_outcome_and_an_image_pull() -> None:
    out = io.StringIO()
    reporter = Reporter(json_lines=False, secrets=[], out=out, err=io.StringIO())
    image = "swebench/sweb.eval.x86_64.psf_1776_requests-2317:latest"
    pull = dict(run="r", instance_id="psf__requests-2317", image=image)
    reporter.sink(ImagePull(**pull, free_bytes=61_200_000_000))
    reporter.sink(ImagePull(**pull, layers_done=3, layers_total=7, bytes_done=412_000_000, bytes_total=980_000_000,
                            free_bytes=61_200_000_000))
    reporter.status("r", MetricsData())
    reporter.sink(ImagePull(**pull, done=True, error=f"cannot pull {image}: no such host"))
    reporter.status("r", MetricsData())
    common = dict(run="r", exit_status="Submitted", reward=0.0, speedup=None, steps=4, elapsed_s=2.0, cost=0.0)
    reporter.sink(TaskFinished(**common, instance_id="a__b-1", outcome=Outcome.EMPTY_PATCH, resolved=False))
    reporter.sink(TaskFinished(**common, instance_id="a__b-2", outcome=Outcome.UNRESOLVED, resolved=False,
                               grader="swebench:parse_log_pytest"))
    reporter.sink(TaskFinished(**{**common, "exit_status": "", "steps": 0}, instance_id="psf__requests-2317",
                               outcome=Outcome.ERROR, resolved=False, evaluated=False, error_kind=ErrorKind.IMAGE,
                               error=f"cannot pull {image}: no such host"))
    lines = out.getvalue().splitlines()
    assert f"image {image}: pulling (61.2 GB free)" in lines[0]
    assert f"pulling {image} (3/7 layers, 412/980 MB, 61.2 GB free)" in lines[1]
    assert "pulling" not in lines[2]  # the pull ended: the next status line says no more of it
    assert "a__b-1 empty patch" in lines[3] and "graded by" not in lines[3]
    assert "a__b-2 unresolved" in lines[4] and lines[4].endswith("graded by swebench:parse_log_pytest")
    assert (f"task error psf__requests-2317 (image): cannot pull {image}: no such host "
            "(not checkpointed: a rerun retries it)") in lines[5]
    assert len(lines) == 6


def test_json_lines_are_events_only() -> None:
    out = io.StringIO()
    reporter = Reporter(json_lines=True, secrets=[KEY], out=out, err=io.StringIO())
    reporter.sink(LogLine(run="r", message=f"oops {KEY}"))
    reporter.note("a note for humans")
    [line] = out.getvalue().splitlines()
    event = json.loads(line)
    assert event["kind"] == "log" and KEY not in line


def test_batch_mode_never_imports_textual() -> None:
    code = ("import sys, awm_tui.batch, awm_tui.batch.runner, awm_tui.batch.plan, awm_tui.batch.report, "
            "awm_tui.batch.summary, awm_tui.batch.signals, awm_tui.cli; "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'textual'], 'textual imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
