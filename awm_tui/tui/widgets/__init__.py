"""Widgets of the control center, one per module."""
