"""``flux-schnell``: black-forest-labs/FLUX.1-schnell, a timestep-distilled rectified-flow transformer (1-4 steps).

FluxPipeline as the model card calls it: no guidance, T5 sequence of 256 tokens, 1024 px; ``steps=`` picks
1-4 Euler steps on the repository's FlowMatchEulerDiscreteScheduler (4 by default, the card's).
"""

from __future__ import annotations

from typing import ClassVar

from bench.options import Option
from methods.recipe import RECIPE_OPTIONS, Recipe, RecipeGenerator, steps_option

FLUX_SCHNELL = "black-forest-labs/FLUX.1-schnell"

FLUX_SCHNELL_RECIPE = Recipe(
    repo=FLUX_SCHNELL, family="flux", resolution=1024, steps=4, guidance=0.0,
    call={"max_sequence_length": 256},
    source="https://huggingface.co/black-forest-labs/FLUX.1-schnell README.md (FluxPipeline: guidance_scale=0.0, "
           "num_inference_steps=4, max_sequence_length=256; the pipeline's default 1024 px)",
    licence="apache-2.0",
)


class FluxSchnellGenerator(RecipeGenerator):
    """FLUX.1-schnell with the card's settings; ``steps=1..4``."""

    name = "flux-schnell"
    recipe = FLUX_SCHNELL_RECIPE
    options: ClassVar[dict[str, Option]] = {
        **RECIPE_OPTIONS,
        "steps": steps_option(4, "Euler steps, 1-4 (the card's default is 4)"),
    }
