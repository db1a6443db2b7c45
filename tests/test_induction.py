"""Induction: the LLM prompt, parsing real models' replies, rule induction, and the
whole route through the simulated model over loopback (prompt and reply kept)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from awm_tui.config.models import AppConfig, EvalConfig, LLMProfile, RunConfig
from awm_tui.config.plan import resolve_run
from awm_tui.engine import protocol
from awm_tui.engine.events import Event, InductionDone, LogLine
from awm_tui.engine.fleet import Fleet, RunOutcome
from awm_tui.engine.state.buffer import Experience
from awm_tui.engine.induction import (
    InductionParseError, ParsedInduction, abstract_command, build_induction_messages, command_kind, induce_rule,
    parse_induction_reply, transcript, write_transcript,
)
from awm_tui.engine.induction.prompt import PROMPT_EXPERIENCE_CHARS
from awm_tui.engine.state.memory import Memory, Workflow
from awm_tui.servers import sim_induction
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions

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


# -- parsing replies as real models write them ------------------------------------------------

WF_A = {"title": "Find and fix", "description": "x", "steps": ["grep -rn '{symbol}' .", "edit {file}"]}
WF_B = {"title": "Test first", "description": "y", "steps": ["python -m pytest {test_path}"]}
WF_C = {"title": "Third", "description": "z", "steps": ["ls"]}


def fenced(value: object) -> str:
    return f"```json\n{json.dumps(value, indent=2)}\n```"


def titles(reply: str) -> list[str]:
    return [w["title"] for w in parse_induction_reply(reply).workflows]


def test_prose_around_a_fenced_block():
    reply = ("Sure! After looking at the experiences, here is what I found. Steps use {file} and "
             "[placeholders] so they carry over.\n\n" + fenced({"workflows": [
                 {**WF_A, "steps": [*WF_A["steps"], "  "]}, {"title": "no steps"}]})
             + "\nLet me know if you need more.")
    parsed = parse_induction_reply(reply)
    assert parsed.workflows == [WF_A]  # blank steps and the workflow without steps dropped
    assert "skipped 1" in parsed.note


def test_an_echoed_empty_list_before_the_answer():
    """The real reply of issue 11: the current workflows (`[]`) echoed bare, then the
    answer, no fences. Taking everything from the first bracket gave `Extra data`."""
    reply = f"Current workflows: []\n\nUpdated workflows:\n{json.dumps({'workflows': [WF_A, WF_B]})}\n"
    assert parse_induction_reply(reply).workflows == [WF_A, WF_B]
    # fenced, with the current list not empty: the last block is the answer
    echoed = fenced([WF_C]) + "\nI refined them:\n" + fenced({"workflows": [WF_A]})
    assert titles(echoed) == ["Find and fix"]


def test_think_blocks_are_not_the_answer():
    draft = '{"workflows": [{"title": "Draft", "steps": ["look around"'  # never closed
    reply = f"<think>\nLet me draft one:\n{draft}\nNo, better:\n</think>\n\n{fenced({'workflows': [WF_B]})}"
    assert titles(reply) == ["Test first"]
    # Templates that open the block themselves send only its end.
    assert titles(f"{draft} hmm, done thinking.</think>\n{fenced([WF_A])}") == ["Find and fix"]
    assert titles(f"<THINKING>{fenced([WF_C])}</THINKING>\n{fenced([WF_A])}") == ["Find and fix"]


def test_a_cut_off_reply_keeps_its_complete_workflows():
    full = fenced({"workflows": [WF_A, WF_B, WF_C]})
    cut = full[: full.index('"Third"') + 4]  # inside the third title
    parsed = parse_induction_reply(cut)
    assert parsed.workflows == [WF_A, WF_B]
    assert parsed.note == "the reply was cut off: kept 2 complete workflows, dropped the unfinished one"
    # cut between two workflows: nothing unfinished to drop
    between = full[: full.index("\n    }", full.index('"Test first"')) + 6]
    assert parse_induction_reply(between).workflows == [WF_A, WF_B]
    assert parse_induction_reply(between).note == "the reply was cut off: kept 2 complete workflows"
    # a bare list cut off, after an echoed one: the echo is not taken for the answer
    assert titles(f"[]\n[{json.dumps(WF_B)}, {json.dumps(WF_C)[:20]}") == ["Test first"]


def test_other_shapes_real_models_send():
    # one workflow per block
    assert titles(f"First:\n{fenced(WF_A)}\nSecond:\n{fenced(WF_B)}") == ["Find and fix", "Test first"]
    # a trailing comma, steps with brackets and braces in them, steps as one string
    tricky = '{"workflows": [{"title": "Regex", "steps": ["grep -nE \'[a-z]{2,}\\\\]\' {file}", "ls"],},]}'
    assert parse_induction_reply(tricky).workflows[0]["steps"] == ["grep -nE '[a-z]{2,}\\]' {file}", "ls"]
    assert parse_induction_reply('[{"title": "T", "steps": "a\\nb"}]').workflows[0]["steps"] == ["a", "b"]
    # small models: a Python dict, steps as objects, "name" for the title
    assert titles("{'workflows': [{'title': 'Py', 'steps': ['ls'], 'final': True}]}") == ["Py"]
    objects = {"workflows": [{"name": "Named", "steps": [{"step": 1, "command": "ls {file}"},
                                                        {"step": 2, "action": "edit it"}]}]}
    assert parse_induction_reply(json.dumps(objects)).workflows == [
        {"title": "Named", "description": "", "steps": ["ls {file}", "edit it"]}]
    # an unbalanced `{"` in a shell line before the answer neither swallows the answer
    # nor makes it look cut off
    for answer in (json.dumps([WF_A]), json.dumps({"workflows": [WF_A]}), fenced([WF_A])):
        for junk in ("echo '{\"' > x.json", "echo '[\"' > x.json"):
            assert parse_induction_reply(f"Try: {junk}\n{answer}") == ParsedInduction([WF_A]), (junk, answer)
    # a shell test in a bash block after the answer is no "later block"
    assert parse_induction_reply(fenced([WF_A]) + "\n```bash\n[ 'a' = 'b' ] && ls\n```").note == ""
    # a later broken block does not hide an earlier good one, and is reported
    parsed = parse_induction_reply(fenced([WF_A]) + '\n```json\n{"workflows": [{"title": "b",\n```')
    assert [w["title"] for w in parsed.workflows] == ["Find and fix"] and "ignored a later block" in parsed.note


@pytest.mark.parametrize(("reply", "why"), [
    ("", "the reply is empty"),
    ("Sorry, I could not find any reusable workflows.", "no JSON in the reply"),
    ("```json\n{\"workflows\": [\n```", "invalid JSON (Expecting value at line 2 column 1"),
    ('{"workflows": [{"title": "a" "steps": ["x"]}]}', "invalid JSON (Expecting ',' delimiter"),
    ("```json\n{\"workflows\": [{\"title\": \"x\"}]}\n```", "no workflow in the reply has both a title"),
    ("Current workflows: []\nNothing to add.", "the reply's only workflow lists are empty ([])"),
    ('```json\n{"workflows": [{"title": "Cut', "cut off before its first workflow was complete"),
    ('Current: [{"title": "Old", "steps": ["a"]}]\nNew: {"workflows": [{"title": "N', "cut off before"),
    ("<think>\nThe experiences show that {\"workflows\": [", "ended inside its <think> block"),
])
def test_why_a_reply_has_no_workflows(tmp_path, reply, why):
    with pytest.raises(InductionParseError) as caught:
        parse_induction_reply(reply)
    message = str(caught.value)
    assert why in message and "\n" not in message
    mem = Memory.load(tmp_path / "memory.json")
    mem.apply_induction([{"title": "Keep me", "steps": ["a"]}], "rule", [])
    assert [w.title for w in mem.workflows] == ["Keep me"] and mem.version == 1


# -- the simulated model plays a model: the engine's rules, messy replies -------------------

def sim_prompt(experiences: list[Experience], current: tuple[Workflow, ...] | list[Workflow] = ()) -> str:
    return build_induction_messages(experiences, list(current))[1]["content"]


def test_the_simulated_model_answers_with_the_engines_rules():
    exps = [exp("a__a-1", FIX), exp("b__b-2", other_fix(2), "b/b")]
    answer = sim_induction.induce(sim_prompt(exps))
    rules = induce_rule(exps)
    assert [(w["title"], w["steps"]) for w in answer] == [(w["title"], w["steps"]) for w in rules]
    assert all(w["description"].endswith("Seen in astropy/astropy, b/b.") for w in answer)
    # A current workflow whose steps do the same kinds of things keeps its title;
    # one it does not refine is returned as it was.
    mine = Workflow(id="wf-001", title="My routine", steps=[abstract_command(c) for c in FIX])
    other = Workflow(id="wf-002", title="Unrelated", steps=["make docs"])
    answer = sim_induction.induce(sim_prompt(exps, [mine, other]))
    assert [w["title"] for w in answer] == ["My routine", "Unrelated"]


@pytest.mark.parametrize("shape", sim_induction.MESSY_SHAPES)
def test_each_messy_shape_of_the_simulated_model_parses(shape):
    prompt = sim_prompt([exp("a__a-1", FIX), exp("c__c-3", other_fix(3), "c/c")],
                        [Workflow(id="wf-009", title="Echo me", steps=["ls"])])
    clean = parse_induction_reply(sim_induction.induction_reply(prompt).text).workflows
    reply = sim_induction.induction_reply(prompt, shape)
    parsed = parse_induction_reply(reply.text)
    assert reply.finish_reason == ("length" if shape == "truncated" else "stop")
    if shape == "truncated":
        assert parsed.workflows == clean[:-1] and "cut off" in parsed.note
    else:
        assert parsed.workflows == clean and parsed.note == ""


def test_transcripts_are_numbered_on_from_the_highest(tmp_path: Path) -> None:
    folder = tmp_path / "inductions"
    folder.mkdir()
    for name in ("0001.json", "0003.json", "notes.json"):  # the user deleted 0002
        (folder / name).write_text("{}")
    failed = transcript(messages=[{"role": "user", "content": "u"}], reply=None, parsed=None,
                        error="HTTP 503 after 3 retries", memory_version=4, sources=["a-1"])
    assert write_transcript(folder, failed) == folder / "0004.json"
    assert (folder / "0003.json").read_text() == "{}"  # never overwritten
    record = json.loads((folder / "0004.json").read_text())
    assert (record["ok"], record["reply"], record["usage"], record["error"]) == (
        False, None, None, "HTTP 503 after 3 retries")
    assert write_transcript(folder, failed).name == "0005.json"


# -- end to end: the engine, the simulated model over loopback, the files a user reads --------

KEY = SecretStr("sim-induction-key-0000-7777")


async def induction_run(tmp_path: Path, limit: int, **sim: object) -> tuple[RunOutcome, list[Event], dict]:
    events: list[Event] = []
    async with SimLLMServer(SimOptions(**sim)) as server:  # type: ignore[arg-type]
        profile = LLMProfile(model="awm-sim", base_url=server.url, label="simulated", timeout=30,
                             num_retries=2, retry_min_wait=0.05, retry_max_wait=0.2)
        run = RunConfig(name="induce", llm="llm.sim", output_dir=tmp_path / "out", limit=limit,
                        sandbox="local", induce_every=1, induction="llm", command_timeout=60)
        config = AppConfig(llm={"llm.sim": profile}, runs=[run], eval=EvalConfig(mode="local"))
        async with Fleet(config, events.append, metrics_interval=0.5) as fleet:
            await fleet.start(resolve_run(config, run, api_key=KEY))
            outcome = (await fleet.wait())["induce"]
        return outcome, events, server.stats()


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def warnings(events: list[Event]) -> list[str]:
    return [e.message for e in events if isinstance(e, LogLine) and e.level == "warning"]


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_messy_replies_end_to_end_are_kept_and_reach_memory(tmp_path: Path) -> None:
    outcome, events, stats = await induction_run(tmp_path, 4, seed=1, messy_induction_rate=1.0)
    assert outcome.status == "finished" and (outcome.done, outcome.resolved) == (4, 4), outcome
    # Each of the four shapes was sent once, and each induction still worked.
    assert stats["induction_shapes"] == dict.fromkeys(sim_induction.MESSY_SHAPES, 1)
    done = [e for e in events if isinstance(e, InductionDone)]
    assert len(done) == 4 and all(e.ok for e in done), done

    out = tmp_path / "out"
    saved = sorted((out / "inductions").iterdir())
    assert [p.name for p in saved] == ["0001.json", "0002.json", "0003.json", "0004.json"]
    memory = read(out / "memory.json")
    assert memory["workflows"] and memory["version"] >= 1
    finished = list(read(out / "checkpoint.json")["finished"])
    for number, path in enumerate(saved):
        record = read(path)
        assert record["ok"] is True and record["error"] == "" and record["model"] == "awm-sim (simulated)"
        system, user = record["messages"]
        assert protocol.INDUCTION_MARKER in system["content"] and protocol.EXPERIENCES_OPEN in user["content"]
        assert record["sources"] == finished[: number + 1]  # every success so far (induce_every=1)
        assert record["usage"]["prompt_tokens"] > 0 and record["usage"]["completion_tokens"] > 0
        assert record["workflows"] == parse_induction_reply(record["reply"]).workflows
        assert {w["title"] for w in record["workflows"]} <= {w["title"] for w in memory["workflows"]}
    # the cut-off reply: its complete workflows were kept, and the pane log says so and where
    cut = [read(p) for p in saved if read(p)["note"]]
    assert len(cut) == 1 and cut[0]["note"].startswith("the reply was cut off: kept")
    assert cut[0]["finish_reason"] == "length"
    assert any(w.startswith("induction reply: the reply was cut off") and "inductions/000" in w
               for w in warnings(events))
    for path in out.rglob("*"):
        assert path.is_dir() or KEY.get_secret_value().encode() not in path.read_bytes(), path


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_reply_without_workflows_says_why_and_is_kept(tmp_path: Path) -> None:
    outcome, events, _ = await induction_run(tmp_path, 1, seed=2, bad_induction_rate=1.0)
    assert outcome.status == "finished" and outcome.done == 1, outcome
    [done] = [e for e in events if isinstance(e, InductionDone)]
    why = "no JSON in the reply"
    assert not done.ok and done.error.startswith(why) and "inductions/0001.json" in done.error
    assert any(why in w and "inductions/0001.json" in w for w in warnings(events))
    out = tmp_path / "out"
    record = read(out / "inductions" / "0001.json")
    assert (record["ok"], record["reply"], record["workflows"]) == (False, sim_induction.BAD_INDUCTION, [])
    assert record["error"].startswith(why) and record["prompt_memory_version"] == 0
    assert read(out / "memory.json")["version"] == 0  # memory kept as it was
