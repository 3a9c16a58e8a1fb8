"""The app's features as controllers: each owns its state and handles the engine events it declares.

A controller is a plain object given the app at construction (it reaches the screen, the bridge and the other
controllers through it). `HANDLES` maps an engine event type to the name of the method that takes it; the
EventRouter builds one dispatch table from every controller's, so an event's handlers are listed in one place
and in a known order (the order the controllers were given to the router).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from torchtui.tui.app import TorchTUI


class Controller:
    """A feature of the app: its state, its actions, and the engine events it handles (HANDLES)."""

    HANDLES: ClassVar[dict[type, str]] = {}

    def __init__(self, app: TorchTUI):
        self.app = app

    # What most controllers reach for, named once.
    @property
    def bridge(self):
        return self.app.bridge

    @property
    def history(self):
        return self.app.history

    @property
    def main(self):
        return self.app.main

    def log(self, level: str, message: str, details: str = "") -> None:
        self.app.main.log_pane.add(level, message, details) if details else self.app.main.log_pane.add(level, message)

    def notify(self, message: str, **kwargs) -> None:
        self.app.notify(message, **kwargs)


class EventRouter:
    """One table from engine event type to the handlers of every controller that declared it."""

    def __init__(self, controllers: list[Controller]):
        self.table: dict[type, list[Callable]] = defaultdict(list)
        for controller in controllers:
            for kind, method in controller.HANDLES.items():
                self.table[kind].append(getattr(controller, method))

    def dispatch(self, event) -> None:
        for handler in self.table.get(type(event), ()):
            handler(event)
