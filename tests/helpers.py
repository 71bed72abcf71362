"""Helpers shared by the test modules."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.testing import run_cli

__all__ = ["FeatureContext", "noisy_images", "run_cli"]


class FeatureContext:
    """A metric context: generated and reference images through the project's extractors, each with its
    spec's transform (no run directory)."""

    def __init__(self, gen: np.ndarray, ref: np.ndarray) -> None:
        self.images = {"generated": gen, "reference": ref}
        self.prompts, self.groups, self.generator, self.device = [""] * len(gen), None, None, "cpu"
        self.built: dict[str, Any] = {}

    def extractor(self, spec: Any) -> Any:
        from bench.metrics.extractors import build_extractor

        ext = build_extractor(spec)
        return self.built.setdefault(ext.key(), ext)

    def image_features(self, spec: Any, which: str) -> np.ndarray:
        from bench.run_features import features_in_batches

        imgs = np.stack([spec.transform(im) for im in self.images[which]])
        return features_in_batches(self.extractor(spec), imgs)

    def text_features(self, spec: Any, texts: list[str]) -> np.ndarray:
        return self.extractor(spec).text_features(texts)


def noisy_images(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """``n`` seeded uint8 images of h x w: a random colour per image plus noise."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (n, 1, 1, 3))
    return np.clip(base + rng.normal(0, 50, (n, h, w, 3)), 0, 255).astype(np.uint8)
