"""``pixart-dmd``: PixArt-alpha/PixArt-Alpha-DMD-XL-2-512x512, a one-step DMD student of PixArt-alpha 512 px.

As the authors' demo (PixArt-sigma repository, app/app_pixart_dmd.py) runs it: the T5 text encoder, tokenizer
and VAE of PixArt-alpha/PixArt-XL-2-1024-MS, the student transformer and its DDPMScheduler from the DMD
repository, one step at timestep 400 from pure noise, guidance 1 (off), 120 T5 tokens, 512 px. The one-step
update keeps the scheduler's predicted x0 (the stock PixArtAlphaPipeline does this at one step).
"""

from __future__ import annotations

from methods.recipe import Recipe, RecipeGenerator

PIXART_BASE = "PixArt-alpha/PixArt-XL-2-1024-MS"
PIXART_DMD = "PixArt-alpha/PixArt-Alpha-DMD-XL-2-512x512"

PIXART_DMD_RECIPE = Recipe(
    repo=PIXART_BASE, family="pixart", resolution=512, steps=1, guidance=1.0, timesteps=(400,),
    unet_repo=PIXART_DMD, unet_file="transformer/diffusion_pytorch_model.bin", student_scheduler=True,
    # Resolution binning maps 512 x 512 to itself; it is off so toy sizes are not snapped to the 512 table.
    call={"max_sequence_length": 120, "use_resolution_binning": False},
    source="https://github.com/PixArt-alpha/PixArt-sigma app/app_pixart_dmd.py (pipeline_load_from "
           "PixArt-XL-2-1024-MS, DDPMScheduler from the DMD repository, timesteps=[400], guidance_scale=1, "
           "num_inference_steps=1, max_sequence_length=120, 512 x 512)",
    licence="openrail (PixArt-Alpha-DMD-XL-2-512x512; text encoder and VAE from PixArt-XL-2-1024-MS, openrail++)",
)


class PixArtDMDGenerator(RecipeGenerator):
    """PixArt-alpha DMD: one DDPM x0 prediction at t = 400, 512 px."""

    name = "pixart-dmd"
    recipe = PIXART_DMD_RECIPE
