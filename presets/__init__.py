"""Built-in presets shipped as package data (one YAML file each)."""
