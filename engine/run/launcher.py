"""Starting a data-parallel run: one process per device (torch.multiprocessing), the protocol relayed through
the engine that started them, and a rank that dies ending the run as failed with the rank named.

The engine thread stays the run's one voice: commands it receives go to rank 0 (which shares them with the
other ranks at their next sync point, distributed.py), rank 0's events come back through it, and it watches
the processes. The ranks rendezvous through a file in a private folder (no TCP store to listen on); gloo and
NCCL then talk over the loopback interface.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import traceback
from pathlib import Path

import torch

from torchtui.engine import protocol as p
from torchtui.engine.config import ExperimentConfig, from_dict
from torchtui.engine.runs import RunFolder
from torchtui.engine.schema import ConfigError

POLL_S = 0.05  # how often the relay looks at the processes between events and commands


def plan(config: ExperimentConfig) -> tuple[int, list[int] | None, str]:
    """(processes, their CUDA indices or None on the CPU, backend) for a config's device section."""
    dev = config.device
    cuda_here = torch.cuda.device_count() if torch.cuda.is_available() else 0
    use_cuda = dev.device.startswith("cuda") or (dev.device == "auto" and cuda_here > 0)
    if not use_cuda:
        if dev.devices.strip() == "all" or dev.device_list is not None:
            raise ConfigError([f"device.devices: {dev.devices!r} names GPUs, but there is no CUDA device here; give "
                               "a number of CPU processes instead (such as 2)"])
        return dev.world_size(), None, "gloo"
    listed = dev.device_list
    indices = listed if listed is not None else list(range(dev.world_size(cuda_here) or 0))
    missing = [i for i in indices if i >= cuda_here]
    if not indices or missing:
        raise ConfigError([f"device.devices: {dev.devices!r} asks for GPU(s) {missing or indices}, but this machine "
                           f"has {cuda_here} CUDA device(s) (cuda:0 … cuda:{max(0, cuda_here - 1)})"])
    return len(indices), indices, "nccl"


def run_distributed(engine, command: p.Start) -> None:
    """Train `command`'s run on several devices; returns when every rank has ended."""
    try:
        config = from_dict(command.config or RunFolder(Path(command.resume)).read_config())
        world, cuda, backend = plan(config)
    except ConfigError as err:
        engine.emit(p.Error(None, str(err), err.details))
        engine._set_state(p.FAILED, None, err.first_line)
        return
    # Cores shared out between the ranks on the CPU (two torch threads a rank oversubscribed a 2-core machine).
    threads = config.device.threads or (0 if cuda else max(1, (os.cpu_count() or 1) // world))
    folder = tempfile.mkdtemp(prefix="torchtui-ddp-")  # 0700: the rendezvous file is this user's alone
    ctx = torch.multiprocessing.get_context("spawn")
    events, (commands, theirs) = ctx.Queue(), ctx.Pipe()
    relay = _Relay(engine, command)
    try:
        from torchtui.engine.run.distributed import rank_main

        processes = torch.multiprocessing.start_processes(
            rank_main, args=(type(engine), world, command, engine.runs_dir, os.path.join(folder, "rendezvous"), backend,
                             cuda, events, theirs, threads, os.getpid()),
            nprocs=world, join=False, daemon=False, start_method="spawn")
    except Exception as err:  # noqa: BLE001 - a process that cannot start is this run's failure, not the engine's
        engine.emit(p.Error(None, f"could not start {world} processes: {type(err).__name__}: {err}",
                            traceback.format_exc()))
        engine._set_state(p.FAILED, None, f"could not start {world} processes: {err}")
        shutil.rmtree(folder, ignore_errors=True)
        return
    try:
        failure = relay.follow(processes, events, commands)
        relay.end(failure)
    finally:
        commands.close()
        shutil.rmtree(folder, ignore_errors=True)


class _Relay:
    """The engine side of a running data-parallel run: forwards commands and events, and reports the end."""

    def __init__(self, engine, command: p.Start):
        self.engine, self.command = engine, command
        self.started: p.RunStarted | None = None
        self.held: list = []          # rank 0's RunFinished and last StateChanged, until every rank has ended
        self.last: tuple[int, float] = (0, 0.0)  # the latest step and epoch rank 0 reported
        self.errors: list[p.Error] = []

    def follow(self, processes, events, commands) -> tuple[int, str] | None:
        """Relay until every rank has exited; (rank, why) for the first rank that failed, else None."""
        while True:
            self._forward_commands(commands)
            self._forward_events(events, POLL_S)
            try:
                if processes.join(timeout=0):
                    break
            except torch.multiprocessing.ProcessExitedException as err:
                why = f"died ({err.signal_name})" if err.signal_name else f"exited with code {err.exit_code}"
                self._forward_events(events, 0.5)  # what the survivors said before they were ended
                return err.error_index, why
            except torch.multiprocessing.ProcessRaisedException as err:
                self._forward_events(events, 0.5)
                return err.error_index, f"raised: {_last_line(str(err))}"
        self._forward_events(events, 0.2)
        return None

    def _forward_commands(self, commands) -> None:
        while True:
            try:
                command = self.engine.inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(command, p.Shutdown):
                self.engine.session.shutdown = True  # the engine ends once the ranks have saved and stopped
            if isinstance(command, p.Start):
                self.engine.emit(p.Error(None, "a run is already active: stop it before starting another"))
                continue
            try:
                commands.send(command)
            except (BrokenPipeError, OSError):
                return  # rank 0 is gone: follow() reports why

    def _forward_events(self, events, wait: float) -> None:
        """Every event waiting, after waiting up to `wait` seconds for the first."""
        try:
            self._event(events.get(timeout=wait) if wait > 0 else events.get_nowait())
            while True:
                self._event(events.get_nowait())
        except queue.Empty:
            return

    def _event(self, event) -> None:
        if isinstance(event, p.RunStarted):
            self.started = event
        elif isinstance(event, p.StepStats) and event.step:
            self.last = (event.step[-1], event.epoch)
        elif isinstance(event, p.Error):
            own = event.message.split(": ", 1)[-1] if event.message.startswith("rank ") else None
            if own is not None and any(e.message == own for e in self.errors):
                return  # another rank's copy of rank 0's error (data every rank read)
            self.errors.append(event)
        if isinstance(event, p.RunFinished) or (isinstance(event, p.StateChanged) and event.state in p.END_STATES):
            self.held.append(event)  # reported once every rank has ended, naming a rank that failed
            return
        if isinstance(event, p.StateChanged):
            self.engine.session.set_state(event.state, event.run_id, emit=False)
        self.engine.emit(event)

    def end(self, failure: tuple[int, str] | None) -> None:
        """Report the run's end: rank 0's own report, or (a rank failed) the failure, naming the rank."""
        if failure is None or (self.started is None and self.held):
            for event in self.held:  # every rank ended well, or the run never started (rank 0 said why)
                self._report(event)
            return
        rank, why = failure
        run_id = self.started.run_id if self.started else None
        finished = next((e for e in self.held if isinstance(e, p.RunFinished)), None)
        summary = dict(finished.summary) if finished is not None else self._summary()
        if rank == 0 and finished is not None and finished.state == p.FAILED:  # rank 0 failed and said why
            reason = f"rank 0: {summary.get('reason') or why}"
        else:
            reason = f"rank {rank} {why}"
            self.engine.emit(p.Error(run_id, f"the run failed: {reason}; the other ranks were stopped"))
        summary.update(state=p.FAILED, reason=reason)
        if self.started is not None:
            try:
                RunFolder(Path(self.started.run_dir)).write_summary(summary)
            except OSError as err:
                self.engine.emit(p.Error(run_id, f"could not write summary.json: {err}"))
        self._report(p.RunFinished(run_id, p.FAILED, summary))
        self._report(p.StateChanged(run_id, p.FAILED, summary["reason"]))

    def _summary(self) -> dict:
        started, (step, epoch) = self.started, self.last
        return {"state": p.FAILED, "reason": "", "run_id": started.run_id if started else None,
                "run_dir": started.run_dir if started else None, "epochs": int(epoch), "steps": step,
                "device": started.device if started else "", "val": {}, "test": {}}

    def _report(self, event) -> None:
        if isinstance(event, p.StateChanged):
            self.engine.session.set_state(event.state, event.run_id, emit=False)
        self.engine.emit(event)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "an error"

