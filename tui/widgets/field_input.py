"""FieldInput: a text field whose editing keys act in the order they were typed.

Textual runs a widget's key bindings (ctrl+a home, ctrl+k delete to the end, backspace, arrows …) only once the
key has bubbled from the field up to the app, a hop through each container's message queue, while a printable
key goes straight into the field. Typed in one burst (a person typing while the UI is busy, or tmux), clearing
`0.003` with ctrl+a ctrl+k and typing 5 gave `0.0035`, then an empty field: the 5 was lost (`5e-3` → `e-3`).
Here the field's own bindings run as its key arrives, before the next key is read.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class FieldInput(Input):
    """An Input that runs its own editing bindings in key order (app keys and priority keys are untouched)."""

    async def _on_key(self, event: events.Key) -> None:
        if not event.is_printable:
            bindings = self._bindings.key_to_bindings.get(event.key)
            if bindings:
                event.stop()
                event.prevent_default()
                await self.run_action(bindings[0].action)
                return
        await super()._on_key(event)
