"""``instaflow``: InstaFlow-0.9B (XCLIU/instaflow_0_9B_from_sd_1_5), a one-step rectified flow on SD 1.5.

The UNet is a velocity field v(x, t) with t in [0, 1000]; generation is one Euler step over the whole
interval from the noise at t = 1000: x = z + v(z, 1000), then the SD VAE decodes x. No stock diffusers
pipeline does this, so it runs on the shared one-step path with the rectified-flow update. The safety
checker is never loaded (blacked-out images would inflate FID).
"""

from __future__ import annotations

from methods.onestep import RECTIFIED_FLOW
from methods.sd_onestep import SDOneStepGenerator

INSTAFLOW = "XCLIU/instaflow_0_9B_from_sd_1_5"


class InstaFlowGenerator(SDOneStepGenerator):
    """InstaFlow-0.9B: one Euler step of a text-conditioned rectified flow distilled from SD 1.5."""

    name = "instaflow"
    arch = "sd15"
    default_weights = INSTAFLOW
    timestep = 1000.0
    prediction_type = RECTIFIED_FLOW
