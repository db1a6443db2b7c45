"""The command in an agent reply: fences read as Markdown, ambiguous replies refused."""

from __future__ import annotations

import pytest

from awm_tui.engine.replies import extract_command


def test_the_issues_reply_runs_ls_not_the_prose_between_blocks():
    # The regex took the python block's closing fence for an opening one and ran
    # 'Now list the files.' as a shell command (exit 127 in a real run).
    reply = "T:\n```python\nx=1\n```\nNow list the files.\n```bash\nls\n```\n"
    assert extract_command(reply) == ("ls", "")


@pytest.mark.parametrize("reply, command", [
    ("THOUGHT: look\n\n```bash\ncd /testbed && ls\n```", "cd /testbed && ls"),
    ("```sh\necho hi\n```", "echo hi"),
    ("```shell\necho hi\n```", "echo hi"),
    ("```Bash\necho hi\n```", "echo hi"),
    ("~~~bash\necho hi\n~~~", "echo hi"),
    # the only block, untagged: what older models send
    ("THOUGHT: x\n```\ngit status\n```", "git status"),
    # a python block shown first, then the command
    ("```python\nprint(1)\n```\nand run:\n```bash\npython3 x.py\n```", "python3 x.py"),
    # the command after a json block, with prose around
    ("Config:\n```json\n{\"a\": 1}\n```\n\nRun:\n\n```bash\ncat a.json\n```\nDone.", "cat a.json"),
    # a fence in a list item is dedented
    ("1. Run this:\n\n   ```bash\n   ls -la\n   ```\n", "ls -la"),
    # a longer fence holds a ``` line (a heredoc writing Markdown)
    ("````bash\ncat > README.md <<'EOF'\n```\ncode\n```\nEOF\n````", "cat > README.md <<'EOF'\n```\ncode\n```\nEOF"),
    # a heredoc with a patch keeps its lines and indentation
    ("```bash\ngit apply <<'P'\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-    a\n+    b\nP\n```",
     "git apply <<'P'\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-    a\n+    b\nP"),
])
def test_the_shell_block_is_the_command(reply, command):
    assert extract_command(reply) == (command, "")


@pytest.mark.parametrize("reply, why", [
    ("I will list the files now.", "no ```bash fenced block found"),
    ("```python\nimport os\nos.listdir()\n```", "no ```bash block found (found ```python; only a ```bash block is run)"),
    ("```\nls\n```\n```\npwd\n```", "no ```bash block found (found untagged, untagged; only a ```bash block is run)"),
    ("```bash\nls\n```\nthen\n```bash\npwd\n```", "2 ```bash blocks found, expected exactly one command block"),
    ("```bash\n\n```", "the ```bash block is empty"),
    ("```bash\nls -la", "the ```bash block is not closed with ```"),
    # indented code is not a fence
    ("Run:\n\n    ls\n", "no ```bash fenced block found"),
])
def test_ambiguous_or_broken_replies_are_refused_with_a_reason(reply, why):
    assert extract_command(reply) == (None, why)


def test_a_python_block_alone_is_never_run_as_shell():
    command, why = extract_command("Here is the fix:\n```python\nx = 1\n```\nNow run the tests.")
    assert command is None and "```python" in why
