"""Induction: the LLM prompt, parsing its answers, and deterministic rule induction."""

from __future__ import annotations

import json

import pytest

from awm_tui.engine import protocol
from awm_tui.engine.state.buffer import Experience
from awm_tui.engine.state.induction import (
    PROMPT_EXPERIENCE_CHARS, abstract_command, build_induction_messages, command_kind,
    induce_rule, parse_llm_induction,
)
from awm_tui.engine.state.memory import Memory, Workflow

FIX = [
    "cd /testbed && git status && ls -R | head -50",
    "grep -rn 'def separability_matrix' astropy/modeling/",
    "sed -n '120,160p' astropy/modeling/separable.py",
    "cd /testbed && git apply <<'EOF'\ndiff --git a/astropy/modeling/separable.py b/astropy/modeling/separable.py\n+x\nEOF",
    "python -m pytest astropy/modeling/tests/test_separable.py::test_nested -q 2>&1 | tail -5",
    protocol.SUBMIT_COMMAND,
]


def exp(iid: str, commands: list[str], repo: str = "astropy/astropy") -> Experience:
    return Experience.condense(instance_id=iid, repo=repo, problem_statement=f"Problem of {iid}",
                               steps=[(c, 0, "") for c in commands], resolved=True)


def other_fix(n: int) -> list[str]:
    return ["ls", f"grep -n 'def helper_{n}' pkg/mod{n}.py", f"cat pkg/mod{n}.py",
            f"sed -i 's/a{n}/b/' pkg/mod{n}.py", f"python -m pytest tests/test_mod{n}.py",
            protocol.SUBMIT_COMMAND]


def test_abstract_command_placeholders():
    assert abstract_command(FIX[1]) == "grep -rn 'def {symbol}' {file}"
    assert abstract_command(FIX[2]) == "sed -n '{n},{n}p' {file}"
    assert abstract_command(FIX[3]) == "cd {repo_path} && git apply <<'EOF' … {patch} … EOF"
    # Docker's /testbed and the local sandbox's temp dir give the same step.
    local = FIX[3].replace("cd /testbed", "cd /tmp/awm-local-x1/testbed")
    assert abstract_command(local) == abstract_command(FIX[3])
    assert abstract_command(FIX[4]) == "python -m pytest {test_path} -q 2>&1 | tail -{n}"
    assert abstract_command('python -c "print(1)"') == 'python -c "{text}"'
    assert [command_kind(c) for c in FIX] == ["explore", "explore", "inspect", "edit", "test", "submit"]


def test_rule_induction_is_deterministic_and_abstract():
    quick = ["sed -i 's/x/y/' lib/core.py", "python -m pytest tests/test_core.py", protocol.SUBMIT_COMMAND]
    exps = [exp("e__e-5", quick, "e/e"), exp("a__a-1", FIX), exp("b__b-2", other_fix(2), "b/b"),
            exp("c__c-3", other_fix(3), "c/c"), exp("d__d-4", ["echo hi"])]  # no known kind: ignored
    first = induce_rule(exps)
    assert first == induce_rule(exps)
    assert len(first) == 2
    top, second = first
    # The largest group (same kind sequence) comes first, whatever the input order.
    assert top["source_instances"] == ["a__a-1", "b__b-2", "c__c-3"]
    assert top["repos"] == ["astropy/astropy", "b/b", "c/c"]
    assert top["title"] == "Locate, inspect, patch and test a bug in {repo}"
    assert second["title"] == "Patch and test a bug in {repo}"
    assert second["steps"] == ["Edit: sed -i '{text}' {file}", "Test: python -m pytest {test_path}",
                               f"Submit: {protocol.SUBMIT_COMMAND}"]
    text = json.dumps(first)
    for concrete in ("astropy/modeling", "separable.py", "helper_2", "mod3", "120", "core"):
        assert concrete not in text
    assert top["steps"][0].startswith("Explore: ") and top["steps"][-1].startswith("Submit: ")
    assert induce_rule([]) == []
    assert len(induce_rule(exps, max_workflows=1)) == 1


def test_rule_induction_merges_into_memory(tmp_path):
    mem = Memory.load(tmp_path / "memory.json")
    wfs = induce_rule([exp("b__b-2", other_fix(2), "b/b")])
    diff = mem.apply_induction(wfs, "rule", ["b__b-2"])
    assert diff.added == ("wf-001",) and mem.workflows[0].repos == ["b/b"]
    # Same shape later: the same title updates the workflow instead of duplicating it.
    diff = mem.apply_induction(induce_rule([exp("b__b-2", other_fix(2), "b/b"),
                                            exp("c__c-3", other_fix(3), "c/c")]), "rule", [])
    assert diff.added == () and diff.changed == () and len(mem.workflows) == 1
    assert mem.workflows[0].source_instances == ["b__b-2", "c__c-3"]


def test_build_messages_contract():
    current = [Workflow(id="wf-001", title="Old", steps=["s"])]
    msgs = build_induction_messages([exp("a__a-1", FIX)], current)
    system, user = msgs[0]["content"], msgs[1]["content"]
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert protocol.INDUCTION_MARKER in system and "{file}" in system and "{test_path}" in system
    cur = json.loads(protocol.between(user, protocol.CURRENT_OPEN, protocol.CURRENT_CLOSE))
    assert cur == [{"title": "Old", "description": "", "steps": ["s"]}]
    examples = json.loads(protocol.between(user, protocol.EXPERIENCES_OPEN, protocol.EXPERIENCES_CLOSE))
    assert {"instance_id", "repo", "problem", "commands"} <= examples[0].keys()
    assert examples[0]["commands"] == FIX


def test_build_messages_is_bounded():
    huge = [exp(f"t-{i}", ["x" * 10_000] * 100) for i in range(40)]
    user = build_induction_messages(huge, [])[1]["content"]
    examples = json.loads(protocol.between(user, protocol.EXPERIENCES_OPEN, protocol.EXPERIENCES_CLOSE))
    assert len(user) < PROMPT_EXPERIENCE_CHARS * 1.5
    assert examples[-1]["instance_id"] == "t-39"  # the newest are kept
    assert all(len(c) <= 400 for e in examples for c in e["commands"])
    assert all(len(e["commands"]) <= 31 for e in examples)


def test_parse_messy_answer():
    reply = ("Sure! After looking at the experiences, here is what I found.\n\n"
             "```json\n{\"workflows\": [{\"title\": \"Find and fix\", \"description\": \"x\", "
             "\"steps\": [\"grep {function}\", \"  \", \"edit {file}\"]}, {\"title\": \"no steps\"}]}\n```\n"
             "Let me know if you need more.")
    assert parse_llm_induction(reply) == [
        {"title": "Find and fix", "description": "x", "steps": ["grep {function}", "edit {file}"]}]
    bare = 'Here: [{"title": "T", "steps": ["a"]}]'
    assert parse_llm_induction(bare)[0]["title"] == "T"


@pytest.mark.parametrize("reply", [
    "Sorry, I could not find any reusable workflows.",
    "```json\n{\"workflows\": [\n```",
    "```json\n{\"workflows\": [{\"title\": \"x\"}]}\n```",
])
def test_parse_failure_raises_and_memory_is_kept(tmp_path, reply):
    mem = Memory.load(tmp_path / "memory.json")
    mem.apply_induction([{"title": "Keep me", "steps": ["a"]}], "rule", [])
    with pytest.raises(ValueError):
        mem.apply_induction(parse_llm_induction(reply), "llm", [])
    assert [w.title for w in mem.workflows] == ["Keep me"] and mem.version == 1
