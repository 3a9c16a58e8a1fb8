"""torchtui engine: configuration, data, models and the training loop; no UI imports."""
