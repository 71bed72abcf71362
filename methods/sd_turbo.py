"""``sd-turbo``: stabilityai/sd-turbo, one UNet evaluation at t = 999, no guidance."""

from __future__ import annotations

from methods.sd_onestep import SDOneStepGenerator

SD_TURBO = "stabilityai/sd-turbo"


class SDTurboGenerator(SDOneStepGenerator):
    """SD-Turbo: the SD 2.1 architecture distilled (adversarial diffusion distillation) for one step."""

    name = "sd-turbo"
    default_weights = SD_TURBO
