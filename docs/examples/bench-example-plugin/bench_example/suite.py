"""A suite of prompts that name a colour, scored against colour patches drawn on first use."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.cache_dir import cache_dir
from bench.options import Option
from bench.suites.base import PromptItem, Suite

PROMPTS = ["a red barn", "a green field", "a blue lake", "a yellow taxi", "a purple flower", "an orange sunset",
           "a black cat", "a white cloud"]
REFERENCE_COUNT = 16


def draw_patch(index: int, size: int = 32) -> np.ndarray:
    """A seeded patch: one random colour with a little noise (uint8, size x size x 3)."""
    rng = np.random.default_rng([7, index])
    colour = rng.uniform(0, 255, 3)
    return np.clip(colour + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)


class ColourWordsSuite(Suite):
    """The first ``num_prompts`` of eight colour prompts; 16 drawn reference patches; histogram distance."""

    name = "colour-words"
    options = {"num_prompts": Option(len(PROMPTS), int, help="how many prompts", minimum=1, maximum=len(PROMPTS))}
    default_metrics = ("histogram_distance",)
    comparable = False  # not a published protocol

    def prompts(self) -> list[PromptItem]:
        return [PromptItem(i, p) for i, p in enumerate(PROMPTS[: self.args["num_prompts"]])]

    def reference_images(self) -> list[Path]:
        from PIL import Image

        folder = cache_dir() / "bench-example" / f"patches-{REFERENCE_COUNT}"
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"{i:02d}.png" for i in range(REFERENCE_COUNT)]
        for i, path in enumerate(paths):
            if not path.exists():
                Image.fromarray(draw_patch(i)).save(path)
        return paths
