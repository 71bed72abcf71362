"""``swiftbrush``: the SwiftBrush student UNet (thuanz123/swiftbrush) with SD 2.1-base's text encoder and VAE.

One UNet evaluation at t = 999 with epsilon prediction; ``base=`` points the text encoder, tokenizer, VAE and
scheduler at another copy of SD 2.1-base (a hub id or a local directory).
"""

from __future__ import annotations

from typing import ClassVar

from bench.options import Option
from methods.loading import SDOneStepGenerator

SWIFTBRUSH = "thuanz123/swiftbrush"
SD21_BASE = "stabilityai/stable-diffusion-2-1-base"


class SwiftBrushGenerator(SDOneStepGenerator):
    """SwiftBrush (CVPR 2024): a one-step student distilled from SD 2.1 by variational score distillation."""

    name = "swiftbrush"
    default_weights = SWIFTBRUSH
    base_repo = SD21_BASE
    options: ClassVar[dict[str, Option]] = {
        **SDOneStepGenerator.options,
        "base": Option(SD21_BASE, str, help="hub id or directory of the SD 2.1-base text encoder and VAE"),
    }
