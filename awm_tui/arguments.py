"""argparse pieces every awm-tui command shares. Light on purpose: imported before
anything heavy, so that a Ctrl-C at start-up is handled (see `cli.main`)."""

from __future__ import annotations

import argparse
import re
from typing import NoReturn

# Long runs of key-ish characters: an API key (sk-…, or any provider's) typed in the wrong place.
_KEYLIKE = re.compile(r"[A-Za-z0-9_\-]{16,}")


def scrub(text: str) -> str:
    """`text` with anything that may be a key masked (`sk-or-v1-…ab12`)."""
    from awm_tui.config.keys import mask_key

    def mask(match: re.Match[str]) -> str:
        token = match.group(0)
        return mask_key(token) if any(c.isdigit() for c in token) else token

    return _KEYLIKE.sub(mask, text)


class ArgumentParser(argparse.ArgumentParser):
    """Never echoes the values of unknown arguments (`--apikey KEY` would print the key)
    and masks key-like text in any other error."""

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            flags = [a.split("=", 1)[0] for a in extras if a.startswith("-")]
            values = len(extras) - len(flags)
            shown = " ".join(flags) + (f" and {values} value(s), not shown" if values else "")
            self.error(f"unrecognized arguments: {shown.strip()} (see --help)")
        return parsed

    def error(self, message: str) -> NoReturn:
        super().error(scrub(message))


def port_number(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {scrub(value)!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535 (0 picks a free one), got {port}")
    return port
