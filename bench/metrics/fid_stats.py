"""``fid_stats``: FID against imported reference statistics (``stats=FILE.npz``, :mod:`bench.reference_stats`)
instead of reference images. The generated images get the transform the statistics' images got (recorded in
the file; clean-fid's own files: images as given), then the FID network, whose weights must be the file's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.errors import BenchError
from bench.metrics.base import FeatureSpec, MetricContext, MetricResult
from bench.metrics.fid import FID, FrechetReference, feature_statistics
from bench.options import Option


class FIDStats(FID):
    """FID of the generated images against a statistics file's mean and covariance."""

    name = "fid_stats"
    keys = ("fid_stats",)
    higher_is_better = {"fid_stats": False}
    needs_reference = False
    options = {**FID.options, "stats": Option(None, str, help="reference statistics .npz (mu, sigma)")}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if not self.args["stats"]:
            raise BenchError("metric fid_stats needs stats=FILE.npz: reference statistics (mu, sigma), e.g. "
                             "--metric-args fid_stats.stats=coco_clean_custom_na.npz")
        from bench.reference_stats import read_stats

        self.reference = read_stats(self.args["stats"], FID.spec(self).extractor_spec())
        self._gaussian = FrechetReference(self.reference.mu, self.reference.sigma)

    def spec(self) -> FeatureSpec:
        base = FID.spec(self)
        return FeatureSpec(base.extractor, base.options, transform=self.reference.transform)

    def compute(self, ctx: MetricContext) -> MetricResult:
        gen = ctx.image_features(self.spec(), "generated")
        value = self._gaussian.distance(*feature_statistics(gen))
        return MetricResult({"fid_stats": value}, self._info(
            features="inception-v3 pool3 (clean-fid, clean mode)", n_generated=len(gen),
            reference_stats=self.reference.provenance))

    def bootstrap_values(self, ctx: MetricContext, draws: Sequence[Any]) -> list[dict[str, float]] | None:
        gen = ctx.image_features(self.spec(), "generated")
        values = self._gaussian.resampled_distances(gen, [idx for idx, _groups in draws], ctx.device)
        return [{"fid_stats": v} for v in values]
