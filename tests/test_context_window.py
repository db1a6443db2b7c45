"""Fitting a conversation into max_input_tokens, and spotting a dropped system message."""

from __future__ import annotations

from awm_tui.engine.context import ContextWindow, probe_says_dropped, system_maybe_dropped


def conversation(outputs: int, size: int = 4000) -> list[dict]:
    messages = [{"role": "system", "content": "rules " * 100}, {"role": "user", "content": "the task " * 50}]
    for i in range(outputs):
        messages += [{"role": "assistant", "content": f"THOUGHT: step {i}\n```bash\nls\n```"},
                     {"role": "user", "content": f"output {i} " + "x" * size}]
    return messages


def test_no_window_sends_everything_as_it_is() -> None:
    messages = conversation(5)
    sent, trim = ContextWindow(None).fit(messages)
    assert sent is messages and trim is None


def test_oldest_outputs_go_first_and_the_latest_exchange_stays() -> None:
    messages = conversation(5)           # ~5,400 tokens at 4 chars per token
    window = ContextWindow(3000)
    sent, trim = window.fit(messages)
    assert trim is not None and trim.observations == 3 and trim.replies == 0
    assert window.estimate(sent) <= 3000
    assert [m["content"].startswith("[command output elided") for m in sent[3::2]] == [True, True, True, False, False]
    assert sent[:3] == messages[:3] and sent[-2:] == messages[-2:]
    assert "elided 3 old command outputs" in trim.describe(3000)
    assert messages[3]["content"].startswith("output 0")   # the trajectory is not touched


def test_what_was_elided_stays_elided_and_is_reported_once() -> None:
    messages = conversation(5)
    window = ContextWindow(3000)
    window.fit(messages)
    sent, trim = window.fit(messages)
    assert trim is None and sent[3]["content"].startswith("[command output elided")


def test_replies_go_when_outputs_are_not_enough() -> None:
    messages = conversation(3, size=40)
    messages[2]["content"] = "THOUGHT: " + "long reasoning " * 400
    sent, trim = ContextWindow(700).fit(messages)
    assert trim is not None and trim.replies == 1
    assert sent[2]["content"].startswith("[earlier reply elided")


def test_the_servers_count_calibrates_the_estimate() -> None:
    messages = conversation(1)
    window = ContextWindow(10_000)
    before = window.estimate(messages)
    window.observe(messages, prompt_tokens=before * 2)     # a tokenizer making twice as many tokens
    assert abs(window.estimate(messages) - 2 * before) <= 2


def test_a_prompt_count_near_the_prompt_without_its_system_message_is_worth_a_probe() -> None:
    sent = [{"role": "system", "content": "Reply with one ```bash block. " * 40},
            {"role": "user", "content": "Fix the bug in calc/ops.py: mul adds. " * 30}]
    user_only = (len(sent[1]["content"]) + 16) // 4
    both = (len(sent[0]["content"]) + len(sent[1]["content"]) + 32) // 4
    reply = "THOUGHT: look first.\n```bash\nls\n```" * 4
    assert system_maybe_dropped(sent, user_only + 8, reply, 40)
    assert not system_maybe_dropped(sent, both, reply, 40)
    # the reply's own rate is the yardstick: llama.cpp's gemma format, measured (833 system
    # and 920 user characters counted as 305 tokens; the reply ran 3.19 characters a token)
    real = [{"role": "system", "content": "s" * 833}, {"role": "user", "content": "u" * 920}]
    assert system_maybe_dropped(real, 305, "r" * 817, 256)
    assert not system_maybe_dropped(real, 550, "r" * 817, 256)
    assert not system_maybe_dropped(sent[1:], user_only, reply, 40)     # no system message at all


def test_the_probe_settles_it() -> None:
    assert probe_says_dropped(12, 12) and probe_says_dropped(14, 12)
    assert not probe_says_dropped(52, 12)
