"""The terminal driver: Textual's own, but a clean exit ends the process once the terminal is restored."""

from __future__ import annotations

import sys
from collections.abc import Callable


def quit_fast_driver(finish: Callable[[], None]):
    """Textual's driver class for this terminal, calling `finish()` (which ends the process) right after a clean
    exit (q, d, SIGTERM) has restored the terminal. Textual would then close the app's ~1,090 widgets one
    message pump at a time and the interpreter free them: 0.4 s of a 0.9 s quit the user waits through for
    nothing (bench/bench_tui.py --only lifecycle). None on Windows, where Textual's own driver stays."""
    if sys.platform == "win32":
        return None
    from textual.drivers.linux_driver import LinuxDriver

    class QuitFastDriver(LinuxDriver):
        def stop_application_mode(self) -> None:
            super().stop_application_mode()
            # return_code: 0 once the app called exit(); None while it runs (a suspend stops application mode
            # too) and 1 after a crash, whose traceback Textual prints in the teardown this would skip.
            if self._app.return_code == 0:
                self.close()  # the writer thread writes what is queued: the restored terminal is on screen
                finish()

    return QuitFastDriver
