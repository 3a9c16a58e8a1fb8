"""Textual widgets: one pane or chart per module."""
