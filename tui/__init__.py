"""The Textual app: a client of the engine's protocol, like the headless CLI (cli/); it never imports torch."""
