"""Modal screens: help, presets, quit confirmation, tracebacks."""
