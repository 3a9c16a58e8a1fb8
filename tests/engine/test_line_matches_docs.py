"""On `line` with full-batch SGD, the engine trains exactly like the docs' hand-written loop."""

import torch
from torch import nn

from torchtui.engine import presets
from torchtui.engine import protocol as p
from torchtui.engine.host import InProcessHost
from torchtui.engine.run.checkpoint import load_checkpoint

from .helpers import of, run_to_end

EPOCHS = 60


def hand_written_loop():
    """The PyTorch workflow tutorial's loop, verbatim in spirit: seed, nn.Linear, L1Loss, SGD(lr=0.01)."""
    X = torch.arange(0, 1, 0.02).unsqueeze(1)
    y = 0.7 * X + 0.3
    split = int(0.8 * len(X))
    X_train, y_train = X[:split], y[:split]
    torch.manual_seed(42)
    model = nn.Linear(1, 1)
    loss_fn = nn.L1Loss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    for _ in range(EPOCHS):
        model.train()
        loss = loss_fn(model(X_train), y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, model.weight.item(), model.bias.item()


def test_engine_equals_hand_written_loop(tmp_path):
    config = presets.load("line", [f"train.epochs={EPOCHS}"]).to_dict()
    with InProcessHost(str(tmp_path)) as host:
        events, done = run_to_end(host, config)
    assert done.state == p.FINISHED
    losses = [v for e in of(events, p.StepStats) for v in e.loss]
    want_losses, want_w, want_b = hand_written_loop()
    assert len(losses) == EPOCHS
    assert max(abs(a - b) for a, b in zip(losses, want_losses)) < 1e-6
    state = load_checkpoint(tmp_path / done.summary["run_id"] / "checkpoints" / "last.pt")["model"]
    assert abs(state["head.weight"].item() - want_w) < 1e-6
    assert abs(state["head.bias"].item() - want_b) < 1e-6
