"""The app's link to the engine: sends commands, tracks request ids, drains events on the UI's timer."""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the host module (multiprocessing, sockets) and the protocol are imported after the first paint
    from torchtui.engine.host import EngineHost


class EngineBridge:
    """Wraps an engine host (a run server in the app, in-process or fake in tests).

    Replies to requests carry the id they were asked with; only the newest id per request kind is
    kept, so a slow reply to an outdated config never overwrites a newer one.
    """

    def __init__(self, host: EngineHost | Callable[[], EngineHost], attaching: bool = False):
        """`host` is an engine host, or a function that starts one (or connects to one: `attaching`) when the
        app calls `start()`."""
        given = hasattr(host, "send")
        self.host = host if given else None
        self._start_host = None if given else host
        self.attaching = attaching or getattr(self.host, "info", None) is not None  # given a live run server
        self.ready = False
        self.torch_version = ""
        # Ids no other client of the same run server uses: a RunStarted echoing one is this app's run.
        self._ids = itertools.count(secrets.randbits(40) << 16)
        self.latest: dict[type, int] = {}
        self._starting = threading.Lock()

    def start(self) -> None:
        """Start the host if it was given as a function (the app does this once it has painted)."""
        with self._starting:
            if self.host is None and self._start_host is not None:
                self.host = self._start_host()

    def start_soon(self) -> None:
        """Start the host in a thread now (attaching: the server sends the run's History while the app
        imports and draws its first frame); the app's own start() then waits for it."""
        threading.Thread(target=self.start, name="torchtui-connect", daemon=True).start()

    def send(self, command) -> None:
        """Send a command; before the engine is started there is nothing to act on, so it is dropped."""
        if self.host is not None:
            self.host.send(command)

    def next_id(self) -> int:
        """A fresh request id (a Start's, echoed by its RunStarted)."""
        return next(self._ids)

    def request(self, kind: type, **fields) -> None:
        """Send a request (DescribeModel, ListDevices, PreviewData, FindLr) tagged with a fresh id."""
        request_id = next(self._ids)
        self.latest[kind] = request_id
        self.send(kind(request_id=request_id, **fields))

    def is_current(self, reply) -> bool:
        """Whether a reply answers the newest request of its kind."""
        from torchtui.engine import protocol as p

        request = next(kind for kind, answer in p.REPLIES.items() if answer is type(reply))
        return self.latest.get(request) == reply.request_id

    def drain(self) -> list:
        events = self.host.drain() if self.host is not None else []
        if not events:
            return events
        from torchtui.engine import protocol as p

        for event in events:
            if isinstance(event, p.EngineReady):
                self.ready, self.torch_version = True, event.torch_version
        return events

    @property
    def can_detach(self) -> bool:
        """Whether the engine lives in a run server that can go on without this app."""
        return callable(getattr(self.host, "detach", None))

    def close(self) -> None:
        """Let go of the engine. A run server is detached from: it ends by itself once its run is over and
        no client is attached, so a run the app left active goes on. Other hosts are shut down."""
        if self.host is None:
            return
        if self.can_detach:
            self.host.detach()
        else:
            self.host.close()
