"""The state store: one journal record per commit, views derived from it, one reader."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from awm_tui.engine.state import (
    Experience, OutputLayout, StateError, StateStore, TaskResult, load_state, read_json,
)
from awm_tui.tui.output_reading import read_output_dir


def experience(iid: str, injected: list[str] = ()) -> Experience:
    return Experience(instance_id=iid, repo="o/r", problem="p", resolved=True, injected_workflows=list(injected))


async def commit(store: StateStore, iid: str, injected: list[str] = ()) -> None:
    await store.commit_task(TaskResult(instance_id=iid, exit_status="Submitted", resolved=True), model="m",
                            patch=f"diff {iid}", experience=experience(iid, injected), injected=injected,
                            trajectory={"instance_id": iid})


def opened(tmp_path: Path) -> StateStore:
    layout = OutputLayout.of(tmp_path)
    layout.trajectories.mkdir(parents=True, exist_ok=True)  # what taking the lock does
    return StateStore.open(layout, "r")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_fresh_directory_gets_every_file_and_a_base_journal(tmp_path):
    store = opened(tmp_path)
    layout = store.layout
    assert read_json(layout.checkpoint)["finished"] == {} and read_json(layout.buffer)["experiences"] == []
    assert read_json(layout.preds) == {} and read_json(layout.memory)["workflows"] == []
    assert lines(layout.journal) == [{"kind": "base", "induced_at": None}]
    await commit(store, "t1")
    assert [r["kind"] for r in lines(layout.journal)] == ["base", "task"]  # committed
    assert read_json(layout.trajectory("t1")) == {"instance_id": "t1"}
    assert read_json(layout.checkpoint)["finished"] == {}  # the views follow within view_delay...
    assert load_state(layout).checkpoint.is_done("t1")  # ...the engine's reader sees it now
    await asyncio.sleep(store.view_delay + 0.5)
    assert list(read_json(layout.checkpoint)["finished"]) == ["t1"] and list(read_json(layout.preds)) == ["t1"]
    await commit(store, "t2")
    await store.aclose()  # the run ends: views exact at once
    assert list(read_json(layout.checkpoint)["finished"]) == ["t1", "t2"]


async def test_views_behind_the_journal_are_caught_up_by_readers_and_on_open(tmp_path):
    store = opened(tmp_path)
    layout = store.layout
    await commit(store, "t1")  # killed after the journal append, before the views
    assert load_state(layout).checkpoint.is_done("t1")
    summary = read_output_dir(layout.path)
    assert summary.done == 1 and [t.instance_id for t in summary.tasks] == ["t1"]
    again = opened(tmp_path)  # compacts: the views hold it, the journal is its base line again
    assert list(read_json(layout.checkpoint)["finished"]) == ["t1"]
    assert lines(layout.journal) == [{"kind": "base", "induced_at": None}]
    assert again.state.checkpoint.is_done("t1")


async def test_uses_replayed_twice_are_counted_once(tmp_path):
    store = opened(tmp_path)
    store.state.memory.apply_induction([{"title": "w", "steps": ["s"]}], "rule", ["t0"])
    await store.commit_induction(1.0, changed=True)
    await store.write_views()
    memory_before = store.layout.memory.read_text()
    await commit(store, "t1", ["wf-001"])
    await store.aclose()
    assert read_json(store.layout.memory)["workflows"][0]["uses"] == 1
    store.layout.memory.write_text(memory_before)  # as if killed before memory.json's rename
    assert opened(tmp_path).state.memory.workflows[0].uses == 1
    assert opened(tmp_path).state.memory.workflows[0].uses == 1  # and again: the views already had it


async def test_torn_last_record_is_not_committed(tmp_path):
    store = opened(tmp_path)
    await commit(store, "t1")
    with store.layout.journal.open("a") as fh:
        fh.write('{"kind":"task","result":{"instance_id":"t2"')  # a kill mid-append
    state = load_state(store.layout)
    assert list(state.checkpoint.finished) == ["t1"]
    store = opened(tmp_path)  # the torn line goes, so the next append starts a line of its own
    await commit(store, "t3")
    assert list(load_state(store.layout).checkpoint.finished) == ["t1", "t3"]


async def test_corrupt_journal_line_is_one_line_error(tmp_path):
    store = opened(tmp_path)
    await commit(store, "t1")
    text = store.layout.journal.read_text()
    store.layout.journal.write_text("garbage\n" + text)
    with pytest.raises(StateError) as info:
        load_state(store.layout)
    assert "journal.jsonl: line 1 is not a journal record; move the file aside" in str(info.value)
    assert "\n" not in str(info.value)
    problems: list[str] = []
    load_state(store.layout, problems=problems)  # readers show the rest
    assert len(problems) == 1 and "journal.jsonl" in problems[0]


async def test_a_big_journal_is_compacted(tmp_path):
    store = opened(tmp_path)
    store.compact_bytes = 1
    await commit(store, "t1")
    await store.write_views()
    assert lines(store.layout.journal) == [{"kind": "base", "induced_at": None}]
    assert list(read_json(store.layout.checkpoint)["finished"]) == ["t1"]


async def test_induction_time_survives_compaction(tmp_path):
    store = opened(tmp_path)
    await commit(store, "t1")
    await store.commit_induction(store.state.buffer.get("t1").finished_at + 1, changed=False)
    assert opened(tmp_path).state.successes_since_induction() == 0
    assert lines(store.layout.journal)[0]["induced_at"] is not None
    assert opened(tmp_path).state.successes_since_induction() == 0


async def test_a_failed_view_write_is_retried_and_logged(tmp_path, caplog):
    store = opened(tmp_path)
    store.view_delay = 0.0
    layout = store.layout
    layout.preds.unlink()
    layout.preds.mkdir()  # a rename onto a non-empty directory fails, as a full disk would
    (layout.preds / "x").write_text("")
    await commit(store, "t1")
    await asyncio.sleep(0.3)  # the flusher tried and failed
    assert "state views not rewritten" in caplog.text and "journal has every commit" in caplog.text
    caplog.clear()
    await store.aclose()  # still failing at the run's end: a warning, not an error out of the run
    assert "state views not rewritten" in caplog.text
    shutil.rmtree(layout.preds)
    await store.write_views()
    assert list(read_json(layout.preds)) == ["t1"] and list(read_json(layout.checkpoint)["finished"]) == ["t1"]


async def test_tasks_committed_together_count_every_use(tmp_path):
    """workers > 1: tasks finish together; each commit counts on the others' uses."""
    store = opened(tmp_path)
    store.state.memory.apply_induction([{"title": "w", "steps": ["s"]}], "rule", ["t0"])
    await store.commit_induction(1.0, changed=True)
    await asyncio.gather(*(commit(store, f"t{i}", ["wf-001"]) for i in range(1, 6)))
    assert store.state.memory.workflows[0].uses == 5
    await store.aclose()
    assert opened(tmp_path).state.memory.workflows[0].uses == 5  # and replayed from the journal


async def test_an_induction_keeps_the_uses_of_tasks_committed_meanwhile(tmp_path):
    """The induction's record holds memory as it is under the commit lock, so a task
    committed while the induction waited for it keeps its use count on replay."""
    store = opened(tmp_path)
    store.state.memory.apply_induction([{"title": "w", "steps": ["s"]}], "rule", ["t0"])
    await store.commit_induction(1.0, changed=True)

    def change() -> bool:
        return bool(store.state.memory.apply_induction([{"title": "v", "steps": ["s"]}], "rule", ["t1"]))

    await asyncio.gather(commit(store, "t1", ["wf-001"]), store.commit_induction(2.0, change=change))
    await store.aclose()
    again = opened(tmp_path).state.memory
    assert [w.uses for w in again.workflows] == [1, 0] and again.version == 2
