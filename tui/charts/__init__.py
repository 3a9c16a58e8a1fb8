"""Live charts: a base Chart widget, one module per chart, and the registry the app composes them from."""
