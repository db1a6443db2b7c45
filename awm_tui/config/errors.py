"""Configuration errors: one line naming the file, the key path and the fix."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration problem the user must fix; `str()` is the whole message."""

    def __init__(self, source: str, path: str, problem: str, fix: str = "") -> None:
        self.source, self.path, self.problem, self.fix = source, path, problem, fix
        where = f"{source}: {path}" if path else source
        tail = f"; {fix}" if fix else ""
        super().__init__(f"{where}: {problem}{tail}")
