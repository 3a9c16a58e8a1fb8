"""`torchtui stop RUN`: stop a live run after its current step (last.pt is saved); its server then ends."""

from __future__ import annotations

from torchtui.cli.common import EXIT_OK, UsageError

HELP = "stop a live run (last.pt saved)"
TIMEOUT_S = 120.0


def add_arguments(parser) -> None:
    parser.add_argument("run", help="run id (a prefix is enough) or server pid, as `torchtui ps` lists them")


def run(args) -> int:
    from torchtui.engine import live
    from torchtui.engine import protocol as p
    from torchtui.engine.host import ServerHost

    try:
        info = live.find(args.run)
    except live.LiveRunError as err:
        raise UsageError(f"torchtui stop: {err}") from None
    host = ServerHost(info)
    try:
        host.send(p.Stop() if info.run_id else p.Shutdown())
        host.wait_for(lambda e: isinstance(e, p.RunFinished) or (isinstance(e, p.StateChanged) and e.state in
                      (p.IDLE, *p.END_STATES)) or isinstance(e, p.Error), timeout=TIMEOUT_S)
    except TimeoutError:
        raise UsageError(f"torchtui stop: run {info.run_id} did not stop within {TIMEOUT_S:.0f} s") from None
    finally:
        host.detach()
    print(f"stopped {info.run_id or f'server {info.pid}'}" + (f"; continue it with `torchtui resume {info.run_dir}`"
                                                              if info.run_dir else ""))
    return EXIT_OK
