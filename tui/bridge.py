"""The app's link to the engine: sends commands, tracks request ids, drains events on the UI's timer."""

from __future__ import annotations

import itertools
import multiprocessing.resource_tracker

from torchtui.engine import protocol as p
from torchtui.engine.host import EngineHost, WorkerHost


def start_worker(runs_dir: str | None) -> WorkerHost:
    """Spawn the engine's worker process. Call before App.run(): spawning from inside a running Textual
    app fails with "bad value(s) in fds_to_keep" unless the resource tracker is already up."""
    multiprocessing.resource_tracker.ensure_running()
    return WorkerHost(runs_dir)


class EngineBridge:
    """Wraps an engine host (worker process in the app, in-process or fake in tests).

    Replies to requests carry the id they were asked with; only the newest id per request kind is
    kept, so a slow reply to an outdated config never overwrites a newer one.
    """

    def __init__(self, host: EngineHost):
        self.host = host
        self.ready = False
        self.torch_version = ""
        self._ids = itertools.count(1)
        self.latest: dict[type, int] = {}

    def send(self, command) -> None:
        self.host.send(command)

    def request(self, kind: type, **fields) -> None:
        """Send a request (DescribeModel, ListDevices, PreviewData) tagged with a fresh id."""
        request_id = next(self._ids)
        self.latest[kind] = request_id
        self.host.send(kind(request_id=request_id, **fields))

    def is_current(self, reply) -> bool:
        """Whether a reply answers the newest request of its kind."""
        kinds = {p.ModelDescribed: p.DescribeModel, p.DevicesListed: p.ListDevices, p.DataPreviewed: p.PreviewData}
        return self.latest.get(kinds[type(reply)]) == reply.request_id

    def drain(self) -> list:
        events = self.host.drain()
        for event in events:
            if isinstance(event, p.EngineReady):
                self.ready, self.torch_version = True, event.torch_version
        return events

    def close(self) -> None:
        self.host.close()
