"""A feature network without parameters (colour histograms) and a metric that reads it."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from bench.metrics.base import FeatureSpec, Metric, MetricContext, MetricResult
from bench.metrics.extractors import Extractor
from bench.metrics.preprocess import Preprocess
from bench.options import Option

#: The images as they are: no resize, no crop (the suites' default is a 256 px centre crop).
AS_IS = Preprocess(size=None, center_crop=False)


class ColourHistogram(Extractor):
    """uint8 images -> per-channel histograms of ``bins`` equal-width bins, each summing to one: (B, 3 * bins)."""

    kind = "colour_histogram"
    numerics: ClassVar[tuple[str, ...]] = ("numpy",)

    def build(self) -> Any:
        return "no parameters"

    def forward(self, batch: np.ndarray) -> np.ndarray:
        bins = int(self.options.get("bins", 8))
        which = batch.astype(np.int64) * bins // 256  # bin of each value, 0 .. bins - 1
        b, h, w, c = batch.shape
        out = np.zeros((b, c, bins))
        for channel in range(c):
            for i in range(b):
                out[i, channel] = np.bincount(which[i, :, :, channel].ravel(), minlength=bins)
        return (out / (h * w)).reshape(b, c * bins)


class HistogramDistance(Metric):
    """Total variation distance between the mean colour histograms of the generated and the reference images,
    averaged over the three channels: 0 for the same colours, 1 for colours that never meet."""

    name = "histogram_distance"
    keys = ("histogram_distance",)
    higher_is_better = {"histogram_distance": False}
    options = {"bins": Option(8, int, help="bins per channel", minimum=2, maximum=256)}

    def spec(self) -> FeatureSpec:
        return FeatureSpec("colour_histogram", {"weights": "none", "bins": self.args["bins"]}, transform=AS_IS)

    def feature_specs(self) -> list[FeatureSpec]:
        return [self.spec()]

    def compute(self, ctx: MetricContext) -> MetricResult:
        gen = ctx.image_features(self.spec(), "generated").mean(axis=0)
        ref = ctx.image_features(self.spec(), "reference").mean(axis=0)
        distance = 0.5 * np.abs(gen - ref).sum() / 3
        return MetricResult({"histogram_distance": float(distance)}, {"weights": "none", "bins": self.args["bins"]})
