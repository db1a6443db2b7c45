"""checkpoint.json: round trip and resume semantics."""

from __future__ import annotations

import json

import pytest

from awm_tui.engine.state.atomic import StateError, awrite_json_atomic, write_json_atomic
from awm_tui.engine.state.checkpoint import Checkpoint, TaskResult


def result(iid: str, resolved: bool, **kw) -> TaskResult:
    return TaskResult(instance_id=iid, exit_status="Submitted", resolved=resolved,
                      reward=1.0 if resolved else 0.0, **kw)


def test_missing_file_is_empty(tmp_path):
    ckpt = Checkpoint.load(tmp_path / "checkpoint.json", run_name="r1")
    assert ckpt.done == 0 and ckpt.resolved == 0 and ckpt.run_name == "r1"
    assert not (tmp_path / "checkpoint.json").exists()  # loading writes nothing


def test_round_trip(tmp_path):
    path = tmp_path / "checkpoint.json"
    ckpt = Checkpoint.load(path, run_name="r1")
    ckpt.record(result("a", True, speedup=1.5, steps=7, cost=0.02, elapsed_s=12.5))
    ckpt.record(result("b", False, evaluated=False))
    write_json_atomic(path, ckpt.to_json())
    back = Checkpoint.load(path)
    assert back == ckpt
    assert back.finished["a"].speedup == 1.5 and back.finished["b"].evaluated is False
    assert (back.done, back.resolved) == (2, 1)
    assert json.loads(path.read_text())["version"] == 1


async def test_resume_semantics(tmp_path):
    path = tmp_path / "checkpoint.json"
    tasks = ["t1", "t2", "t3", "t4"]
    first = await Checkpoint.aload(path, "r")
    for iid in tasks[:2]:  # the run is stopped while t3 is in flight: t3 never recorded
        first.record(result(iid, iid == "t1"))
        await awrite_json_atomic(path, first.to_json())
    resumed = await Checkpoint.aload(path, "r")
    todo = [t for t in tasks if not resumed.is_done(t)]
    assert todo == ["t3", "t4"]  # the interrupted task restarts from scratch
    resumed.record(result("t2", True))  # a re-run replaces the old result
    assert (resumed.done, resumed.resolved) == (2, 2)
    assert list(resumed.finished) == ["t1", "t2"]


def test_invalid_checkpoint_is_state_error(tmp_path):
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps({"finished": {"a": {"instance_id": "a"}}}))
    with pytest.raises(StateError, match="invalid checkpoint at finished.a.exit_status"):
        Checkpoint.load(path)
    path.write_text("{not json")
    with pytest.raises(StateError, match="corrupt JSON"):
        Checkpoint.load(path)


def test_newer_version_refused(tmp_path):
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps({"version": 99, "finished": {}}))
    with pytest.raises(StateError, match="newer"):
        Checkpoint.load(path)

