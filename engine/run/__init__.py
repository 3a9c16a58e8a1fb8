"""The torch side of the engine: the engine thread, run preparation, the loop, its callbacks, checkpoints, devices."""
