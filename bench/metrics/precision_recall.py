"""The metrics on k-nearest-neighbour manifolds: improved precision/recall (Kynkaanniemi et al. 2019) and
density/coverage (Naeem et al. 2020), on any registered feature network. The exact neighbour search they run on
is :mod:`bench.metrics.knn_exact` (the ADM evaluator's float16 variant: :mod:`bench.metrics.knn_adm`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.metrics.base import WEIGHTS_OPTION, FeatureSpec, Metric, MetricContext, MetricResult, SampleNeeds
from bench.metrics.knn_exact import density_coverage_counts, precision_recall_masks
from bench.options import Option


class _ManifoldMetric(Metric):
    options = {
        "weights": WEIGHTS_OPTION,
        "seed": Option(0, int, help="seed of random weights", minimum=0),
        "k": Option(3, int, minimum=1),
        "features": Option("inception", str, None,
                           "any registered feature network (`bench list extractors`): inception, the pool3 features "
                           "FID uses (no second pass); inception_tf1: pool3 after TF1 bilinear resize (ADM "
                           "evaluator); vgg16: fc2, as the original paper; dinov2, ..."),
        "channels": Option("rgb", str, ("rgb", "bgr"), "channel order fed to inception_tf1 (bgr: the ADM quirk)"),
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        from bench import plugins

        plugins.current().extractors.get(self.args["features"])  # an unknown name: one line with a did-you-mean

    def spec(self) -> FeatureSpec:
        opts = {"weights": self.args["weights"], "seed": self.args["seed"]}
        if self.args["features"] == "inception_tf1":
            opts["channels"] = self.args["channels"]
        return FeatureSpec(self.args["features"], opts)

    def feature_specs(self) -> list[FeatureSpec]:
        return [self.spec()]

    def _features(self, ctx: MetricContext) -> tuple[np.ndarray, np.ndarray]:
        spec = self.spec()
        return ctx.image_features(spec, "reference"), ctx.image_features(spec, "generated")

    def _describe(self, real: np.ndarray, fake: np.ndarray) -> dict[str, Any]:
        names = {"inception": "inception-v3 pool3 (2048-d)", "vgg16": "vgg16 fc2 (4096-d)",
                 "inception_tf1": f"inception-v3 pool3 (2048-d), TF1 bilinear resize, {self.args['channels']}"}
        feats = names.get(self.args["features"], self.args["features"])
        return self._info(k=self.args["k"], features=feats, n_reference=len(real),
                          n_generated=len(fake))


def _device(ctx: MetricContext) -> Any:
    return ctx.device if ctx.device is not None else "cpu"


#: What the intervals of the reference-side keys cover (:attr:`Metric.interval_covers`).
CONDITIONAL = ("conditional on the generated set: mean over fresh reference samples with the generated k-NN "
               "manifold fixed (narrower than the spread over fresh seeds)")


class PrecisionRecall(_ManifoldMetric):
    """Improved precision and recall, k = 3, on Inception-v3 pool3 features (VGG-16 fc2 as an option)."""

    name = "precision_recall"
    keys = ("precision", "recall")
    higher_is_better = {"precision": True, "recall": True}
    interval_covers = {"recall": CONDITIONAL}
    options = {**_ManifoldMetric.options,
               "distances": Option("exact", str, ("exact", "fp16-adm"),
                                   "exact: decisions of exact arithmetic; fp16-adm: the ADM evaluator's float16 "
                                   "distances (bench.metrics.knn_adm)")}

    def min_samples(self) -> SampleNeeds:
        k = self.args["k"]
        return SampleNeeds(k + 1, k + 1, f"k={k}")

    def _masks(self, ctx: MetricContext) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        real, fake = self._features(ctx)
        if self.args["distances"] == "fp16-adm":
            from bench.metrics.knn_adm import adm_precision_recall_masks as masks
        else:
            masks = precision_recall_masks
        prec, rec = masks(real, fake, k=self.args["k"], device=_device(ctx))
        return real, fake, prec, rec

    def compute(self, ctx: MetricContext) -> MetricResult:
        real, fake, prec, rec = self._masks(ctx)
        values = {"precision": float(prec.mean()), "recall": float(rec.mean())}
        return MetricResult(values, {**self._describe(real, fake), "distances": self.args["distances"]})

    def bootstrap_values(self, ctx: MetricContext, draws: Sequence[Any]) -> list[dict[str, float]]:
        """From the per-sample decisions, computed once: precision leaves out the generated samples of each
        draw, recall the reference samples of a partition of as many groups, each with the other set's manifold
        fixed (see :data:`CONDITIONAL`)."""
        _, _, prec, rec = self._masks(ctx)
        kept = _reference_kept(len(rec), draws)
        return [{"precision": float(prec[idx].mean()), "recall": _mean_or_nan(rec, ref)}
                for (idx, _groups), ref in zip(draws, kept, strict=True)]


class DensityCoverage(_ManifoldMetric):
    """Density and coverage, k = 5, on Inception-v3 pool3 features (VGG-16 fc2 as an option)."""

    name = "density_coverage"
    keys = ("density", "coverage")
    higher_is_better = {"density": True, "coverage": True}
    interval_covers = {"coverage": CONDITIONAL}
    options = {**_ManifoldMetric.options, "k": Option(5, int, minimum=1)}

    def min_samples(self) -> SampleNeeds:
        k = self.args["k"]
        return SampleNeeds(1, k + 1, f"k={k}")

    def _counts(self, ctx: MetricContext) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        real, fake = self._features(ctx)
        count, cov = density_coverage_counts(real, fake, k=self.args["k"], device=_device(ctx))
        return real, fake, count, cov

    def compute(self, ctx: MetricContext) -> MetricResult:
        real, fake, count, cov = self._counts(ctx)
        values = {"density": float(count.sum()) / (self.args["k"] * len(count)), "coverage": float(cov.mean())}
        return MetricResult(values, self._describe(real, fake))

    def bootstrap_values(self, ctx: MetricContext, draws: Sequence[Any]) -> list[dict[str, float]]:
        """As precision/recall's: density leaves out generated samples, coverage reference samples."""
        _, _, count, cov = self._counts(ctx)
        k = self.args["k"]
        kept = _reference_kept(len(cov), draws)
        return [{"density": float(count[idx].sum()) / (k * len(idx)), "coverage": _mean_or_nan(cov, ref)}
                for (idx, _groups), ref in zip(draws, kept, strict=True)]


def _reference_kept(m: int, draws: Sequence[Any]) -> list[np.ndarray | None]:
    """The reference rows each jackknife replicate keeps: replicate g leaves out group g of a partition of the
    m reference samples into as many groups as there are draws (None past the m-th when m is smaller), seeded
    by the draws (so it follows the run's interval seed)."""
    import hashlib

    from bench.bootstrap import partition

    first = np.ascontiguousarray(draws[0][0], np.int64).tobytes() if draws else b""
    seed = int.from_bytes(hashlib.blake2b(first, digest_size=8).digest(), "little")
    out: list[np.ndarray | None] = []
    for left in partition(m, len(draws), seed):
        keep = np.ones(m, bool)
        keep[left] = False
        out.append(np.flatnonzero(keep))
    return out + [None] * (len(draws) - len(out))


def _mean_or_nan(decisions: np.ndarray, idx: np.ndarray | None) -> float:
    """The mean decision over rows ``idx``; NaN for no replicate (the interval then leaves it out)."""
    return float(decisions[idx].mean()) if idx is not None and len(idx) else float("nan")
