"""Reading a model's answer to the induction prompt, as real models write it.

Real replies are not just the ```json block the prompt asks for: prose around
it, `<think>` reasoning first (sometimes with a draft in it), the current
workflows echoed back (often a bare `[]`) before the answer, several blocks,
bare JSON, or output cut off at `max_output_tokens` in the middle of a
workflow. The rules, in order:

1. Reasoning (`<think>…</think>`, also `<thinking>`/`<reasoning>`) is dropped;
   a reply that ends inside it has no answer.
2. Every JSON object or array in what remains is a candidate, fenced or bare
   (found by bracket matching that respects strings, so `{file}` in prose and
   brackets inside step texts do not confuse it).
3. The LAST candidate holding at least one workflow (title and steps) is the
   answer; lone workflow objects next to each other count as one list.
4. A candidate that runs to the end of the reply was cut off: its complete
   workflows are kept and the unfinished one is dropped (said in `note`).

Failure is an `InductionParseError` whose message is one line saying why.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

_THINK_RE = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN_RE = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
_THINK_CLOSE_RE = re.compile(r"</(?:think|thinking|reasoning)>", re.IGNORECASE)
# Where JSON can start: `{"`, `{}`, `[{`, `[[`, `["`, `[]` (and `{'` for Python-style
# answers). Not `{file}` or `[1]`-style prose.
_START_RE = re.compile(r"\{\s*[\"'}]|\[\s*[\[{\"'\]]")
_WORKFLOWS_KEY_RE = re.compile(r"\{\s*\"workflows\"\s*:\s*\[")
_CLOSERS = {"{": "}", "[": "]"}
_CLOSER_NEXT_RE = re.compile(r"\s*[}\]]")
_WORKFLOWISH_RE = re.compile(r"title|steps|workflows")
"""A block that fails to decode counts only if it looks like an attempt at workflows."""
_STEP_KEYS = ("command", "cmd", "action", "step", "description", "text")


class InductionParseError(ValueError):
    """The reply holds no usable workflows; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class ParsedInduction:
    workflows: list[dict]
    """Dicts with `title`, `description` and `steps`, for `Memory.apply_induction`."""
    note: str = ""
    """What was tolerated, e.g. a cut-off workflow dropped; empty for a clean answer."""


@dataclass(frozen=True, slots=True)
class _Candidate:
    items: list | None
    """The workflow-like items it holds; None when it is not a workflows value."""
    single: bool = False
    """A lone workflow object (not a list of them)."""
    truncated: bool = False
    """It runs to the end of the reply: the model was cut off."""
    unfinished: bool = False
    """Truncated in the middle of an item, which was dropped."""
    error: str = ""


def strip_reasoning(reply: str) -> tuple[str, bool]:
    """The reply without its reasoning blocks, and whether it ended inside one."""
    text = _THINK_RE.sub("", reply)
    # Some chat templates open the block themselves: only `</think>` reaches us.
    closes = list(_THINK_CLOSE_RE.finditer(text))
    if closes:
        text = text[closes[-1].end():]
    if opened := _THINK_OPEN_RE.search(text):
        return text[: opened.start()], True
    return text, False


def _outside_strings(text: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """(index, character) of `text` from `start`, skipping what is inside JSON strings."""
    in_string = escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if not in_string:
            in_string = ch == '"'
            yield i, ch
        elif escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            in_string = False


def _region_end(text: str, start: int) -> int | None:
    """Index just past the bracket closing the one at `start`, or where a ``` fence
    or a wrong bracket ends it early; None if the reply ends first (cut off)."""
    stack: list[str] = []
    for i, ch in _outside_strings(text, start):
        if ch in _CLOSERS:
            stack.append(_CLOSERS[ch])
        elif ch in "}]":
            if ch != stack.pop() or not stack:
                return i + 1  # closed, or mismatched: the JSON decoder says what is wrong
        elif ch == "`" and text.startswith("```", i):
            return i  # the block's fence closes before its brackets do
    return None


def _without_trailing_commas(raw: str) -> str:
    """`[1, 2,]` → `[1, 2]`, leaving commas inside strings alone."""
    drop = {i for i, ch in _outside_strings(raw) if ch == "," and _CLOSER_NEXT_RE.match(raw, i + 1)}
    return "".join(ch for i, ch in enumerate(raw) if i not in drop)


def _loads(raw: str) -> object:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        # Trailing commas are the commonest slip; anything else is reported as it is.
        relaxed = _without_trailing_commas(raw)
        if relaxed != raw:
            try:
                return json.loads(relaxed)
            except json.JSONDecodeError:
                pass
        if "'" in raw:  # small models answer with a Python dict: single quotes, True/None
            try:
                return ast.literal_eval(relaxed)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                pass
        raise exc


def _items_of(value: object) -> tuple[list | None, bool]:
    if isinstance(value, dict):
        if "workflows" in value:
            items = value["workflows"]
            return (items if isinstance(items, list) else None), False
        if "title" in value or "steps" in value:
            return [value], True
        return None, False
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value, False  # `[]` too: an (echoed) empty list of workflows
    return None, False


def _salvage(raw: str) -> tuple[list, bool]:
    """The complete items of a workflows list that was cut off, and whether an
    unfinished one followed them."""
    if raw.startswith("["):
        i = 1
    elif match := _WORKFLOWS_KEY_RE.match(raw):
        i = match.end()
    else:
        return [], True
    decoder = json.JSONDecoder()
    items: list = []
    while True:
        while i < len(raw) and raw[i] in " \t\r\n,":
            i += 1
        try:
            item, i = decoder.raw_decode(raw, i)
        except json.JSONDecodeError:
            return items, raw[i:].strip(" \t\r\n`]}") != ""
        items.append(item)


def _candidates(text: str) -> list[_Candidate]:
    found: list[_Candidate] = []
    pos = 0
    while match := _START_RE.search(text, pos):
        start = match.start()
        end = _region_end(text, start)
        if end is None:  # runs to the end of the reply: cut off
            salvaged, unfinished = _salvage(text[start:])
            found.append(_Candidate(salvaged, truncated=True, unfinished=unfinished))
            if salvaged:
                break
            # Nothing complete in it: perhaps no JSON at all (a stray `{"` in a shell
            # line); look on inside it for an answer after all.
            pos = match.end()
            continue
        pos = end
        try:
            value = _loads(text[start:end])
        except json.JSONDecodeError as exc:
            if _WORKFLOWISH_RE.search(text, start, end):
                    found.append(_Candidate(None, error=f"invalid JSON ({exc.msg} at line {exc.lineno} "
                                                    f"column {exc.colno} of the block)"))
            continue
        items, single = _items_of(value)
        if items is not None:
            found.append(_Candidate(items, single=single))
    return found


def _step(step: object) -> str:
    # Some models make each step an object: {"step": 1, "action": "…", "command": "…"}.
    if isinstance(step, dict):
        step = next((step[k] for k in _STEP_KEYS if isinstance(step.get(k), str)), json.dumps(step))
    return str(step).strip()


def _workflow(item: object) -> dict | None:
    if not isinstance(item, dict):
        return None
    title = str(item.get("title") or item.get("name") or "").strip()
    steps = item.get("steps")
    if isinstance(steps, str):
        steps = steps.splitlines()
    if not title or not isinstance(steps, list):
        return None
    steps = [text for text in map(_step, steps) if text]
    if not steps:
        return None
    return {"title": title, "description": str(item.get("description") or "").strip(), "steps": steps}


def _valid(cand: _Candidate) -> list[dict]:
    return [w for w in map(_workflow, cand.items or []) if w]


def parse_induction_reply(reply: str) -> ParsedInduction:
    """The workflows a model's induction reply holds; InductionParseError if none."""
    text, in_reasoning = strip_reasoning(reply)
    found = _candidates(text)
    # A cut-off last block was the answer: an earlier one is at best an echo of the prompt.
    lowest = len(found) - 1 if found and found[-1].truncated else 0
    for index in range(len(found) - 1, lowest - 1, -1):
        cand = found[index]
        workflows = _valid(cand)
        if not workflows:
            continue
        notes = []
        if cand.single:  # lone objects side by side: one list
            first = index
            while first > 0 and found[first - 1].single:
                first -= 1
            workflows = [w for c in found[first:index + 1] for w in _valid(c)]
        elif skipped := len(cand.items or []) - len(workflows):
            notes.append(f"skipped {skipped} without a title or steps")
        if cand.truncated:
            kept = f"kept {len(workflows)} complete workflow{'s' if len(workflows) != 1 else ''}"
            notes.append(f"the reply was cut off: {kept}"
                         + (", dropped the unfinished one" if cand.unfinished else ""))
        if later := [c.error for c in found[index + 1:] if c.error]:
            notes.append(f"ignored a later block: {later[-1]}")
        return ParsedInduction(workflows, "; ".join(notes))
    raise InductionParseError(_why(reply, text, in_reasoning, found))


def _why(reply: str, text: str, in_reasoning: bool, found: list[_Candidate]) -> str:
    if not reply.strip():
        return "the reply is empty"
    if in_reasoning and not text.strip():
        return "the reply ended inside its <think> block, before any answer (raise max_output_tokens?)"
    if found and found[-1].truncated:
        return ("the reply was cut off before its first workflow was complete "
                "(raise max_output_tokens?)")
    if errors := [c.error for c in found if c.error]:
        return errors[-1]
    if any(c.items for c in found):
        return "no workflow in the reply has both a title and a list of steps"
    if found:
        return "the reply's only workflow lists are empty ([])"
    return 'no JSON in the reply (expected a ```json block with {"workflows": [...]})'
