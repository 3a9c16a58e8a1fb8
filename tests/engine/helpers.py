"""Small configs and event helpers shared by the engine tests."""

from torchtui.engine import protocol as p


def tiny(source="moons", **train) -> dict:
    """A config that trains in well under a second per epoch on the CPU."""
    return {
        "name": f"tiny-{source}",
        "data": {"source": source, "n_samples": 256, "noise": 0.1},
        "model": {"layers": [16, 16]},
        "train": {"batch_size": 32, "epochs": 3, "lr": 0.01, **train},
        "device": {"device": "cpu"},
    }


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def ended(event) -> bool:
    return isinstance(event, p.RunFinished) or (
        isinstance(event, p.StateChanged) and event.run_id is None and event.state == p.FAILED)


def run_to_end(host, config, timeout=60, **start):
    """Start a run, collect every event until it ends; returns (events, RunFinished or None)."""
    seen = []
    host.send(p.Start(config=config, **start))
    last = host.wait_for(ended, timeout=timeout, seen=seen)
    # the StateChanged that follows RunFinished
    if isinstance(last, p.RunFinished):
        host.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state == last.state, timeout=10, seen=seen)
        return seen, last
    return seen, None
