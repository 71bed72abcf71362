"""Frechet Inception Distance."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.metrics.base import WEIGHTS_OPTION, Metric, MetricContext, MetricResult
from bench.options import Option


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of feature rows, in float64."""
    x = np.asarray(features, dtype=np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians, in float64.

    tr (S1 S2)^(1/2) is computed as the sum of square roots of the eigenvalues of the symmetric PSD
    matrix S1^(1/2) S2 S1^(1/2), which shares its spectrum with S1 S2; this stays real and finite for
    singular covariances.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    root1 = _psd_sqrt(s1)
    eig = np.linalg.eigvalsh(root1 @ s2 @ root1)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


class FID(Metric):
    """FID between generated and reference images on Inception-v3 pool3 features."""

    name = "fid"
    keys = ("fid",)
    options = {"weights": WEIGHTS_OPTION, "seed": Option(0, int, help="seed of random weights")}

    def extractor(self) -> dict[str, Any]:
        return {"kind": "inception", "weights": self.args["weights"], "seed": self.args["seed"]}

    def compute(self, ctx: MetricContext) -> MetricResult:
        gen = ctx.image_features(self.extractor(), "generated")
        ref = ctx.image_features(self.extractor(), "reference")
        value = frechet_distance(*feature_statistics(gen), *feature_statistics(ref))
        return MetricResult({"fid": value}, self._info(features="inception-v3 pool3", n_generated=len(gen),
                                                      n_reference=len(ref)))
