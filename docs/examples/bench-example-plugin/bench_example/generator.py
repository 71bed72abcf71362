"""A generator without parameters: each image is the colour its prompt names, plus some of the given noise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.generator import Generator
from bench.options import Option

#: The colour words the generator knows, as RGB in [0, 1]; a prompt without one gets grey.
COLOURS = {
    "red": (0.9, 0.1, 0.1), "green": (0.1, 0.8, 0.2), "blue": (0.1, 0.2, 0.9), "yellow": (0.95, 0.9, 0.1),
    "purple": (0.6, 0.1, 0.7), "orange": (1.0, 0.55, 0.0), "black": (0.05, 0.05, 0.05), "white": (0.95, 0.95, 0.95),
}
GREY = (0.5, 0.5, 0.5)
SIZE = 32


def prompt_colour(prompt: str) -> tuple[float, float, float]:
    """The colour of the first colour word in ``prompt`` (grey when there is none)."""
    words = prompt.lower().replace(",", " ").split()
    return next((COLOURS[w] for w in words if w in COLOURS), GREY)


class ColourWordsGenerator(Generator):
    """Images of SIZE x SIZE pixels: the prompt's colour plus ``noise_scale`` times the initial noise."""

    name = "colour-words"
    options = {"noise_scale": Option(0.1, float, help="how much of the noise shows", minimum=0.0, maximum=1.0)}

    def load(self, device: Any, dtype: Any) -> None:
        self.device, self.dtype = device, dtype  # nothing to load: no parameters

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (3, SIZE, SIZE)

    @property
    def image_size(self) -> tuple[int, int]:
        return (SIZE, SIZE)

    def encode_prompts(self, prompts: Sequence[str]) -> Any:
        import torch

        return torch.tensor([prompt_colour(p) for p in prompts], device=self.device, dtype=self.dtype)

    def denoise(self, noise: Any, conditioning: Any) -> Any:
        return conditioning[:, :, None, None] + self.args["noise_scale"] * noise

    def decode(self, latents: Any) -> Any:
        return latents.clamp(0.0, 1.0)

    def describe(self) -> dict[str, Any]:
        # "weights" is required: "none" says there are no parameters (not "random", not "pretrained")
        return {**super().describe(), "weights": "none", "colours": sorted(COLOURS)}
