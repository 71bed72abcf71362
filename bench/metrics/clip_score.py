"""Text-image agreement scores computed as the cosine between paired image and text embeddings.

CLIP score (the SBv2 protocol): open_clip ViT-g-14 / laion2b_s12b_b42k, text "A photo depicts " + caption,
mean raw cosine (about 0.30; ``percent=true`` reports it x 100, as some other tools do, for display only).
HPS (human preference score, :mod:`bench.metrics.hps`): the same computation on the HPS model, x 100 and
averaged per prompt group (style). ``weights=random`` gives seeded random towers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.metrics.base import WEIGHTS_OPTION, FeatureSpec, Metric, MetricContext, MetricResult
from bench.options import Option


def paired_cosine(image_features: Any, text_features: Any) -> np.ndarray:
    """Row-wise cosine similarity of two equally long feature arrays, in float64."""
    a = np.asarray(image_features, np.float64)
    b = np.asarray(text_features, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"image and text features differ in shape: {a.shape} vs {b.shape}")
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def group_means(scores: np.ndarray, groups: list[str] | None) -> dict[str, float]:
    """Mean score per group label (empty when there are no groups)."""
    if not groups:
        return {}
    labels = np.asarray(groups)
    return {g: float(scores[labels == g].mean()) for g in sorted(set(groups))}


#: Precision of the CLIP towers: float16 autocast on CUDA ("amp", the default; float32 on CPUs), or float32.
PRECISION_OPTION = Option("amp", str, ("amp", "fp32"),
                          help="amp: float16 autocast on CUDA (float32 on CPUs); fp32: float32 everywhere")


class _PairedScore(Metric):
    """Mean cosine between each image's and its text's embedding from one CLIP-style network (x scale)."""

    needs_reference = False

    def scale(self) -> float:
        return 1.0

    def extractor_options(self) -> dict[str, Any]:
        """Options of the CLIP-style network (everything its features depend on)."""
        opts = {"weights": self.args["weights"], "model": self.args["model"], "seed": self.args["seed"],
                "precision": self.args["precision"]}
        if self.args["weights"] != "random":
            opts["pretrained"] = self.args["pretrained"]
        return opts

    def spec(self) -> FeatureSpec:
        return FeatureSpec("clip", self.extractor_options())

    def feature_specs(self) -> list[FeatureSpec]:
        return [self.spec()]

    def texts(self, ctx: MetricContext) -> list[str]:
        return list(ctx.prompts)

    def compute(self, ctx: MetricContext) -> MetricResult:
        spec = self.spec()
        img = ctx.image_features(spec, "generated")
        txt = ctx.text_features(spec, self.texts(ctx))
        scores = paired_cosine(img, txt) * self.scale()
        key = self.keys[0]
        values = {key: float(scores.mean())}
        values.update({f"{key}/{g}": v for g, v in group_means(scores, ctx.groups).items()})
        info = {k: v for k, v in spec.options.items() if k != "weights"}
        return MetricResult(values, self._info(scale=self.scale(), n=len(scores), **info))


class ClipScore(_PairedScore):
    """Mean raw cosine between CLIP embeddings of each image and ``prefix + prompt``."""

    name = "clip_score"
    keys = ("clip_score",)
    higher_is_better = {"clip_score": True}
    options = {
        "weights": WEIGHTS_OPTION,
        "model": Option("ViT-g-14", str),
        "pretrained": Option("laion2b_s12b_b42k", str),
        "prefix": Option("A photo depicts ", str, help="text put before each caption"),
        "percent": Option(False, bool, help="report x 100 (display convention of other tools; not the protocol)"),
        "precision": PRECISION_OPTION,
        "seed": Option(0, int, minimum=0),
    }

    def scale(self) -> float:
        return 100.0 if self.args["percent"] else 1.0

    def texts(self, ctx: MetricContext) -> list[str]:
        return [self.args["prefix"] + p for p in ctx.prompts]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "text_template": self.args["prefix"] + "{caption}"}
