"""Experience buffer, workflow memory (induction diff, history, use counts) and selection."""

from __future__ import annotations

import json

import pytest

from awm_tui.engine.state.atomic import StateError, awrite_json_atomic, write_json_atomic
from awm_tui.engine.state.buffer import MAX_STEPS, Experience, ExperienceBuffer
from awm_tui.engine.state.memory import HISTORY_LIMIT, Memory, Workflow, render_workflow
from awm_tui.engine.state.selection import rank_workflows, select_workflows, tokens
from awm_tui.engine.tasks import Task


def exp(iid: str, resolved: bool, at: float, repo: str = "o/r", commands=("ls",)) -> Experience:
    return Experience.condense(instance_id=iid, repo=repo, problem_statement="Bug " * 200,
                               steps=[(c, 0, "out") for c in commands], resolved=resolved,
                               finished_at=at, patch="diff")


# -- buffer ---------------------------------------------------------------------

def test_condense_bounds_everything():
    e = Experience.condense(instance_id="a", repo="o/r", problem_statement="word " * 500,
                            steps=[(f"cmd {i} " + "x" * 5000, i % 2, "y" * 5000) for i in range(200)])
    assert len(e.problem) <= 300
    assert len(e.trajectory) == MAX_STEPS
    assert e.trajectory[0].command.startswith("cmd 0 ") and e.trajectory[-1].command.startswith("cmd 199 ")
    assert all(len(s.command) <= 1000 and len(s.output_head) <= 300 for s in e.trajectory)
    assert len(e.commands) == 200


async def test_buffer_successes_and_round_trip(tmp_path):
    buf = ExperienceBuffer.load(tmp_path / "buffer.json")
    assert len(buf) == 0
    buf.append(exp("a", True, 3.0))
    buf.append(exp("b", False, 2.0))
    buf.append(exp("c", True, 1.0))
    buf.append(exp("d", True, 4.0))
    buf.append(exp("a", True, 5.0))  # a re-run replaces its entry
    assert [e.instance_id for e in buf.successes()] == ["c", "d", "a"]
    assert [e.instance_id for e in buf.recent_successes(2)] == ["d", "a"]
    assert buf.recent_successes(0) == []
    await awrite_json_atomic(tmp_path / "buffer.json", buf.to_json())
    back = await ExperienceBuffer.aload(tmp_path / "buffer.json")
    assert back.experiences == buf.experiences


def test_buffer_invalid_is_state_error(tmp_path):
    path = tmp_path / "buffer.json"
    path.write_text(json.dumps({"experiences": [{"instance_id": "a"}]}))
    with pytest.raises(StateError, match="invalid experience"):
        ExperienceBuffer.load(path)


# -- memory ---------------------------------------------------------------------

WF_A = {"title": "Locate, patch and test a bug", "description": "d", "steps": ["grep", "edit", "test"]}
WF_B = {"title": "Run the tests first", "steps": ["pytest {test_path}"]}


def test_induction_add_change_keep(tmp_path):
    mem = Memory.load(tmp_path / "memory.json")
    d1 = mem.apply_induction([WF_A, WF_B], "rule", ["t1"], ["o/r"])
    assert d1.added == ("wf-001", "wf-002") and not d1.changed and d1.version == 1
    # Same title (case/punctuation differ), new steps: changed; WF_B not mentioned: kept.
    d2 = mem.apply_induction([{"title": "locate patch and TEST a bug!", "steps": ["grep", "edit"]},
                              {"title": "New one", "steps": ["x"]}], "llm", ["t2"])
    assert d2.added == ("wf-003",) and d2.changed == ("wf-001",) and d2.removed == ()
    wf1 = mem.get("wf-001")
    assert wf1.version == 2 and wf1.steps == ["grep", "edit"] and wf1.title == WF_A["title"]
    assert wf1.source_instances == ["t1", "t2"] and wf1.description == "d"
    assert [w.id for w in mem.workflows] == ["wf-001", "wf-002", "wf-003"]
    # Identical answer: nothing changes, no new version.
    d3 = mem.apply_induction([{"title": "New one", "steps": ["x"]}], "llm", ["t3"])
    assert not d3 and mem.version == 2 and len(mem.history) == 2


def test_history_keeps_previous_versions(tmp_path):
    mem = Memory.load(tmp_path / "memory.json")
    mem.apply_induction([WF_A], "rule", ["t1"])
    mem.apply_induction([{**WF_A, "steps": ["only one"]}], "llm", ["t2", "t3"])
    rec = mem.history[-1]
    assert (rec.version, rec.mode, rec.changed, rec.sources) == (2, "llm", ["wf-001"], ["t2", "t3"])
    assert rec.previous[0].steps == WF_A["steps"]
    assert mem.at_version(1)[0].steps == WF_A["steps"]
    assert mem.at_version(0) == [] and mem.at_version(2)[0].steps == ["only one"]
    write_json_atomic(tmp_path / "memory.json", mem.to_json())
    back = Memory.load(tmp_path / "memory.json")
    assert back.history == mem.history and back.workflows == mem.workflows


def test_replace_and_remove_are_recorded(tmp_path):
    mem = Memory.load(tmp_path / "memory.json")
    mem.apply_induction([WF_A, WF_B], "rule", [])
    d = mem.apply_induction([WF_A], "llm", [], replace=True)
    assert d.removed == ("wf-002",) and [w.id for w in mem.workflows] == ["wf-001"]
    d = mem.remove(["wf-001"])
    assert d.removed == ("wf-001",) and mem.workflows == []
    mem.apply_induction([WF_B], "rule", [])
    assert mem.workflows[0].id == "wf-003"  # ids are never reused
    assert [w.id for w in mem.at_version(1)] == ["wf-001", "wf-002"]


def test_history_is_bounded(tmp_path):
    mem = Memory.load(tmp_path / "memory.json")
    for i in range(HISTORY_LIMIT + 5):
        mem.apply_induction([{"title": "w", "steps": [f"s{i}"]}], "rule", [])
    assert len(mem.history) == HISTORY_LIMIT and mem.version == HISTORY_LIMIT + 5
    assert mem.at_version(1) is None


def test_counted_use(tmp_path):
    mem = Memory.load(tmp_path / "memory.json")
    mem.apply_induction([WF_A, WF_B], "rule", [])
    assert mem.counted_use(["wf-001", "wf-002", "wf-001"], success=True) == {"wf-001": [1, 1], "wf-002": [1, 1]}
    a, b = mem.workflows
    assert (a.uses, b.uses) == (0, 0)  # a count to commit, not a change
    a.uses, a.successes = 1, 1
    assert mem.counted_use(["wf-001", "wf-999"], success=False) == {"wf-001": [2, 1]}
    a.uses = 2
    assert a.success_rate == 0.5
    assert mem.version == 1  # counting uses is not a new memory version


def test_prompt_block_is_numbered_steps():
    wf = Workflow(id="wf-001", title="Fix it", description="When tests fail.", steps=["a", "b"])
    block = Memory.to_prompt_block([wf, wf])
    assert block.splitlines()[:4] == ["### Fix it", "(wf-001) When tests fail.", "1. a", "2. b"]
    assert block.count("### Fix it") == 2


def test_corrupt_memory(tmp_path):
    path = tmp_path / "memory.json"
    path.write_text(json.dumps({"workflows": [{"id": "wf-001"}]}))
    with pytest.raises(StateError, match="invalid memory at workflows.0.title"):
        Memory.load(path)


# -- selection ------------------------------------------------------------------

def task(repo: str, problem: str) -> Task:
    return Task(instance_id="x", repo=repo, problem_statement=problem)


def wf(id_: str, title: str, repos=(), steps=("do it",), uses=0, successes=0, updated=0.0, sources=()):
    return Workflow(id=id_, title=title, steps=list(steps), repos=list(repos), uses=uses,
                    successes=successes, updated_at=updated, source_instances=list(sources))


def test_tokens_drop_stopwords_and_placeholders():
    assert tokens("The separability_matrix of {file} is wrong") == {"separability_matrix", "separability",
                                                                    "matrix", "wrong"}


def test_selection_order():
    mem = Memory(workflows=[
        wf("wf-001", "Unrelated thing", updated=9),
        wf("wf-002", "Fix separability matrix nesting"),
        wf("wf-003", "Generic repo workflow", repos=["astropy/astropy"]),
        wf("wf-004", "Matrix nesting fix", uses=2, successes=2),
        wf("wf-005", "Matrix nesting fix again", uses=2, successes=2, updated=5),
        wf("wf-006", "From instance id", sources=["astropy__astropy-12907"]),
    ])
    t = task("astropy/astropy", "separability_matrix gives wrong answer for nested matrix")
    order = [w.id for w in rank_workflows(mem, t)]
    # same repo first (explicit or from the SWE-bench id), then overlap, success rate, recency
    assert order == ["wf-003", "wf-006", "wf-002", "wf-005", "wf-004", "wf-001"]
    assert [w.id for w in select_workflows(mem, t, 10_000)] == order
    assert order == [w.id for w in rank_workflows(mem, t)]  # deterministic


def test_selection_respects_budget():
    mem = Memory(workflows=[wf("wf-001", "matrix fix", steps=["x" * 500]),
                            wf("wf-002", "matrix other"), wf("wf-003", "unrelated")])
    t = task("o/r", "matrix")
    chosen = select_workflows(mem, t, 100)
    assert [w.id for w in chosen] == ["wf-002", "wf-003"]  # the big one is skipped
    assert len(Memory.to_prompt_block(chosen)) <= 100
    assert select_workflows(mem, t, 10) == []
    one = select_workflows(mem, t, len(render_workflow(mem.workflows[1])))
    assert [w.id for w in one] == ["wf-002"]
