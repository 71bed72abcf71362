"""Per-prompt diversity (the SBv2 paper's quality/diversity argument as a number): for each prompt, the S images
generated from it (S seeds), in a feature space (DINOv2 by default, or CLIP), scored by

* the Vendi score (Friedman & Dieng 2023): exp of the Shannon entropy of the eigenvalues of K / S, where
  K = X X^T is the cosine-similarity matrix of the L2-normalised features (1: all images alike; S: all
  orthogonal), and
* the mean pairwise cosine distance 1 - cos over the S (S - 1) / 2 pairs,

each averaged over prompts. Samples are grouped by prompt text on any suite (the ``diversity`` suite repeats
each prompt with S seeds; on another suite, prompts that occur once are left out); the interval leaves out
whole prompts (:mod:`bench.bootstrap`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.metrics.base import WEIGHTS_OPTION, FeatureSpec, Metric, MetricContext, MetricResult, SampleNeeds
from bench.options import Option


def _unit_rows(features: Any) -> np.ndarray:
    x = np.asarray(features, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)


def vendi_score(features: Any) -> float:
    """Vendi score of feature rows with the cosine kernel: exp(-sum l_i log l_i), l = eigenvalues of X X^T / n
    (X: L2-normalised rows); computed from the smaller of X X^T and X^T X, which share their nonzero spectrum."""
    x = _unit_rows(features)
    n = len(x)
    gram = x @ x.T if n <= x.shape[1] else x.T @ x
    lam = np.clip(np.linalg.eigvalsh(gram / n), 0.0, None)
    lam = lam[lam > 0]
    return float(np.exp(-(lam * np.log(lam)).sum()))


def mean_pairwise_cosine_distance(features: Any) -> float:
    """Mean of 1 - cos(x_i, x_j) over pairs i < j."""
    x = _unit_rows(features)
    n = len(x)
    if n < 2:
        raise ValueError("pairwise distances need at least 2 rows")
    s = x.sum(0)
    pair_sum = (float(s @ s) - float((x * x).sum())) / 2.0  # sum of cos over i < j
    return 1.0 - pair_sum / (n * (n - 1) / 2.0)


def per_group(features: np.ndarray, labels: list[str]) -> dict[str, np.ndarray]:
    """Feature rows by group label, in first-seen order."""
    order: dict[str, list[int]] = {}
    for i, g in enumerate(labels):
        order.setdefault(g, []).append(i)
    return {g: features[idx] for g, idx in order.items()}


class Diversity(Metric):
    """Vendi score and mean pairwise cosine distance of each prompt's images, averaged over prompts."""

    name = "diversity"
    keys = ("vendi", "pairwise_distance")
    needs_reference = False
    higher_is_better = {"vendi": True, "pairwise_distance": True}
    bootstrap_unit = "prompt"
    options = {
        "features": Option("dinov2", str, None, "feature network: dinov2 (default), hf_clip, clip or any registered one"),
        "weights": WEIGHTS_OPTION,
        "seed": Option(0, int, minimum=0),
        "size": Option("full", str, ("full", "tiny"), "tiny: toy-size dinov2 / hf_clip (random weights, tests)"),
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        from bench import plugins

        plugins.current().extractors.get(self.args["features"])

    def spec(self) -> FeatureSpec:
        from bench.metrics.distribution import _transform

        opts: dict[str, Any] = {"weights": self.args["weights"], "seed": self.args["seed"]}
        own = self.args["features"] in ("dinov2", "hf_clip")  # networks that resize the image themselves
        if self.args["size"] != "full":
            if not own:
                raise BenchError(f"diversity: size={self.args['size']} exists only for features=dinov2 or hf_clip")
            opts["size"] = self.args["size"]
        return FeatureSpec(self.args["features"], opts, transform=_transform(True) if own else None)

    def feature_specs(self) -> list[FeatureSpec]:
        return [self.spec()]

    def min_samples(self) -> SampleNeeds:
        return SampleNeeds(2, 0, "2 images of one prompt")

    def compute(self, ctx: MetricContext) -> MetricResult:
        feats = ctx.image_features(self.spec(), "generated")
        groups = {g: x for g, x in per_group(feats, list(ctx.prompts)).items() if len(x) >= 2}
        if not groups:
            raise BenchError("diversity needs at least 2 images of one prompt; use the diversity suite "
                             "(--suite diversity) or more samples per prompt")
        vendi = [vendi_score(x) for x in groups.values()]
        dist = [mean_pairwise_cosine_distance(x) for x in groups.values()]
        sizes = sorted({len(x) for x in groups.values()})
        return MetricResult({"vendi": float(np.mean(vendi)), "pairwise_distance": float(np.mean(dist))},
                            self._info(features=self.args["features"], prompts=len(groups), images_per_prompt=sizes,
                                       kernel="cosine"))
