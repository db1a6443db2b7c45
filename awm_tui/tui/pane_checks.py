"""Checks that span panes: run names, output directories and keys must not clash.

Pure functions over what the forms hold, so they run on every keystroke and
are tested without widgets.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from awm_tui.config.keys import choose_key, is_file_reference, key_format_warning, resolve_key
from awm_tui.config.models import LLMProfile, parse_usd, profile_name
from awm_tui.tui.widgets.pane_form import FormValues, Note

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def same_dir_key(text: str) -> str:
    """`./a`, `a/` and `/abs/a` are one directory: compare resolved paths."""
    return str(Path(text).expanduser().resolve(strict=False))


def check_panes(forms: dict[str, FormValues], profiles: dict[str, LLMProfile]) -> dict[str, list[Note]]:
    """Notes per pane id, errors first. `forms` maps pane id → current values."""
    notes: dict[str, list[Note]] = {pane: [] for pane in forms}
    names: dict[str, list[str]] = defaultdict(list)
    dirs: dict[str, list[str]] = defaultdict(list)
    keys: dict[str, list[str]] = defaultdict(list)
    labels = {pane: values.name or pane for pane, values in forms.items()}

    for pane, values in forms.items():
        add = notes[pane].append
        if not values.name:
            add(Note("name", "error", "a run name is required"))
        elif not _NAME.match(values.name) or len(values.name) > 64:
            add(Note("name", "error", "letters, digits, '_', '-', '.' only"))
        else:
            names[values.name].append(pane)
        if not values.output:
            add(Note("output", "error", "an output directory is required"))
        else:
            dirs[same_dir_key(values.output)].append(pane)
        if not values.limit.isdigit() or int(values.limit) <= 0:
            add(Note("limit", "error", "a whole number above 0"))
        if not values.workers.isdigit() or int(values.workers) <= 0:
            add(Note("workers", "error", "a whole number above 0 (tasks in flight at once)"))
        if values.budget:
            try:
                parse_usd(values.budget)
            except ValueError as exc:
                add(Note("budget", "error", f"{exc} (or empty: the config's budget, if any)"))
        profile = None if values.profile is None else profiles.get(profile_name(values.profile))
        if profile is None:
            add(Note("profile", "error", "choose an LLM profile"))
        # The pane's key over its profile's, as at start. A key file is read only at start
        # (I/O belongs off the event loop), not on every keystroke.
        if values.key is None or not is_file_reference(values.key):
            chosen = choose_key(("key", resolve_key(values.key)), ("profile", profile.api_key if profile else None))
            if chosen.source == "key" and chosen.problem is not None:
                add(Note("key", "error", str(chosen.problem)))
            if chosen.key is not None:
                key = chosen.key.get_secret_value()
                if chosen.source == "key" and (warning := key_format_warning(key, profile.provider if profile else None)):
                    add(Note("key", "warning", warning))
                keys[key].append(pane)

    for pane_ids, field, level, text in (
        *((ids, "name", "error", "run name used by pane {}") for ids in names.values()),
        *((ids, "output", "error", "output directory already used by {}") for ids in dirs.values()),
        *((ids, "key", "warning", "same key as {} (rate limits are shared)") for ids in keys.values()),
    ):
        if len(pane_ids) < 2:
            continue
        for pane in pane_ids:
            others = ", ".join(labels[o] for o in pane_ids if o != pane)
            notes[pane].append(Note(field, level, text.format(others)))
    for pane in notes:
        notes[pane].sort(key=lambda n: n.level != "error")
    return notes
