"""UI state without widgets: run history for the charts, bounded series, and turning pane edits into a config."""
