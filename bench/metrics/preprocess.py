"""The evaluation transform applied to generated and reference images alike.

Centre crop to the short side, then PIL Lanczos resize to ``size`` x ``size`` (the GigaGAN / SBv2
evaluation transform, 256 px by default). Resolution, crop and filter are settable: a suite can expose them
to users with :func:`preprocess_options` and build the transform with :meth:`Preprocess.from_args`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.options import Option

_RESAMPLE = {"lanczos": 1, "bicubic": 3, "bilinear": 2, "nearest": 0}  # PIL.Image.Resampling values


def preprocess_options(size: int = 256, center_crop: bool = True, resample: str = "lanczos") -> dict[str, Option]:
    """Option specs ``eval_size`` (0 keeps the cropped size), ``eval_crop`` and ``eval_resample``."""
    return {
        "eval_size": Option(size, int, help="side of the evaluation images in pixels (0: no resize)", minimum=0),
        "eval_crop": Option(center_crop, bool, help="centre crop to the short side before resizing"),
        "eval_resample": Option(resample, str, tuple(_RESAMPLE), "PIL resampling filter of the resize"),
    }


@dataclass(frozen=True)
class Preprocess:
    """Evaluation transform settings; ``size=None`` keeps the (cropped) image size."""

    size: int | None = 256
    center_crop: bool = True
    resample: str = "lanczos"

    def __post_init__(self) -> None:
        if self.size is not None and self.size < 1:
            raise BenchError(f"evaluation image size must be positive, got {self.size}")
        if self.resample not in _RESAMPLE:
            raise BenchError(f"unknown resampling filter {self.resample!r}; use one of {', '.join(_RESAMPLE)}")

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> Preprocess:
        """From resolved :func:`preprocess_options` values."""
        size = args.get("eval_size", 256)
        return cls(size=int(size) or None if size is not None else None, center_crop=bool(args.get("eval_crop", True)),
                   resample=str(args.get("eval_resample", "lanczos")))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __call__(self, image: Any) -> np.ndarray:
        """PIL image or uint8 HxWx3 array -> uint8 HxWx3 array."""
        from PIL import Image

        img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
        img = img.convert("RGB")
        if self.center_crop:
            w, h = img.size
            s = min(w, h)
            left, top = (w - s) // 2, (h - s) // 2
            img = img.crop((left, top, left + s, top + s))
        if self.size is not None and img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), resample=_RESAMPLE[self.resample])
        return np.asarray(img, dtype=np.uint8)
