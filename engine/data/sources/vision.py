"""torchvision datasets from a folder on disk (MNIST, FashionMNIST, CIFAR10, ImageFolder); never downloads."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from torchtui.engine.config import DataConfig
from torchtui.engine.data.arrays import Arrays
from torchtui.engine.errors import DataError


def import_torchvision(field: str):
    """torchvision, or a DataError saying how to get a build that matches this torch."""
    try:
        import torchvision
    except Exception as err:  # noqa: BLE001 - a mismatched build fails with RuntimeError, not ImportError
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(f"{field}: torchvision is not usable here ({reason}); install the torchvision build "
                        f"that matches torch {torch.__version__}") from None
    return torchvision


def read_torchvision(cfg: DataConfig) -> Arrays | tuple[Any, Any, Any]:
    """MNIST, FashionMNIST or CIFAR10 as arrays; ImageFolder as (train, val, test) datasets."""
    tv = import_torchvision("data.dataset")
    if cfg.dataset == "ImageFolder":
        return _image_folders(tv, cfg)
    cls = getattr(tv.datasets, cfg.dataset)
    parts = []
    for train in (True, False):
        try:
            ds = cls(cfg.path, train=train, download=False)
        except (RuntimeError, OSError) as err:
            raise DataError(f"data.path: {cfg.dataset} not found under '{cfg.path}' ({str(err).strip()[:120]}); "
                            "torchtui never downloads: fetch the files on a machine with internet and copy them "
                            "there") from None
        x = torch.as_tensor(np.asarray(ds.data))
        if x.dim() == 4:  # CIFAR stores (N, H, W, C)
            x = x.permute(0, 3, 1, 2)
        elif x.dim() == 3:
            x = x.unsqueeze(1)
        y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
        if cfg.limit:
            x, y = x[: cfg.limit], y[: cfg.limit]
        parts.append((x.float().div_(255.0).contiguous(), y))
        names = [str(c) for c in ds.classes]
    (x, y), test = parts
    return Arrays(x, y, "binary" if len(names) == 2 else "multiclass", names, test=test)


def _image_folders(tv, cfg: DataConfig):
    """root/train, root/val, root/test when present (ImageFolder each), else root itself, split later."""
    from pathlib import Path

    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path: no folder '{cfg.path}' (ImageFolder wants root/<class>/<image files>)")
    steps = [tv.transforms.Resize((cfg.image_size, cfg.image_size), antialias=True)] if cfg.image_size else []
    # Images decoded by torchvision's own decoders (libjpeg-turbo, libpng) to uint8 tensors, then scaled to 0–1
    # as ToTensor does; PIL only for a format they do not read.
    transform = tv.transforms.Compose([*steps, tv.transforms.ConvertImageDtype(torch.float32)])

    def folder(path: Path):
        try:
            return tv.datasets.ImageFolder(str(path), transform=transform, loader=decode_image)
        except (FileNotFoundError, RuntimeError) as err:
            raise DataError(f"data.path: '{path}' is not an image folder ({err})") from None

    if (root / "train").is_dir():
        named = {name: folder(root / name) for name in ("train", "val", "test") if (root / name).is_dir()}
        return named["train"], named.get("val"), named.get("test")
    return folder(root), None, None


def decode_image(path: str) -> torch.Tensor:
    """An image file as a (3, H, W) uint8 tensor (RGB, as ImageFolder's PIL loader gives)."""
    import torchvision.io as tio

    try:
        return tio.decode_image(tio.read_file(path), mode=tio.ImageReadMode.RGB)
    except RuntimeError:  # a format torchvision does not decode (BMP, TIFF, …)
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        with open(path, "rb") as handle:
            return pil_to_tensor(Image.open(handle).convert("RGB"))


def read(cfg: DataConfig) -> tuple[Arrays | tuple[Any, Any, Any], list[str]]:
    return read_torchvision(cfg), []
