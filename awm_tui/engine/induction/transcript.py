"""`inductions/NNNN.json`: each LLM induction's prompt, reply and what became of it.

memory.json's history keeps what memory looked like; these keep why: the
messages sent, the reply exactly as the model wrote it, its usage, and the
parse outcome (the workflows taken, or the one-line reason there were none).
They hold no key: the messages and the reply carry none, and nothing else of
the client is recorded.
"""

from __future__ import annotations

import time
from pathlib import Path

from awm_tui.engine.llm import ChatResult
from awm_tui.engine.state.atomic import write_json_atomic

from .parse import ParsedInduction

TRANSCRIPT_FORMAT = 1


def transcript(*, messages: list[dict], reply: ChatResult | None, parsed: ParsedInduction | None,
               error: str, memory_version: int, sources: list[str]) -> dict:
    """The record of one induction call; `reply` is None when the call itself failed.
    `memory_version` is the version whose workflows the prompt showed."""
    return {
        "format": TRANSCRIPT_FORMAT, "at": time.time(), "ok": parsed is not None, "error": error,
        "note": parsed.note if parsed else "", "prompt_memory_version": memory_version, "sources": sources,
        "model": reply.model if reply else None,
        "finish_reason": reply.finish_reason if reply else None,
        "usage": None if reply is None else {
            "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "cost": reply.cost, "latency_s": round(reply.latency_s, 3), "retries": reply.retries},
        "messages": messages,
        "reply": reply.content if reply else None,
        "workflows": parsed.workflows if parsed else [],
    }


def write_transcript(directory: Path, record: dict) -> Path:
    """Write `record` as the next numbered file (blocking: call it in a thread).

    One run owns its output directory, and its inductions happen one after
    another, so the next number is simply one past the highest there.
    """
    directory.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.stem) for p in directory.glob("*.json") if p.stem.isdigit()]
    path = directory / f"{max(numbers, default=0) + 1:04d}.json"
    write_json_atomic(path, record)
    return path
