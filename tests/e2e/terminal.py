"""A real terminal for the e2e tests: torchtui in a private tmux server, keys typed as a person types, the
screen read back, with deadlines instead of sleeps."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

TORCHTUI = str(Path(sys.executable).with_name("torchtui"))
# Something under pytest exports COLUMNS=80 LINES=24; Textual would believe them over the real pane.
ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


class Terminal:
    """One tmux server and session of its own, running a command in `folder` with private runtime and
    config folders; `close()` ends the server and any run server the command left behind."""

    def __init__(self, folder: Path, name: str, width: int = 160, height: int = 48):
        self.folder, self.socket, self.session = folder, f"torchtui-e2e-{os.getpid()}-{name}", "t"
        self.width, self.height = width, height
        self.runtime = folder / "runtime"
        self.runtime.mkdir(mode=0o700, exist_ok=True)
        self.runs = folder / "runs"

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=False,
                              env=ENV).stdout

    def start(self, *args: str) -> None:
        command = (f"cd {self.folder} && XDG_RUNTIME_DIR={self.runtime} TORCHTUI_RUNS_DIR={self.runs} "
                   f"XDG_CONFIG_HOME={self.folder / 'xdg'} {TORCHTUI} {' '.join(args)}; sleep 600")
        self.tmux("new-session", "-d", "-s", self.session, "-x", str(self.width), "-y", str(self.height), command)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.session, *keys)

    def type(self, text: str, every: float) -> None:
        """Type `text` one key at a time, `every` seconds apart (the typing speed is the test's input)."""
        for char in text:
            self.tmux("send-keys", "-t", self.session, "-l", char)
            time.sleep(every)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match:
        """Poll the screen until `pattern` matches (deadline, no blind sleeps)."""
        deadline, screen = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            screen = self.screen()
            match = re.search(pattern, screen, re.MULTILINE)
            if match:
                return match
            time.sleep(0.05)  # polling interval, not a wait for an outcome
        raise AssertionError(f"{pattern!r} never appeared; last screen:\n{screen}")

    def close(self) -> None:
        self.tmux("kill-server")
        # The app's run server outlives its terminal by design: end the ones this test started.
        subprocess.run(["pkill", "-9", "-f", "--", f"--runs-dir {self.runs}"], check=False)
