"""Improved precision and recall (Kynkaanniemi et al. 2019) and density and coverage (Naeem et al. 2020).

All use squared Euclidean distances between feature rows and the radius of each reference (or generated)
sample to its k-th nearest neighbour in its own set (itself excluded). Precision and recall count a point
inside a ball when its distance is <= the radius; density and coverage use a strict < as Naeem et al. do.
Distances are computed in blocks, so memory stays bounded for tens of thousands of samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.metrics.base import WEIGHTS_OPTION, Metric, MetricContext, MetricResult
from bench.options import Option

BLOCK = 2048


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"features must be a 2-D array, got shape {arr.shape}")
    return arr


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances (len(a), len(b)), clipped at 0."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def kth_neighbour_radii(x: np.ndarray, k: int, block: int = BLOCK) -> np.ndarray:
    """Squared distance from each row of ``x`` to its k-th nearest other row."""
    if len(x) <= k:
        raise ValueError(f"need more than k={k} samples, got {len(x)}")
    out = np.empty(len(x))
    for start in range(0, len(x), block):
        d = squared_distances(x[start : start + block], x)
        # the k+1-th smallest includes the zero self-distance
        out[start : start + block] = np.partition(d, k, axis=1)[:, k]
    return out


def _inside_any(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """For each point: is it within (<=) the radius of at least one centre?"""
    inside = np.zeros(len(points), dtype=bool)
    for start in range(0, len(points), block):
        d = squared_distances(points[start : start + block], centres)
        inside[start : start + block] = (d <= radii[None, :]).any(axis=1)
    return inside


def precision_recall(real: Any, fake: Any, k: int = 3) -> dict[str, float]:
    """Precision: share of fake samples inside the real manifold; recall: share of real inside the fake one."""
    real, fake = _as_array(real), _as_array(fake)
    real_r, fake_r = kth_neighbour_radii(real, k), kth_neighbour_radii(fake, k)
    return {
        "precision": float(_inside_any(fake, real, real_r).mean()),
        "recall": float(_inside_any(real, fake, fake_r).mean()),
    }


def density_coverage(real: Any, fake: Any, k: int = 5) -> dict[str, float]:
    """Density: mean count of real balls (strict <) holding each fake sample, over k; coverage: share of real
    samples whose nearest fake sample lies strictly inside their ball."""
    real, fake = _as_array(real), _as_array(fake)
    real_r = kth_neighbour_radii(real, k)
    count = 0.0
    nearest_fake = np.empty(len(real))
    for start in range(0, len(real), BLOCK):
        d = squared_distances(real[start : start + BLOCK], fake)
        count += float((d < real_r[start : start + BLOCK, None]).sum())
        nearest_fake[start : start + BLOCK] = d.min(axis=1)
    return {"density": count / (k * len(fake)), "coverage": float((nearest_fake < real_r).mean())}


class _ManifoldMetric(Metric):
    options = {"weights": WEIGHTS_OPTION, "seed": Option(0, int), "k": Option(3, int)}

    def extractor(self) -> dict[str, Any]:
        return {"kind": "inception", "weights": self.args["weights"], "seed": self.args["seed"]}

    def _features(self, ctx: MetricContext) -> tuple[np.ndarray, np.ndarray]:
        spec = self.extractor()
        return ctx.image_features(spec, "reference"), ctx.image_features(spec, "generated")


class PrecisionRecall(_ManifoldMetric):
    """Improved precision and recall on Inception-v3 pool3 features, k = 3."""

    name = "precision_recall"
    keys = ("precision", "recall")

    def compute(self, ctx: MetricContext) -> MetricResult:
        real, fake = self._features(ctx)
        return MetricResult(precision_recall(real, fake, k=self.args["k"]),
                            self._info(k=self.args["k"], features="inception-v3 pool3"))


class DensityCoverage(_ManifoldMetric):
    """Density and coverage on Inception-v3 pool3 features, k = 5."""

    name = "density_coverage"
    keys = ("density", "coverage")
    options = {**_ManifoldMetric.options, "k": Option(5, int)}

    def compute(self, ctx: MetricContext) -> MetricResult:
        real, fake = self._features(ctx)
        return MetricResult(density_coverage(real, fake, k=self.args["k"]),
                            self._info(k=self.args["k"], features="inception-v3 pool3"))
