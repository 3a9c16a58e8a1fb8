"""scikit-learn's bundled datasets (digits, iris, wine, breast_cancer), read offline."""

from __future__ import annotations

import torch

from torchtui.engine.config import DataConfig
from torchtui.engine.data.arrays import Arrays
from torchtui.engine.errors import DataError

DATASETS_EXTRA = "pip install 'torchtui[datasets]'"


def read_bundled(cfg: DataConfig) -> tuple[Arrays, list[str]]:
    """digits (8×8 images), iris, wine or breast_cancer, shipped inside scikit-learn: nothing is downloaded."""
    try:
        from sklearn import datasets as skd
    except ImportError:
        raise DataError(f"data.source: '{cfg.source}' is read from scikit-learn, which is not installed "
                        f"({DATASETS_EXTRA})") from None
    bunch = getattr(skd, f"load_{cfg.source}")()
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    if cfg.source == "digits":
        # 8×8 images with 17 grey levels (0–16), as one channel in [0, 1].
        x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
        features = [f"px{r}{c}" for r in range(8) for c in range(8)]
    else:
        x = torch.as_tensor(bunch.data, dtype=torch.float32)
        features = [str(name) for name in bunch.feature_names]
    if cfg.limit:
        x, y = x[: cfg.limit], y[: cfg.limit]
    names = [str(name) for name in bunch.target_names]
    task = "binary" if len(names) == 2 else "multiclass"
    return Arrays(x, y, task, names), features


read = read_bundled  # the sources table calls read(cfg)
