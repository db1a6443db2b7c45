"""Rule induction: the deterministic, offline inducer (`induction = "rule"`).

Groups experiences by the kinds of their commands and abstracts the commands
into reusable patterns. The simulated model (`servers/sim_induction.py`) applies
these same rules when it plays a model answering an induction prompt.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from awm_tui.engine import protocol
from awm_tui.engine.state.buffer import Experience

_HEREDOC_RE = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
_QUOTED_RE = re.compile(r"(['\"])(.*?)\1")
_GREP_CTX_RE = re.compile(r"\b(?:grep|rg|ag|git grep)(?:\s+-\S+)*\s*$")
_GREP_BARE_RE = re.compile(r"\b((?:git )?grep|rg)((?:\s+-\S+)*)\s+(?![-'\"{])([^\s|&;]+)")
_DEF_RE = re.compile(r"\b(def|class)\s+[A-Za-z_]\w*")
_TEST_PATH_RE = re.compile(r"(?<![\w{/])(?:[\w.-]*/)*(?:tests?/[\w./-]*|test_\w+\.py|\w+_test\.py)(?:::[\w:\[\]-]+)?")
_PATH_RE = re.compile(r"(?<![\w{/])(?!/testbed\b|/dev/null\b)(?:[\w.-]+/|/(?=[\w.]))(?:[\w.-]+/?)*|(?<![\w{/])[\w-]+\.(?:py|pyi|js|ts|go|rs|c|h|cfg|toml|json|md|rst|ini|txt|yaml|yml)\b")
_NUMBER_RE = re.compile(r"(?<![\w{>&.])\d+(?![\w}>&.])")
_SED_RANGE_RE = re.compile(r"^[\d,;$]+[pd]?$")
_CD_RE = re.compile(r"^cd\s+\S+\s*&&\s*")
"""A leading `cd <repository> &&`: /testbed in Docker, a temp dir locally; same step."""

KIND_ORDER = ("explore", "inspect", "edit", "test", "submit")
_TITLE_WORDS = {"explore": "locate", "inspect": "inspect", "edit": "patch", "test": "test"}
_LABELS = {"explore": "Explore", "inspect": "Inspect", "edit": "Edit", "test": "Test",
           "submit": "Submit", "other": "Run"}


def abstract_command(command: str) -> str:
    """A reusable one-line pattern of a concrete command."""
    head, _, body = command.strip().partition("\n")
    heredoc = bool(body) and _HEREDOC_RE.search(head)
    if not heredoc:
        head = " ".join(command.split())
    head = _CD_RE.sub("cd {repo_path} && ", head)

    def quoted(m: re.Match) -> str:
        q, text = m.group(1), m.group(2)
        if _SED_RANGE_RE.match(text):
            return q + re.sub(r"\d+", "{n}", text) + q
        if _GREP_CTX_RE.search(head[: m.start()]):
            return q + ("def {symbol}" if _DEF_RE.match(text) else
                        "{symbol}" if re.fullmatch(r"[\w.]+", text) else "{text}") + q
        return q + "{text}" + q

    if heredoc:  # keep the delimiter (<<'EOF') out of the quoted-string rule
        head = head.replace(heredoc.group(0), "\x00", 1)
    head = _QUOTED_RE.sub(quoted, head)
    head = _GREP_BARE_RE.sub(lambda m: f"{m.group(1)}{m.group(2)} {{symbol}}", head)
    head = _DEF_RE.sub(lambda m: f"{m.group(1)} {{symbol}}", head)
    head = _TEST_PATH_RE.sub("{test_path}", head)
    head = _PATH_RE.sub("{file}", head)
    head = re.sub(r"\b\d+,\d+([pd])\b", r"{n},{n}\1", head)  # unquoted sed ranges
    head = _NUMBER_RE.sub("{n}", head)
    if heredoc:
        head = head.replace("\x00", heredoc.group(0)) + f" … {{patch}} … {heredoc.group(2)}"
    return head


def command_kind(command: str) -> str:
    """explore / inspect / edit / test / submit (or other) for a concrete command."""
    c = command.strip()
    first = c.split("\n", 1)[0]
    words = re.sub(r"^cd \S+\s*(&&|;)\s*", "", first).split()
    verb = words[0] if words else ""
    if protocol.SUBMIT_MARKER in c:
        return "submit"
    if re.search(r"\b(pytest|unittest|tox|nox|runtests)\b|\bmake test", first):
        return "test"
    if ("\n" in c and _HEREDOC_RE.search(first)) or re.search(
            r"\bsed -i|\bgit apply|\bpatch -p|\bperl -[pi]+|(?<![0-9&])>\s*[\w./-]+\.\w+", first):
        return "edit"
    if verb in ("grep", "rg", "ag") and re.search(r"\s-\w*[rR]|\s\.\s*$|\s\.\s", first):
        return "explore"
    if verb in ("cat", "head", "tail", "sed", "nl", "less", "awk", "grep", "rg", "ag", "diff") \
            or first.startswith(("git diff", "git show", "git log", "git blame")):
        return "inspect"
    if verb in ("ls", "find", "tree", "pwd", "cd", "git", "wc", "locate"):
        return "explore"
    if verb.startswith("python") and _TEST_PATH_RE.search(first):
        return "test"
    return "other"


def _shape(exp: Experience) -> tuple[str, ...]:
    kinds = dict.fromkeys(k for k in map(command_kind, exp.commands) if k != "other")
    return tuple(kinds)


def _title(shape: tuple[str, ...]) -> str:
    words = [_TITLE_WORDS[k] for k in shape if k in _TITLE_WORDS] or ["fix"]
    phrase = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"{phrase[0].upper()}{phrase[1:]} a bug in {{repo}}"


def induce_rule(experiences: Iterable[Experience], max_workflows: int = 3) -> list[dict]:
    """Deterministic offline induction: group by command-kind shape, abstract steps.

    Experiences whose shape (the kinds of their commands, in first-seen order)
    is the same form one group; the largest groups (ties: first seen) become
    workflows whose steps are the most frequent abstract commands per kind.
    """
    groups: dict[tuple[str, ...], list[Experience]] = {}
    for exp in experiences:
        shape = _shape(exp)
        if shape:
            groups.setdefault(shape, []).append(exp)
    ranked = sorted(groups.items(), key=lambda kv: -len(kv[1]))[:max_workflows]
    workflows = []
    for shape, members in ranked:
        counts: Counter[tuple[str, str]] = Counter()
        first: dict[tuple[str, str], tuple[int, int]] = {}
        for e_i, exp in enumerate(members):
            for c_i, cmd in enumerate(exp.commands):
                key = (command_kind(cmd), abstract_command(cmd))
                counts[key] += 1
                first.setdefault(key, (c_i, e_i))
        steps = []
        for kind in KIND_ORDER:
            if kind not in shape:
                continue
            keys = sorted((k for k in counts if k[0] == kind), key=lambda k: (-counts[k], first[k]))
            steps += [f"{_LABELS[kind]}: {pattern}" for _, pattern in keys[:2 if kind in ("explore", "inspect") else 1]]
        ids = sorted(e.instance_id for e in members)
        repos = sorted({e.repo for e in members})
        workflows.append({
            "title": _title(shape),
            # Stable text (no counts or ids): a new source alone must not look like a change.
            "description": f"Abstracted from the commands of past tasks: {' → '.join(shape)}; "
                           "fill in the placeholders for the task at hand.",
            "steps": steps, "source_instances": ids, "repos": repos})
    return workflows
