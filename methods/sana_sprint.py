"""``sana-sprint``: Efficient-Large-Model/Sana_Sprint (1.6B default, 0.6B with ``variant=0.6B``), 1024 px.

SanaSprintPipeline as the model card calls it (``num_inference_steps=2``, everything else the pipeline's
defaults: guidance 4.5 fed to the guidance embedding, max_timesteps 1.5708, intermediate_timesteps 1.3, the
Gemma instruction prefix, 300 tokens). ``steps=1`` gives the one-step setting.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from bench.options import Option
from methods.recipe import RECIPE_OPTIONS, Recipe, RecipeGenerator, steps_option

SANA_SPRINT = "Efficient-Large-Model/Sana_Sprint_1.6B_1024px_diffusers"
SANA_SPRINT_SMALL = "Efficient-Large-Model/Sana_Sprint_0.6B_1024px_diffusers"


def sana_sprint(repo: str) -> Recipe:
    return Recipe(
        repo=repo, family="sana-sprint", resolution=1024, steps=2, guidance=4.5,
        # Resolution binning maps 1024 x 1024 to itself; it is off so toy sizes are not snapped to the table.
        call={"use_resolution_binning": False},
        source="https://nvlabs.github.io/Sana/docs/sana_sprint (SanaSprintPipeline.from_pretrained(...); "
               "pipeline(prompt=prompt, num_inference_steps=2)); other settings: SanaSprintPipeline defaults",
        licence="NSCL v2-custom (NVIDIA non-commercial licence); Gemma 2 text encoder under the Gemma Terms of Use",
        non_commercial=True,
    )


SANA_SPRINT_VARIANTS = {"1.6B": sana_sprint(SANA_SPRINT), "0.6B": sana_sprint(SANA_SPRINT_SMALL)}


class SanaSprintGenerator(RecipeGenerator):
    """SANA-Sprint: sCM trigflow steps with embedded guidance; ``steps=1`` or 2, ``variant=1.6B``/``0.6B``."""

    name = "sana-sprint"
    recipe = SANA_SPRINT_VARIANTS["1.6B"]
    variants = SANA_SPRINT_VARIANTS
    options: ClassVar[dict[str, Option]] = {
        **RECIPE_OPTIONS,
        "variant": Option("1.6B", str, tuple(SANA_SPRINT_VARIANTS), help="model size: 1.6B (default) or 0.6B"),
        "steps": steps_option(2, "sCM steps (the card's 2; 1 for one step)"),
    }

    def adjust(self, recipe: Recipe) -> Recipe:
        # The pipeline's intermediate timestep (1.3) exists only for two steps; other step counts pass None.
        if recipe.steps == 2:
            return recipe
        return dataclasses.replace(recipe, call={**recipe.call, "intermediate_timesteps": None})
