"""Output directory: exclusive lock, event log, trajectories, predictions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from awm_tui.engine.events import LogLine
from awm_tui.engine.state.atomic import dump_json, read_json, replace_files, write_json_atomic
from awm_tui.engine.state.layout import OutputLayout
from awm_tui.engine.state.outputs import EventLog, OutputDir, OutputDirLocked, PredictionsFile


def test_layout_names_the_files_and_touches_nothing(tmp_path):
    out = OutputDir(tmp_path / "run_1")
    layout = out.layout
    assert not (tmp_path / "run_1").exists()  # readers may build one for a directory they only read
    assert layout == OutputLayout.of(tmp_path / "run_1") and layout.path == out.path
    assert [p.name for p in (layout.memory, layout.buffer, layout.checkpoint, layout.preds, layout.journal,
                             layout.events, layout.summary, layout.lock)] == [
        "memory.json", "buffer.json", "checkpoint.json", "preds.json", "journal.jsonl", "events.jsonl",
        "summary.json", ".awm-tui.lock"]
    out.lock("r")  # taking the directory creates it
    assert layout.path.is_dir() and layout.trajectories.is_dir()
    out.unlock()


def test_same_process_second_dir_refused(tmp_path):
    first = OutputDir(tmp_path / "run")
    first.lock("alpha")
    second = OutputDir(tmp_path / "run" / ".." / "run")  # same directory, other spelling
    with pytest.raises(OutputDirLocked) as info:
        second.lock("beta")
    msg = str(info.value)
    assert "in use by run 'alpha'" in msg and f"pid {os.getpid()}" in msg
    assert "choose another --output-dir or stop that run" in msg and "\n" not in msg
    first.unlock()
    first.unlock()  # idempotent
    second.lock("beta")
    assert second.locked
    second.unlock()


def test_lock_sweeps_temp_files_of_a_killed_run(tmp_path):
    out = OutputDir(tmp_path)
    stale = [tmp_path / ".memory.json.abc123.tmp", out.layout.trajectories / ".t-1.json.x.tmp"]
    out.layout.trajectories.mkdir()
    for p in stale:
        p.write_text("{half")
    (tmp_path / "keep.tmp").write_text("user file")
    out.lock("r")
    out.unlock()
    assert not any(p.exists() for p in stale) and (tmp_path / "keep.tmp").exists()


def test_lock_file_names_holder(tmp_path):
    with OutputDir(tmp_path) as out:
        out.lock("alpha")
        info = json.loads(out.layout.lock.read_text())
        assert info["pid"] == os.getpid() and info["run"] == "alpha"
        assert {"host", "started"} <= info.keys()
    assert not out.locked


HOLDER = textwrap.dedent("""
    import sys, time
    from awm_tui.engine.state.outputs import OutputDir
    out = OutputDir(sys.argv[1])
    out.lock("other-proc")
    print("locked", flush=True)
    sys.stdin.readline()
""")


def _spawn_holder(path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"locked"
    return proc


def _finish(proc):
    proc.stdin.close()
    proc.stdout.close()
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def test_other_process_refused_then_free_after_exit(tmp_path):
    proc = _spawn_holder(tmp_path)
    try:
        out = OutputDir(tmp_path)
        with pytest.raises(OutputDirLocked) as info:
            out.lock("mine")
        assert "'other-proc'" in str(info.value) and f"pid {proc.pid}" in str(info.value)
        # The refused attempt must not wipe the holder's details.
        assert json.loads(out.layout.lock.read_text())["run"] == "other-proc"
    finally:
        proc.kill()  # dies without unlocking: a stale lock file stays behind
        _finish(proc)
    assert json.loads(out.layout.lock.read_text())["run"] == "other-proc"
    out.lock("mine")  # the kernel dropped the dead process' flock
    out.unlock()


def test_event_log_buffers_and_flushes(tmp_path):
    log = EventLog(tmp_path / "events.jsonl", interval=0.1)
    try:
        log.append({"kind": "x", "n": 1})
        log.append(LogLine(run="r", message="hello"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len((tmp_path / "events.jsonl").read_text().splitlines()) < 2:
            time.sleep(0.02)  # the writer thread flushes on its own
        lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
        assert lines[0] == {"kind": "x", "n": 1}
        assert lines[1]["kind"] == "log" and lines[1]["message"] == "hello"
        log.append({"kind": "last"})
    finally:
        log.close()
    log.close()  # idempotent
    assert json.loads((tmp_path / "events.jsonl").read_text().splitlines()[-1]) == {"kind": "last"}
    with pytest.raises(RuntimeError):
        log.append({"kind": "late"})


async def test_event_log_appends_across_runs(tmp_path):
    out = OutputDir(tmp_path)
    for i in range(2):
        log = out.event_log()
        log.append({"i": i})
        await log.aclose()
    assert [json.loads(x)["i"] for x in out.layout.events.read_text().splitlines()] == [0, 1]


async def test_save_trajectory(tmp_path):
    # The run writes trajectories as a non-durable file before its journal record.
    layout = OutputLayout.of(tmp_path)
    layout.trajectories.mkdir()
    path = layout.trajectory("astropy__astropy-12907")
    replace_files([(path, dump_json({"steps": [1]}, pretty=False))], durable=False)
    assert path == layout.trajectories / "astropy__astropy-12907.json"
    assert read_json(path) == {"steps": [1]}
    evil = layout.trajectory("../../etc/x")
    replace_files([(evil, dump_json({"a": 1}))], durable=True)
    assert evil.parent == layout.trajectories
    assert sorted(p.name for p in layout.trajectories.iterdir()) == sorted([path.name, evil.name])


async def test_predictions_replace_on_rerun(tmp_path):
    path = OutputLayout.of(tmp_path).preds
    preds = PredictionsFile.load(path)
    preds.set("t-1", "kimi", "diff 1")
    preds.set("t-2", "kimi", "diff 2")
    write_json_atomic(path, preds.to_json())
    again = PredictionsFile.load(path)
    again.set("t-1", "kimi", "diff 1b")
    write_json_atomic(path, again.to_json())
    data = read_json(path)
    assert list(data) == ["t-1", "t-2"]
    assert data["t-1"] == {"instance_id": "t-1", "model_name_or_path": "kimi", "model_patch": "diff 1b"}


def test_predictions_accept_list_form(tmp_path):
    path = tmp_path / "preds.json"
    path.write_text(json.dumps([{"instance_id": "a", "model_name_or_path": "m", "model_patch": "p"}]))
    assert PredictionsFile.load(path).entries["a"]["model_patch"] == "p"


async def test_async_lock(tmp_path):
    a = OutputDir(tmp_path / "r")
    b = OutputDir(tmp_path / "r")
    await a.alock("one")
    with pytest.raises(OutputDirLocked):
        await b.alock("two")
    a.unlock()
