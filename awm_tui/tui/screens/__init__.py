"""Screens: the main screen, the memory browser and the dialogs."""
