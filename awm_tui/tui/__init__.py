"""The Textual face of awm-tui: the app, its screens and widgets."""
