"""The evaluation transform applied to generated and reference images alike.

Centre crop to the short side, then PIL Lanczos resize to ``size`` x ``size`` (the GigaGAN / SBv2
evaluation transform, 256 px by default). Resolution, crop and filter are settable: a suite can expose them
to users with :func:`preprocess_options` and build the transform with :meth:`Preprocess.from_args`.

Crop offset (``crop_rounding``): ``"floor"`` puts the square at ``(long - short) // 2``; ``"round"`` at
``int(round((long - short) / 2))`` with Python's round (halves to even), which is what torchvision's
``center_crop`` computes and what the SBv2 release and DMD2 used: 1 px further right/down than "floor" when
``(long - short) % 4 == 3``, the same otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.options import Option

_RESAMPLE = {"lanczos": 1, "bicubic": 3, "bilinear": 2, "nearest": 0}  # PIL.Image.Resampling values
CROP_ROUNDING = ("floor", "round")


def preprocess_options(size: int = 256, center_crop: bool = True, resample: str = "lanczos",
                       crop_rounding: str | None = "floor") -> dict[str, Option]:
    """Option specs ``eval_size`` (0 keeps the cropped size), ``eval_crop``, ``eval_resample`` and
    ``eval_crop_rounding`` (None: the suite decides, e.g. from its protocol profile)."""
    return {
        "eval_size": Option(size, int, help="side of the evaluation images in pixels (0: no resize)", minimum=0),
        "eval_crop": Option(center_crop, bool, help="centre crop to the short side before resizing"),
        "eval_resample": Option(resample, str, tuple(_RESAMPLE), "PIL resampling filter of the resize"),
        "eval_crop_rounding": Option(crop_rounding, str, help="crop offset: floor, or round (torchvision's, "
                                                              "halves to even)"),
    }


def crop_box(width: int, height: int, rounding: str = "floor") -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centred square with the short side's length."""
    s = min(width, height)
    if rounding == "round":
        left, top = int(round((width - s) / 2.0)), int(round((height - s) / 2.0))
    else:
        left, top = (width - s) // 2, (height - s) // 2
    return left, top, left + s, top + s


@dataclass(frozen=True)
class Preprocess:
    """Evaluation transform settings; ``size=None`` keeps the (cropped) image size."""

    size: int | None = 256
    center_crop: bool = True
    resample: str = "lanczos"
    crop_rounding: str = "floor"

    def __post_init__(self) -> None:
        if self.size is not None and self.size < 1:
            raise BenchError(f"evaluation image size must be positive, got {self.size}")
        if self.resample not in _RESAMPLE:
            raise BenchError(f"unknown resampling filter {self.resample!r}; use one of {', '.join(_RESAMPLE)}")
        if self.crop_rounding not in CROP_ROUNDING:
            raise BenchError(f"unknown crop rounding {self.crop_rounding!r}; use one of {', '.join(CROP_ROUNDING)}")

    @classmethod
    def from_args(cls, args: Mapping[str, Any], crop_rounding: str = "floor") -> Preprocess:
        """From resolved :func:`preprocess_options` values (``crop_rounding`` when the option is unset)."""
        size = args.get("eval_size", 256)
        return cls(size=int(size) or None if size is not None else None, center_crop=bool(args.get("eval_crop", True)),
                   resample=str(args.get("eval_resample", "lanczos")),
                   crop_rounding=str(args.get("eval_crop_rounding") or crop_rounding))

    def as_dict(self) -> dict[str, Any]:
        """The settings; ``crop_rounding`` only when there is a crop (it means nothing otherwise)."""
        out = asdict(self)
        if not self.center_crop:
            del out["crop_rounding"]
        return out

    def __call__(self, image: Any) -> np.ndarray:
        """PIL image or uint8 HxWx3 array -> uint8 HxWx3 array."""
        from PIL import Image

        img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
        img = img.convert("RGB")
        if self.center_crop and img.size[0] != img.size[1]:
            img = img.crop(crop_box(*img.size, self.crop_rounding))
        if self.size is not None and img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), resample=_RESAMPLE[self.resample])
        return np.asarray(img, dtype=np.uint8)
