"""The app's key bindings (ids, descriptions, Footer order), the keys panes add, and keyless palette actions."""

from __future__ import annotations

from textual.binding import Binding

BINDINGS = [
    # Footer order: what fits at 80 columns first; every binding is also in `?` and the palette.
    Binding("space", "toggle_run", "Start/Pause", id="run.toggle"),
    Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
    Binding("q", "quit", "Quit", id="app.quit"),
    Binding("plus,equals_sign", "lr_scale(2.0)", "lr ×2", key_display="+", id="run.lr_up"),
    Binding("minus", "lr_scale(0.5)", "lr ÷2", key_display="-", id="run.lr_down"),
    Binding("n", "step", "Step", id="run.step"),
    Binding("x", "stop", "Stop", id="run.stop"),
    Binding("w", "rewind", "Rewind", id="run.rewind"),
    Binding("b", "runs", "Runs", id="app.runs"),
    Binding("d", "detach", "Detach", id="app.detach"),
    Binding("v", "toggle_view", "View", id="view.toggle"),
    Binding("ctrl+s", "save_preset", "Save preset", id="preset.save", priority=True),
    Binding("ctrl+o", "open_preset", "Open preset", id="preset.open", priority=True),
    Binding("r", "restart", "Restart", id="run.restart"),
    Binding("e", "evaluate", "Evaluate", id="run.evaluate"),
    Binding("c", "checkpoint", "Checkpoint", id="run.checkpoint"),
    Binding("l", "log_scale", "Log scale", id="charts.log_scale"),
    Binding("g", "grad_mode", "Grad view", show=False, id="charts.grad_mode"),
    Binding("S", "sweep", "Run the sweep", show=False, id="app.sweep"),
    Binding("f", "lr_find", "Find lr (LR range test)", show=False, id="run.lr_find"),
    Binding("o", "sanity_check", "Overfit one batch (sanity check)", show=False, id="run.sanity_check"),
    Binding("t", "traceback", "Traceback", show=False, id="log.traceback"),
    Binding("1", "focus_pane('dataset')", "Dataset", show=False, id="pane.dataset"),
    Binding("2", "focus_pane('model')", "Model", show=False, id="pane.model"),
    Binding("3", "focus_pane('hparams')", "Hparams", show=False, id="pane.hparams"),
    Binding("4", "focus_pane('device')", "Device", show=False, id="pane.device"),
    Binding("escape", "blur", "Leave field", show=False, id="focus.blur"),
    # With the layer list focused its own a (layers.add) acts first; from elsewhere this one adds or says where.
    Binding("a", "add_layer", "Add a layer (Model pane)", show=False, id="layers.add_here"),
]

# Which bindings (by id) the Footer shows: idle, while a run is active, also while paused; then, as many as fit the
# width (tui/widgets/footer.py), more of them for each. A key that cannot act now is not shown (n steps a paused run,
# w, e, c, r and d act on an active one); every key still works, and `?` lists them all.
FOOTER = {
    "idle": ("run.toggle", "view.toggle", "app.runs", "preset.open", "app.help", "app.quit"),
    "active": ("run.toggle", "run.lr_up", "run.lr_down", "run.stop", "view.toggle", "app.help", "app.quit"),
    "paused": ("run.step",),
    "more-idle": ("preset.save", "charts.log_scale"),
    "more-active": ("run.rewind", "run.evaluate", "run.checkpoint", "app.detach", "app.runs", "run.restart",
                    "preset.save", "charts.log_scale", "preset.open"),
}

# Keys that work inside a pane, listed in the help screen beside the app's own.
PANE_KEYS = [("tab", "Next pane / next field"), ("d", "Remove the focused layer"), ("[ / ]", "Move the focused layer")]
# Palette entries for actions that have no app-wide key (description, action).
PALETTE_ACTIONS = [
    ("Add a hidden layer", "edit_list('layers', 'add')"), ("Remove a hidden layer", "edit_list('layers', 'remove')"),
    ("Move a hidden layer up", "edit_list('layers', 'up')"),
    ("Move a hidden layer down", "edit_list('layers', 'down')"),
    ("Add a conv block", "edit_list('conv', 'add')"), ("Remove a conv block", "edit_list('conv', 'remove')"),
    ("Move a conv block up", "edit_list('conv', 'up')"), ("Move a conv block down", "edit_list('conv', 'down')"),
]

# Who does what a key asks: action → (the app's attribute that owns it, its method). The app routes each action
# here (app.py); a key's work lives in its controller or the main screen, never in the app.
ROUTES = {
    "toggle_run": ("runner", "toggle"), "step": ("runner", "step"), "stop": ("runner", "stop"),
    "restart": ("runner", "restart"), "lr_scale": ("runner", "lr_scale"), "evaluate": ("runner", "evaluate"),
    "checkpoint": ("runner", "checkpoint"), "rewind": ("rewinder", "open"),
    "quit": ("lifecycle", "quit"), "detach": ("lifecycle", "detach"),
    "save_preset": ("presets", "save"), "open_preset": ("presets", "ask_open"),
    "runs": ("runs", "browse"), "sweep": ("runs", "sweep"), "sanity_check": ("sanity", "start"),
    "lr_find": ("lr_finder", "open"),
    "toggle_view": ("main", "toggle_view"), "focus_pane": ("main", "show_pane"), "help": ("main", "show_help"),
    "traceback": ("main", "show_traceback"), "log_scale": ("main", "log_scale"), "grad_mode": ("main", "grad_mode"),
    "edit_list": ("main", "edit_list"), "add_layer": ("main", "add_layer"),
}
