"""The command in an agent reply, read the way a Markdown parser reads fences.

A regex over ``` pairs takes the closing fence of a ```python block for an
opening one and runs the prose after it; CommonMark (markdown-it-py, already
installed through rich) knows where each fenced block starts and ends, its info
string, and fences nested in lists or quotes.
"""

from __future__ import annotations

from markdown_it import MarkdownIt

SHELL_LANGUAGES = frozenset({"bash", "sh", "shell"})

_md = MarkdownIt("commonmark")


def _fences(reply: str) -> list[tuple[str, str, bool]]:
    """(language, body, closed) of every fenced block, in order."""
    lines = reply.splitlines()
    found = []
    for token in _md.parse(reply):
        if token.type != "fence":
            continue
        language = token.info.split()[0].lower() if token.info.strip() else ""
        # An unclosed fence runs to the end of the text in CommonMark; a command
        # whose end is a guess must not run.
        first, last = (token.map[0], token.map[1] - 1) if token.map else (0, -1)
        closing = lines[last].strip() if 0 <= last < len(lines) and last > first else ""
        closed = bool(closing) and closing.startswith(token.markup) and set(closing) == {token.markup[0]}
        found.append((language, token.content, closed))
    return found


def _names(languages: list[str]) -> str:
    return ", ".join(f"```{lang}" if lang else "untagged" for lang in languages)


def extract_command(reply: str) -> tuple[str | None, str]:
    """The one shell command in a reply, or (None, why the reply cannot be used).

    The command is the one ```bash / ```sh / ```shell block (blocks in other
    languages are the model showing code, not running it), or the only block
    when it is untagged. Two shell blocks, none, an empty or unclosed one: the
    reason is written for the model, which gets it back as a correction.
    """
    fences = _fences(reply)
    shell = [f for f in fences if f[0] in SHELL_LANGUAGES]
    if not shell and len(fences) == 1 and fences[0][0] == "":
        shell = fences
    if not shell:
        if not fences:
            return None, "no ```bash fenced block found"
        return None, (f"no ```bash block found (found {_names([f[0] for f in fences])}; "
                      "only a ```bash block is run)")
    if len(shell) > 1:
        return None, f"{len(shell)} ```bash blocks found, expected exactly one command block"
    _, body, closed = shell[0]
    if not closed:
        return None, "the ```bash block is not closed with ```"
    command = body.strip()
    if not command:
        return None, "the ```bash block is empty"
    return command, ""
