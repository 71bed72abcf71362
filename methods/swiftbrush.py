"""``swiftbrush``: the SwiftBrush student UNet (thuanz123/swiftbrush) with SD 2.1-base's text encoder and VAE.

One UNet evaluation at t = 999 with epsilon prediction and x0 = (z - sqrt(1 - a) eps) / sqrt(a) with the
hard-coded a = 0.0047 of the SwiftBrush trainer and inference code (the scheduler's alpha_bar_999 is 0.004660);
``base=`` points the text encoder, tokenizer, VAE and
scheduler at another copy of SD 2.1-base (a hub id or a local directory).
"""

from __future__ import annotations

from typing import ClassVar

from bench.options import Option
from methods.sd_onestep import SDOneStepGenerator

SWIFTBRUSH = "thuanz123/swiftbrush"
SD21_BASE = "stabilityai/stable-diffusion-2-1-base"
#: alpha_T of the official SwiftBrush trainer and inference (training.config.SWIFTBRUSH_ALPHA_T is the same).
SWIFTBRUSH_ALPHA_T = 0.0047


class SwiftBrushGenerator(SDOneStepGenerator):
    """SwiftBrush (CVPR 2024): a one-step student distilled from SD 2.1 by variational score distillation."""

    name = "swiftbrush"
    default_weights = SWIFTBRUSH
    base_repo = SD21_BASE
    alpha_T = SWIFTBRUSH_ALPHA_T
    options: ClassVar[dict[str, Option]] = {
        **SDOneStepGenerator.options,
        "base": Option(SD21_BASE, str, help="hub id or directory of the SD 2.1-base text encoder and VAE"),
    }
