"""``lcm``: SimianLuo/LCM_Dreamshaper_v7, the latent consistency model of the LCM paper.

The UNet takes the guidance scale w as an embedded input (no classifier-free branch); the LCMScheduler
runs 1-4 steps (4 by default, as the model card does) and re-noises between steps with noise drawn from each
sample's own generator (:func:`methods.recipe.sample_generators`).
"""

from __future__ import annotations

from typing import ClassVar

from bench.options import Option
from methods.recipe import RECIPE_OPTIONS, Recipe, RecipeGenerator, steps_option

LCM_DREAMSHAPER = "SimianLuo/LCM_Dreamshaper_v7"

LCM_RECIPE = Recipe(
    repo=LCM_DREAMSHAPER, family="lcm", resolution=0, steps=4, guidance=8.0,
    call={"original_inference_steps": 50},
    source="https://huggingface.co/SimianLuo/LCM_Dreamshaper_v7 README.md (num_inference_steps=4, recommended "
           "1-8; guidance_scale=8.0, embedded; lcm_origin_steps=50; no height/width: the pipeline's default "
           "size); scheduler: the repository's LCMScheduler config",
    licence="mit",
)


class LCMGenerator(RecipeGenerator):
    """LCM-Dreamshaper-v7 with its embedded guidance; ``steps=`` picks 1-4 steps."""

    name = "lcm"
    recipe = LCM_RECIPE
    options: ClassVar[dict[str, Option]] = {
        **RECIPE_OPTIONS,
        "steps": steps_option(4, "LCM steps (the card's default is 4; 1-4 are the few-step settings)"),
        "guidance": Option(8.0, float, help="embedded guidance scale w (the card's 8.0)", minimum=0),
    }
