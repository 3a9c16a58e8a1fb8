"""The `torchtui` command line: the app (bare `torchtui [PRESET]`) and the headless commands; imports no Textual."""
