"""Atomic JSON writes survive a kill at any moment; corrupt files are reported, not dropped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from awm_tui.engine.state.atomic import (
    StateError, aread_json, awrite_json_atomic, move_aside, read_json, write_json_atomic,
)

WRITER = r"""
import sys
from awm_tui.engine.state.atomic import write_json_atomic
path = sys.argv[1]
big = {"rows": [{"i": i, "text": "x" * 200} for i in range(5000)]}
n = 1
big["n"] = n
write_json_atomic(path, big)
print("ready", flush=True)  # only once a first version exists: the kill must hit a rewrite
while True:
    n += 1
    big["n"] = n
    write_json_atomic(path, big)
"""


def test_round_trip_and_default(tmp_path):
    path = tmp_path / "sub" / "state.json"
    assert read_json(path, {"empty": True}) == {"empty": True}
    write_json_atomic(path, {"a": [1, 2], "é": "ü"})
    assert read_json(path) == {"a": [1, 2], "é": "ü"}
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temp files left


def test_unserialisable_value_leaves_old_file(tmp_path):
    path = tmp_path / "s.json"
    write_json_atomic(path, {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"v": object()})
    assert read_json(path) == {"v": 1}
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_during_repeated_writes_leaves_valid_json(tmp_path, sig):
    path = tmp_path / "big.json"
    for delay in (0.05, 0.13, 0.31):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)],
                                stdout=subprocess.PIPE, cwd=os.getcwd())
        try:
            assert proc.stdout.readline().strip() == b"ready"
            time.sleep(delay)
            proc.send_signal(sig)
            proc.wait(timeout=10)
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        data = read_json(path)  # parses: the old or the new content, never half
        assert len(data["rows"]) == 5000 and data["n"] >= 1


def test_os_exit_mid_write_keeps_old_content(tmp_path):
    # A child that dies right after writing the temp file but before the rename.
    path = tmp_path / "s.json"
    write_json_atomic(path, {"gen": "old"})
    code = f"""
import os
import awm_tui.engine.state.atomic as a
def die(*args):
    os._exit(3)
a.os.replace = die
a.write_json_atomic({str(path)!r}, {{"gen": "new"}})
"""
    assert subprocess.run([sys.executable, "-c", code]).returncode == 3
    assert read_json(path) == {"gen": "old"}


def test_corrupt_file_is_one_line_state_error(tmp_path):
    path = tmp_path / "memory.json"
    path.write_text('{"workflows": [', encoding="utf-8")
    with pytest.raises(StateError) as info:
        read_json(path, {})
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and "corrupt" in msg
    assert info.value.path == path
    assert path.read_text() == '{"workflows": ['  # never discarded


def test_move_aside(tmp_path):
    path = tmp_path / "buffer.json"
    path.write_text("garbage")
    first = move_aside(path)
    assert not path.exists() and first.read_text() == "garbage"
    assert first.name.startswith("buffer.json.corrupt-")
    path.write_text("again")
    second = move_aside(path)
    assert second != first and second.read_text() == "again"


async def test_async_wrappers(tmp_path):
    path = tmp_path / "a.json"
    data = {"k": [1]}
    await awrite_json_atomic(path, data)
    data["k"].append(2)  # mutation after the call does not leak into the file
    assert await aread_json(path) == {"k": [1]}
    assert await aread_json(tmp_path / "missing.json", []) == []
