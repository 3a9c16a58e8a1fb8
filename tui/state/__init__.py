"""UI state without widgets: turning pane edits into a config, the runs overlay's curves (the run's own
history is engine/history/: a run server keeps one too)."""
