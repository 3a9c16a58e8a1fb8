"""A run launched by torchrun or SLURM: every process of the job is one rank of one data-parallel run.

`torchrun … -m torchtui.cli train PRESET` and `srun … torchtui train PRESET` start `torchtui train` once per
rank. Each meets the others through torch.distributed's env:// rendezvous (RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT: torchrun sets them; SLURM's own variables are mapped onto them) and trains its shard of every
batch with the rank code the home-made launcher uses (distributed.Dist, Engine.run_rank). Rank 0 reports:
it serves the run over its Unix socket on its node, so `torchtui ps`, `attach` and `stop` there reach it,
and the commands it receives reach every rank at the next sync point.
"""

from __future__ import annotations

import os
import re
import signal
import threading
from dataclasses import dataclass

from torchtui.engine.errors import UserError

DEFAULT_PORT = 29500  # torch.distributed's usual MASTER_PORT, for SLURM jobs that do not set one


@dataclass(frozen=True)
class Launch:
    """This process's place in a launched job."""
    rank: int
    world: int
    local_rank: int
    master_addr: str
    master_port: int
    launcher: str  # "torchrun" or "slurm"


class LaunchError(UserError, ValueError):
    """The launcher's variables cannot start a run; the message names the variable and the fix."""


def launch_env(environ=None) -> Launch | None:
    """The job this process is a rank of, from torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK), else an srun
    step's (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID); None when it runs alone (no launcher, or one
    process)."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
        local = _int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else 0
        launcher = "torchrun"
    elif "SLURM_PROCID" in env and "SLURM_STEP_NUM_TASKS" in env:
        # A task of an srun step. The batch script itself has SLURM_PROCID 0 and SLURM_NTASKS too, but no step's
        # task count: `torchtui train` run there directly is one process, not rank 0 of a job that never comes.
        rank, world = _int(env, "SLURM_PROCID"), _int(env, "SLURM_STEP_NUM_TASKS")
        local = _int(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else 0
        launcher = "slurm"
    else:
        return None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise LaunchError(f"RANK {rank} is outside WORLD_SIZE {world}: check the launcher's variables")
    addr = env.get("MASTER_ADDR") or (first_host(env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
                                                 or env.get("SLURM_NODELIST") or "") if launcher == "slurm" else "")
    if not addr:
        raise LaunchError("MASTER_ADDR is not set: export MASTER_ADDR=<the first node's host name> (torchrun sets it; "
                          "under srun it is taken from SLURM_JOB_NODELIST when that is there)")
    port = _int(env, "MASTER_PORT") if env.get("MASTER_PORT") else DEFAULT_PORT
    return Launch(rank, world, local, addr, port, launcher)


def _int(env, name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise LaunchError(f"{name}={env[name]!r} is not a whole number: check the launcher's variables") from None


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list (node[01-04,07],gpu1 → node01), as `scontrol show hostnames` gives it."""
    match = re.match(r"([^,\[]*)(?:\[([^\]]*)\])?", nodelist.strip())
    if not match or not match.group(1) and not match.group(2):
        return ""
    prefix, ranges = match.group(1), match.group(2)
    if not ranges:
        return prefix
    return prefix + re.split(r"[-,]", ranges)[0]


def export(launch: Launch) -> None:
    """torch.distributed's env:// variables for this rank (SLURM's mapped onto them)."""
    os.environ.update(RANK=str(launch.rank), WORLD_SIZE=str(launch.world), LOCAL_RANK=str(launch.local_rank),
                      MASTER_ADDR=launch.master_addr, MASTER_PORT=str(launch.master_port))


def join(launch: Launch, config):
    """Meet the other ranks (env://) and return this rank's distributed.Dist: a GPU per process (LOCAL_RANK) with
    NCCL where the config trains on CUDA and this node has one, else the CPU with gloo."""
    import torch
    import torch.distributed as dist

    from torchtui.engine.run.distributed import TIMEOUT, Dist

    export(launch)
    wants = config.device.device
    cuda = torch.cuda.is_available() and (wants.startswith("cuda") or wants == "auto")
    if cuda:
        if launch.local_rank >= torch.cuda.device_count():
            raise LaunchError(f"LOCAL_RANK {launch.local_rank} has no GPU: this node has {torch.cuda.device_count()}; "
                              "start at most that many processes a node (--nproc-per-node)")
        device = torch.device("cuda", launch.local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(config.device.threads or cpu_share())
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, init_method="env://", rank=launch.rank, world_size=launch.world,
                            timeout=TIMEOUT)
    control = dist.new_group(backend="gloo", timeout=TIMEOUT) if backend != "gloo" else dist.group.WORLD
    here = Dist(rank=launch.rank, world=launch.world, device=device,
                devices=[launch.local_rank] if cuda else [], control=control)
    here.introduce()
    return here


def cpu_share() -> int:
    """Torch threads for a CPU rank: the cores this process may run on (SLURM binds a task to its own), shared
    with the node's other ranks that torchrun started (LOCAL_WORLD_SIZE)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, cores // local)


def train(engine, start, here) -> tuple[str, str] | None:
    """Train `start` as this rank (Engine.run_rank), then leave the process group once every rank has ended."""
    import torch.distributed as dist

    engine.session.busy = True
    engine.session.begin(start.request_id)
    try:
        failure = engine.run_rank(start, here)
    finally:
        engine.session.busy = False
    if failure is None:
        # Every rank ends its run before any takes the process group down (see distributed.rank_main).
        dist.barrier(group=here.control)
        dist.destroy_process_group()
    return failure


def in_thread(target, *args) -> tuple[threading.Thread, list]:
    """Run `target(*args)` in a thread (the main thread keeps the signals); its result lands in the list."""
    result: list = []

    def body():
        try:
            result.append(target(*args))
        except BaseException as err:  # noqa: BLE001 - reported by the caller as this rank's failure
            result.append((f"{type(err).__name__}: {err}", ""))

    thread = threading.Thread(target=body, name="torchtui-rank", daemon=True)
    thread.start()
    return thread, result


def follower_signals() -> None:
    """Ranks other than 0 leave Ctrl-C and SIGTERM to rank 0, which turns them into a Stop every rank applies at
    the next sync point (a rank that ended alone would leave the others waiting in a collective)."""
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)
