"""Theme data files (colour themes and the app stylesheet), shipped as package data."""
