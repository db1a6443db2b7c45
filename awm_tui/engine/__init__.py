"""The headless AWM engine: runs, sandboxes, evaluation, memory.

Never imports Textual: the TUI and batch mode are two faces on this engine,
which reports only through the typed events in :mod:`awm_tui.engine.events`.
"""
