"""torchtui clients: the headless CLI (and, later, the Textual app)."""
