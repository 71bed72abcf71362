"""The intervals of FID, FD_DINOv2 and CMMD at realistic sizes: feature dimension to sample count as 2048 to
30,000 (128-d, 1,875 generated samples), many independent draws of the generated set from a known distribution
with the reference set fixed. Each interval must contain its point value, and the share of draws whose interval
contains the mean of the estimator over all draws (what the intervals claim to cover, :mod:`bench.bootstrap`)
must be near 95%."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.bootstrap import Recording, intervals
from bench.metrics.distribution import CMMD, FDDinov2
from bench.metrics.fid import FID

D, N, DRAWS, GROUPS = 128, 1875, 120, 40


class Ctx:
    """Generated and reference features, whatever network a metric asks for."""

    def __init__(self, gen: np.ndarray, ref: np.ndarray) -> None:
        self.feats = {"generated": gen, "reference": ref}
        self.prompts = [str(i) for i in range(len(gen))]
        self.groups, self.generator, self.device = None, None, "cpu"

    def image_features(self, spec: Any, which: str) -> np.ndarray:
        return self.feats[which]


def coverage(metric: Any, key: str, draw: Any, ref: np.ndarray, draws: int = DRAWS) -> dict[str, float]:
    rng = np.random.default_rng(11)
    points, bounds, groups = [], [], set()
    for i in range(draws):
        rec = Recording(Ctx(draw(rng), ref))
        values = metric.compute(rec).values
        got = intervals(metric, rec, values, b=GROUPS, seed=i)
        points.append(values[key])
        bounds.append(got["ci95"][key])
        groups.add(got["bootstrap"].get("groups"))
    points, (lo, hi) = np.array(points), np.array(bounds).T
    target = points.mean()
    assert ((lo <= points) & (points <= hi)).all(), "an interval leaves out its own point value"
    assert groups == {GROUPS}
    return {"coverage": float(((lo <= target) & (target <= hi)).mean()), "sd": float(points.std(ddof=1)),
            "half_width": float(np.mean(hi - lo) / 2)}


def check(stats: dict[str, float]) -> None:
    assert 0.87 <= stats["coverage"] <= 0.995, stats
    # the half-width estimates 1.96 standard deviations of the estimator over fresh draws (t_39: 2.02)
    assert 0.8 <= stats["half_width"] / (2.02 * stats["sd"]) <= 1.35, stats


def test_fid_interval_coverage():
    rng = np.random.default_rng(0)
    mix = np.eye(D) * 0.9 + 0.3 * rng.normal(size=(D, D)) / np.sqrt(D)
    ref = rng.normal(size=(N, D))
    check(coverage(FID(weights="random"), "fid", lambda r: r.normal(size=(N, D)) @ mix.T + 0.05, ref))


def test_fd_dinov2_interval_coverage_on_skewed_features():
    """Non-Gaussian (rectified, skewed) features, as a network's activations are."""
    rng = np.random.default_rng(1)
    mix = rng.normal(size=(D, D)) / np.sqrt(D)
    ref = np.maximum(rng.normal(size=(N, D)) @ mix.T, 0)
    metric = FDDinov2(weights="random", size="tiny")
    check(coverage(metric, "fd_dinov2", lambda r: np.maximum(r.normal(size=(N, D)) @ mix.T * 1.1 + 0.1, 0), ref))


def test_cmmd_interval_coverage():
    """Unit-norm embeddings spread as CLIP's (cosine similarity about 0.5 between images), the generated ones
    shifted and wider."""
    rng = np.random.default_rng(2)
    centre = rng.normal(size=D)

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    ref = unit(centre + rng.normal(size=(N, D)))
    shift = rng.normal(size=D) * 0.15
    metric = CMMD(weights="random", size="tiny")
    check(coverage(metric, "cmmd", lambda r: unit(centre + shift + r.normal(size=(N, D)) * 1.05), ref, draws=60))


def test_interval_of_a_mean_is_the_t_interval_by_hand():
    """For a mean, the grouped jackknife's replicates give se^2 = (G - 1) / G sum (m_g - mean m_g)^2 exactly."""
    from scipy.stats import t

    from bench.bootstrap import draws
    from bench.metrics.base import Metric, MetricResult

    class Mean(Metric):
        keys = ("mean",)

        def compute(self, ctx: Any) -> MetricResult:
            return MetricResult({"mean": float(ctx.image_features(None, "generated").mean())})

    x = np.random.default_rng(3).exponential(size=(90, 1))
    rec = Recording(Ctx(x, x))
    reps = np.array([x[idx].mean() for idx, _ in draws(90, None, "sample", 9, 5)])
    se = np.sqrt(8 / 9 * ((reps - reps.mean()) ** 2).sum())
    got = intervals(Mean(), rec, {"mean": float(x.mean())}, b=9, seed=5)
    half = t.ppf(0.975, 8) * se
    assert got["ci95"]["mean"] == pytest.approx([x.mean() - half, x.mean() + half], rel=1e-12)
    # delete-one with every sample its own group: the classical standard error of a mean
    got = intervals(Mean(), rec, {"mean": float(x.mean())}, b=500, seed=5)
    assert got["bootstrap"]["groups"] == 90
    assert got["bootstrap"]["se"]["mean"] == pytest.approx(x.std(ddof=1) / np.sqrt(90), rel=1e-10)
