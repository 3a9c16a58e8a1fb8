"""PaneDeck: the four config panes in their tabs. Built and mounted after the first paint, one per tick,
filled from a config, read back as config sections, and shown the current problems."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config and the tabs' widgets are imported after the first paint
    from textual.widgets import TabPane

    from torchtui.engine.config import ExperimentConfig

# (pane id, config section it edits, module in panes/, class), in tab order
PANES = (("dataset", "data", "dataset", "DatasetPane"), ("model", "model", "model", "ModelPane"),
         ("hparams", "train", "hparams", "HparamsPane"), ("device", "device", "device", "DevicePane"))
PANE_IDS = tuple(pane_id for pane_id, *_ in PANES)
TAB_LABELS = tuple(f"{i} {'Hparams' if pane_id == 'hparams' else pane_id.title()}"  # with the key that shows it
                   for i, pane_id in enumerate(PANE_IDS, start=1))


@cache
def deck_tab() -> type[TabPane]:
    """DeckTab, made when the tabs are first composed (its module, TabbedContent's, is not on the first frame)."""
    from textual.widgets import TabPane

    class DeckTab(TabPane):
        """A tab that waits for its pane: blank until then (an empty widget renders its name,
        `TabPane#tab-dataset`, which flashed on screen while the panes mounted, for a second or more when
        attaching)."""

        def render(self) -> str:
            return ""

    return DeckTab


class PaneDeck:
    """Owns the panes and their (initially empty) tabs; the app composes `tabs()` and asks for the rest.

    Panes hold their values unmounted, so a config can be filled in before they are on screen; building
    them (their modules, ~50 ms) and their seven hundred widgets would otherwise delay the first paint.
    """

    def __init__(self) -> None:
        self.panes: dict = {}
        self.tab_panes: dict[str, TabPane] = {}
        self.ready = False  # every pane mounted

    @property
    def built(self) -> bool:
        return bool(self.panes)

    def tabs(self) -> Iterator[TabPane]:
        """The empty tabs to compose, labelled with the key that shows each one."""
        for pane_id, label in zip(PANE_IDS, TAB_LABELS):
            self.tab_panes[pane_id] = deck_tab()(label, id=f"tab-{pane_id}")
            yield self.tab_panes[pane_id]

    def build(self, config: ExperimentConfig) -> None:
        """Import and construct the panes, filled from `config` (nothing is mounted yet)."""
        for pane_id, _, module, name in PANES:
            cls = getattr(importlib.import_module(f"torchtui.tui.panes.{module}"), name)
            self.panes[pane_id] = cls(id=pane_id)
        self.fill(config)

    def mount(self, pane_id: str) -> None:
        """Mount one pane into its tab now (a key asked for it); no-op before build() or once mounted."""
        pane, tab = self.panes.get(pane_id), self.tab_panes.get(pane_id)
        # By reference, not query_one: that searches the active screen, which may be a modal one.
        if pane is not None and not pane.is_mounted and pane.parent is None and tab is not None and tab.is_attached:
            tab.mount(pane)

    def mount_next(self) -> bool:
        """Mount the next pane not yet mounted; False (and ready) once there is none left."""
        waiting = [pane_id for pane_id, pane in self.panes.items() if not pane.is_mounted]
        if waiting:
            self.mount(waiting[0])
            return True
        if any(not widget.is_mounted for pane in self.panes.values() for widget in pane.walk_children()):
            return True  # a pane is mounted before its widgets' own mount handlers ran: a Select's raised at exit
        self.ready = bool(self.panes)
        return False

    def fill(self, config: ExperimentConfig) -> None:
        """Show `config` in the panes; before build() a no-op (build fills them from the app's config then)."""
        for pane_id, section, *_ in PANES if self.built else ():
            self.panes[pane_id].set_values(getattr(config, section))

    def sections(self) -> dict[str, dict]:
        """What the panes hold, as config sections (data, model, train, device)."""
        return {section: self.panes[pane_id].value() for pane_id, section, *_ in PANES}

    def show_problems(self, problems: list[str]) -> None:
        for pane in self.panes.values():
            pane.show_problems(problems)
