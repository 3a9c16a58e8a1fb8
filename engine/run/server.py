"""A run server: the engine in a process of its own session, serving the protocol to clients over a Unix socket.

Started by the app or `torchtui train --detach` as `python -m torchtui.engine.run.server`, in a new session, so
a dropped SSH connection (SIGHUP to the terminal's processes) does not reach it. Clients attach and detach
(multiprocessing.connection, authenticated with the user's key); each event goes to every client, and a
client that attaches first gets what it needs to draw the run so far in one message: the server keeps the
run's RunHistory (the charts' bounded series, evaluations, live changes, latest predictions) and sends it
after RunStarted (p.History), so no client reads metrics.jsonl. A resumed run's past is read from that file
once, here, off the training thread. Commands from any client apply. The server ends when its run is over
and no client is attached, or on Shutdown or SIGTERM (after stopping the run and saving last.pt).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import threading
import time
from multiprocessing.connection import Listener
from pathlib import Path

from torchtui.engine import live
from torchtui.engine import protocol as p
from torchtui.engine.files import atomic_write_text
from torchtui.engine.history import RunHistory
from torchtui.engine.run.worker import redirect_output, relay_warnings
from torchtui.engine.runs import replay_events, steps_after

FIRST_CLIENT_S = 60.0     # a server nobody attached to within this long ends
CLIENT_QUEUE = 10_000     # events waiting for a slow client before it is dropped (training never waits)
STATUS_EVERY_S = 1.0      # the JSON file `torchtui ps` reads is rewritten at most this often
HISTORY_FILE = "history.json"  # in the run folder: its RunHistory when it ended, so a resume need not read the rows


class _Client:
    """One attached connection: a reader thread relays its commands, a sender thread its events."""

    def __init__(self, server: RunServer, conn):
        self.server, self.conn = server, conn
        self.events: queue.Queue = queue.Queue(CLIENT_QUEUE)
        self.gone = threading.Event()
        self.sender = threading.Thread(target=self._send_loop, daemon=True, name="torchtui-send")
        self.sender.start()
        threading.Thread(target=self._read_loop, daemon=True, name="torchtui-recv").start()

    def offer(self, event) -> None:
        try:
            self.events.put_nowait(event)
        except queue.Full:
            self.close()  # a client that stopped reading is dropped rather than slowing the run

    def _send_loop(self) -> None:
        while not self.gone.is_set():
            event = self.events.get()
            if event is None:
                break
            try:
                self.conn.send(event)
            except (OSError, EOFError, ValueError):
                break
        self.close()

    def _read_loop(self) -> None:
        while not self.gone.is_set():
            try:
                command = self.conn.recv()
            except (OSError, EOFError, ValueError, TypeError):
                break
            self.server.engine.send(command)
        self.close()

    def close(self) -> None:
        if not self.gone.is_set():
            self.gone.set()
            if not self.events.full():
                self.events.put_nowait(None)
            try:
                self.conn.close()
            except OSError:
                pass
            self.server.forget(self)


class RunServer:
    """Hosts an Engine, accepts clients on the socket, broadcasts events, keeps what a new client needs.

    Events leave the engine's thread through a queue: one dispatcher thread folds each into the run's history
    and hands it to every client, and takes arriving clients in the same order, so a client's History and the
    live events after it neither overlap nor leave a gap."""

    def __init__(self, runs_dir: str | None, also=None):
        """`also`: a second listener for every event (rank 0 of a launched run prints its progress too)."""
        from torchtui.engine.run.engine import Engine

        self.lock = threading.RLock()  # re-entered when a client dropped inside broadcast() forgets itself
        self.clients: list[_Client] = []
        self.arriving = 0  # accepted, not yet welcomed by the dispatcher: the server does not end under them
        self.ever_attached = False
        self.snapshot: dict[str, object] = {}   # kind -> the latest event of that kind
        self.history = RunHistory()             # the dispatcher's alone
        self._replayed = -1                     # a resumed run's last step read from metrics.jsonl
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._dispatcher = threading.Thread(target=self._dispatch_loop, daemon=True, name="torchtui-dispatch")
        self.info = live.ServerInfo(pid=os.getpid(), socket=str(live.socket_path(os.getpid())))
        self._status_at = 0.0
        self.closing = False
        Path(self.info.socket).unlink(missing_ok=True)
        old_umask = os.umask(0o177)  # the socket is created 0600
        try:
            self.listener = Listener(self.info.socket, family="AF_UNIX", authkey=live.authkey())
        finally:
            os.umask(old_umask)
        self.info.write()
        self.engine = Engine(self.broadcast if also is None else lambda e: (self.broadcast(e), also(e)), runs_dir)

    # ------------------------------------------------------------------ events out

    def broadcast(self, event) -> None:
        """On the engine's thread (and the warnings relay's): queue the event for the dispatcher."""
        past = None
        if isinstance(event, p.RunStarted) and event.start_step > 0:
            # A resume: the file holds the run's past now (truncated at the resumed step); the new steps'
            # rows come after this event. Its size bounds what the dispatcher reads back.
            try:
                past = os.path.getsize(Path(event.run_dir) / "metrics.jsonl")
            except OSError:
                past = 0
        self._outbox.put((event, past))

    def _dispatch_loop(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            if not isinstance(item, tuple):
                self._welcome(item)
                continue
            event, past = item
            if isinstance(event, p.StepStats) and self._replayed >= 0:
                event = steps_after(event, self._replayed)  # a data-parallel rank wrote them before we read
                if event is None:
                    continue
            self.history.apply(event)
            if isinstance(event, p.RunFinished):
                self._save_history(event)
            with self.lock:
                self._remember(event)
                clients = list(self.clients)
            for client in clients:
                client.offer(event)
            if isinstance(event, p.RunStarted):
                self._replayed = -1
                if past is not None:  # a resume: its past from the file, then to every client in one message
                    self._replay(event, past)
                    history = p.History(event.run_id, self.history.to_plain())
                    for client in clients:
                        client.offer(history)

    def _replay(self, started: p.RunStarted, size: int) -> None:
        """A resumed run's past: the history saved when it ended, if the file still holds exactly the rows it
        was built from (the run resumed at its last step); else metrics.jsonl's rows, read once here."""
        if self._saved_history(started, size):
            return
        for event in branch_past(started):  # a branch (a rewind): its parent's curves up to the branch point first
            self.history.apply(event)
        events, self._replayed = replay_events(started, max_bytes=size, max_step=started.start_step)
        self._replayed = max(self._replayed, started.start_step if self.history.train_loss.last else -1)
        for event in events:
            self.history.apply(event)

    def _save_history(self, finished: p.RunFinished) -> None:
        started = self.history.started
        if started is None or started.run_id != finished.run_id:
            return
        folder = Path(started.run_dir)
        try:
            size = os.path.getsize(folder / "metrics.jsonl")
            atomic_write_text(folder / HISTORY_FILE, json.dumps({"size": size, "history": self.history.to_plain()}))
        except OSError:
            pass  # a full disk: a resume reads metrics.jsonl instead

    def _saved_history(self, started: p.RunStarted, size: int) -> bool:
        try:
            saved = json.loads((Path(started.run_dir) / HISTORY_FILE).read_text(encoding="utf-8"))
            history = RunHistory.from_plain(saved["history"])
        except Exception:  # noqa: BLE001 - none, cut short, or of another version: the rows are read instead
            return False
        last = history.train_loss.last
        if (saved.get("size") != size or history.run_id != started.run_id or last is None
                or last[0] != started.start_step):
            return False  # resumed from an earlier checkpoint (rows were dropped), or the file changed since
        fresh = self.history  # the new RunStarted's: what a run that starts has, and nothing of the old end
        history.started, history.state, history.reason, history.summary = started, fresh.state, "", {}
        self.history, self._replayed = history, started.start_step
        return True

    def _remember(self, event) -> None:
        kind = type(event).__name__
        if isinstance(event, p.RunStarted):
            self.snapshot = {"EngineReady": self.snapshot.get("EngineReady")}
            # absolute: `torchtui ps` and `runs` read it from other folders than this server's
            self.info.run_id, self.info.run_dir = event.run_id, os.path.abspath(event.run_dir)
            self.info.name = event.name
            self.info.device, self.info.total_steps, self.info.step = event.device, event.total_steps, event.start_step
        if isinstance(event, (p.EngineReady, p.RunStarted, p.StateChanged, p.RunFinished)):
            self.snapshot[kind] = event
        if isinstance(event, p.RankStats):
            self.snapshot[kind] = event
            self.info.ranks = event.rows()
            self.info.slowest = rank_name(event, event.slowest) + (f" ({event.cause})" if event.cause else "")
        if isinstance(event, p.EvalResult) and event.split == "val":
            shown = [(k, v) for k, v in event.metrics.items() if k in ("accuracy", "r2", "loss")][:1]
            self.info.metric = " ".join(f"{k} {v:.4g}" for k, v in shown)
        if isinstance(event, p.StateChanged) and (event.run_id is None or event.run_id == self.info.run_id):
            self.info.state = event.state
        if isinstance(event, p.StepStats) and event.step:
            self.info.step, self.info.epoch = event.step[-1], event.epoch
        at_once = isinstance(event, (p.RunStarted, p.StateChanged, p.RunFinished))
        if at_once or time.monotonic() - self._status_at > STATUS_EVERY_S:  # never a write per step or evaluation
            self._write_status()

    def _write_status(self) -> None:
        self._status_at = time.monotonic()
        self.info.clients = len(self.clients)
        try:
            self.info.write()
        except OSError:
            pass  # `ps` shows an older line; the run goes on

    # ------------------------------------------------------------------ clients

    def _accept_loop(self) -> None:
        while True:
            try:
                conn = self.listener.accept()
            except Exception:  # noqa: BLE001 - AuthenticationError, a hang-up in the handshake, the close
                if self.closing:
                    return
                continue  # a client with the wrong key, or one that hung up during the handshake
            with self.lock:
                self.arriving += 1
            self._outbox.put(conn)  # welcomed in turn with the events

    def _welcome(self, conn) -> None:
        """What a client needs to draw the run so far, in order; then live events."""
        client = _Client(self, conn)
        for kind in ("EngineReady", "RunStarted"):
            if self.snapshot.get(kind) is not None:
                client.offer(self.snapshot[kind])
        if self.history.started is not None:
            client.offer(p.History(self.history.run_id, self.history.to_plain()))
        for kind in ("RankStats", "StateChanged", "RunFinished"):
            if self.snapshot.get(kind) is not None:
                client.offer(self.snapshot[kind])
        with self.lock:
            self.arriving -= 1
            self.clients.append(client)
            self.ever_attached = True
            self._write_status()

    def forget(self, client: _Client) -> None:
        with self.lock:
            if client in self.clients:
                self.clients.remove(client)
                self._write_status()

    # ------------------------------------------------------------------ lifetime

    def open(self) -> None:
        """Take clients and hand them events (the engine's thread is started apart: serve())."""
        self._dispatcher.start()
        threading.Thread(target=self._accept_loop, daemon=True, name="torchtui-accept").start()

    def serve(self, stopping: threading.Event) -> None:
        started = time.monotonic()
        self.open()
        self.engine.start()
        idle_before = False
        while not stopping.is_set() and self.engine.thread.is_alive():
            # Idle on two looks in a row: a Start taken from the inbox is not `busy` for a few bytecodes.
            idle = not self.engine.busy and self.engine.inbox.empty()
            with self.lock:
                nobody = not self.clients and not self.arriving
            if idle and idle_before and nobody and (self.ever_attached or time.monotonic() - started > FIRST_CLIENT_S):
                break
            idle_before = idle
            stopping.wait(0.2)
        self.engine.send(p.Shutdown())
        self.engine.join(timeout=60)
        self.close()

    def close(self) -> None:
        """Hand the clients the last events, then take the socket and the status file away."""
        self._outbox.put(None)  # the last events reach the clients first
        self._dispatcher.join(30)
        with self.lock:
            leaving = list(self.clients)
        for client in leaving:  # let each client have the last events (RunFinished) before the socket goes
            client.events.put(None)
            client.sender.join(2)
        self.closing = True
        self.listener.close()
        for path in (self.info.socket, self.info.path):
            try:
                os.unlink(path)
            except OSError:
                pass


def rank_name(event: p.RankStats, rank: int) -> str:
    """host:rank, as the per-rank view names a rank."""
    if rank < 0:
        return ""
    return f"{event.hosts[rank] if rank < len(event.hosts) else '?'}:{rank}"


def branch_past(started: p.RunStarted) -> list:
    """A branch's parent's history up to the branch point (origin.json's branch_of), as events of the branch, so
    its charts show the curve it continues; [] for a run that is not a branch, or whose parent is gone."""
    import dataclasses

    try:
        branch = json.loads((Path(started.run_dir) / "origin.json").read_text(encoding="utf-8")).get("branch_of")
        parent, step = Path(branch["run_dir"]), int(branch["step"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []
    events, _ = replay_events(dataclasses.replace(started, run_dir=str(parent)), max_step=step)
    return events


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="torchtui-server")
    parser.add_argument("--runs-dir")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--log")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stopping = threading.Event()
    # SIGTERM stops the run (saving last.pt); SIGHUP cannot come from a terminal (own session) but is
    # treated the same rather than killing the process mid-write.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: stopping.set())
    redirect_output(args.log)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    server = RunServer(args.runs_dir)
    relay_warnings(lambda text: server.broadcast(p.Log(server.info.run_id or None, "warning", text)))
    server.serve(stopping)


if __name__ == "__main__":
    main()
