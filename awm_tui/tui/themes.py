"""Colour themes are data: TOML files in the `awm_tui.themes` package, plus the
user's own in the directory `$AWM_TUI_THEMES` names (a user file of the same
name replaces the shipped theme).

Each file maps onto `textual.theme.Theme` fields. A broken file is skipped
and reported, so the app can fall back to the default with a notice.
"""

from __future__ import annotations

import dataclasses
import os
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import tomli
from textual.theme import Theme

DEFAULT_THEME = "awm-dark"
THEME_PACKAGE = "awm_tui.themes"
USER_THEMES_ENV = "AWM_TUI_THEMES"
_FIELDS = {f.name for f in dataclasses.fields(Theme)}


def theme_dir() -> Traversable:
    return files(THEME_PACKAGE)


def user_theme_dir() -> Path | None:
    """The directory of the user's own theme files, if `$AWM_TUI_THEMES` names one."""
    value = os.environ.get(USER_THEMES_ENV, "").strip()
    return Path(value).expanduser() if value else None


def stylesheet_path() -> str:
    """The single app stylesheet, shipped next to the themes."""
    return str(theme_dir() / "app.tcss")


def parse_theme(data: dict, origin: str) -> Theme:
    """Build a Theme from TOML data; ValueError with a one-line reason otherwise."""
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ValueError(f"{origin}: unknown field(s) {', '.join(unknown)}")
    if "name" not in data or "primary" not in data:
        raise ValueError(f"{origin}: 'name' and 'primary' are required")
    try:
        theme = Theme(**data)
        theme.to_color_system().generate()  # parses every colour now, not at first paint
    except Exception as error:  # noqa: BLE001 - any bad value means a broken theme
        raise ValueError(f"{origin}: {error}") from None
    return theme


def load_themes(directory: Traversable | None = None) -> tuple[list[Theme], list[str]]:
    """Every `*.toml` theme in the package, plus one problem line per broken file."""
    directory = directory or theme_dir()
    themes: list[Theme] = []
    problems: list[str] = []
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        try:
            data = tomli.loads(entry.read_bytes().decode("utf-8"))
            themes.append(parse_theme(data, entry.name))
        except (tomli.TOMLDecodeError, UnicodeDecodeError) as error:
            problems.append(f"{entry.name}: {error}")
        except ValueError as error:
            problems.append(str(error))
    return themes, problems


def load_all_themes() -> tuple[list[Theme], list[str]]:
    """The shipped themes, then the user's (later ones win); a missing user directory
    is a problem line, never an exception."""
    themes, problems = load_themes()
    user_dir = user_theme_dir()
    if user_dir is not None:
        if user_dir.is_dir():
            more, more_problems = load_themes(user_dir)
            themes += more
            problems += more_problems
        else:
            problems.append(f"${USER_THEMES_ENV}: {user_dir} is not a directory")
    return themes, problems


def theme_names() -> set[str]:
    """Every theme the app can switch to: ours, the user's, and Textual's built-in ones."""
    from textual.theme import BUILTIN_THEMES

    themes, _ = load_all_themes()
    return {theme.name for theme in themes} | set(BUILTIN_THEMES)
