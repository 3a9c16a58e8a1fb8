"""A run server: the engine in a process of its own session, serving the protocol to clients over a Unix socket.

Started by the app or `torchtui train --detach` as `python -m torchtui.engine.run.server`, in a new session, so
a dropped SSH connection (SIGHUP to the terminal's processes) does not reach it. Clients attach and detach
(multiprocessing.connection, authenticated with the user's key); each event goes to every client, and a
client that attaches first gets what it needs to draw the run so far (its RunStarted, state, latest
statistics and predictions: the steps themselves it reads from metrics.jsonl). Commands from any client
apply. The server ends when its run is over and no client is attached, or on Shutdown or SIGTERM (after
stopping the run and saving last.pt).
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import threading
import time
from multiprocessing.connection import Listener
from pathlib import Path

from torchtui.engine import live
from torchtui.engine import protocol as p
from torchtui.engine.run.worker import redirect_output, relay_warnings

FIRST_CLIENT_S = 60.0     # a server nobody attached to within this long ends
CLIENT_QUEUE = 10_000     # events waiting for a slow client before it is dropped (training never waits)
STATUS_EVERY_S = 1.0      # the JSON file `torchtui ps` reads is rewritten at most this often


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
    """Hosts an Engine, accepts clients on the socket, broadcasts events, keeps what a new client needs."""

    def __init__(self, runs_dir: str | None):
        from torchtui.engine.run.engine import Engine

        self.lock = threading.RLock()  # re-entered when a client dropped inside broadcast() forgets itself
        self.clients: list[_Client] = []
        self.ever_attached = False
        self.snapshot: dict[str, object] = {}   # kind -> the latest event of that kind
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
        self.engine = Engine(self.broadcast, runs_dir)

    # ------------------------------------------------------------------ events out

    def broadcast(self, event) -> None:
        with self.lock:
            self._remember(event)
            for client in list(self.clients):
                client.offer(event)

    def _remember(self, event) -> None:
        kind = type(event).__name__
        if isinstance(event, p.RunStarted):
            self.snapshot = {"EngineReady": self.snapshot.get("EngineReady")}
            # absolute: `torchtui ps` and `runs` read it from other folders than this server's
            self.info.run_id, self.info.run_dir = event.run_id, os.path.abspath(event.run_dir)
            self.info.name = event.name
            self.info.device, self.info.total_steps, self.info.step = event.device, event.total_steps, event.start_step
        if isinstance(event, (p.EngineReady, p.RunStarted, p.StateChanged, p.StepStats, p.Predictions, p.RunFinished)):
            self.snapshot[kind] = event
        if isinstance(event, p.EvalResult) and event.split == "val":
            self.snapshot[kind] = event
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
                client = _Client(self, conn)
                # What a client needs to draw the run so far, in order; then live events.
                # (Evaluations and live changes come from metrics.jsonl with the steps.)
                for kind in ("EngineReady", "RunStarted", "StepStats", "Predictions", "StateChanged", "RunFinished"):
                    if self.snapshot.get(kind) is not None:
                        client.offer(self.snapshot[kind])
                self.clients.append(client)
                self.ever_attached = True
                self._write_status()

    def forget(self, client: _Client) -> None:
        with self.lock:
            if client in self.clients:
                self.clients.remove(client)
                self._write_status()

    # ------------------------------------------------------------------ lifetime

    def serve(self, stopping: threading.Event) -> None:
        started = time.monotonic()
        self.engine.start()
        threading.Thread(target=self._accept_loop, daemon=True, name="torchtui-accept").start()
        idle_before = False
        while not stopping.is_set() and self.engine.thread.is_alive():
            # Idle on two looks in a row: a Start taken from the inbox is not `busy` for a few bytecodes.
            idle = not self.engine.busy and self.engine.inbox.empty()
            with self.lock:
                nobody = not self.clients
            if idle and idle_before and nobody and (self.ever_attached or time.monotonic() - started > FIRST_CLIENT_S):
                break
            idle_before = idle
            stopping.wait(0.2)
        self.engine.send(p.Shutdown())
        self.engine.join(timeout=60)
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
