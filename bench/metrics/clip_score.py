"""Text-image agreement scores computed as the cosine between paired image and text embeddings.

CLIP score (the SBv2 protocol): open_clip ViT-g-14 / laion2b_s12b_b42k, text "A photo depicts " + caption,
mean raw cosine (about 0.30). HPS (human preference score): the same computation on the HPS model,
x 100 and averaged per prompt group (HPSv2 style). ``weights=random`` gives seeded random towers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.metrics.base import WEIGHTS_OPTION, Metric, MetricContext, MetricResult
from bench.options import Option


def paired_cosine(image_features: np.ndarray, text_features: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two equally long feature arrays."""
    a = np.asarray(image_features, np.float64)
    b = np.asarray(text_features, np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def group_means(scores: np.ndarray, groups: list[str] | None) -> dict[str, float]:
    """Mean score per group label (empty when there are no groups)."""
    if not groups:
        return {}
    labels = np.asarray(groups)
    return {g: float(scores[labels == g].mean()) for g in sorted(set(groups))}


class _PairedScore(Metric):
    key: str = ""
    scale: float = 1.0

    def extractor(self) -> dict[str, Any]:
        spec = {"kind": "clip", "weights": self.args["weights"], "model": self.args["model"], "seed": self.args["seed"]}
        if self.args["weights"] != "random":
            spec["pretrained"] = self.args["pretrained"]
        return spec

    def texts(self, ctx: MetricContext) -> list[str]:
        return list(ctx.prompts)

    def compute(self, ctx: MetricContext) -> MetricResult:
        spec = self.extractor()
        img = ctx.image_features(spec, "generated")
        txt = ctx.text_features(spec, self.texts(ctx))
        scores = paired_cosine(img, txt) * self.scale
        values = {self.key: float(scores.mean())}
        values.update({f"{self.key}/{g}": v for g, v in group_means(scores, ctx.groups).items()})
        return MetricResult(values, self._info(**{k: v for k, v in spec.items() if k != "kind"}))


class ClipScore(_PairedScore):
    """Mean raw cosine between CLIP embeddings of each image and ``prefix + prompt``."""

    name = "clip_score"
    keys = ("clip_score",)
    key = "clip_score"
    options = {
        "weights": WEIGHTS_OPTION,
        "model": Option("ViT-g-14", str),
        "pretrained": Option("laion2b_s12b_b42k", str),
        "prefix": Option("A photo depicts ", str),
        "seed": Option(0, int),
    }

    def texts(self, ctx: MetricContext) -> list[str]:
        return [self.args["prefix"] + p for p in ctx.prompts]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "text_template": self.args["prefix"] + "{caption}"}
